"""From the centre's repository to bulletins, and from bulletins to files (the I/O edge).

The repository methods read are those of :class:`EventSource` (any
:class:`centre.store.Repository` serves); a source that also has ``patrol_digest`` (both
repositories: it counts the latest verdicts in SQL, from the ``patrol_rounds`` table) spares the
monthly bulletin and the charts reading a month of ``patrol.round`` events into Python::

    bulletin = await build_daily(repo, store, "2026-11-02", now=time.time())
    paths = write_daily_files(bulletin, Path("out"))
    monthly = await build_monthly(repo, store, "2026-10", now=time.time())
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from centre.bulletins import render
from centre.bulletins.charts import History
from centre.bulletins.explanations import ExplanationStore
from centre.bulletins.integrity import (
    FRAUD_KINDS,
    CompoundIntegrity,
    compound_counts,
    compound_integrity,
)
from centre.bulletins.model import (
    DEFAULT_TZ,
    MISSED,
    DailyBulletin,
    Explanation,
    GatewayActivity,
    MonthlyBulletin,
    PatrolDigest,
    RoundCount,
    VideoFindings,
    check_year,
    daily_bulletin,
    day_bounds,
    digest_verdicts,
    latest_summaries,
    latest_verdicts,
    month_bounds,
    monthly_bulletin,
    parse_day,
    units_from_registry,
    verdict_from_event,
)
from centre.errors import BadRequest, CentreError

PAGE: Final = 5000
MAX_ALERTS: Final = 100_000
DAY_S: Final = 86400.0
# Gateways forget patrol days after 40 days, so no verdict revision can come later than this.
REVISION_WINDOW_S: Final = 41 * DAY_S
# How far before a month we look for each device's state at its start (older: unknown).
STATE_LOOKBACK_S: Final = 45 * DAY_S
STATE_KINDS: Final = (
    "reader.state",
    "health.state",
    "relay_board.state",
    "link.up",
    "link.down",
)
DAEMON_KINDS: Final = ("daemon.started", "daemon.stopped")
BROADCAST_KINDS: Final = (
    "broadcast.on",
    "broadcast.failed",
    "broadcast.refused",
    "broadcast.command_refused",
)


class RoundNotFound(CentreError):
    status = 404
    code = "round_not_found"


class NotMissed(CentreError):
    status = 409
    code = "round_not_missed"


class EventSource(Protocol):
    """The part of :class:`centre.store.Repository` the bulletins read."""

    async def events(
        self,
        *,
        compound: str | None = None,
        gateway_id: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]: ...

    async def gateways(self) -> Sequence[Any]: ...

    async def alerts(
        self,
        *,
        gateway_id: str | None = None,
        kind_prefix: str | None = None,
        since: float | None = None,
        limit: int = 1000,
    ) -> Sequence[Any]: ...

    async def tap_tally(self, *, since: float, until: float) -> Sequence[Any]: ...


async def fetch_events(
    repo: EventSource,
    kind: str,
    *,
    since: float,
    until: float,
    compound: str | None = None,
    page: int = PAGE,
) -> list[dict[str, Any]]:
    """Every event of ``kind`` with ``since <= wall_time < until``, paging on wall time.

    Pages restart at the last wall time seen (ties are filtered by (gateway, seq)); a page
    full of one single instant doubles the page size instead of looping.
    """
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    cursor, limit = since, page
    while True:
        rows = await repo.events(
            compound=compound, kind=kind, since=cursor, until=until, limit=limit
        )
        fresh = 0
        for r in rows:
            key = (str(r.get("gateway_id")), int(r.get("seq", 0)))
            if key not in seen:
                seen.add(key)
                out.append(r)
                fresh += 1
        if len(rows) < limit:
            return out
        if fresh == 0:
            limit *= 2
        else:
            cursor = float(rows[-1]["wall_time"])


class DigestSource(Protocol):
    """A source that counts the latest verdicts itself (centre.store.SqlRepository)."""

    async def patrol_digest(
        self, *, since: float, until: float
    ) -> tuple[Sequence[Any], Sequence[dict[str, Any]]]: ...


async def fetch_patrol_digest(repo: EventSource, *, since: float, until: float) -> PatrolDigest:
    """The latest verdicts of the rounds journaled in ``[since, until)``, missed ones listed
    and the others counted: by the repository when it can (``patrol_digest``), else from
    every ``patrol.round`` event read here (what any :class:`EventSource` can do)."""
    if not hasattr(repo, "patrol_digest"):
        rounds = await fetch_events(repo, "patrol.round", since=since, until=until)
        return await asyncio.to_thread(
            lambda: digest_verdicts(latest_verdicts(rounds).values(), since, until)
        )
    digest_source: DigestSource = repo  # type: ignore[assignment]
    tallies, missed = await digest_source.patrol_digest(since=since, until=until)
    counts = tuple(
        RoundCount(
            t.gateway_id, t.township, t.day, t.verdict, t.rounds, t.checkpoints_done,
            t.checkpoints_due,
        )
        for t in tallies
    )  # fmt: skip
    listed = tuple(v for v in map(verdict_from_event, missed) if v is not None)
    return PatrolDigest(listed, counts, since, until)


def monthly_window(month: str, *, now: float, tz: str = DEFAULT_TZ) -> tuple[float, float]:
    """The journal period whose ``patrol.round`` events can hold ``month``'s verdicts, as
    known at ``now`` (the day before it to its last revision, or a day after ``now``)."""
    start, end = month_bounds(month, tz)
    return start - DAY_S, min(end + REVISION_WINDOW_S, now + DAY_S)


async def _fetch_many(
    repo: EventSource, kinds: Sequence[str], since: float, until: float
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind in kinds:
        out.extend(await fetch_events(repo, kind, since=since, until=until))
    return out


async def _fraud_alerts(repo: EventSource, start: float) -> list[Any]:
    # Looked up by when they were raised (from a day before ``start``: an alert is raised
    # at ingest, after its taps); kept by the time of their taps (integrity.py).
    alerts: list[Any] = []
    for kind in FRAUD_KINDS:
        alerts += await repo.alerts(kind_prefix=kind, since=start - DAY_S, limit=MAX_ALERTS)
    return alerts


async def fetch_integrity(
    repo: EventSource, units: Sequence[Any], start: float, end: float
) -> tuple[CompoundIntegrity, ...]:
    """Unverified taps (listed) and anti-fraud alerts of ``[start, end)`` per compound."""
    taps = await fetch_events(repo, "tap", since=start, until=end)
    alerts = await _fraud_alerts(repo, start)
    return await asyncio.to_thread(compound_integrity, units, taps, alerts, start, end)


async def count_integrity(
    repo: EventSource, units: Sequence[Any], start: float, end: float
) -> tuple[CompoundIntegrity, ...]:
    """As :func:`fetch_integrity`, counted by the repository (a month of taps is not read)."""
    tallies = await repo.tap_tally(since=start, until=end)
    alerts = await _fraud_alerts(repo, start)
    return compound_counts(units, tallies, alerts, start, end)


async def build_daily(
    repo: EventSource,
    store: ExplanationStore,
    day: str,
    *,
    now: float,
    tz: str = DEFAULT_TZ,
) -> DailyBulletin:
    """The daily patrol bulletin for patrol day ``day`` as the centre knows it at ``now``."""
    day = parse_day(day)
    start, _ = day_bounds(day, tz)
    # A round of day D is judged at its window end (D or D+1) and may be revised for 40 days.
    # Nothing journaled after now can be stored yet (a day of slack for gateway clocks ahead):
    # a bulletin made the next morning reads two days of verdicts, not six weeks.
    since, until = start - DAY_S, min(start + DAY_S + REVISION_WINDOW_S, now + DAY_S)
    rounds = await fetch_patrol_digest(repo, since=since, until=until)
    sums = await fetch_events(repo, "patrol.daily_summary", since=since, until=until)
    units = units_from_registry(await repo.gateways())
    explanations = await store.all()
    day_start, day_end = day_bounds(day, tz)
    integrity = await fetch_integrity(repo, units, day_start, day_end)

    def compute() -> DailyBulletin:
        return replace(
            daily_bulletin(
                day,
                units,
                rounds,
                latest_summaries(sums),
                explanations,
                now=now,
                tz=tz,
            ),
            integrity=integrity,
        )

    # Tens of thousands of verdicts in a large district: not on the event loop.
    return await asyncio.to_thread(compute)


class FindingSource(Protocol):
    """The video patrol's verdicts (centre/web/video_patrol.py ``SqliteVideoPatrolStore``)."""

    async def findings_between(self, start: float, end: float) -> list[VideoFindings]: ...


