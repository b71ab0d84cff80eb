"""The page's "today's rounds" is `compound-gw patrol today`: the live patrol service publishes
the same rows the CLI computes from the journal; a newly added schedule shows at once (after
the daemon reloads) or the page says why it has no round."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import ManualClock
from gateway.daemon import StatusBoard
from gateway.journal import Journal, read_events
from gateway.patrol.config import PatrolSection
from gateway.patrol.report import today_rows
from gateway.patrol.service import PatrolService, load_engine
from gateway.web.render import LoginInfo, render_dashboard
from gateway.web.view import build_view
from tests.patrol.helpers import at, section
from tests.web.visible import visible_text, what_should_not_be_seen


@contextlib.asynccontextmanager
async def patrol(
    section_: PatrolSection, journal: Journal, clock: ManualClock, board: StatusBoard
) -> AsyncIterator[PatrolService]:
    service = PatrolService(section_, journal, clock, tick_s=0.01, lag_s=0.0, board=board)
    task = asyncio.create_task(service.run())
    try:
        for _ in range(500):  # until it has read everything and published
            await asyncio.sleep(0.01)
            if service.seq >= journal.last_seq and "today" in board.sections.get("patrol", {}):
                break
        else:
            raise AssertionError("the patrol service did not publish its rounds")
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def night(tmp_path: Path) -> AsyncIterator[tuple[Journal, ManualClock, Path]]:
    clock = ManualClock(wall=at(21, 0), synced=True, boot_id="boot-1")
    path = tmp_path / "journal.db"
    j = await Journal.open(path, gateway_id="gw-test", clock=clock)
    await j.append("daemon.started", {"previous_stop": "first_start"})
    for when, cp in ((at(22, 31), "a"), (at(22, 40), "b")):
        clock.set_wall(when)
        await j.append("tap", {"checkpoint": cp, "guard": "g1", "wristband": "w1", "reader": "r"})
    clock.set_wall(at(23, 30))
    try:
        yield j, clock, path
    finally:
        await j.close()


def _page(
    board: StatusBoard, path: Path, clock: ManualClock, lang: str
) -> tuple[dict[str, Any], str]:
    view = build_view(
        read_events(path, last=1000), json.loads(json.dumps(board.sections)), {"events": 1},
        now=clock.wall(), tz="Asia/Shanghai", gateway_id="gw-test", compound="C",
        clock_synced=True,
    )  # fmt: skip
    page = render_dashboard(view, login=LoginInfo(logged_in=False), refresh_s=0, lang=lang)
    return view, page.split('id="rounds"')[1].split("</section>")[0]


async def test_todays_rounds_are_the_rows_patrol_today_prints(
    night: tuple[Journal, ManualClock, Path],
) -> None:
    journal, clock, path = night
    board = StatusBoard(None)
    sec = section()
    async with patrol(sec, journal, clock, board):
        view, rounds = _page(board, path, clock, "en")
    cli_rows = today_rows(load_engine(sec, path, clock.wall()))  # what `patrol today` prints
    assert cli_rows, "the night has rounds"
    assert view["patrol_today"]["rows"] == json.loads(json.dumps(cli_rows))
    text = visible_text(rounds)
    for row in cli_rows:
        assert row["window"] in text
    # 22:00 round in progress with a and b tapped; the later rounds not started yet.
    assert "in progress" in text and "checkpoints 2/3" in text and "not started yet" in text
    assert what_should_not_be_seen(rounds) == []


async def test_a_new_schedule_shows_at_once_or_the_page_says_why_not(
    night: tuple[Journal, ManualClock, Path],
) -> None:
    journal, clock, path = night
    board = StatusBoard(None)
    schedules = [s for s in section().schedules]
    base = {
        "routes": [{"id": "r1", "name": "North loop", "checkpoints": ["a", "b", "c"]}],
        "schedules": [
            {"id": s.id, "route": s.route, "every_hours": s.every_hours, "start": s.start,
             "end": s.end} for s in schedules
        ],
    }  # fmt: skip
    late = {"id": "late-check", "route": "r1", "times": ["23:45"], "window_minutes": 30}
    early = {"id": "morning", "route": "r1", "times": ["08:00"], "window_minutes": 30}
    added = section(**{**base, "schedules": [*base["schedules"], late, early]})
    async with patrol(added, journal, clock, board):  # the daemon reloaded with the new config
        _, rounds_en = _page(board, path, clock, "en")
        _, rounds_zh = _page(board, path, clock, "zh-CN")
    assert "23:45-00:15" in rounds_en, "the new round is listed at once"
    # The morning round of this patrol day began before the journal did: not planned, and said.
    assert "Schedule morning has no round in this patrol day." in visible_text(rounds_en)
    assert "巡逻计划 morning 在本巡逻日没有巡逻。" in visible_text(rounds_zh)
