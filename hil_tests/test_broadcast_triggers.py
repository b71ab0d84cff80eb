"""Schedule on an injected clock (offline, local time) and the duty-room button with lockout."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.broadcast.button import ButtonTrigger
from gateway.broadcast.config import BroadcastSection, ButtonSection, ScheduleEntry
from gateway.broadcast.schedule import ScheduleTrigger
from gateway.broadcast.service import BroadcastRuntime, build_runtime
from gateway.clock import ManualClock, SystemClock
from gateway.config.schema import parse_section
from gateway.journal import Journal
from hil_tests.sims.relay_board import RelayBoardSim, SimBoard
from tests.broadcast.benchkit import board_config, section_data, serial_line

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]  # asserts on the simulator's records
SH = zoneinfo.ZoneInfo("Asia/Shanghai")


@contextlib.asynccontextmanager
async def running(tmp_path: Path, sim: SimBoard) -> AsyncIterator[tuple[BroadcastRuntime, Journal]]:
    with serial_line() as line:
        async with RelayBoardSim(line.device_path, [sim]):
            data = section_data(
                line.host_path,
                [board_config("coils", 1, "main")],
                {1: ("main", 1), 2: ("main", 2), 3: ("main", 3), 4: ("main", 4)},
            )
            section = parse_section(BroadcastSection, data, "broadcast")
            journal = await Journal.open(tmp_path / "j.db", gateway_id="gw", clock=SystemClock())
            runtime = build_runtime(section, journal, SystemClock())
            task = asyncio.create_task(runtime.service.run())
            try:
                await asyncio.wait_for(runtime.controller.ready.wait(), 5)
                yield runtime, journal
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await journal.close()


@contextlib.contextmanager
def background(coro: Any) -> Iterator[asyncio.Task[Any]]:
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()


async def eventually(cond: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_schedule_fires_at_local_time_on_the_injected_clock(tmp_path):
    sim = SimBoard(1, "coils")
    start = dt.datetime(2026, 11, 28, 19, 29, 58, tzinfo=SH).timestamp()
    clock = ManualClock(wall=start, synced=False)  # offline: never synchronised
    entry = ScheduleEntry(name="evening", time="19:30", zones=(1, 2, 3), seconds=1.0)
    async with running(tmp_path, sim) as (runtime, journal):
        trig = ScheduleTrigger([entry], runtime.controller, clock, tz="Asia/Shanghai", check_s=0.02)
        with background(trig.run()):
            await asyncio.sleep(0.1)
            clock.advance(1.0)  # 19:29:59 - not yet
            await asyncio.sleep(0.2)
            assert sim.coils == [False] * 8
            clock.advance(1.0)  # 19:30:00 local = 11:30 UTC
            await eventually(lambda: sim.coils[1:4] == [True, True, True])
            await eventually(lambda: sim.coils == [False] * 8)
            clock.advance(3600)  # an hour later: fired once only
            await asyncio.sleep(0.2)
        evs = await journal.read_after(0, limit=1000)
        req = [e.payload for e in evs if e.kind == "broadcast.requested"]
        assert [r["request_id"] for r in req] == ["schedule:evening@2026-11-28T19:30:00"]
        assert req[0]["zones"] == [1, 2, 3] and req[0]["source"] == "schedule"
        off = [e.payload for e in evs if e.kind == "broadcast.off"]
        assert off[-1]["cause"] == "duration" and off[-1]["verified"] is True


async def test_schedule_missed_while_clock_jumps_is_recorded_not_played(tmp_path):
    sim = SimBoard(1, "coils")
    clock = ManualClock(wall=dt.datetime(2026, 11, 28, 8, 0, tzinfo=SH).timestamp())
    entry = ScheduleEntry(name="evening", time="19:30", zones=(1,), seconds=1.0)
    async with running(tmp_path, sim) as (runtime, journal):
        trig = ScheduleTrigger(
            [entry], runtime.controller, clock, tz="Asia/Shanghai", check_s=0.02, grace_s=120
        )
        with background(trig.run()):
            await asyncio.sleep(0.05)
            clock.set_wall(dt.datetime(2026, 11, 28, 23, 0, tzinfo=SH).timestamp())
            await asyncio.sleep(0.2)
        evs = await journal.read_after(0, limit=1000)
        missed = [e.payload for e in evs if e.kind == "broadcast.schedule_missed"]
        assert missed and missed[0]["run"] == "evening@2026-11-28T19:30:00"
        assert not [e for e in evs if e.kind == "broadcast.requested"]
        assert sim.coils == [False] * 8


async def test_button_press_triggers_with_lockout_and_led(tmp_path):
    sim = SimBoard(1, "coils")
    factory = MockFactory()
    try:
        section = ButtonSection(
            enabled=True,
            pin="GPIO17",
            led_pin="GPIO27",
            zones=(2, 4),
            seconds=30.0,
            lockout_s=1.0,
            bounce_s=0.0,
        )
        async with running(tmp_path, sim) as (runtime, journal):
            button = ButtonTrigger(
                section,
                runtime.controller,
                SystemClock(),
                all_zones=(1, 2, 3, 4),
                pin_factory=factory,
            )
            pin, led = factory.pin("GPIO17"), factory.pin("GPIO27")
            with background(button.run()):
                await asyncio.sleep(0.1)

                def press() -> None:
                    pin.drive_low()
                    pin.drive_high()

                press()
                await eventually(lambda: sim.coils[2] and sim.coils[4])
                await eventually(lambda: led.state)  # steady on while playing
                press()  # inside the lockout: refused, still playing
                await asyncio.sleep(0.3)
                assert sim.coils[2] and sim.coils[4]
                await asyncio.sleep(1.0)
                press()  # after the lockout: stops the broadcast
                await eventually(lambda: sim.coils == [False] * 8)
                await eventually(lambda: not led.state)
            evs = await journal.read_after(0, limit=1000)
            decisions = [e.payload["decision"] for e in evs if e.kind == "broadcast.button"]
            assert decisions == ["start", "locked", "stop"]
            stops = [e.payload for e in evs if e.kind == "broadcast.stop_requested"]
            assert stops[-1]["source"] == "button"
    finally:
        factory.reset()
        factory.close()