async def build_monthly(
    repo: EventSource,
    store: ExplanationStore,
    month: str,
    *,
    now: float,
    tz: str = DEFAULT_TZ,
    lookback_s: float = STATE_LOOKBACK_S,
    findings: FindingSource | None = None,
    patrol: PatrolDigest | None = None,
) -> MonthlyBulletin:
    """The monthly bulletin for ``month`` (``YYYY-MM``) as the centre knows it at ``now``;
    with ``findings``, the month's video patrol verdicts per compound too. ``patrol``: the
    month's verdicts already fetched (:func:`fetch_patrol_digest` over
    :func:`monthly_window`), e.g. to draw the charts from the same read."""
    start, end = month_bounds(month, tz)
    end_known = min(end, now)
    records = await repo.gateways()
    units = units_from_registry(records)
    since, until = monthly_window(month, now=now, tz=tz)
    if patrol is None or (patrol.since, patrol.until) != (since, until):
        patrol = await fetch_patrol_digest(repo, since=since, until=until)
    states = await _fetch_many(repo, STATE_KINDS, start - lookback_s, end_known)
    daemons = await _fetch_many(repo, DAEMON_KINDS, start - lookback_s, end + lookback_s)
    casts = await _fetch_many(repo, BROADCAST_KINDS, start, end_known)
    by_gw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name, evs in (("states", states), ("daemons", daemons), ("casts", casts)):
        for e in evs:
            by_gw.setdefault(str(e["gateway_id"]), {}).setdefault(name, []).append(e)
    activity = {}
    for r in records:
        got = by_gw.get(r.gateway_id, {})
        if not got and (r.enrolled_at >= end_known):
            continue
        activity[r.gateway_id] = GatewayActivity(
            gateway_id=r.gateway_id,
            horizon=float(r.last_seen) if r.last_seen is not None else 0.0,
            state_events=got.get("states", []),
            daemon_events=got.get("daemons", []),
            broadcast_events=got.get("casts", []),
        )
    explanations = await store.all()
    integrity = await count_integrity(repo, units, start, end_known)
    video = tuple(await findings.findings_between(start, end_known)) if findings else ()

    def compute() -> MonthlyBulletin:
        b = monthly_bulletin(month, units, patrol, activity, explanations, now=now, tz=tz)
        return replace(b, integrity=integrity, video_patrol=video)

    return await asyncio.to_thread(compute)


