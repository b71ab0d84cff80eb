"""Daemon-less 'killed mid-broadcast': the board's own timer releases the relays; a restart
forces everything off, verifies it, and records the interrupted broadcast from the journal."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.journal import read_events
from hil_tests.sims.relay_board import RelayBoardSim, SimBoard
from tests.broadcast.benchkit import board_config, section_data, serial_line

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]  # asserts on the simulator's records
ROOT = Path(__file__).resolve().parents[1]
HW_TOLERANCE_S = 0.3


async def spawn(section: dict, journal: Path, start: str = "") -> asyncio.subprocess.Process:
    args = [sys.executable, "-m", "tests.broadcast.runner", json.dumps(section), str(journal)]
    if start:
        args += ["--start", start]
    return await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )


async def expect_line(proc: asyncio.subprocess.Process, text: str, timeout: float = 15) -> None:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        assert line, f"runner exited before printing {text}"
        if line.strip() == text.encode():
            return


async def kill(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def test_killed_mid_broadcast_hardware_releases_and_restart_records(tmp_path):
    sim = SimBoard(1, "waveshare_v2")
    journal = tmp_path / "journal.db"
    with serial_line() as line:
        async with RelayBoardSim(line.device_path, [sim]):
            section = section_data(
                line.host_path,
                [board_config("waveshare_v2", 1, "main")],
                {1: ("main", 1), 2: ("main", 2)},
                amplifier=("main", 0),
            )
            # 1. Killed while on: nobody is left to switch off; the board's timer does it.
            proc = await spawn(section, journal, start="1,2:1.5")
            try:
                await expect_line(proc, "ON")
                await kill(proc)
            finally:
                if proc.returncode is None:
                    await kill(proc)
            zones_on = max(c.t for c in sim.changes if c.on and c.channel in (1, 2))
            assert sim.coils[:3] == [True, True, True]
            await asyncio.sleep(1.5 + 1.0 + HW_TOLERANCE_S + 0.2 - (time.monotonic() - zones_on))
            assert sim.coils == [False] * 8
            released = [c for c in sim.changes if not c.on]
            assert {c.cause for c in released} == {"flash-expired"}
            for c in released:
                if c.channel in (1, 2):
                    assert c.t - zones_on == pytest.approx(1.5 + 1.0, abs=HW_TOLERANCE_S)

            # 2. Killed during a long broadcast, restarted at once: forced off and verified.
            proc = await spawn(section, journal, start="1:60")
            try:
                await expect_line(proc, "ON")
                await kill(proc)
            finally:
                if proc.returncode is None:
                    await kill(proc)
            assert sim.coils[1]
            proc = await spawn(section, journal)
            try:
                await expect_line(proc, "READY")
                assert sim.coils == [False] * 8
                off = [c for c in sim.changes if not c.on][-2:]
                assert {c.cause for c in off} == {"write"}
            finally:
                proc.send_signal(signal.SIGTERM)
                await proc.wait()

    events = await asyncio.to_thread(read_events, journal, limit=10_000)
    kinds = [e.kind for e in events]
    interrupted = [e.payload for e in events if e.kind == "broadcast.interrupted"]
    assert [i["request_id"] for i in interrupted] == ["kill-test", "kill-test"]
    assert all(i["last_stage"] == "on" for i in interrupted)
    # Each restart: interrupted recorded, then every relay forced off and verified.
    last_start = len(kinds) - 1 - kinds[::-1].index("broadcast.force_off")
    after = events[last_start:]
    startup_off = next(e for e in after if e.kind == "broadcast.off")
    assert startup_off.payload["cause"] == "startup" and startup_off.payload["verified"] is True
    assert startup_off.payload["relays"] == ["main:0", "main:1", "main:2"]
    # The clean stop at the end is a fail-safe off too, so nothing is left open.
    assert kinds[-1] == "broadcast.failsafe_off"
