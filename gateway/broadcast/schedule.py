"""Scheduled broadcasts (e.g. the 19:30 anti-theft reminder): local time, offline, clock injected.

The pure part, :func:`due_runs`, says which runs fall in a window of wall time; the service,
:class:`ScheduleTrigger`, looks at the injected clock every ``check_s`` (so a test's
``ManualClock`` drives it) and hands due runs to the controller::

    trigger = ScheduleTrigger(entries, controller, clock, tz="Asia/Shanghai")

Rules: a run fires once (its key is entry name + local date + time, remembered across wall
clock steps backwards); a run found more than ``grace_s`` late (the box was off, or NTP just
stepped the clock forward) is recorded as missed, never played at the wrong hour. Nothing here
needs the link to the centre, except an entry naming a centre announcement
(``announcement_sha256``) the gateway does not hold yet: it is fetched first (by hash,
verified) when the link is up; when it cannot be had (no link, unknown at the centre, a
download or held copy that does not hash to the name) the run is refused and recorded as
``broadcast.schedule_refused`` with the reason, never played with another clip. Ahead of use,
while the link is up, the trigger fetches such announcements in the background
(:meth:`ScheduleTrigger.prefetch`, tried again hourly until held), so the run itself seldom
waits for the link.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gateway.broadcast.config import DAYS, ScheduleEntry
from gateway.broadcast.library import UNAVAILABLE, AnnouncementCache, AnnouncementUnavailable
from gateway.broadcast.plan import StartRequest
from gateway.clock import Clock

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
PREFETCH_RETRY_S = 3600.0  # a centre announcement not fetched ahead is tried again after this
# Longest span of wall time scanned in one step (a clock stepped by months is not replayed).
MAX_SCAN_S = 2 * 86400.0


@dataclass(frozen=True, slots=True)
class Run:
    """One occurrence of a schedule entry."""

    entry: ScheduleEntry
    at: float  # Unix seconds
    key: str  # "name@YYYY-MM-DDTHH:MM:SS" local


def _parse_time(text: str) -> dt.time:
    parts = [int(p) for p in text.split(":")]
    return dt.time(parts[0], parts[1], parts[2] if len(parts) > 2 else 0)


def runs_between(
    entries: Sequence[ScheduleEntry],
    after: float,
    until: float,
    tz: dt.tzinfo,
    max_scan_s: float = MAX_SCAN_S,
) -> list[Run]:
    """Every run with ``after < at <= until`` (wall seconds, at most ``max_scan_s`` back)."""
    if until <= after:
        return []
    after = max(after, until - max_scan_s)
    first = dt.datetime.fromtimestamp(after, tz).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(until, tz).date() + dt.timedelta(days=1)
    out: list[Run] = []
    day = first
    while day <= last:
        for entry in entries:
            if entry.days and DAYS[day.weekday()] not in entry.days:
                continue
            local = dt.datetime.combine(day, _parse_time(entry.time))
            # A time that does not exist (DST gap) or exists twice takes its first reading.
            at = local.replace(tzinfo=tz).timestamp()
            if after < at <= until:
                out.append(Run(entry, at, f"{entry.name}@{local.isoformat()}"))
        day += dt.timedelta(days=1)
    out.sort(key=lambda r: (r.at, r.entry.name))
    return out


def due_runs(
    entries: Sequence[ScheduleEntry],
    last_checked: float,
    now: float,
    tz: dt.tzinfo,
    grace_s: float,
    fired: Iterable[str] = (),
) -> tuple[list[Run], list[Run]]:
    """(to play, missed) among runs in ``(last_checked, now]`` not already in ``fired``."""
    done = set(fired)
    play: list[Run] = []
    missed: list[Run] = []
    for run in runs_between(entries, last_checked, now, tz):
        if run.key in done:
            continue
        (play if now - run.at <= grace_s else missed).append(run)
    return play, missed


def next_run(entries: Sequence[ScheduleEntry], now: float, tz: dt.tzinfo) -> Run | None:
    """The next run strictly after ``now`` (within 8 days), for status displays."""
    runs = runs_between(entries, now, now + 8 * 86400, tz, max_scan_s=8 * 86400)
    return runs[0] if runs else None


class BroadcastStarter(Protocol):
    def submit_start(self, req: StartRequest) -> Any: ...

    async def record(self, kind: str, payload: dict[str, Any]) -> None: ...


class Preparer(Protocol):
    """The audio player's side: play this verified file for this request."""

    def prepare(self, request_id: str, path: Path, sha256: str) -> None: ...


