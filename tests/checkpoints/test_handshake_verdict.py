"""The handshake verdict: when a broken secure-channel handshake means "wrong key"."""

from __future__ import annotations

from drivers.osdp_bus import CCRYPT_PROMPT_S, HANDSHAKE_FAIL_S, _ReaderLink, handshake_refused


def _answered_challenge_never_finished(now: float) -> _ReaderLink:
    """A reader that answered CHLNG promptly with CCRYPT, and libosdp never sent SCRYPT."""
    link = _ReaderLink(address=1)
    link.last_chlng = now - HANDSHAKE_FAIL_S - 0.5
    link.last_ccrypt = link.last_chlng + CCRYPT_PROMPT_S / 2
    link.ccrypt_prompt = True
    return link


def test_prompt_cryptogram_never_accepted_is_a_key_refusal() -> None:
    now = 1000.0
    assert handshake_refused(_answered_challenge_never_finished(now), now)


def test_a_reader_that_was_up_on_this_opening_is_never_judged_refused() -> None:
    """Under load a handshake breaks on timing; a reader that proved the key stays "line"."""
    now = 1000.0
    link = _answered_challenge_never_finished(now)
    link.up_once = True
    assert not handshake_refused(link, now)


def test_scrypt_sent_means_the_key_matched() -> None:
    now = 1000.0
    link = _answered_challenge_never_finished(now)
    link.last_scrypt = link.last_ccrypt + 0.01
    assert not handshake_refused(link, now)


def test_a_late_cryptogram_says_nothing_of_the_key() -> None:
    now = 1000.0
    link = _answered_challenge_never_finished(now)
    link.ccrypt_prompt = False
    assert not handshake_refused(link, now)


def test_verdict_waits_for_the_handshake_timeout() -> None:
    now = 1000.0
    link = _answered_challenge_never_finished(now)
    link.last_ccrypt = now - HANDSHAKE_FAIL_S / 2
    assert not handshake_refused(link, now)


def test_a_finished_handshake_is_not_refused() -> None:
    now = 1000.0
    link = _answered_challenge_never_finished(now)
    link.last_rmac = link.last_ccrypt + 0.05
    assert not handshake_refused(link, now)