HISTORY_DAYS: Final = 30


async def patrol_history(
    repo: EventSource,
    days: Sequence[str],
    *,
    now: float,
    tz: str = DEFAULT_TZ,
    patrol: PatrolDigest | None = None,
) -> History:
    """The units and latest verdicts of ``days`` (consecutive, oldest first), for the charts.

    The verdicts of the rounds journaled from the day before the first day to the end of the
    last day's revision window (or a day after ``now``), as :func:`build_daily` reads one day;
    ``patrol`` is used when it covers exactly that period (the monthly bulletin's own read).
    """
    first, _ = day_bounds(days[0], tz)
    _, last_end = day_bounds(days[-1], tz)
    since, until = first - DAY_S, min(last_end + REVISION_WINDOW_S, now + DAY_S)
    if patrol is None or (patrol.since, patrol.until) != (since, until):
        patrol = await fetch_patrol_digest(repo, since=since, until=until)
    units = units_from_registry(await repo.gateways())
    wanted = set(days)
    return History(
        units=units,
        verdicts=[v for v in patrol.listed if v.day in wanted],
        days=tuple(days),
        counts=[c for c in patrol.counts if c.day in wanted],
    )


def days_ending(day: str, n: int = HISTORY_DAYS) -> list[str]:
    """The ``n`` days ending with ``day``, oldest first."""
    last = date.fromisoformat(parse_day(day))
    return [(last - timedelta(days=n - 1 - i)).isoformat() for i in range(n)]