class ScheduleTrigger:
    """Service: fires the configured schedule at local wall time on the injected clock."""

    def __init__(
        self,
        entries: Sequence[ScheduleEntry],
        controller: BroadcastStarter,
        clock: Clock,
        *,
        tz: str = "Asia/Shanghai",
        grace_s: float = 120.0,
        check_s: float = CHECK_INTERVAL_S,
        require_synced: bool = False,
        name: str = "broadcast-schedule",
        cache: AnnouncementCache | None = None,
        audio: Preparer | None = None,
    ) -> None:
        self.name = name
        self.entries = tuple(entries)
        self.controller = controller
        self.clock = clock
        self.tz = zoneinfo.ZoneInfo(tz)
        self.grace_s = grace_s
        self.check_s = check_s
        self.require_synced = require_synced
        self.cache = cache
        self.audio = audio
        self._fired: dict[str, float] = {}
        self._held: set[str] = set()
        self._prefetch_after: dict[str, float] = {}
        self._prefetching: asyncio.Task[None] | None = None

    async def run(self) -> None:
        last = self.clock.wall()
        try:
            while True:
                await asyncio.sleep(self.check_s)
                if self._prefetching is None or self._prefetching.done():
                    self._prefetching = asyncio.create_task(
                        self.prefetch(), name="broadcast-schedule-prefetch"
                    )
                last = await self._step(last)
        finally:
            if self._prefetching is not None:
                self._prefetching.cancel()
                await asyncio.gather(self._prefetching, return_exceptions=True)

    async def _step(self, last: float) -> float:
        now = self.clock.wall()
        if now < last:
            # The wall clock stepped back: keep the fired keys, rescan from the new now.
            return now
        await self.check(last, now)
        return now

    async def prefetch(self) -> None:
        """Fetch the centre announcements the entries name and the gateway lacks, while a link
        is there (failures are journaled by the cache where they matter: tampered files)."""
        if self.cache is None or self.cache.fetcher is None:
            return
        for entry in self.entries:
            sha = entry.announcement_sha256
            now = self.clock.monotonic()
            if not sha or sha in self._held or now < self._prefetch_after.get(sha, 0.0):
                continue
            self._prefetch_after[sha] = now + PREFETCH_RETRY_S
            try:
                await self.cache.ensure(entry.announcement, sha)
            except AnnouncementUnavailable as exc:
                log.info("broadcast: %s not fetched ahead: %s", entry.announcement, exc.reason)
                continue
            except Exception:  # never let a fault here stop the schedule
                log.exception("broadcast: prefetching %s failed", entry.announcement)
                continue
            self._held.add(sha)

    async def check(self, last: float, now: float) -> None:
        play, missed = due_runs(self.entries, last, now, self.tz, self.grace_s, self._fired.keys())
        for run in missed:
            self._fired[run.key] = run.at
            await self.controller.record(
                "broadcast.schedule_missed",
                {"entry": run.entry.name, "run": run.key, "late_s": round(now - run.at, 1)},
            )
        for run in play:
            self._fired[run.key] = run.at
            if self.require_synced and not self.clock.synced():
                await self.controller.record(
                    "broadcast.schedule_skipped",
                    {"entry": run.entry.name, "run": run.key, "reason": "clock not synchronised"},
                )
                continue
            request_id = f"schedule:{run.key}"
            if run.entry.announcement_sha256 and not await self.prepare(run, request_id):
                continue
            self.controller.submit_start(
                StartRequest(
                    request_id=request_id,
                    zones=run.entry.zones,
                    duration_s=run.entry.seconds,
                    source="schedule",
                    reason=f"schedule {run.entry.name} {run.entry.time}",
                    announcement=run.entry.announcement,
                )
            )
        # Forget keys older than two days: enough to survive any backward step NTP makes.
        for key, at in list(self._fired.items()):
            if at < now - MAX_SCAN_S:
                del self._fired[key]

    async def prepare(self, run: Run, request_id: str) -> bool:
        """A centre announcement for ``run``: its verified file handed to the player (fetched
        first if need be), or the run refused and recorded with why (False)."""
        entry = run.entry
        try:
            if self.audio is None or self.cache is None:
                raise AnnouncementUnavailable(
                    "no audio player on this gateway ([broadcast.audio] enabled = false)"
                )
            path = await self.cache.ensure(entry.announcement, entry.announcement_sha256)
        except Exception as exc:  # a fault of ours is a refusal too, never a silent drop
            if isinstance(exc, AnnouncementUnavailable):
                code, reason = exc.code, exc.reason
            else:
                log.exception("broadcast: preparing a scheduled announcement failed")
                code, reason = UNAVAILABLE, f"could not be prepared: {type(exc).__name__}"
            await self.controller.record(
                "broadcast.schedule_refused",
                {
                    "entry": entry.name,
                    "run": run.key,
                    "announcement": entry.announcement,
                    "sha256": entry.announcement_sha256,
                    "code": code,
                    "reason": reason,
                },
            )
            return False
        self.audio.prepare(request_id, path, entry.announcement_sha256)
        return True
