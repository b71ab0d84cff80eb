"""The tap path's real payloads (gateway.checkpoints.core) are what the engine reads."""

from __future__ import annotations

from typing import Any

from gateway.checkpoints.core import Point, TapDecider, reader_state_payload
from gateway.patrol.engine import ReaderState, Tap, engine_inputs_from_event


def _event(seq: int, kind: str, payload: Any, wall: float) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": kind,
        "cls": "evidence",
        "payload": dict(payload),
        "wall_time": wall,
        "mono_time": 0.0,
        "boot_id": "b",
        "clock_synced": True,
    }


def test_tap_and_reader_state_payloads_feed_the_engine() -> None:
    decider = TapDecider.build([Point("north-gate", "bus0", 3)], {"04a1": "g1"}, window_s=10.0)
    d = decider.decide(
        bus="bus0", address=3, data=b"\x04\xa1", bits=16, card_format="raw", now=100.0
    )
    assert d.kind == "tap"
    _, tap = engine_inputs_from_event(_event(1, d.kind, d.payload, 100.0))
    assert isinstance(tap, Tap)
    assert (tap.checkpoint, tap.guard, tap.wristband, tap.at) == ("north-gate", "g1", "04a1", 100.0)
    assert not tap.buffered

    state = reader_state_payload(
        bus="bus0",
        address=3,
        checkpoint="north-gate",
        online=False,
        sc_active=False,
        reason="no reply",
    )
    _, rs = engine_inputs_from_event(_event(2, "reader.state", state, 101.0))
    assert rs == ReaderState(2, "north-gate", False, 101.0, True, "bus0/3")


def test_unknown_wristband_and_unmapped_readers_are_not_taps() -> None:
    decider = TapDecider.build([Point("north-gate", "bus0", 3)], {"04a1": "g1"})
    unknown = decider.decide(
        bus="bus0", address=3, data=b"\xff", bits=8, card_format="raw", now=1.0
    )
    assert len(engine_inputs_from_event(_event(1, unknown.kind, unknown.payload, 1.0))) == 1
    state = reader_state_payload(
        bus="bus9", address=1, checkpoint=None, online=False, sc_active=False, reason="x"
    )
    assert len(engine_inputs_from_event(_event(2, "reader.state", state, 2.0))) == 1


def test_held_reads_short_drop_out_is_credited_long_or_unknown_is_not() -> None:
    decider = TapDecider.build([Point("north-gate", "bus0", 3)], {"04a1": "g1"}, window_s=10.0)
    blip = decider.decide(bus="bus0", address=3, data=b"\x04\xa1", bits=16, card_format="raw",
                          now=100.0, held=True, held_gap_s=2.0)  # fmt: skip
    _, tap = engine_inputs_from_event(_event(1, blip.kind, blip.payload, 100.0))
    assert isinstance(tap, Tap) and tap.at == 100.0
    for gap in (None, 600.0):
        late = decider.decide(bus="bus0", address=3, data=b"\x04\xa1", bits=16,
                              card_format="raw", now=200.0, held=True, held_gap_s=gap)  # fmt: skip
        assert late.kind == "tap.delivered_late"
        inputs = engine_inputs_from_event(_event(2, late.kind, late.payload, 200.0))
        assert len(inputs) == 1 and not any(isinstance(i, Tap) for i in inputs)
