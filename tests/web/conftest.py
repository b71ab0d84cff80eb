"""A real status page on 127.0.0.1 over a real journal seeded with a small compound's day."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from gateway.clock import ManualClock
from gateway.daemon import StatusBoard
from gateway.events import TELEMETRY
from gateway.journal import Journal
from gateway.web.app import WebContext, WebService
from gateway.web.auth import LoginThrottle
from gateway.web.config import WebSection

# Recognisable secrets planted where a careless page might leak them.
PLANTED = {
    "scbk_file": "5eC7e7-SCBK-FILE-0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "enroll_file": "5eC7e7-ENROLL-TOKEN-FILE-8d7c6b5a",
    "board_scbk": "5eC7e7-BOARD-SCBK-00112233445566778899",
    "board_token": "5eC7e7-BOARD-TOKEN-a1b2c3d4",
    "event_token": "5eC7e7-EVENT-TOKEN-e5f6a7b8",
    "event_password": "5eC7e7-EVENT-PASSWORD-c9d0",
    "wristband": "04A1B2C3D4E5F6",
}
PASSWORD = "correct horse battery staple"


@dataclass
class Site:
    url: str
    ctx: WebContext
    journal: Journal
    clock: ManualClock
    board: StatusBoard
    data_dir: Path
    password_path: Path

    def session(self) -> aiohttp.ClientSession:
        # unsafe=True: aiohttp's jar otherwise ignores cookies set by an IP address host.
        return aiohttp.ClientSession(
            self.url, cookie_jar=aiohttp.CookieJar(unsafe=True), raise_for_status=False
        )


async def seed(journal: Journal, clock: ManualClock, tz_today: str, yesterday: str) -> None:
    async def at(kind: str, payload: dict[str, object], step: float = 7.0, **kw: str) -> None:
        clock.advance(step)
        await journal.append(kind, payload, **kw)  # type: ignore[arg-type]

    await at("daemon.started", {"version": "test"})
    await at(
        "reader.state",
        {
            "reader": "bus0/1",
            "checkpoint": "north-gate",
            "state": "online",
            "sc_active": True,
            "reason": "",
        },
    )
    await at(
        "reader.state",
        {
            "reader": "bus0/2",
            "checkpoint": "bike-shed",
            "state": "offline",
            "sc_active": False,
            "reason": "no reply",
        },
    )
    await at("health.state", {"device": "cam-gate", "kind": "camera", "state": "ok", "reason": ""})
    await at(
        "health.state",
        {"device": "modem", "kind": "modem", "state": "degraded", "reason": "weak signal"},
    )
    # east-gate's band is a UID-only one (verified: false); north-gate's tap predates SUN.
    for cp, guard, verified in (
        ("north-gate", "Wang Wei", None),
        ("bike-shed", "Wang Wei", True),
        ("east-gate", "Li Na", False),
    ):
        await at(
            "tap",
            {
                "checkpoint": cp,
                "reader": "bus0/1",
                "guard": guard,
                "wristband": PLANTED["wristband"],
                "format": "mifare",
                "bits": 56,
                **({} if verified is None else {"verified": verified}),
            },
        )
    await at(
        "patrol.round",
        {
            "round": "r-yesterday",
            "route": "outer",
            "day": yesterday,
            "verdict": "missed",
            "local_start": "22:00",
            "local_end": "23:00",
        },
    )
    await at(
        "patrol.round",
        {
            "round": "r-0800",
            "route": "outer",
            "day": tz_today,
            "verdict": "late",
            "local_start": "08:00",
            "local_end": "09:00",
            "missing": ["bike-shed"],
            "reasons": ["late start"],
            "revision": 1,
        },
    )
    await at(
        "patrol.round",
        {
            "round": "r-0800",
            "route": "outer",
            "day": tz_today,
            "verdict": "ok",
            "local_start": "08:00",
            "local_end": "09:00",
            "missing": [],
            "reasons": [],
            "revision": 2,
        },
    )
    await at(
        "patrol.alert",
        {
            "alert": "a-1",
            "alert_kind": "missed_checkpoint",
            "round": "r-0800",
            "checkpoint": "bike-shed",
            "message": "bike-shed not tapped in round r-0800",
        },
    )
    await at(
        "patrol.alert",
        {
            "alert": "a-2",
            "alert_kind": "reader_offline",
            "round": "",
            "checkpoint": "bike-shed",
            "message": "reader bus0/2 offline",
        },
    )
    await at(
        "patrol.alert_resolved",
        {
            "alert": "a-2",
            "alert_kind": "reader_offline",
            "round": "",
            "resolution": "reader back online",
        },
    )
    await at("broadcast.requested", {"request_id": "b-1", "source": "button", "zones": ["all"]})
    await at("broadcast.accepted", {"request_id": "b-1", "duration_s": 60})
    await at(
        "sync.enrolled",
        {
            "centre": "centre.district",
            "token": PLANTED["event_token"],
            "password": PLANTED["event_password"],
        },
    )
    await at("sync.sample", {"rtt_ms": 41}, cls=TELEMETRY)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    import datetime as dt
    import zoneinfo

    tz = "Asia/Shanghai"
    # Ten in the morning, compound time, today: rounds of "today" are unambiguous.
    today = dt.datetime.now(zoneinfo.ZoneInfo(tz)).date()
    morning = dt.datetime.combine(today, dt.time(10, 0), zoneinfo.ZoneInfo(tz))
    clock = ManualClock(wall=morning.timestamp())
    data = tmp_path / "data"
    (data / "keys").mkdir(parents=True)
    (data / "keys" / "scbk-bus0-1.hex").write_text(PLANTED["scbk_file"] + "\n")
    (data / "keys" / "enrollment-token").write_text(PLANTED["enroll_file"] + "\n")
    for f in (data / "keys").iterdir():
        f.chmod(0o600)
    etc = tmp_path / "etc"
    etc.mkdir()
    journal = await Journal.open(data / "journal.db", gateway_id="gw-test", clock=clock)
    await seed(journal, clock, today.isoformat(), (today - dt.timedelta(days=1)).isoformat())
    board = StatusBoard(None)
    board.publish("daemon", {"pid": os.getpid(), "updated": clock.wall()})
    board.publish(
        "services",
        [
            {
                "service": "patrol",
                "state": "running",
                "restarts": 0,
                "crashes": 0,
                "last_error": "",
            },
            {
                "service": "checkpoints",
                "state": "backoff",
                "restarts": 2,
                "crashes": 2,
                "last_error": "DeviceError: bus0 gone",
            },
        ],
    )
    board.publish(
        "sync",
        {
            "state": "up",
            "centre": "centre.district:8443",
            "backlog": 3,
            "token": PLANTED["board_token"],
            "client_key_file": str(data / "keys" / "client.key"),
        },
    )
    board.publish(
        "readers",
        {
            "buses": [{"bus": "bus0", "state": "open", "bad_frames": 1}],
            "readers": [{"reader": "bus0/1", "scbk": PLANTED["board_scbk"], "state": "online"}],
        },
    )
    ctx = WebContext(
        section=WebSection(refresh_s=0),
        password_path=etc / "web-password",
        journal_path=data / "journal.db",
        journal=journal,
        clock=clock,
        tz=tz,
        gateway_id="gw-test",
        compound="Lotus Garden",
        board=board,
        throttle=LoginThrottle(),
    )
    service = WebService(ctx, host="127.0.0.1", port=0)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        yield Site(
            url=f"http://127.0.0.1:{service.bound_port}",
            ctx=ctx,
            journal=journal,
            clock=clock,
            board=board,
            data_dir=data,
            password_path=etc / "web-password",
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await journal.close()


async def rich_board(site: Site) -> None:
    """Everything a running daemon publishes and journals, in its real shapes (lists, booleans,
    Unix times, snake_case keys), for tests that the page turns it all into words."""
    now = site.clock.wall()
    await site.journal.append(
        "broadcast.on",
        {"request_id": "b-1", "relays": ["relays-1:0"], "verified": True, "at": now},
    )
    await site.journal.append(
        "health.state",
        {"device": "cam-yard", "kind": "camera", "state": "down", "reason": "no reply"},
    )
    site.board.publish(
        "patrol",
        {
            "day": "2026-12-05",
            "rounds": {"completed": 1, "planned": 1},
            "seq": 20,
            "today": [
                {
                    "round": "night@2026-12-05T08:00",
                    "route": "outer",
                    "window": "08:00-09:00",
                    "state": "completed",
                    "done": "3/3",
                    "started": "08:02",
                    "guards": "Wang Wei",
                    "note": "",
                },
                {
                    "round": "night@2026-12-05T22:00",
                    "route": "outer",
                    "window": "22:00-23:00",
                    "state": "planned",
                    "done": "0/3",
                    "started": "",
                    "guards": "",
                    "note": "missing north-gate",
                },
            ],
            "schedules": {"night": 2, "weekend-only": 0},
        },
    )
    site.board.publish(
        "sync",
        {
            "centre": "https://centre.district:8443",
            "link": "down",
            "since": now - 300,
            "last_success": now - 600,
            "last_error": "connection refused",
            "failures": 4,
            "synced_floor": 12,
            "backlog": 9,
            "centre_watermark": 12,
            "centre_gaps": 0,
            "retry_in_s": 30.0,
            "batch_limit": 500,
            "batches_sent": 3,
        },
    )
    site.board.publish(
        "broadcast",
        {"phase": "idle", "boards": {"relays-1": "ok"}, "relays_on": ["relays-1:0"]},
    )
    site.board.publish("commands", {"link": "backoff", "last_error": "", "connects": 2})
    site.board.publish(
        "health",
        [{"device": "cam-yard", "kind": "camera", "state": "down", "reason": "no reply",
          "for_s": 120.0, "seen_s_ago": 130.0}],
    )  # fmt: skip
    site.board.publish("health_detail", {"cam-yard": {"http_status": None, "last_ok": now}})
    site.board.publish("web", {"listen": "0.0.0.0:8080", "login": "enabled"})
