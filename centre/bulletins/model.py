"""The district's bulletins as pure computation: journal events in, tables out.

Theory of operation
-------------------
The gateways judge every patrol round themselves (``patrol.round`` verdicts, revised when a
late fact changes them) and journal a ``patrol.daily_summary`` per patrol day. The centre does
not judge again: it takes the **latest revision** of each verdict per (gateway, round id) and
counts. Resent or duplicated events can therefore never count twice, and a revision that
arrives after a bulletin was printed changes the next one.

Device uptime is measured from state-change events (``reader.state``, ``health.state``,
``link.up``/``link.down``) on a timeline per device. Time the centre cannot vouch for is
*unknown*, never silently up or down: before a device's first known state, after the gateway's
last upload (the data horizon), after an event journaled with an unsynchronised clock, and while
the gateway itself was stopped (its link counts as down then: the compound was unreachable).

Nothing here does I/O or reads a clock: events are plain dicts (the centre's
``Repository.events`` shape), ``now`` and the time zone are arguments.

    verdicts = latest_verdicts(round_events)
    bulletin = daily_bulletin("2026-11-02", units, verdicts, summaries, explanations, now=t)
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

DEFAULT_TZ: Final = "Asia/Shanghai"
MIN_YEAR: Final = 1970
MAX_YEAR: Final = 9998  # 9999-12-31 has no next day: date arithmetic would overflow
_DAY_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}")
_G = TypeVar("_G", "Verdict", "SummaryInfo", "RoundCount")

COMPLETED: Final = "completed"
LATE_COMPLETED: Final = "late_completed"
INCOMPLETE: Final = "incomplete"
MISSED: Final = "missed"
UNASSESSABLE: Final = "unassessable"

# Device states on the uptime timeline.
UP: Final = "up"
DEGRADED: Final = "degraded"
DOWN: Final = "down"
UNKNOWN: Final = "unknown"
STATES: Final = (UP, DEGRADED, DOWN, UNKNOWN)

# Device kinds the monthly bulletin summarises (others still show as devices and faults).
READER: Final = "reader"
CAMERA: Final = "camera"
RELAY: Final = "relay"
LINK: Final = "link"
SUMMARY_KINDS: Final = (READER, CAMERA, RELAY, LINK)
LINK_DEVICE: Final = "centre link"

# A gateway that has not uploaded for this long before the period end is itself a fault.
STALE_AFTER_S: Final = 86400.0

# Compound status in the daily bulletin.
STATUS_OK: Final = "ok"
STATUS_EXPLAIN: Final = "must explain"
STATUS_EXPLAINED: Final = "explained"
STATUS_NO_DATA: Final = "no data"
STATUS_AWAITING: Final = "verdicts awaited"

_HEALTH_STATE: Final = {"ok": UP, "degraded": DEGRADED, "down": DOWN, "unknown": UNKNOWN}
_VERDICT_FIELD: Final = {
    COMPLETED: "completed",
    LATE_COMPLETED: "late",
    INCOMPLETE: "incomplete",
    MISSED: "missed",
    UNASSESSABLE: "unassessable",
}


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Unit:
    """A compound as the enrollment registry knows it."""

    compound: str
    township: str
    gateways: tuple[str, ...]
    enrolled_at: float = 0.0
    revoked_at: float | None = None  # all of its gateways revoked: since when


@dataclass(frozen=True, slots=True)
class Verdict:
    """The part of a ``patrol.round`` payload the bulletins use."""

    gateway_id: str
    compound: str
    township: str
    round_id: str
    route: str
    day: str
    local_start: str
    local_end: str
    verdict: str
    revision: int
    reasons: tuple[str, ...]
    checkpoints_done: int
    checkpoints_due: int
    responsible: tuple[str, ...]
    guards: tuple[str, ...]
    wall_time: float
    seq: int


@dataclass(frozen=True, slots=True)
class SummaryInfo:
    """The part of a ``patrol.daily_summary`` payload the bulletins use."""

    gateway_id: str
    compound: str
    day: str
    planned: int
    missed_rounds: tuple[str, ...]
    revision: int
    wall_time: float
    seq: int


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a round was missed, as a unit told the district (``recorded_by``: the operator)."""

    id: int
    compound: str
    round_id: str
    text: str
    given_by: str
    recorded_by: str
    recorded_at: float


