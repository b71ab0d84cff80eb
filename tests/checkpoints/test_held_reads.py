"""Reads a reader held while nobody listened (issue 14): recorded as such, never green.

A reader keeps a card read it could not deliver and hands it over on the first polls after the
link comes back; its arrival is not its tap time. The gateway must not present it as a tap
made just now (no green for a guard long gone, no on-time credit), and must not lose it.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from drivers.checkpoints import Feedback
from drivers.osdp_bus import COMMAND_POLL, REPLY_ACK, ReadDrainTracker, SniffedFrame
from gateway.checkpoints.config import load_section_file
from gateway.checkpoints.core import (
    HELD_READ_TOLERANCE_S,
    TAP_DELIVERED_LATE,
    Point,
    TapDecider,
)
from gateway.checkpoints.service import CheckpointService, make_buses
from gateway.clock import SystemClock
from gateway.journal import Journal
from hil_tests.sims.osdp_reader import GREEN, ReaderBench, journal_events

KNOWN = "04a1b2c3d4e5f6"
ROSTER = {KNOWN: "g-017"}


class Board:
    def __init__(self) -> None:
        self.sections: dict[str, Any] = {}

    def publish(self, section: str, value: Any) -> None:
        self.sections[section] = value


async def wait_for(pred, timeout: float = 20.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


# --------------------------------------------------------------------------- the whole path


async def test_read_held_while_the_gateway_was_down_is_late_evidence_not_a_green_tap(
    tmp_path: Path,
) -> None:
    bench = ReaderBench(tmp_path, {"a": 1}, baud=115200, roster=ROSTER, dedupe_window_s=30.0)
    bench.start()
    sim = bench.reader("a", 1)
    journal = await Journal.open(tmp_path / "j.db", gateway_id="gw-test")
    task: asyncio.Task[None] | None = None
    try:
        # The guard taps while the gateway is down: the reader holds the read.
        held_at = sim.tap(KNOWN)
        await asyncio.sleep(0.5)
        section, base = load_section_file(bench.config_path)
        board = Board()
        service = CheckpointService(
            section, journal, SystemClock(), board, buses=make_buses(section, base)
        )
        task = asyncio.create_task(service.run())

        def recorded() -> list[Any]:
            return [e for e in journal_events(tmp_path / "j.db")
                    if e.payload.get("wristband") == KNOWN]  # fmt: skip

        await wait_for(recorded, what="the held read to be journaled")
        (late,) = recorded()
        assert late.kind == TAP_DELIVERED_LATE, f"a held read was journaled as {late.kind}"
        assert late.payload["time_uncertain"] is True
        assert late.payload["out_of_contact_s"] is None  # the gateway was not running
        assert late.payload["checkpoint"] == "cp-a-1" and late.payload["guard"] == "g-017"
        await asyncio.sleep(1.5)  # long past any feedback for it
        assert sim.leds_since(held_at) == [], "a held read turned the reader's LED on"

        # The guard taps now: an on-time tap, green, and not a repeat of the held one (that
        # one opened no dedupe window).
        t = sim.tap(KNOWN)
        led = await asyncio.to_thread(sim.wait_led, GREEN, after=t, timeout=10)
        assert led is not None, "a fresh tap after the held one got no green"
        kinds = [e.kind for e in recorded()]
        assert kinds == [TAP_DELIVERED_LATE, "tap"]
        rows = {r["reader"]: r for r in service.snapshot()["readers"]}
        assert rows["a/1"]["delivered_late"] == 1
        # The driver counts deliveries: under load a poll's reply can time out and the link
        # reconnect, and the reader hands the same held read over once more. The decider
        # journals it once (above); the driver's count may say more, never less.
        assert rows["a/1"]["held_reads"] >= 1
        assert rows["a/1"]["taps"] == 1
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await journal.close()
        bench.stop()


# --------------------------------------------------------------------------- the pure parts


def _f(address: int, reply: bool, code: int) -> SniffedFrame:
    return SniffedFrame(address, reply, code, None)


def test_drain_tracker_reads_are_held_until_an_ack_to_a_poll() -> None:
    now = [100.0]
    tracker = ReadDrainTracker(clock=lambda: now[0])
    assert not tracker.drained(3)
    tracker.frame(_f(3, False, 0x61))  # ID
    tracker.frame(_f(3, True, 0x45))
    tracker.link_changed(3)  # online after the handshake
    tracker.frame(_f(3, False, COMMAND_POLL))
    tracker.frame(_f(3, True, 0x50))  # RAW: a held read
    assert not tracker.drained(3)
    assert tracker.out_of_contact_s(3) is None  # never heard on a live link this session
    tracker.frame(_f(3, False, 0x69))  # LED ...
    tracker.frame(_f(3, True, REPLY_ACK))  # ... its ACK says nothing about held reads
    assert not tracker.drained(3)
    tracker.frame(_f(3, False, COMMAND_POLL))
    tracker.frame(_f(3, True, REPLY_ACK))
    assert tracker.drained(3)
    assert not tracker.drained(4)

    # A drop-out: held again, and the gap is known from the last reply on the live link.
    now[0] = 110.0
    tracker.frame(_f(3, False, COMMAND_POLL))
    tracker.frame(_f(3, True, REPLY_ACK))
    now[0] = 112.0
    tracker.link_changed(3)  # offline
    now[0] = 114.0
    tracker.frame(_f(3, True, 0x76))  # handshake replies do not shorten the gap
    tracker.link_changed(3)  # online again
    now[0] = 114.5
    assert not tracker.drained(3)
    assert tracker.out_of_contact_s(3) == 4.5


def test_decider_held_reads() -> None:
    decider = TapDecider.build([Point("cp1", "a", 1)], ROSTER, window_s=10.0)
    data = bytes.fromhex(KNOWN)
    late = decider.decide(bus="a", address=1, data=data, bits=56, card_format="raw", now=5.0,
                          held=True, held_gap_s=None)  # fmt: skip
    assert late.kind == TAP_DELIVERED_LATE and late.feedback is None
    assert late.payload["time_uncertain"] is True
    longer = decider.decide(bus="a", address=1, data=data, bits=56, card_format="raw",
                            now=6.0, held=True, held_gap_s=HELD_READ_TOLERANCE_S + 1)  # fmt: skip
    assert longer.kind == TAP_DELIVERED_LATE and longer.payload["out_of_contact_s"] == 11.0
    # Neither opened a dedupe window: the next read is a tap.
    fresh = decider.decide(bus="a", address=1, data=data, bits=56, card_format="raw", now=7.0)
    assert fresh.kind == "tap" and fresh.feedback is Feedback.ACCEPTED
    assert "time_uncertain_s" not in fresh.payload
    # A short drop-out: still a tap (the guard is near), with its time uncertainty.
    decider2 = TapDecider.build([Point("cp1", "a", 1)], ROSTER, window_s=10.0)
    blip = decider2.decide(bus="a", address=1, data=data, bits=56, card_format="raw",
                           now=8.0, held=True, held_gap_s=2.04)  # fmt: skip
    assert blip.kind == "tap" and blip.feedback is Feedback.ACCEPTED
    assert blip.payload["time_uncertain_s"] == 2.0
    # An unknown wristband held long: unknown_wristband evidence, flagged, no feedback.
    unknown = decider2.decide(bus="a", address=1, data=b"\x0b", bits=8, card_format="raw",
                              now=9.0, held=True, held_gap_s=None)  # fmt: skip
    assert unknown.kind == "unknown_wristband" and unknown.feedback is None
    assert unknown.payload["time_uncertain"] is True
