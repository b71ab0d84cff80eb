"""The status page beside the real daemon: it reads the running daemon's status board
(``<runtime_dir>/status.json``) and journal across processes, while the daemon writes them.

Until the lead wires ``gateway.web.build_services`` into the daemon, the page runs here in the
test process on the daemon's files (the file-based path of :class:`WebContext`); once wired,
the same page runs inside the daemon with the live board.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import aiohttp

from gateway.clock import SystemClock
from gateway.config import load_config
from gateway.web.app import WebContext, WebService
from gateway.web.config import WebSection
from hil_tests.harness import DaemonProcess, minimal_config, write_config


async def test_page_shows_the_running_daemon_and_notices_it_stop(
    tmp_path: Path, daemon_factory: list[DaemonProcess]
) -> None:
    path = write_config(tmp_path, minimal_config())
    cfg = load_config(path)
    gw = DaemonProcess(path)
    daemon_factory.append(gw)
    await asyncio.to_thread(gw.start)
    ctx = WebContext(
        section=WebSection(refresh_s=0),
        password_path=tmp_path / "web-password",
        journal_path=cfg.journal_path,
        journal=None,
        clock=SystemClock(),
        tz=cfg.gateway.timezone,
        gateway_id=cfg.gateway.id,
        compound=cfg.gateway.compound,
        board_path=cfg.path(cfg.gateway.runtime_dir) / "status.json",
    )
    service = WebService(ctx, host="127.0.0.1", port=0)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        url = f"http://127.0.0.1:{service.bound_port}"
        async with aiohttp.ClientSession(url) as http:
            deadline = time.monotonic() + 10
            view: dict[str, object] = {}
            while time.monotonic() < deadline:  # the board is written at start, then every 5 s
                async with http.get("/status.json") as resp:
                    view = await resp.json()
                if view.get("services"):
                    break
                await asyncio.sleep(0.1)
            services = {s["service"]: s["state"] for s in view["services"]}  # type: ignore[union-attr]
            assert services.get("status-board") == "running", view
            assert view["board_age_s"] is not None
            assert view["journal"]["last_seq"] >= 1  # type: ignore[index]
            async with http.get("/") as resp:
                page = await resp.text()
            assert "HIL Compound" in page and "daemon running" in page

            assert await asyncio.to_thread(gw.terminate) == 0
            async with http.get("/") as resp:
                page = await resp.text()
            # The daemon removes its board on a clean stop: the page says it does not know.
            assert "daemon not running" in page and "The gateway daemon is not running" in page
            async with http.get("/status.json") as resp:
                view = await resp.json()
            assert view["journal"]["last_seq"] >= 2  # daemon.stopped is there too
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
