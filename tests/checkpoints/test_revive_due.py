"""When the bus makes libosdp retry a reader: only once libosdp has given up on it."""

from __future__ import annotations

from drivers.osdp_bus import PARKED_QUIET_S, _ReaderLink, revive_due

NOW = 1000.0


def _down(**fields: float) -> _ReaderLink:
    link = _ReaderLink(address=1)
    link.next_revive = NOW - 1.0  # its retry time has come
    for name, value in fields.items():
        setattr(link, name, value)
    return link


def test_a_handshake_libosdp_is_still_working_through_is_not_cut_short() -> None:
    """A command went out just now and libosdp has not said it gave up: a slow handshake."""
    assert not revive_due(_down(last_command=NOW - 0.5), NOW)
    # ... however long the pause between its steps, short of libosdp's longest silence.
    assert not revive_due(_down(last_command=NOW - PARKED_QUIET_S + 0.1), NOW)


def test_libosdp_saying_it_went_offline_makes_the_reader_due() -> None:
    assert revive_due(_down(last_command=NOW - 0.3, offline_said=NOW - 0.1), NOW)


def test_an_offline_notice_older_than_the_last_command_is_stale() -> None:
    """Our own revival's disable says "offline" too; the handshake that followed is newer."""
    assert not revive_due(_down(offline_said=NOW - 0.6, last_command=NOW - 0.4), NOW)


def test_a_reader_libosdp_left_alone_this_long_is_due() -> None:
    assert revive_due(_down(last_command=NOW - PARKED_QUIET_S - 0.1), NOW)


def test_the_retry_time_is_kept_even_for_a_parked_reader() -> None:
    link = _down(offline_said=NOW - 0.1, last_command=NOW - 10.0)
    link.next_revive = NOW + 0.5
    assert not revive_due(link, NOW)


def test_a_reader_that_is_up_is_never_revived() -> None:
    link = _down(offline_said=NOW - 0.1, last_command=NOW - 10.0)
    link.online = link.sc_active = True
    assert not revive_due(link, NOW)