def _key(ev: Mapping[str, Any]) -> tuple[int, float, int]:
    payload = ev.get("payload") or {}
    rev = payload.get("revision", 0)
    return (
        int(rev) if isinstance(rev, int) else 0,
        float(ev.get("wall_time", 0.0)),
        int(ev.get("seq", 0)),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def verdict_from_event(ev: Mapping[str, Any]) -> Verdict | None:
    """A ``patrol.round`` event (centre shape) as a :class:`Verdict`; None if malformed."""
    p = ev.get("payload")
    if not isinstance(p, Mapping):
        return None
    round_id, day, verdict = p.get("round"), p.get("day"), p.get("verdict")
    if not (isinstance(round_id, str) and isinstance(day, str) and verdict in _VERDICT_FIELD):
        return None
    counts = _mapping(p.get("checkpoints"))
    required = p.get("required_taps", 1)
    required = required if isinstance(required, int) and required > 0 else 1
    excused = _strs(p.get("excused"))
    done = due = 0
    if verdict != UNASSESSABLE:  # fairness: what could not be judged is in no rate
        done = len([n for n in counts.values() if isinstance(n, int) and n >= required])
        due = max(0, len(counts) - len(excused))
    rev_key = _key(ev)
    return Verdict(
        gateway_id=str(ev.get("gateway_id", "")),
        compound=str(ev.get("compound", "")),
        township=str(ev.get("township", "")),
        round_id=round_id,
        route=str(p.get("route", "")),
        day=day,
        local_start=str(p.get("local_start", "")),
        local_end=str(p.get("local_end", "")),
        verdict=str(verdict),
        revision=rev_key[0],
        reasons=_strs(p.get("reasons")),
        checkpoints_done=done,
        checkpoints_due=due,
        responsible=_strs(p.get("responsible")),
        guards=_strs(p.get("guards")),
        wall_time=rev_key[1],
        seq=rev_key[2],
    )


def latest_verdicts(events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Verdict]:
    """The latest revision of each round's verdict, keyed (gateway id, round id).

    Highest ``revision`` wins, then the later event; the same event twice counts once.
    ``latest_verdicts(e for e in events if e["kind"] == "patrol.round")``
    """
    out: dict[tuple[str, str], Verdict] = {}
    for ev in events:
        if ev.get("kind", "patrol.round") != "patrol.round":
            continue
        v = verdict_from_event(ev)
        if v is None:
            continue
        key = (v.gateway_id, v.round_id)
        have = out.get(key)
        if have is None or (v.revision, v.wall_time, v.seq) > (
            have.revision,
            have.wall_time,
            have.seq,
        ):
            out[key] = v
    return out


@dataclass(frozen=True, slots=True)
class RoundCount:
    """Latest verdicts counted rather than listed: one gateway's rounds of one patrol day with
    one verdict (never ``missed``: those are listed, see :class:`PatrolDigest`)."""

    gateway_id: str
    township: str  # the gateway's, as in Verdict
    day: str
    verdict: str
    rounds: int
    checkpoints_done: int
    checkpoints_due: int


@dataclass(frozen=True, slots=True)
class PatrolDigest:
    """The latest verdicts of the rounds journaled in ``[since, until)``: every missed one
    listed (explanations and the heatmap need them one by one), the others counted.

    ``digest_verdicts(latest_verdicts(events).values(), since, until)``, or the repository's
    ``patrol_digest`` (centre/bulletins/source.py)."""

    listed: tuple[Verdict, ...]
    counts: tuple[RoundCount, ...]
    since: float = 0.0
    until: float = 0.0


def digest_verdicts(
    verdicts: Iterable[Verdict], since: float = 0.0, until: float = 0.0
) -> PatrolDigest:
    """Latest verdicts as a :class:`PatrolDigest` (missed listed, the others counted)."""
    listed: list[Verdict] = []
    counts: dict[tuple[str, str, str, str], tuple[int, int, int]] = {}
    for v in verdicts:
        if v.verdict == MISSED:
            listed.append(v)
            continue
        key = (v.gateway_id, v.township, v.day, v.verdict)
        n, done, due = counts.get(key, (0, 0, 0))
        counts[key] = (n + 1, done + v.checkpoints_done, due + v.checkpoints_due)
    return PatrolDigest(
        tuple(listed),
        tuple(RoundCount(*key, *c) for key, c in sorted(counts.items())),
        since,
        until,
    )


def latest_summaries(events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], SummaryInfo]:
    """The latest revision of each ``patrol.daily_summary``, keyed (gateway id, day)."""
    out: dict[tuple[str, str], SummaryInfo] = {}
    for ev in events:
        if ev.get("kind", "patrol.daily_summary") != "patrol.daily_summary":
            continue
        p = ev.get("payload")
        if not isinstance(p, Mapping) or not isinstance(p.get("day"), str):
            continue
        planned = 0
        for r in p.get("routes") or ():
            n = _mapping(r).get("planned", 0)
            planned += n if isinstance(n, int) else 0
        rev, wall, seq = _key(ev)
        info = SummaryInfo(
            gateway_id=str(ev.get("gateway_id", "")),
            compound=str(ev.get("compound", "")),
            day=p["day"],
            planned=planned,
            missed_rounds=_strs(p.get("missed_rounds")),
            revision=rev,
            wall_time=wall,
            seq=seq,
        )
        key = (info.gateway_id, info.day)
        have = out.get(key)
        if have is None or (rev, wall, seq) > (have.revision, have.wall_time, have.seq):
            out[key] = info
    return out