def round_day(round_id: str) -> date:
    """The calendar date in a round id (``<schedule>@YYYY-MM-DDTHH:MM``); :class:`BadRequest`
    (only) for anything else."""
    _, at, stamp = round_id.rpartition("@")
    try:
        if not at:
            raise ValueError(round_id)
        return check_year(datetime.fromisoformat(stamp).date())
    except ValueError:
        raise BadRequest(
            f"round {round_id[:80]!r} is not a round id like night@2026-11-02T02:00"
        ) from None


async def record_explanation(
    repo: EventSource,
    store: ExplanationStore,
    *,
    compound: str,
    round_id: str,
    text: str,
    given_by: str,
    recorded_by: str,
    now: float,
    tz: str = DEFAULT_TZ,
) -> Explanation:
    """Record why a missed round was missed; refused unless its latest verdict is ``missed``."""
    d = round_day(round_id)
    start, _ = day_bounds((d - timedelta(days=1)).isoformat(), tz)
    rounds = await fetch_events(
        repo,
        "patrol.round",
        since=start,
        until=start + 3 * DAY_S + REVISION_WINDOW_S,
        compound=compound,
    )
    latest = [v for v in latest_verdicts(rounds).values() if v.round_id == round_id]
    if not latest:
        raise RoundNotFound(f"no verdict for round {round_id!r} of compound {compound!r}")
    if not any(v.verdict == MISSED for v in latest):
        raise NotMissed(
            f"round {round_id!r} was not missed (verdict: {latest[0].verdict})",
            verdict=latest[0].verdict,
        )
    return await store.add(
        compound, round_id, text, given_by=given_by, recorded_by=recorded_by, now=now
    )


def _write(path: Path, data: bytes) -> None:
    """Atomically: a half-written bulletin must never be printed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(out_dir: Path, texts: dict[str, str]) -> list[Path]:
    """Each text as UTF-8 in ``out_dir`` (made if missing), atomically; the paths, in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / name for name in texts]
    for path, text in zip(files, texts.values(), strict=True):
        _write(path, text.encode("utf-8"))
    return files


def write_daily_files(
    bulletin: DailyBulletin, out_dir: Path, history: History | None = None
) -> list[Path]:
    """``daily-D.html`` (with charts when ``history`` is given), ``daily-D.csv`` (compounds)
    and ``daily-D-missed.csv``."""
    stem = f"daily-{bulletin.day}"
    return write_files(
        out_dir,
        {
            f"{stem}.html": render.daily_html(bulletin, history=history),
            f"{stem}.csv": render.daily_csv(bulletin),
            f"{stem}-missed.csv": render.missed_csv(bulletin),
        },
    )


def write_monthly_files(
    bulletin: MonthlyBulletin, out_dir: Path, history: History | None = None
) -> list[Path]:
    """``monthly-M.html`` (with the patrol charts when ``history`` is given), ``monthly-M.csv``
    (compounds), ``-devices.csv``, ``-faults.csv``."""
    stem = f"monthly-{bulletin.month}"
    return write_files(
        out_dir,
        {
            f"{stem}.html": render.monthly_html(bulletin, history=history),
            f"{stem}.csv": render.monthly_csv(bulletin),
            f"{stem}-devices.csv": render.devices_csv(bulletin),
            f"{stem}-faults.csv": render.faults_csv(bulletin),
        },
    )


__all__ = [
    "EventSource",
    "NotMissed",
    "RoundNotFound",
    "build_daily",
    "build_monthly",
    "days_ending",
    "fetch_events",
    "fetch_patrol_digest",
    "monthly_window",
    "patrol_history",
    "record_explanation",
    "round_day",
    "write_daily_files",
    "write_files",
    "write_monthly_files",
]
