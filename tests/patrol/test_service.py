"""The patrol service on a real journal: live alerts and verdicts, restart idempotency, and
live output equal to a cold replay of the same journal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import ManualClock
from gateway.journal import Journal
from gateway.patrol.service import PATROL_KINDS, PatrolService, build_services, load_engine
from tests.patrol.helpers import after_midnight, at, section

SECTION = section()


@contextlib.asynccontextmanager
async def running(service: PatrolService) -> AsyncIterator[PatrolService]:
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settle(service: PatrolService, journal: Journal) -> None:
    """Wait until the service has read everything, its own output included."""
    for _ in range(500):
        await asyncio.sleep(0.01)
        if service.engine is not None and service.seq >= journal.last_seq:
            await asyncio.sleep(0.03)  # one more tick: time passes, maybe more output
            if service.seq >= journal.last_seq:
                return
    raise AssertionError("patrol service did not catch up")


async def patrol_events(journal: Journal) -> list[tuple[str, dict[str, Any]]]:
    events = await journal.read_after(0, limit=100_000, kinds=PATROL_KINDS)
    return [(ev.kind, dict(ev.payload)) for ev in events]


async def night(journal: Journal, clock: ManualClock, service: PatrolService | None) -> None:
    """g1 starts late at 22:31 and skips c; nobody walks the 00:00 round."""

    async def step(to: float, *tap: str) -> None:
        clock.set_wall(to)
        if tap:
            await journal.append(
                "tap", {"checkpoint": tap[0], "guard": "g1", "wristband": "w1", "reader": "r"}
            )
        if service is not None:
            await settle(service, journal)

    await step(at(21, 59))
    await step(at(22, 16))  # grace over: not started
    await step(at(22, 31), "a")
    await step(at(22, 40), "b")
    await step(at(23, 30))  # c overdue since 23:16
    await step(after_midnight(0, 0, 5))  # window over: incomplete
    await step(after_midnight(2, 0, 5))  # 00:00 round missed


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[tuple[Journal, ManualClock]]:
    clock = ManualClock(wall=at(21, 0), synced=True, boot_id="boot-1")
    j = await Journal.open(tmp_path / "journal.db", gateway_id="gw-test", clock=clock)
    await j.append("daemon.started", {"previous_stop": "first_start"})
    try:
        yield j, clock
    finally:
        await j.close()


async def test_live_service_emits_alerts_and_verdicts_once(
    journal: tuple[Journal, ManualClock],
) -> None:
    j, clock = journal
    service = PatrolService(SECTION, j, clock, tick_s=0.01, lag_s=0.0)
    async with running(service):
        await night(j, clock, service)
        live = await patrol_events(j)
    summary = [
        (kind, p.get("alert") or p.get("round"), p.get("verdict"), p.get("at")) for kind, p in live
    ]
    r22, r00 = "night@2026-11-28T22:00", "night@2026-11-29T00:00"
    assert summary == [
        ("patrol.alert", f"{r22}/not_started", None, at(22, 15)),
        ("patrol.alert_resolved", f"{r22}/not_started", None, at(22, 31)),
        ("patrol.alert", f"{r22}/checkpoint_overdue/c", None, at(23, 16)),
        ("patrol.alert_resolved", f"{r22}/checkpoint_overdue/c", None, after_midnight(0)),
        ("patrol.round", r22, "incomplete", after_midnight(0)),
        ("patrol.alert", f"{r22}/incomplete", None, after_midnight(0)),
        ("patrol.alert", f"{r00}/not_started", None, after_midnight(0, 15)),
        ("patrol.alert_resolved", f"{r00}/not_started", None, after_midnight(2)),
        ("patrol.round", r00, "missed", after_midnight(2)),
    ]
    assert all(p.get("revision", 1) == 1 for _, p in live)
    verdict = live[4][1]
    assert verdict["reasons"] == ["missing c (0 of 1 taps)", "also started late, at 22:31"]
    assert verdict["codes"] == ["late_start", "missing"]
    assert verdict["checkpoints"] == {"a": 1, "b": 1, "c": 0}

    # A restart replays the journal, reaches the same state and emits nothing twice.
    again = PatrolService(SECTION, j, clock, tick_s=0.01, lag_s=0.0)
    async with running(again):
        await settle(again, j)
        assert again.emitted == 0
        assert again.engine is not None
        assert again.engine.report(r22).state == "incomplete"
    assert await patrol_events(j) == live


async def test_cold_replay_emits_what_live_emitted(
    journal: tuple[Journal, ManualClock], tmp_path: Path
) -> None:
    j, clock = journal
    service = PatrolService(SECTION, j, clock, tick_s=0.01, lag_s=0.0)
    async with running(service):
        await night(j, clock, service)
    live = await patrol_events(j)

    # The same night journaled with no patrol service running; it starts afterwards.
    clock2 = ManualClock(wall=at(21, 0), synced=True, boot_id="boot-1")
    j2 = await Journal.open(tmp_path / "cold.db", gateway_id="gw-test", clock=clock2)
    try:
        await j2.append("daemon.started", {"previous_stop": "first_start"})
        await night(j2, clock2, None)
        cold = PatrolService(SECTION, j2, clock2, tick_s=0.01, lag_s=0.0)
        async with running(cold):
            await settle(cold, j2)
        assert await patrol_events(j2) == live
    finally:
        await j2.close()


async def test_crash_between_raise_and_resolve_is_completed_on_restart(
    journal: tuple[Journal, ManualClock],
) -> None:
    j, clock = journal
    clock.set_wall(at(22, 16))
    # A previous run raised the alert, then died before journaling anything else.
    await j.append(
        "patrol.alert",
        {
            "alert": "night@2026-11-28T22:00/not_started",
            "alert_kind": "not_started",
            "round": "night@2026-11-28T22:00",
            "checkpoint": "",
            "at": at(22, 15),
            "message": "round night@2026-11-28T22:00 (North loop) not started 15 min after 22:00",
        },
    )
    await j.append("tap", {"checkpoint": "a", "guard": "g1", "wristband": "w1"})
    clock.set_wall(at(22, 20))
    service = PatrolService(SECTION, j, clock, tick_s=0.01, lag_s=0.0)
    async with running(service):
        await settle(service, j)
    kinds = [(k, p["alert"]) for k, p in await patrol_events(j)]
    assert kinds == [
        ("patrol.alert", "night@2026-11-28T22:00/not_started"),
        ("patrol.alert_resolved", "night@2026-11-28T22:00/not_started"),
    ]


async def test_load_engine_for_the_cli(journal: tuple[Journal, ManualClock]) -> None:
    j, clock = journal
    await night(j, clock, None)
    engine = await asyncio.to_thread(load_engine, SECTION, j.path, after_midnight(2, 1))
    assert engine.report("night@2026-11-28T22:00").state == "incomplete"
    assert engine.report("night@2026-11-29T00:00").state == "missed"


def test_build_services_needs_a_patrol_section() -> None:
    class Cfg:
        patrol = SECTION

    clock = ManualClock()
    assert [s.name for s in build_services(Cfg(), None, clock)] == ["patrol"]
    assert build_services(object(), None, clock) == []


class _Board:
    def __init__(self) -> None:
        self.sections: dict[str, Any] = {}

    def publish(self, section: str, value: Any) -> None:
        self.sections[section] = value


async def test_never_synchronised_clock_publishes_waiting_instead_of_crashing(
    tmp_path: Path,
) -> None:
    # A gateway whose clock was never synchronised has no trusted "now": the service must keep
    # running and say what it waits for (it once crashed converting -inf to a date).
    clock = ManualClock(wall=at(21, 0), synced=False, boot_id="boot-1")
    j = await Journal.open(tmp_path / "journal.db", gateway_id="gw-test", clock=clock)
    board = _Board()
    try:
        await j.append("daemon.started", {"previous_stop": "first_start"})
        await j.append("tap", {"checkpoint": "a", "guard": "g1", "wristband": "w1", "reader": "r"})
        service = PatrolService(SECTION, j, clock, tick_s=0.01, lag_s=0.0, board=board)
        task = asyncio.create_task(service.run())
        await settle(service, j)
        await asyncio.sleep(0.05)
        assert not task.done(), "the service must keep running"
        assert board.sections["patrol"]["waiting_for"] == "a synchronised clock"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await j.close()