# --------------------------------------------------------------------------- time


def day_bounds(day: str, tz: str = DEFAULT_TZ) -> tuple[float, float]:
    """Unix seconds of local midnight starting ``day`` and the next one."""
    d = date.fromisoformat(day)
    zone = ZoneInfo(tz)
    start = datetime(d.year, d.month, d.day, tzinfo=zone)
    nxt = d + timedelta(days=1)
    return start.timestamp(), datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).timestamp()


def month_bounds(month: str, tz: str = DEFAULT_TZ) -> tuple[float, float]:
    """Unix seconds of the local start of ``month`` (``YYYY-MM``) and of the next month."""
    year, mon = parse_month(month)
    zone = ZoneInfo(tz)
    nyear, nmon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return (
        datetime(year, mon, 1, tzinfo=zone).timestamp(),
        datetime(nyear, nmon, 1, tzinfo=zone).timestamp(),
    )


def parse_month(month: str) -> tuple[int, int]:
    """``"2026-11"`` → (2026, 11); ValueError (only) for anything else, years
    :data:`MIN_YEAR`..:data:`MAX_YEAR`, ASCII digits only."""
    if not _MONTH_RE.fullmatch(month):
        raise ValueError(f"{month[:40]!r} is not a month like 2026-11")
    year, mon = int(month[:4]), int(month[5:])
    if not 1 <= mon <= 12 or not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"{month!r} is not a month like 2026-11 ({MIN_YEAR}..{MAX_YEAR})")
    return year, mon


def parse_day(day: str) -> str:
    """``"2026-11-02"`` validated and returned; ValueError (only) for anything else, years
    :data:`MIN_YEAR`..:data:`MAX_YEAR`, ASCII digits only."""
    if not _DAY_RE.fullmatch(day):
        raise ValueError(f"{day[:40]!r} is not a date like 2026-11-02")
    try:
        d = date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"{day!r} is not a date like 2026-11-02") from None
    check_year(d)
    return d.isoformat()


def check_year(d: date) -> date:
    """``d`` if its year is one a bulletin can cover, else ValueError (the day before, the
    month after and the revision window must all stay inside what ``datetime`` can hold)."""
    if not MIN_YEAR <= d.year <= MAX_YEAR:
        raise ValueError(f"{d.isoformat()} is outside the years {MIN_YEAR}..{MAX_YEAR}")
    return d


