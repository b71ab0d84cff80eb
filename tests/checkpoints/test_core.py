"""The tap decision core: dedupe windows, roster lookup, feedback choice."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.checkpoints import Feedback
from gateway.checkpoints.core import (
    TAP,
    TAP_REPEAT,
    UNKNOWN_WRISTBAND,
    Point,
    TapDecider,
    reader_state_payload,
)

BAND = bytes.fromhex("04a1b2c3d4e5f6")
OTHER = bytes.fromhex("04a1b2c3d4e5f7")
STRANGER = bytes.fromhex("0badc0de")


def decider(window: float = 10.0) -> TapDecider:
    points = [Point("north-gate", "a", 1), Point("south-gate", "a", 2), Point("car-park", "b", 1)]
    return TapDecider.build(points, {BAND.hex(): "g-017", OTHER.hex(): "g-018"}, window)


def read(d: TapDecider, data: bytes, now: float, bus: str = "a", address: int = 1):  # type: ignore[no-untyped-def]
    return d.decide(bus=bus, address=address, data=data, bits=len(data) * 8,
                    card_format="raw", now=now)  # fmt: skip


def test_first_read_is_a_tap_with_the_guard_and_green() -> None:
    d = read(decider(), BAND, 100.0)
    assert d.kind == TAP
    assert d.feedback is Feedback.ACCEPTED
    assert d.payload == {
        "checkpoint": "north-gate",
        "reader": "a/1",
        "wristband": "04a1b2c3d4e5f6",
        "guard": "g-017",
        "format": "raw",
        "bits": 56,
        "verified": False,
    }


def test_repeats_inside_the_window_are_counted_not_new_taps() -> None:
    dec = decider(10.0)
    assert read(dec, BAND, 100.0).kind == TAP
    r1 = read(dec, BAND, 103.0)
    r2 = read(dec, BAND, 109.9)
    assert (r1.kind, r1.payload["repeat"]) == (TAP_REPEAT, 1)
    assert (r2.kind, r2.payload["repeat"]) == (TAP_REPEAT, 2)
    assert r2.payload["window_opened_s_ago"] == 9.9
    assert r1.feedback is Feedback.ACCEPTED  # the first tap is already durable
    # The window is fixed from the first tap: at 110 s a new tap starts.
    assert read(dec, BAND, 110.0).kind == TAP
    assert read(dec, BAND, 111.0).payload["repeat"] == 1


def test_windows_are_per_reader_and_per_wristband() -> None:
    dec = decider()
    assert read(dec, BAND, 100.0).kind == TAP
    assert read(dec, OTHER, 100.5).kind == TAP
    assert read(dec, BAND, 101.0, address=2).kind == TAP
    assert read(dec, BAND, 101.0, bus="b").kind == TAP
    assert read(dec, BAND, 102.0).kind == TAP_REPEAT


def test_zero_window_disables_dedupe() -> None:
    dec = decider(0.0)
    assert [read(dec, BAND, 100.0).kind for _ in range(3)] == [TAP, TAP, TAP]


def test_unknown_wristband_is_evidence_with_amber_feedback() -> None:
    dec = decider()
    d = read(dec, STRANGER, 100.0)
    assert d.kind == UNKNOWN_WRISTBAND
    assert d.feedback is Feedback.UNKNOWN
    assert d.payload["guard"] == "unknown"
    assert d.payload["repeat"] == 0
    again = read(dec, STRANGER, 101.0)
    assert (again.kind, again.payload["repeat"], again.feedback) == (
        UNKNOWN_WRISTBAND, 1, Feedback.UNKNOWN,
    )  # fmt: skip


def test_an_unmapped_reader_is_never_accepted() -> None:
    d = read(decider(), BAND, 100.0, bus="z", address=9)
    assert d.feedback is Feedback.REFUSED
    assert d.payload["checkpoint"] is None


def test_clock_going_backwards_does_not_swallow_taps() -> None:
    dec = decider()
    assert read(dec, BAND, 100.0).kind == TAP
    assert read(dec, BAND, 50.0).kind == TAP


def test_reader_state_payload_shape() -> None:
    assert reader_state_payload(
        bus="a", address=3, checkpoint="north-gate", online=False, sc_active=False,
        reason="bus_lost",
    ) == {
        "reader": "a/3", "checkpoint": "north-gate", "state": "offline",
        "sc_active": False, "reason": "bus_lost",
    }  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([BAND, OTHER, STRANGER]), st.integers(1, 2), st.floats(0, 5)),
        max_size=60,
    )
)
def test_every_read_gets_one_decision_and_taps_are_a_window_apart(reads) -> None:  # type: ignore[no-untyped-def]
    dec = decider(3.0)
    now = 0.0
    last_tap: dict[tuple[int, bytes], float] = {}
    counts = {TAP: 0, TAP_REPEAT: 0, UNKNOWN_WRISTBAND: 0}
    for data, address, gap in reads:
        now += gap
        d = read(dec, data, now, address=address)
        counts[d.kind] += 1
        if d.kind == TAP:
            prev = last_tap.get((address, data))
            assert prev is None or now - prev >= 3.0
            last_tap[(address, data)] = now
        if d.kind == TAP_REPEAT:
            assert now - last_tap[(address, data)] < 3.0
    assert sum(counts.values()) == len(reads)
