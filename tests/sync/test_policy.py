"""The uploader's pure decisions: backoff, Retry-After, link transitions, what an ack allows."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gateway.errors import SyncError
from gateway.sync.policy import Backoff, Link, LinkTracker, judge_ack, parse_retry_after
from wire import Ack, Batch


def test_full_jitter_stays_under_a_doubling_ceiling() -> None:
    b = Backoff(2.0, 60.0, random.Random(0))
    ceilings = []
    for _ in range(10):
        ceiling = b.ceiling()
        d = b.next_delay()
        assert 0 <= d <= ceiling
        ceilings.append(ceiling)
    assert ceilings[:6] == [2, 4, 8, 16, 32, 60]
    b.reset()
    assert b.ceiling() == 2


def test_jitter_spreads_a_stampede() -> None:
    delays = [Backoff(2.0, 300.0, random.Random(i)).next_delay() for i in range(117)]
    assert max(delays) - min(delays) > 1.5  # spread over the window, not in step


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 120 ", 120.0),
        ("999999", 3600.0),
        ("soon", None),
        (None, None),
        ("Sat, 28 Nov 2026 16:00:30 GMT", 30.0),
        ("Sat, 28 Nov 2026 15:00:00 GMT", 0.0),
    ],
)
def test_retry_after(value: str | None, expected: float | None) -> None:
    now = 1795881600.0  # 2026-11-28T16:00:00Z
    got = parse_retry_after(value, now)
    assert got == pytest.approx(expected) if expected is not None else got is None


@pytest.mark.parametrize(
    "value",
    [
        "\u00b2",  # superscript two: str.isdigit() says yes, float() says ValueError
        "\u0661\u0662",  # Arabic-Indic 12: not delta-seconds in HTTP
        "Mon, 01 Jan 99999999999 00:00:00 GMT",  # OverflowError in datetime
        "Fri, 31 Dec 99999 23:59:59 GMT",
        "-5",
        "1" * 5000,
        "\x00",
        "",
    ],
)
def test_retry_after_from_a_hostile_centre_is_none_never_an_exception(value: str) -> None:
    """Issue 14, item 8: a 429/503 carrying such a header used to crash the uploader."""
    assert parse_retry_after(value, 1795881600.0) is None


def test_link_transitions_once() -> None:
    t = LinkTracker()
    assert t.failure(1.0, "refused") is Link.DOWN
    assert t.failure(2.0, "refused") is None
    assert t.success(3.0) is Link.UP
    assert t.success(4.0) is None
    assert (t.state, t.since, t.last_success) == (Link.UP, 3.0, 4.0)


def ev(seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": "tap",
        "cls": "evidence",
        "payload": {},
        "wall_time": 1.0,
        "mono_time": 1.0,
        "boot_id": "b",
        "clock_synced": True,
    }


BATCH = Batch.build("gw-01", "b-1", [ev(4), ev(5), ev(6)], head_seq=10, created_at=0.0)


def ack(**kw: Any) -> Ack:
    base: dict[str, Any] = dict(
        gateway_id="gw-01",
        batch_id="b-1",
        watermark=6,
        highest=6,
        gaps=(),
        gaps_truncated=False,
        stored=3,
        duplicates=0,
    )
    return Ack(**(base | kw))


def test_in_order_ack_marks_through_last_seq_never_beyond() -> None:
    v = judge_ack(BATCH, ack(watermark=8, highest=8), journal_last_seq=10, in_order=True)
    assert v.mark_through == 6 and v.mark_seqs == ()


def test_evidence_ack_marks_exact_seqs() -> None:
    v = judge_ack(
        BATCH, ack(watermark=2, highest=6, gaps=((3, 3),)), journal_last_seq=10, in_order=False
    )
    assert v.mark_through is None and v.mark_seqs == (4, 5, 6)


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (ack(gateway_id="gw-02"), "another gateway"),
        (ack(batch_id="b-2"), "another batch"),
        (ack(watermark=11, highest=11), "never wrote"),
        (ack(stored=2), "does not confirm"),
        (ack(watermark=4, highest=6, gaps=((5, 5),)), "does not confirm"),
    ],
)
def test_untrustworthy_acks_raise(bad: Ack, fragment: str) -> None:
    with pytest.raises(SyncError, match=fragment):
        judge_ack(BATCH, bad, journal_last_seq=10, in_order=True)