def local_text(t: float | None, tz: str = DEFAULT_TZ) -> str:
    """``2026-11-02 08:15`` in the bulletin's zone ('' for None)."""
    if t is None or not math.isfinite(t):
        return ""
    return datetime.fromtimestamp(t, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


# --------------------------------------------------------------------------- daily bulletin


@dataclass(frozen=True, slots=True)
class PatrolTally:
    """Round counts and the checkpoints behind the completion rate."""

    planned: int = 0
    completed: int = 0
    late: int = 0
    incomplete: int = 0
    missed: int = 0
    unassessable: int = 0
    awaiting: int = 0  # planned (per the gateway's daily summary) but no verdict received
    checkpoints_done: int = 0
    checkpoints_due: int = 0
    missed_explained: int = 0

    @property
    def assessed(self) -> int:
        return self.completed + self.late + self.incomplete + self.missed

    @property
    def checkpoint_completion(self) -> float | None:
        return _ratio(self.checkpoints_done, self.checkpoints_due)

    @property
    def compliance(self) -> float | None:
        """Rounds walked in full (on time or late) among the rounds that could be judged."""
        return _ratio(self.completed + self.late, self.assessed)

    @property
    def on_time(self) -> float | None:
        return _ratio(self.completed, self.assessed)

    def __add__(self, other: PatrolTally) -> PatrolTally:
        return PatrolTally(
            *(getattr(self, f) + getattr(other, f) for f in PatrolTally.__dataclass_fields__)
        )


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def tally(
    verdicts: Iterable[Verdict],
    explained: Collection[tuple[str, str]] = frozenset(),
    counted: Iterable[RoundCount] = (),
) -> PatrolTally:
    """Count verdicts, and add the ones ``counted`` already; ``explained`` holds (compound,
    round id) of explained missed rounds."""
    counts = dict.fromkeys(PatrolTally.__dataclass_fields__, 0)
    for v in verdicts:
        counts["planned"] += 1
        counts[_VERDICT_FIELD[v.verdict]] += 1
        counts["checkpoints_done"] += v.checkpoints_done
        counts["checkpoints_due"] += v.checkpoints_due
        if v.verdict == MISSED and (v.compound, v.round_id) in explained:
            counts["missed_explained"] += 1
    for c in counted:
        counts["planned"] += c.rounds
        counts[_VERDICT_FIELD[c.verdict]] += c.rounds
        counts["checkpoints_done"] += c.checkpoints_done
        counts["checkpoints_due"] += c.checkpoints_due
    return PatrolTally(**counts)


@dataclass(frozen=True, slots=True)
class DailyRow:
    compound: str
    township: str
    tally: PatrolTally
    status: str


@dataclass(frozen=True, slots=True)
class MissedRound:
    compound: str
    township: str
    gateway_id: str
    round_id: str
    route: str
    local_start: str
    local_end: str
    reasons: tuple[str, ...]
    responsible: tuple[str, ...]
    explanations: tuple[Explanation, ...]


@dataclass(frozen=True, slots=True)
class DailyBulletin:
    """Per compound: who patrolled and who did not, for one patrol day."""

    day: str
    timezone: str
    generated_at: float
    rows: tuple[DailyRow, ...]
    missed: tuple[MissedRound, ...]
    total: PatrolTally
    # Unverified bands and anti-fraud alerts per compound: ``CompoundIntegrity`` items from
    # centre/bulletins/integrity.py (typed loosely: this module imports nothing of ours).
    integrity: tuple[Any, ...] = ()

    @property
    def must_explain(self) -> tuple[str, ...]:
        """Compounds with a missed round nobody has explained yet."""
        return tuple(sorted({m.compound for m in self.missed if not m.explanations}))


def units_from_registry(records: Iterable[Any]) -> list[Unit]:
    """Group enrollment records (``GatewayRecord``-shaped) into compounds."""
    by: dict[str, list[Any]] = {}
    for r in records:
        by.setdefault(str(r.compound), []).append(r)
    units = []
    for compound, recs in by.items():
        revoked = [r.revoked_at for r in recs]
        units.append(
            Unit(
                compound=compound,
                # One compound lies in one township; should records disagree, the latest wins.
                township=str(max(recs, key=lambda r: r.enrolled_at).township),
                gateways=tuple(sorted(str(r.gateway_id) for r in recs)),
                enrolled_at=min(float(r.enrolled_at) for r in recs),
                revoked_at=None if any(t is None for t in revoked) else max(revoked),
            )
        )
    return sorted(units, key=lambda u: (u.township, u.compound))


def _by_gateway(items: Iterable[_G]) -> dict[str, list[_G]]:
    out: dict[str, list[_G]] = {}
    for item in items:
        out.setdefault(item.gateway_id, []).append(item)
    return out


def _listed(unit: Unit, start: float, end: float) -> bool:
    """Was the compound enrolled (and not wholly revoked) at some time in [start, end)?"""
    return unit.enrolled_at < end and (unit.revoked_at is None or unit.revoked_at > start)


def daily_bulletin(
    day: str,
    units: Sequence[Unit],
    verdicts: Mapping[tuple[str, str], Verdict] | PatrolDigest,
    summaries: Mapping[tuple[str, str], SummaryInfo],
    explanations: Iterable[Explanation],
    *,
    now: float,
    tz: str = DEFAULT_TZ,
) -> DailyBulletin:
    """The daily patrol bulletin of patrol day ``day`` (the gateways' own ``day`` field).

    ``daily_bulletin("2026-11-02", units, latest_verdicts(evs), latest_summaries(evs), [], now=t)``
    """
    start, end = day_bounds(day, tz)
    by_round: dict[tuple[str, str], list[Explanation]] = {}
    for e in sorted(explanations, key=lambda e: (e.recorded_at, e.id)):
        by_round.setdefault((e.compound, e.round_id), []).append(e)
    explained = set(by_round)
    if not isinstance(verdicts, PatrolDigest):
        verdicts = digest_verdicts(verdicts.values())
    todays = _by_gateway(v for v in verdicts.listed if v.day == day)
    todays_counted = _by_gateway(c for c in verdicts.counts if c.day == day)
    day_sums = _by_gateway(s for (_, d), s in summaries.items() if d == day)
    rows: list[DailyRow] = []
    missed: list[MissedRound] = []
    for unit in units:
        # Listed: every missed verdict (the others may be counted), in the order shown.
        mine = sorted(
            (v for gw in unit.gateways for v in todays.get(gw, ())),
            key=lambda v: (v.local_start, v.round_id, v.gateway_id),
        )
        counted = [c for gw in unit.gateways for c in todays_counted.get(gw, ())]
        sums = [s for gw in unit.gateways for s in day_sums.get(gw, ())]
        if not mine and not counted and not sums and not _listed(unit, start, end):
            continue
        t = tally(mine, explained, counted)
        # The daily summary says how many rounds there were: the ones without a verdict here
        # have not been uploaded yet (or were lost) and are shown as awaited, never as done.
        per_gw_verdicts: dict[str, int] = {}
        for v in mine:
            per_gw_verdicts[v.gateway_id] = per_gw_verdicts.get(v.gateway_id, 0) + 1
        for c in counted:
            per_gw_verdicts[c.gateway_id] = per_gw_verdicts.get(c.gateway_id, 0) + c.rounds
        awaiting = sum(max(0, s.planned - per_gw_verdicts.get(s.gateway_id, 0)) for s in sums)
        t = replace(t, planned=t.planned + awaiting, awaiting=awaiting)
        for v in mine:
            if v.verdict == MISSED:
                missed.append(
                    MissedRound(
                        compound=unit.compound,
                        township=unit.township,
                        gateway_id=v.gateway_id,
                        round_id=v.round_id,
                        route=v.route,
                        local_start=v.local_start,
                        local_end=v.local_end,
                        reasons=v.reasons,
                        responsible=v.responsible,
                        explanations=tuple(by_round.get((unit.compound, v.round_id), ())),
                    )
                )
        if t.missed:
            status = STATUS_EXPLAINED if t.missed_explained == t.missed else STATUS_EXPLAIN
        elif not mine and not counted and not sums:
            status = STATUS_NO_DATA
        elif awaiting:
            status = STATUS_AWAITING
        else:
            status = STATUS_OK
        rows.append(DailyRow(unit.compound, unit.township, t, status))
    total = sum((r.tally for r in rows), PatrolTally())
    return DailyBulletin(day, tz, now, tuple(rows), tuple(missed), total)


# --------------------------------------------------------------------------- uptime


@dataclass(frozen=True, slots=True)
class StateChange:
    """A device entered ``state`` at ``at`` (wall seconds)."""

    at: float
    seq: int
    kind: str
    device: str
    state: str
    reason: str = ""
    label: str = ""  # a friendlier name (a reader's checkpoint)


def state_changes(events: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[StateChange]]:
    """State-change events of one gateway as timelines, keyed (kind, device), time-ordered.

    ``reader.state`` online/offline, ``health.state`` ok/degraded/down/unknown,
    ``relay_board.state`` up/down, ``link.up``/``link.down``. An event journaled with an
    unsynchronised clock cannot be placed in time: the device's state is unknown from it until
    the next synchronised change.
    """
    out: dict[tuple[str, str], list[StateChange]] = {}
    for ev in events:
        kind = ev.get("kind")
        p = _mapping(ev.get("payload"))
        at, seq = float(ev.get("wall_time", 0.0)), int(ev.get("seq", 0))
        reason = str(p.get("reason") or "")
        label = ""
        if kind == "reader.state":
            device = str(p.get("reader") or p.get("checkpoint") or "")
            dkind = READER
            state = {"online": UP, "offline": DOWN}.get(str(p.get("state")), UNKNOWN)
            label = str(p.get("checkpoint") or "")
        elif kind == "health.state":
            device, dkind = str(p.get("device") or ""), str(p.get("kind") or "")
            state = _HEALTH_STATE.get(str(p.get("state")), UNKNOWN)
        elif kind == "relay_board.state":
            # The broadcast service's read-back of each board: up or down.
            device, dkind = str(p.get("board") or ""), RELAY
            state = {"up": UP, "down": DOWN}.get(str(p.get("state")), UNKNOWN)
            reason = reason or str(p.get("error") or "")
        elif kind in ("link.up", "link.down"):
            device, dkind = LINK_DEVICE, LINK
            state = UP if kind == "link.up" else DOWN
        else:
            continue
        if not device or not dkind or not math.isfinite(at):
            continue
        if not ev.get("clock_synced", True):
            state, reason = UNKNOWN, "clock not synchronised"
        out.setdefault((dkind, device), []).append(
            StateChange(at, seq, dkind, device, state, reason, label)
        )
    for timeline in out.values():
        timeline.sort(key=lambda c: (c.at, c.seq))
    return out


def gateway_down_spans(
    events: Iterable[Mapping[str, Any]],
) -> list[tuple[float, float]]:
    """Spans the gateway software was not running, from ``daemon.*`` events (merged, sorted).

    ``daemon.started`` carries ``last_event_wall`` (the previous run's last event, clean stop
    or crash); a ``daemon.stopped`` not followed by a start is down until further notice.
    """
    spans: list[tuple[float, float]] = []
    evs = sorted(
        (e for e in events if e.get("kind") in ("daemon.started", "daemon.stopped")),
        key=lambda e: (float(e.get("wall_time", 0.0)), int(e.get("seq", 0))),
    )
    stopped_at: float | None = None
    for e in evs:
        wall = float(e.get("wall_time", 0.0))
        if e.get("kind") == "daemon.stopped":
            stopped_at = wall
            continue
        p = _mapping(e.get("payload"))
        last = p.get("last_event_wall")
        lo = float(last) if isinstance(last, int | float) and math.isfinite(last) else stopped_at
        if lo is not None and lo < wall:
            spans.append((lo, wall))
        stopped_at = None
    if stopped_at is not None:
        spans.append((stopped_at, math.inf))
    spans.sort()
    merged: list[tuple[float, float]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


@dataclass(frozen=True, slots=True)
class DeviceUptime:
    """Seconds of the period in each state; they add up to ``period_s``."""

    compound: str
    gateway_id: str
    kind: str
    device: str
    label: str
    up_s: float
    degraded_s: float
    down_s: float
    unknown_s: float
    state_at_end: str
    since: float | None  # when the state at the end began (None: unknown)
    reason: str

    @property
    def period_s(self) -> float:
        return self.up_s + self.degraded_s + self.down_s + self.unknown_s

    @property
    def uptime(self) -> float | None:
        """Up or degraded (working) over the whole period; unknown time is not up."""
        p = self.period_s
        return None if p <= 0 else (self.up_s + self.degraded_s) / p

    @property
    def known(self) -> float | None:
        p = self.period_s
        return None if p <= 0 else 1.0 - self.unknown_s / p


def device_uptime(
    timeline: Sequence[StateChange],
    *,
    start: float,
    end: float,
    horizon: float,
    down_spans: Sequence[tuple[float, float]] = (),
    down_state: str = UNKNOWN,
) -> tuple[dict[str, float], str, float | None, str]:
    """Seconds per state over [start, end) for one device.

    The state at a moment is the last change at or before it (from before ``start`` too);
    unknown before the first change and from ``horizon`` on (the centre knows nothing later);
    inside ``down_spans`` (the gateway stopped) it is ``down_state``.
    Returns (seconds by state, state at the end, since when, reason).
    """
    totals = dict.fromkeys(STATES, 0.0)
    if end <= start:
        return totals, UNKNOWN, None, ""
    times = [c.at for c in timeline]
    cuts = {start, end}
    cuts.update(t for t in times if start < t < end)
    if start < horizon < end:
        cuts.add(horizon)
    for lo, hi in down_spans:
        for t in (lo, hi):
            if start < t < end:
                cuts.add(t)
    points = sorted(cuts)
    span_starts = [lo for lo, _ in down_spans]

    def state_at(t: float) -> tuple[str, float | None, str]:
        if t >= horizon:
            return UNKNOWN, max(horizon, start), "no data after the last upload"
        i = bisect.bisect_right(span_starts, t) - 1
        if i >= 0 and down_spans[i][0] <= t < down_spans[i][1]:
            return down_state, down_spans[i][0], "gateway stopped"
        j = bisect.bisect_right(times, t) - 1
        if j < 0:
            return UNKNOWN, None, "no state known yet"
        c = timeline[j]
        # "since" is when the device entered this state: walk back over repeats of it.
        k = j
        while k > 0 and timeline[k - 1].state == c.state:
            k -= 1
        return c.state, timeline[k].at, c.reason

    for a, b in itertools.pairwise(points):
        totals[state_at(a)[0]] += b - a
    last = state_at(math.nextafter(end, -math.inf))
    return totals, last[0], last[1], last[2]


# --------------------------------------------------------------------------- monthly bulletin


@dataclass(frozen=True, slots=True)
class GatewayActivity:
    """What one gateway's events say about a period (input to :func:`monthly_bulletin`)."""

    gateway_id: str
    horizon: float  # the centre has this gateway's events up to here (its last upload)
    state_events: Sequence[Mapping[str, Any]] = ()  # incl. some before the period start
    daemon_events: Sequence[Mapping[str, Any]] = ()
    broadcast_events: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class Fault:
    compound: str
    gateway_id: str
    kind: str
    device: str
    state: str
    since: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class Broadcasts:
    run: int = 0
    failed: int = 0
    refused: int = 0

    def __add__(self, other: Broadcasts) -> Broadcasts:
        return Broadcasts(
            self.run + other.run, self.failed + other.failed, self.refused + other.refused
        )


@dataclass(frozen=True, slots=True)
class KindUptime:
    """Pooled over every device of one kind: seconds up (incl. degraded), known, total."""

    kind: str
    devices: int = 0
    working_s: float = 0.0
    unknown_s: float = 0.0
    period_s: float = 0.0

    @property
    def uptime(self) -> float | None:
        return None if self.period_s <= 0 else self.working_s / self.period_s

    @property
    def unknown(self) -> float | None:
        return None if self.period_s <= 0 else self.unknown_s / self.period_s

    def __add__(self, other: KindUptime) -> KindUptime:
        return KindUptime(
            self.kind,
            self.devices + other.devices,
            self.working_s + other.working_s,
            self.unknown_s + other.unknown_s,
            self.period_s + other.period_s,
        )


def pool(
    devices: Iterable[DeviceUptime], kinds: Sequence[str] = SUMMARY_KINDS
) -> dict[str, KindUptime]:
    out = {k: KindUptime(k) for k in kinds}
    for d in devices:
        if d.kind in out:
            out[d.kind] = out[d.kind] + KindUptime(
                d.kind, 1, d.up_s + d.degraded_s, d.unknown_s, d.period_s
            )
    return out


@dataclass(frozen=True, slots=True)
class MonthlyCompound:
    compound: str
    township: str
    patrol: PatrolTally
    devices: tuple[DeviceUptime, ...]
    broadcasts: Broadcasts
    faults: tuple[Fault, ...]

    @property
    def uptime_by_kind(self) -> dict[str, KindUptime]:
        return pool(self.devices)


@dataclass(frozen=True, slots=True)
class MonthlyTownship:
    township: str
    compounds: tuple[MonthlyCompound, ...]

    @property
    def patrol(self) -> PatrolTally:
        return sum((c.patrol for c in self.compounds), PatrolTally())

    @property
    def broadcasts(self) -> Broadcasts:
        return sum((c.broadcasts for c in self.compounds), Broadcasts())

    @property
    def faults(self) -> int:
        return sum(len(c.faults) for c in self.compounds)

    @property
    def uptime_by_kind(self) -> dict[str, KindUptime]:
        return pool(d for c in self.compounds for d in c.devices)


@dataclass(frozen=True, slots=True)
class VideoFindings:
    """The centre's video patrol of one compound's duty room over the period: pictures judged,
    findings among them (any verdict but "on post"), and how many were "not on post"."""

    township: str
    compound: str
    judged: int
    findings: int
    not_on_post: int


@dataclass(frozen=True, slots=True)
class MonthlyBulletin:
    month: str
    timezone: str
    generated_at: float
    period_start: float
    period_end: float  # the month's end, or ``now`` for the month under way
    townships: tuple[MonthlyTownship, ...]
    partial: bool = field(default=False)
    # Unverified bands and anti-fraud alerts per compound: ``CompoundIntegrity`` items from
    # centre/bulletins/integrity.py (typed loosely: this module imports nothing of ours).
    integrity: tuple[Any, ...] = ()
    # The centre's video patrol (centre/web/video_patrol.py): one row per compound judged.
    video_patrol: tuple[VideoFindings, ...] = ()


def broadcast_counts(events: Iterable[Mapping[str, Any]], start: float, end: float) -> Broadcasts:
    """Distinct requests that played (``broadcast.on``), failed, or were refused in [start, end)."""
    sets: dict[str, set[str]] = {"run": set(), "failed": set(), "refused": set()}
    which = {
        "broadcast.on": "run",
        "broadcast.failed": "failed",
        "broadcast.refused": "refused",
        "broadcast.command_refused": "refused",
    }
    for e in events:
        bucket = which.get(str(e.get("kind")))
        at = float(e.get("wall_time", 0.0))
        if bucket is None or not start <= at < end:
            continue
        p = _mapping(e.get("payload"))
        rid = p.get("request_id") or p.get("digest") or f"seq:{e.get('seq')}"
        sets[bucket].add(f"{e.get('gateway_id', '')}/{rid}")
    return Broadcasts(len(sets["run"]), len(sets["failed"]), len(sets["refused"]))


def monthly_bulletin(
    month: str,
    units: Sequence[Unit],
    verdicts: Mapping[tuple[str, str], Verdict] | PatrolDigest,
    activity: Mapping[str, GatewayActivity],
    explanations: Iterable[Explanation] = (),
    *,
    now: float,
    tz: str = DEFAULT_TZ,
) -> MonthlyBulletin:
    """The monthly bulletin per township and compound (see the module doc for the rules).

    ``monthly_bulletin("2026-10", units, verdicts, {gw: GatewayActivity(...)}, now=t)``
    """
    start, month_end = month_bounds(month, tz)
    end = min(month_end, max(now, start))
    explained = {(e.compound, e.round_id) for e in explanations}
    if not isinstance(verdicts, PatrolDigest):
        verdicts = digest_verdicts(verdicts.values())
    in_month = _by_gateway(v for v in verdicts.listed if v.day.startswith(month + "-"))
    counted = _by_gateway(c for c in verdicts.counts if c.day.startswith(month + "-"))
    compounds: list[MonthlyCompound] = []
    for unit in units:
        mine = [v for gw in unit.gateways for v in in_month.get(gw, ())]
        mine_counted = [c for gw in unit.gateways for c in counted.get(gw, ())]
        acts = [activity[g] for g in unit.gateways if g in activity]
        if not mine and not mine_counted and not acts and not _listed(unit, start, end):
            continue
        devices: list[DeviceUptime] = []
        faults: list[Fault] = []
        casts = Broadcasts()
        for act in acts:
            down = gateway_down_spans(act.daemon_events)
            horizon = min(act.horizon, end)
            stopped_at_end = next((lo for lo, hi in down if lo < end <= hi), None)
            for (dkind, device), timeline in sorted(state_changes(act.state_events).items()):
                totals, last, since, reason = device_uptime(
                    timeline,
                    start=start,
                    end=end,
                    horizon=horizon,
                    down_spans=down,
                    down_state=DOWN if dkind == LINK else UNKNOWN,
                )
                label = next((c.label for c in reversed(timeline) if c.label), "")
                devices.append(
                    DeviceUptime(
                        unit.compound,
                        act.gateway_id,
                        dkind,
                        device,
                        label,
                        totals[UP],
                        totals[DEGRADED],
                        totals[DOWN],
                        totals[UNKNOWN],
                        last,
                        since,
                        reason,
                    )
                )
                # While the gateway is stopped its own fault says it all (link down is a
                # consequence, not a second fault).
                if last in (DOWN, DEGRADED) and stopped_at_end is None:
                    faults.append(
                        Fault(unit.compound, act.gateway_id, dkind, device, last, since, reason)
                    )
            if stopped_at_end is not None:
                faults.append(
                    Fault(
                        unit.compound,
                        act.gateway_id,
                        "gateway",
                        act.gateway_id,
                        DOWN,
                        stopped_at_end,
                        "gateway stopped",
                    )
                )
            elif act.horizon < end - STALE_AFTER_S:
                faults.append(
                    Fault(
                        unit.compound,
                        act.gateway_id,
                        "gateway",
                        act.gateway_id,
                        UNKNOWN,
                        act.horizon if act.horizon > 0 else None,
                        "no upload since" if act.horizon > 0 else "never uploaded",
                    )
                )
            casts = casts + broadcast_counts(
                ({**e, "gateway_id": act.gateway_id} for e in act.broadcast_events), start, end
            )
        compounds.append(
            MonthlyCompound(
                unit.compound,
                unit.township,
                tally(mine, explained, mine_counted),
                tuple(devices),
                casts,
                tuple(faults),
            )
        )
    townships: dict[str, list[MonthlyCompound]] = {}
    for c in compounds:
        townships.setdefault(c.township, []).append(c)
    return MonthlyBulletin(
        month=month,
        timezone=tz,
        generated_at=now,
        period_start=start,
        period_end=end,
        townships=tuple(
            MonthlyTownship(t, tuple(sorted(cs, key=lambda c: c.compound)))
            for t, cs in sorted(townships.items())
        ),
        partial=end < month_end,
    )


__all__ = [
    "DEFAULT_TZ",
    "Broadcasts",
    "DailyBulletin",
    "DailyRow",
    "DeviceUptime",
    "Explanation",
    "Fault",
    "GatewayActivity",
    "KindUptime",
    "MissedRound",
    "MonthlyBulletin",
    "MonthlyCompound",
    "MonthlyTownship",
    "PatrolDigest",
    "PatrolTally",
    "RoundCount",
    "StateChange",
    "SummaryInfo",
    "Unit",
    "Verdict",
    "broadcast_counts",
    "check_year",
    "daily_bulletin",
    "day_bounds",
    "device_uptime",
    "digest_verdicts",
    "gateway_down_spans",
    "latest_summaries",
    "latest_verdicts",
    "local_text",
    "month_bounds",
    "monthly_bulletin",
    "parse_day",
    "parse_month",
    "pool",
    "state_changes",
    "tally",
    "units_from_registry",
    "verdict_from_event",
]
