"""Live checks the wizard and the self-test share: taps on readers, relay clicks, snapshots.

Each talks to real devices through the project's own drivers (``OsdpBus``, the broadcast
controller, ``HttpCamera``) and returns plain results for the state file and the report::

    async with TapSession(buses) as taps:
        await taps.wait_online(timeout=20)
        tap = await taps.next_tap(timeout=60)       # (bus, address), wristband never returned
    zones = await click_zones(section, [1, 2], seconds=1.0)
    cam = await check_camera(camera, password)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.camera import Camera, CameraError, HttpCamera, rtsp_options
from drivers.checkpoints import CardRead, Feedback, ReaderStatus
from drivers.osdp_bus import BusSpec, OsdpBus
from gateway.broadcast.config import BroadcastSection
from gateway.broadcast.plan import StartRequest
from gateway.clock import SystemClock
from gateway.events import EVIDENCE, Event

MACHINE_PREFIX = "@@setup"
FEEDBACK_FLUSH_S = 0.5


def machine_line(*words: object) -> str:
    """A line scripts and tests wait for (``@@setup tap-wanted north-gate``)."""
    return " ".join([MACHINE_PREFIX, *(str(w) for w in words)])


# ============================================================================ taps


class TapSession:
    """Every reader bus open at once; taps come out as (bus, address) in arrival order."""

    def __init__(self, specs: Sequence[BusSpec]) -> None:
        self.buses = {s.name: OsdpBus(s) for s in specs}
        self.online: dict[tuple[str, int], bool] = {
            (s.name, r.address): False for s in specs for r in s.readers
        }
        self._taps: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> TapSession:
        for bus in self.buses.values():
            await bus.start()
            self._tasks.append(asyncio.create_task(self._pump(bus)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        # The last green (or red) light is only queued: let a few poll cycles carry it out
        # before the buses close, or the installer never sees it.
        await asyncio.sleep(FEEDBACK_FLUSH_S)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for bus in self.buses.values():
            await bus.aclose()

    async def _pump(self, bus: OsdpBus) -> None:
        async for item in bus.events():
            if isinstance(item, CardRead):
                self._taps.put_nowait((item.bus, item.address))
            elif isinstance(item, ReaderStatus):
                self.online[(item.bus, item.address)] = item.online and item.sc_active
                self._changed.set()

    async def wait_online(self, timeout: float) -> list[tuple[str, int]]:
        """Wait until every reader is online in Secure Channel; returns those still offline."""
        deadline = time.monotonic() + timeout
        while not all(self.online.values()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return [k for k, v in self.online.items() if not v]

    def drain(self) -> None:
        while not self._taps.empty():
            self._taps.get_nowait()

    async def next_tap(self, timeout: float) -> tuple[str, int] | None:
        try:
            return await asyncio.wait_for(self._taps.get(), timeout)
        except TimeoutError:
            return None

    async def feedback(self, reader: tuple[str, int], ok: bool) -> None:
        await self.buses[reader[0]].feedback(
            reader[1], Feedback.ACCEPTED if ok else Feedback.REFUSED
        )


# ============================================================================ relays


class _CollectingJournal:
    """Stands in for the journal while clicking relays: keeps the controller's events."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.clock = SystemClock()

    @property
    def last_seq(self) -> int:
        return len(self.events)

    async def append(self, kind: str, payload: Mapping[str, Any], *, cls: str = EVIDENCE) -> Event:
        ev = Event(
            len(self.events) + 1,
            kind,
            cls,
            dict(payload),
            time.time(),
            time.monotonic(),
            self.clock.boot_id,
            self.clock.synced(),
        )
        self.events.append(ev)
        return ev

    async def read_after(self, seq: int, **_: Any) -> list[Event]:
        return []


@dataclass(frozen=True, slots=True)
class ZoneClick:
    zone: int
    on_verified: bool
    off_verified: bool
    detail: str

    @property
    def ok(self) -> bool:
        return self.on_verified and self.off_verified


