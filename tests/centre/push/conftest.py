"""Fixtures for the push tests: a virtual clock, the mock robot, the outbox and a sender."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from centre.bulletins.model import (
    STATUS_EXPLAIN,
    STATUS_OK,
    DailyBulletin,
    DailyRow,
    MissedRound,
    PatrolTally,
)
from centre.push.outbox import FILENAME, PushOutbox
from centre.push.robot import Robot
from centre.push.sender import RobotSender
from tests.centre.push.mock_robot import MockRobot

KEY = "6a1b2c3d-0000-4000-8000-00000000abcd"
START = 1_764_900_000.0  # 2025-12-05 10:00 in Asia/Shanghai


class VirtualClock:
    """Time that moves only when someone sleeps: ``sleep(s)`` returns at once with the clock
    moved to at least (time of the call + s). Sleepers that overlap share the advance."""

    def __init__(self, start: float = START) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        target = self.now + max(0.0, seconds)
        await asyncio.sleep(0)
        self.now = max(self.now, target)


def bulletin(n_compounds: int, *, must_explain: int = 0, day: str = "2025-12-04") -> DailyBulletin:
    """A daily bulletin of ``n_compounds`` compounds; the first ``must_explain`` missed a round."""
    rows, missed = [], []
    for i in range(n_compounds):
        name, township = f"Compound {i:03d} 花园小区", f"Township {i % 3} 街道"
        if i < must_explain:
            tally = PatrolTally(planned=4, completed=3, missed=1)
            rows.append(DailyRow(name, township, tally, STATUS_EXPLAIN))
            missed.append(
                MissedRound(
                    name,
                    township,
                    f"gw-{i}",
                    f"night@{day}T02:00",
                    "north",
                    f"{day}T02:00:00+08:00",
                    f"{day}T04:00:00+08:00",
                    ("not started",),
                    (),
                    (),
                )
            )
        else:
            rows.append(DailyRow(name, township, PatrolTally(planned=4, completed=4), STATUS_OK))
    total = PatrolTally()
    for r in rows:
        total = total + r.tally
    return DailyBulletin(day, "Asia/Shanghai", START, tuple(rows), tuple(missed), total)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def mock_robot(clock: VirtualClock) -> AsyncIterator[MockRobot]:
    robot = MockRobot(keys={KEY}, clock=clock)
    await robot.start()
    try:
        yield robot
    finally:
        await robot.close()


@pytest.fixture
def robot(mock_robot: MockRobot) -> Robot:
    return Robot("district leaders", mock_robot.url(KEY))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def open_outbox(tmp_path: Path) -> AsyncIterator[Callable[[], Awaitable[PushOutbox]]]:
    """Opens the outbox file (again, for a restart); every one opened is closed at the end."""
    opened: list[PushOutbox] = []

    async def opener() -> PushOutbox:
        box = await PushOutbox.open(tmp_path / FILENAME)
        opened.append(box)
        return box

    yield opener
    for box in opened:
        await box.close()


@pytest.fixture
async def make_sender(
    session: aiohttp.ClientSession, clock: VirtualClock
) -> AsyncIterator[Callable[..., RobotSender]]:
    made: list[RobotSender] = []

    def make(outbox: PushOutbox, **kw: object) -> RobotSender:
        kw.setdefault("clock", clock)
        kw.setdefault("sleep", clock.sleep)
        kw.setdefault("jitter", lambda: 0.0)
        s = RobotSender(outbox, session, **kw)  # type: ignore[arg-type]
        made.append(s)
        return s

    yield make
    for s in made:
        await s.close()
