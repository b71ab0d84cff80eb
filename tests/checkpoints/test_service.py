"""The tap path end to end in one process: simulated readers on a virtual bus, the real OSDP
driver, the real journal. Green only after the append is durable; never for a tap that is not.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from drivers.checkpoints import Feedback
from gateway.checkpoints.config import load_section_file
from gateway.checkpoints.service import CheckpointService, TapOutcome, make_buses
from gateway.clock import SystemClock
from gateway.journal import Journal
from hil_tests.sims.osdp_reader import AMBER, GREEN, RED, ReaderBench, journal_events

KNOWN = "04a1b2c3d4e5f6"
ROSTER = {KNOWN: "g-017", "04a1b2c3d4e5f7": "g-018"}


class Board:
    def __init__(self) -> None:
        self.sections: dict[str, Any] = {}

    def publish(self, section: str, value: Any) -> None:
        self.sections[section] = value


async def wait_for(pred, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.05)


async def test_tap_path(tmp_path: Path) -> None:
    bench = ReaderBench(tmp_path, {"a": 2}, baud=115200, roster=ROSTER, dedupe_window_s=5.0)
    bench.start()
    journal = await Journal.open(tmp_path / "j.db", gateway_id="gw-test")
    section, base = load_section_file(bench.config_path)
    outcomes: list[TapOutcome] = []
    board = Board()
    service = CheckpointService(
        section, journal, SystemClock(), board, buses=make_buses(section, base),
        observer=outcomes.append,
    )  # fmt: skip
    task = asyncio.create_task(service.run())
    sim1, sim2 = bench.reader("a", 1), bench.reader("a", 2)
    try:
        def online() -> bool:
            rows = board.sections.get("readers", {}).get("readers", [])
            return len(rows) == 2 and all(r["online"] for r in rows)

        await wait_for(online)

        # A known wristband: journaled, and only then green + short beep.
        t = sim1.tap(KNOWN)
        led = await asyncio.to_thread(sim1.wait_led, None, after=t, timeout=5)
        assert led is not None and led.color == GREEN
        first = outcomes[0]
        assert first.decision.kind == "tap" and first.feedback is Feedback.ACCEPTED
        assert first.durable_mono is not None and first.durable_mono <= led.mono_time
        assert first.event is not None and first.event.payload["guard"] == "g-017"

        # The same wristband again within the window: a counted repeat, still green.
        t = sim1.tap(KNOWN)
        assert await asyncio.to_thread(sim1.wait_led, GREEN, after=t, timeout=5)
        assert outcomes[1].decision.kind == "tap.repeat"
        assert outcomes[1].event is not None and outcomes[1].event.payload["repeat"] == 1

        # An unknown wristband: amber + long beep and an unknown_wristband event, no green.
        t = sim2.tap("0badc0de")
        led = await asyncio.to_thread(sim2.wait_led, None, after=t, timeout=5)
        assert led is not None and led.color == AMBER
        await asyncio.sleep(0.3)
        assert sim2.leds_since(t, GREEN) == []

        events = journal_events(tmp_path / "j.db")
        kinds = [e.kind for e in events]
        assert kinds.count("tap") == 1 and kinds.count("tap.repeat") == 1
        unknown = [e for e in events if e.kind == "unknown_wristband"]
        assert len(unknown) == 1
        assert unknown[0].payload == {
            "checkpoint": "cp-a-2", "reader": "a/2", "wristband": "0badc0de",
            "guard": "unknown", "format": "raw", "bits": 32, "repeat": 0, "verified": False,
        }  # fmt: skip
        online_states = [e.payload for e in events if e.kind == "reader.state"]
        assert {p["reader"] for p in online_states if p["state"] == "online"} == {"a/1", "a/2"}

        rows = {r["reader"]: r for r in service.snapshot()["readers"]}
        assert rows["a/1"]["taps"] == 1 and rows["a/1"]["repeats"] == 1
        assert rows["a/1"]["last_guard"] == "g-017" and rows["a/1"]["last_tap"] is not None
        assert rows["a/2"]["unknown"] == 1

        # A tamper report becomes a reader.status event (once per change).
        sim2.report_local_status(tamper=True, power_fail=False)
        sim2.report_local_status(tamper=True, power_fail=False)

        def tamper_events() -> list:  # type: ignore[type-arg]
            return [e for e in journal_events(tmp_path / "j.db") if e.kind == "reader.status"]

        await wait_for(lambda: len(tamper_events()) == 1)
        await asyncio.sleep(0.3)
        assert [e.payload for e in tamper_events()] == [
            {"reader": "a/2", "checkpoint": "cp-a-2", "tamper": True, "power_fail": False}
        ]

        # The journal goes away: the tap cannot be made durable, so the guard sees red.
        await journal.close()
        t = sim1.tap("04a1b2c3d4e5f7")
        led = await asyncio.to_thread(sim1.wait_led, None, after=t, timeout=5)
        assert led is not None and led.color == RED
        await asyncio.sleep(0.3)
        assert sim1.leds_since(t, GREEN) == []
        assert outcomes[-1].feedback is Feedback.REFUSED and outcomes[-1].event is None
        assert service.snapshot()["readers"][0]["not_recorded"] == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await journal.close()
        bench.stop()
    assert sum(1 for e in journal_events(tmp_path / "j.db") if e.kind == "tap") == 1
