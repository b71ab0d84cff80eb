"""The checkpoint service survives a device babbling garbage on its bus: it keeps running,
says so in its log and counters, and taps go on being recorded and confirmed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path
from typing import Any

import pytest

from gateway.checkpoints.config import load_section_file
from gateway.checkpoints.service import CheckpointService, make_buses
from gateway.clock import SystemClock
from gateway.journal import Journal
from hil_tests.sims.osdp_reader import GREEN, ReaderBench, journal_events

KNOWN = "04a1b2c3d4e5f6"


class Board:
    def __init__(self) -> None:
        self.sections: dict[str, Any] = {}

    def publish(self, section: str, value: Any) -> None:
        self.sections[section] = value


async def wait_for(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    try:
        async with asyncio.timeout(timeout):
            while not pred():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def test_service_survives_a_device_sending_garbage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    bench = ReaderBench(tmp_path, {"a": 2}, baud=115200, roster={KNOWN: "g-1"},
                        dedupe_window_s=0.5)  # fmt: skip
    bench.start()
    journal = await Journal.open(tmp_path / "j.db", gateway_id="gw-test")
    board = Board()
    section, base = load_section_file(bench.config_path)
    service = CheckpointService(
        section, journal, SystemClock(), board, buses=make_buses(section, base)
    )
    task = asyncio.create_task(service.run())
    rng = random.Random(7)
    try:
        def readers() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = board.sections.get("readers", {}).get("readers", [])
            return rows

        await wait_for(lambda: len(readers()) == 2 and all(r["online"] for r in readers()), 30,
                       "readers online")  # fmt: skip
        # A babbling device: bursts of random bytes, some shaped like OSDP headers with absurd
        # lengths, for three seconds.
        line = bench.lines["a"]
        for _ in range(30):
            junk = rng.randbytes(rng.randrange(1, 200))
            if rng.random() < 0.5:
                junk = bytes([0x53, 0x81, 0xFF, 0x05]) + junk
            line.inject_garbage(0, data=junk)
            await asyncio.sleep(0.1)
        assert not task.done(), "the checkpoint service stopped"
        buses = board.sections["readers"]["buses"]
        await wait_for(lambda: any(b["bad_frames"] + b["unanswered"] > 0
                                   for b in board.sections["readers"]["buses"]), 5,
                       "damage to be counted")  # fmt: skip
        assert buses[0]["state"] == "running"
        assert any("damaged frames" in r.getMessage() for r in caplog.records), (
            "no log line says the bus received damaged frames"
        )
        # The babbling stopped: taps are recorded and confirmed again.
        await wait_for(lambda: all(r["online"] for r in readers()), 30, "readers back online")
        sim = bench.reader("a", 1)
        t = sim.tap(KNOWN)
        led = await asyncio.to_thread(sim.wait_led, GREEN, after=t, timeout=10)
        assert led is not None, "no green after the garbage stopped"
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await journal.close()
        bench.stop()
    assert [e.payload["wristband"] for e in journal_events(tmp_path / "j.db", "tap")] == [KNOWN]