async def click_zones(
    section: BroadcastSection,
    zones: Sequence[int],
    seconds: float,
    on_zone: Any = None,
) -> list[ZoneClick]:
    """Switch each zone on for ``seconds`` (amplifier first), one at a time, verified by
    reading the relays back; ``on_zone(zone)`` is called while a zone is on (to ask "heard?")."""
    from gateway.broadcast.service import build_runtime

    journal = _CollectingJournal()
    runtime = build_runtime(section, journal, SystemClock())
    task = asyncio.create_task(runtime.service.run())
    try:
        ready = asyncio.create_task(runtime.controller.ready.wait())
        await asyncio.wait([ready, task], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            if task.done():
                task.result()  # the service's own error says most
            raise TimeoutError("relay boards not ready within 30 s")
        return await click_with_controller(runtime.controller, zones, seconds, on_zone)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def click_with_controller(
    controller: Any, zones: Sequence[int], seconds: float, on_zone: Any = None
) -> list[ZoneClick]:
    """The click test on a ready :class:`BroadcastController`: the selftest's own (above) or
    the running daemon's (``gateway.control``), so the port keeps its one owner."""
    out: list[ZoneClick] = []
    warmup = controller.layout.warmup_s
    for zone in zones:
        ticket = controller.submit_start(
            StartRequest(
                f"setup-click-{zone}-{time.time_ns()}",
                (zone,),
                seconds,
                "cli",
                "installer click test",
                status="Test",
            )
        )
        on = await ticket.wait("on", timeout=warmup + 30)
        if on_zone is not None:
            await on_zone(zone)
        done = await ticket.wait("done", timeout=seconds + 30)
        on_ok = on.get("verified") is True and not on.get("failed_zones")
        off_ok = done.get("verified") is True
        detail = "" if on_ok and off_ok else str(on.get("failed_zones") or done.get("reason", ""))
        out.append(ZoneClick(zone, on_ok, off_ok, detail))
    return out


# ============================================================================ cameras


@dataclass(frozen=True, slots=True)
class CameraCheck:
    name: str
    snapshot_ok: bool
    snapshot_bytes: int
    elapsed_ms: float
    rtsp_ok: bool | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.snapshot_ok and self.rtsp_ok is not False


async def check_camera(
    name: str,
    snapshot_url: str,
    rtsp_url: str,
    auth: str,
    username: str,
    password: str,
    timeout: float = 5.0,
    *,
    camera: Camera | None = None,
) -> CameraCheck:
    """Fetch a live snapshot with the credentials, and probe RTSP when a URL is given.

    ``camera``: the camera to ask instead of an HttpCamera on ``snapshot_url`` (a profile's,
    built by ``drivers.camera.open_camera``).
    """
    cam = camera or HttpCamera(name, snapshot_url, username, password, auth=auth, timeout_s=timeout)  # type: ignore[arg-type]
    detail = ""
    size = 0
    elapsed = 0.0
    ok = False
    try:
        async with cam:
            shot = await cam.snapshot()
        ok, size, elapsed = True, len(shot.data), shot.elapsed_s * 1000
    except CameraError as exc:
        # The reason names the fault (auth, unreachable...), never the password.
        detail = f"{exc.fields.get('fault', 'error')}: {exc.reason}"
    rtsp: bool | None = None
    if rtsp_url:
        try:
            await rtsp_options(rtsp_url, timeout=timeout)
            rtsp = True
        except CameraError as exc:
            rtsp = False
            detail = detail or f"rtsp: {exc.reason}"
    return CameraCheck(name, ok, size, round(elapsed, 1), rtsp, detail)


# ============================================================================ the daemon

# The daemon rewrites its status board every few seconds (gateway/daemon.py STATUS_INTERVAL_S);
# older than this, the file is a leftover of a daemon that is gone.
DAEMON_STATUS_FRESH_S = 30.0


def running_daemon_pid(status_path: Path, now: float) -> int | None:
    """The pid of a daemon that is running on this config, judged from its status board: the
    pid alive and the board fresh. None when no daemon runs (or it died and left the file)."""
    try:
        board = json.loads(status_path.read_text())
        daemon = board["daemon"]
        pid, updated = int(daemon["pid"]), float(daemon["updated"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if now - updated > DAEMON_STATUS_FRESH_S:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, another user's: the daemon's
    return pid
