"""Frozen copy of gateway/patrol/engine.py as of commit e6ad36e, before issue 20's speed work.

Test-only: tests/patrol/test_replay_equivalence.py replays the same journals through this and
through the live engine and requires identical outputs and reports. Do not edit it, and do not
import it from gateway code.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.patrol.config import PatrolSection, RouteSection, ScheduleSection

PLANNED = "planned"
STARTED = "started"
COMPLETED = "completed"
LATE_COMPLETED = "late_completed"
INCOMPLETE = "incomplete"
MISSED = "missed"
UNASSESSABLE = "unassessable"
VERDICTS = (COMPLETED, LATE_COMPLETED, INCOMPLETE, MISSED, UNASSESSABLE)

ALERT_NOT_STARTED = "not_started"
ALERT_OVERDUE = "checkpoint_overdue"
ALERT_INCOMPLETE = "incomplete"
ALERT_SUSPICIOUS = "suspicious"

UNKNOWN_GUARD = "unknown"
LATE_TAP_S = 30.0  # a tap seen this long before it was journaled came from an offline buffer
PLAN_AHEAD_S = 2 * 86400.0  # rounds are planned this far ahead of "now" (for the today table)

# Same-time deadlines run in this order: grace checks, overdue checks, window end, summary.
_PRIO_GRACE, _PRIO_OVERDUE, _PRIO_CLOSE, _PRIO_SUMMARY = 0, 1, 2, 3


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class Tap:
    """A guard's wristband on a checkpoint reader. ``at``: when tapped; ``known_at``: journaled."""

    seq: int
    checkpoint: str
    guard: str
    wristband: str
    at: float
    known_at: float
    clock_synced: bool = True
    buffered: bool = False
    reader: str = ""


@dataclass(frozen=True, slots=True)
class ReaderState:
    """A checkpoint's reader went online or offline at ``at``."""

    seq: int
    checkpoint: str
    online: bool
    at: float
    clock_synced: bool = True
    reader: str = ""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Any journal event: the gateway was up at ``at`` in boot ``boot_id``."""

    seq: int
    at: float
    boot_id: str
    clock_synced: bool
    kind: str = ""
    last_event_wall: float | None = None


@dataclass(frozen=True, slots=True)
class Outage:
    """An explicit span in which judging was impossible (``end`` None: still going)."""

    kind: Literal["reader", "gateway", "clock"]
    start: float
    end: float | None
    subject: str = ""  # the checkpoint, for a reader outage


EngineInput = Tap | ReaderState | Heartbeat | Outage


def engine_inputs_from_event(event: Mapping[str, Any]) -> list[EngineInput]:
    """The engine inputs one journal event (``Event.to_dict()`` shape) carries.

    ``engine.feed(engine_inputs_from_event(ev.to_dict()))``
    """
    seq = int(event["seq"])
    kind = str(event["kind"])
    wall = float(event["wall_time"])
    synced = bool(event.get("clock_synced", True))
    payload: Mapping[str, Any] = event.get("payload") or {}
    last_wall = payload.get("last_event_wall") if kind == "daemon.started" else None
    out: list[EngineInput] = [
        # Positional: this runs once per journal event on every replay.
        Heartbeat(
            seq,
            wall,
            str(event.get("boot_id", "")),
            synced,
            kind,
            float(last_wall) if isinstance(last_wall, int | float) else None,
        )
    ]
    if kind == "tap" and isinstance(payload.get("checkpoint"), str):
        tapped = payload.get("tapped_at")
        at = float(tapped) if isinstance(tapped, int | float) and math.isfinite(tapped) else wall
        at = min(at, wall)  # a node cannot have seen a tap after we journaled it
        out.append(
            Tap(
                seq,
                payload["checkpoint"],
                str(payload.get("guard") or UNKNOWN_GUARD),
                str(payload.get("wristband", "")),
                at,
                wall,
                synced,
                bool(payload.get("buffered", False)) or wall - at > LATE_TAP_S,
                str(payload.get("reader", "")),
            )
        )
    elif kind == "reader.state" and isinstance(payload.get("checkpoint"), str):
        state = payload.get("state")
        if state in ("online", "offline"):
            out.append(
                ReaderState(
                    seq=seq,
                    checkpoint=payload["checkpoint"],
                    online=state == "online",
                    at=wall,
                    clock_synced=synced,
                    reader=str(payload.get("reader", "")),
                )
            )
    return out


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class RoundReport:
    """A round's state and why. ``final`` once its window has ended."""

    round_id: str
    schedule_id: str
    route_id: str
    route_name: str
    day: str
    window_start: float
    window_end: float
    local_start: str
    local_end: str
    state: str
    final: bool
    reasons: tuple[str, ...]
    codes: tuple[str, ...]
    started_at: float | None
    finished_at: float | None
    required_taps: int
    counts: tuple[tuple[str, int], ...]  # route order
    missing: tuple[str, ...]  # shortfall held against the guards
    excused: tuple[str, ...]  # shortfall an outage explains
    out_of_order: tuple[str, ...]  # "a>b": b was first tapped before a
    implausible_legs: tuple[str, ...]  # "a>b:12s<60s"
    slow_legs: tuple[str, ...]
    repeated_taps: int
    uncredited_taps: int
    buffered_taps: int
    guards: tuple[str, ...]  # guards with credited taps
    responsible: tuple[str, ...]
    outages: tuple[str, ...]
    legs_in_order: int
    legs_judged: int

    @property
    def assessable(self) -> bool:
        return self.final and self.state != UNASSESSABLE

    @property
    def covered(self) -> int:
        return sum(1 for _, n in self.counts if n >= self.required_taps)

    def content(self) -> dict[str, Any]:
        """JSON-ready verdict (``patrol.round`` payload without the revision)."""
        return {
            "round": self.round_id,
            "schedule": self.schedule_id,
            "route": self.route_id,
            "day": self.day,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "local_start": self.local_start,
            "local_end": self.local_end,
            "verdict": self.state,
            "reasons": list(self.reasons),
            "codes": list(self.codes),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "required_taps": self.required_taps,
            "checkpoints": {cp: n for cp, n in self.counts},
            "missing": list(self.missing),
            "excused": list(self.excused),
            "out_of_order": list(self.out_of_order),
            "implausible_legs": list(self.implausible_legs),
            "slow_legs": list(self.slow_legs),
            "repeated_taps": self.repeated_taps,
            "uncredited_taps": self.uncredited_taps,
            "buffered_taps": self.buffered_taps,
            "guards": list(self.guards),
            "responsible": list(self.responsible),
            "outages": list(self.outages),
            "sequence": {"in_order": self.legs_in_order, "judged": self.legs_judged},
        }


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One line of the daily summary (a route or a guard)."""

    key: str
    planned: int = 0
    completed: int = 0
    late: int = 0
    incomplete: int = 0
    missed: int = 0
    unassessable: int = 0
    pending: int = 0  # window not ended yet (an on-demand summary before the day is over)
    checkpoints_done: int = 0
    checkpoints_due: int = 0
    legs_in_order: int = 0
    legs_judged: int = 0

    @property
    def assessed(self) -> int:
        return self.completed + self.late + self.incomplete + self.missed

    @property
    def checkpoint_completion(self) -> float | None:
        return _ratio(self.checkpoints_done, self.checkpoints_due)

    @property
    def on_time_rate(self) -> float | None:
        return _ratio(self.completed, self.assessed)

    @property
    def sequence_adherence(self) -> float | None:
        return _ratio(self.legs_in_order, self.legs_judged)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "planned": self.planned,
            "completed": self.completed,
            "late": self.late,
            "incomplete": self.incomplete,
            "missed": self.missed,
            "unassessable": self.unassessable,
            "pending": self.pending,
            "checkpoints_done": self.checkpoints_done,
            "checkpoints_due": self.checkpoints_due,
            "checkpoint_completion": self.checkpoint_completion,
            "on_time_rate": self.on_time_rate,
            "sequence_adherence": self.sequence_adherence,
        }


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else round(num / den, 4)


@dataclass(frozen=True, slots=True)
class AlertRaised:
    alert_id: str
    alert_kind: str
    round_id: str
    at: float
    message: str
    checkpoint: str = ""
    kind: str = "patrol.alert"

    def payload(self) -> dict[str, Any]:
        return {
            "alert": self.alert_id,
            "alert_kind": self.alert_kind,
            "round": self.round_id,
            "checkpoint": self.checkpoint,
            "at": self.at,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class AlertResolved:
    alert_id: str
    alert_kind: str
    round_id: str
    at: float
    resolution: str
    kind: str = "patrol.alert_resolved"

    def payload(self) -> dict[str, Any]:
        return {
            "alert": self.alert_id,
            "alert_kind": self.alert_kind,
            "round": self.round_id,
            "at": self.at,
            "resolution": self.resolution,
        }


@dataclass(frozen=True, slots=True)
class RoundVerdict:
    report: RoundReport
    at: float
    revision: int
    kind: str = "patrol.round"

    def payload(self) -> dict[str, Any]:
        return self.report.content() | {"at": self.at, "revision": self.revision}


@dataclass(frozen=True, slots=True)
class DailySummary:
    day: str
    at: float
    routes: tuple[SummaryRow, ...]
    guards: tuple[SummaryRow, ...]
    missed_rounds: tuple[str, ...]
    revision: int = 1
    kind: str = "patrol.daily_summary"

    def content(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "routes": [r.as_dict() for r in self.routes],
            "guards": [r.as_dict() for r in self.guards],
            "missed_rounds": list(self.missed_rounds),
        }

    def payload(self) -> dict[str, Any]:
        return self.content() | {"at": self.at, "revision": self.revision}


Output = AlertRaised | AlertResolved | RoundVerdict | DailySummary


# --------------------------------------------------------------------------- internals


@dataclass(slots=True)
class _Span:
    kind: str  # reader | gateway | clock
    subject: str
    start: float
    end: float | None

    def overlaps(self, lo: float, hi: float) -> bool:
        return self.start < hi and (self.end is None or self.end > lo)


@dataclass(slots=True)
class _Round:
    id: str
    schedule: ScheduleSection
    route: RouteSection
    start: float
    end: float
    grace_end: float
    local_start: datetime
    day: str
    responsible: frozenset[str]
    taps: list[tuple[float, int, Tap]] = field(default_factory=list)
    generation: int = 0
    grace_done: bool = False
    overdue_done: set[str] = field(default_factory=set)
    closed: bool = False
    verdict: RoundReport | None = None
    revision: int = 0
    open_alerts: dict[str, str] = field(default_factory=dict)  # id -> alert kind
    raised: set[str] = field(default_factory=set)
    history: list[Output] = field(default_factory=list)
    analysis: _Analysis | None = None  # cached; dropped when a tap is added


@dataclass(slots=True)
class _Analysis:
    credited: list[Tap]
    uncredited: list[tuple[Tap, str]]
    counts: dict[str, int]
    first_at: dict[str, float]
    kth_at: dict[str, float]
    repeats: dict[str, int]
    implausible: list[tuple[str, str, float, float]]
    slow: list[tuple[str, str, float, float]]
    last_credit: dict[str, float]
    overdue: dict[str, float] | None = None  # cached _overdue_times


class PatrolEngine:
    """Judges patrol rounds from journal facts. Pure and deterministic; see the module doc."""

    def __init__(self, section: PatrolSection, *, origin: float | None = None) -> None:
        self.section = section
        self.tz = ZoneInfo(section.timezone)
        self.origin = origin
        self.now = -math.inf
        self._routes = {r.id: r for r in section.routes}
        self._route_of_cp: dict[str, list[str]] = {}
        for route in section.routes:
            for cp in route.checkpoints:
                self._route_of_cp.setdefault(cp, []).append(route.id)
        self._legs: dict[str, dict[tuple[str, str], tuple[float | None, float | None]]] = {}
        for route in section.routes:
            legs: dict[tuple[str, str], tuple[float | None, float | None]] = {}
            for leg in route.legs:
                pair = (leg.from_checkpoint, leg.to_checkpoint)
                legs[pair] = (
                    leg.min_walk_s if leg.min_walk_s is not None else route.min_walk_s,
                    leg.max_walk_s if leg.max_walk_s is not None else route.max_walk_s,
                )
            self._legs[route.id] = legs
        self._rounds: dict[str, _Round] = {}
        self._position = {
            r.id: {cp: i for i, cp in enumerate(r.checkpoints)} for r in section.routes
        }
        self._longest_window = {r.id: 0.0 for r in section.routes}
        for sched in section.schedules:
            window_s = (sched.window_minutes_effective() or 60.0) * 60.0
            self._longest_window[sched.route] = max(self._longest_window[sched.route], window_s)
        self._by_route: dict[str, list[tuple[float, str]]] = {r.id: [] for r in section.routes}
        self._by_day: dict[str, list[str]] = {}
        self._planned_through: date | None = None
        self._plan_next_ts = -math.inf  # local midnight after the last planned day
        self._heap: list[tuple[float, int, str, int, str]] = []
        self._summaries: dict[str, DailySummary] = {}
        self._summary_due: dict[str, float] = {}
        self._spans: list[_Span] = []
        self._reader_open: dict[str, _Span] = {}
        self._reader_close_pending: set[str] = set()
        self._clock_open: _Span | None = None
        self._gateway_open: _Span | None = None
        self._boot: str | None = None
        self._last_trusted: float | None = None
        self._stopped_at: float | None = None
        self._dirty: set[str] = set()
        self._out: list[Output] = []
        self.unplaced_taps = 0  # taps journaled with an unsynchronised clock

    # ----------------------------------------------------------------- public API

    def feed(self, inputs: Iterable[EngineInput]) -> list[Output]:
        """Apply inputs in journal order; returns the outputs they caused."""
        self._apply_inputs(inputs)
        return self._drain()

    def _apply_inputs(self, inputs: Iterable[EngineInput]) -> None:
        for item in inputs:
            if isinstance(item, Heartbeat):
                self._on_heartbeat(item)
            elif isinstance(item, Tap):
                self._on_tap(item)
            elif isinstance(item, ReaderState):
                self._on_reader(item)
            else:
                self._on_outage(item)
            if self._dirty:
                self._settle_dirty()

    def feed_events(self, events: Iterable[Mapping[str, Any]]) -> list[Output]:
        """``feed`` for journal events in their dict shape."""
        for ev in events:
            self._apply_inputs(engine_inputs_from_event(ev))
        return self._drain()

    def advance(self, now: float, clock_synced: bool = True) -> list[Output]:
        """Let time pass to ``now`` (deadlines strictly before it fire). Ignored if unsynced."""
        if clock_synced and math.isfinite(now):
            self._ensure_origin(now)
            self._advance(now)
            self._settle_dirty()
        return self._drain()

    def forget_before(self, t: float) -> int:
        """Drop whole patrol days summarised before ``t``, and spans over by then.

        Keeps a long-running engine's memory bounded (the service forgets what is older than
        the journal's retention). Returns how many rounds were dropped.
        """
        days = [d for d in self._summaries if self._summary_due[d] < t]
        dropped = 0
        for day in days:
            for rid in self._by_day.pop(day, []):
                r = self._rounds.pop(rid)
                self._by_route[r.route.id].remove((r.start, rid))
                dropped += 1
            del self._summaries[day]
        self._spans = [s for s in self._spans if s.end is None or s.end >= t]
        return dropped

    def round_ids(self, day: str | None = None) -> list[str]:
        """Planned round ids (of one patrol day, if given), by window start."""
        ids = self._by_day.get(day, []) if day is not None else list(self._rounds)
        return sorted(ids, key=lambda rid: (self._rounds[rid].start, rid))

    def report(self, round_id: str) -> RoundReport:
        """The round's current state (its verdict once the window ended). KeyError if unknown."""
        r = self._rounds[round_id]
        if r.closed and r.verdict is not None:
            return r.verdict
        return self._assess(r, self.now)

    def round_history(self, round_id: str) -> list[Output]:
        """Alerts and verdicts this round produced, in order."""
        return list(self._rounds[round_id].history)

    def round_taps(self, round_id: str) -> list[tuple[Tap, str]]:
        """The round's taps with "credited" or why not, in time order."""
        r = self._rounds[round_id]
        a = self._analyse(r)
        status = {id(t): "credited" for t in a.credited}
        status.update({id(t): why for t, why in a.uncredited})
        return [(t, status[id(t)]) for _, _, t in r.taps]

    def outages_in(self, lo: float, hi: float) -> list[tuple[str, str, float, float | None]]:
        """(kind, subject, start, end) of spans overlapping [lo, hi)."""
        return [(s.kind, s.subject, s.start, s.end) for s in self._spans if s.overlaps(lo, hi)]

    def day_of(self, t: float) -> str:
        """The patrol day a window ending at ``t`` belongs to (see ``summary_hour``)."""
        local = datetime.fromtimestamp(t, self.tz) - timedelta(
            hours=self.section.summary_hour, microseconds=1
        )
        return local.date().isoformat()

    def summary_time(self, day: str) -> float:
        """When the daily summary for ``day`` is due (Unix seconds)."""
        d = date.fromisoformat(day) + timedelta(days=1)
        return self._local_ts(d, self.section.summary_hour * 60)

    def daily_summary(self, day: str) -> DailySummary:
        """The summary of ``day`` as things stand (on demand; rounds still open count pending)."""
        return self._summarise(day, self.now)

    def local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self.tz)

    # ----------------------------------------------------------------- time and planning

    def _local_ts(self, d: date, minutes: int) -> float:
        # Local wall time -> instant. zoneinfo picks fold=0 (the first of a repeated hour; a time
        # inside a spring-forward gap lands after the gap). Asia/Shanghai has neither.
        naive = datetime(d.year, d.month, d.day) + timedelta(minutes=minutes)
        return naive.replace(tzinfo=self.tz).timestamp()

    def _ensure_origin(self, t: float) -> None:
        if self.origin is None:
            self.origin = t

    def _plan_until(self, t: float) -> None:
        if self.origin is None or not self.section.schedules:
            return
        horizon = t + PLAN_AHEAD_S
        if horizon < self._plan_next_ts:
            return
        if self._planned_through is None:
            # Start a day early: yesterday's schedule may have rounds after midnight.
            self._planned_through = self.local(self.origin).date() - timedelta(days=2)
        while True:
            self._plan_next_ts = self._local_ts(self._planned_through + timedelta(days=1), 0)
            if self._plan_next_ts > horizon:
                break
            self._planned_through += timedelta(days=1)
            self._plan_day(self._planned_through)

    def _plan_day(self, d: date) -> None:
        assert self.origin is not None
        for sched in self.section.schedules:
            route = self._routes[sched.route]
            window_s = (sched.window_minutes_effective() or 60.0) * 60.0
            for offset in sched.start_offsets_minutes():
                start = self._local_ts(d, offset)
                if start < self.origin:
                    continue
                local_start = self.local(start)
                rid = f"{sched.id}@{local_start.strftime('%Y-%m-%dT%H:%M')}"
                if rid in self._rounds:  # a repeated local hour (DST fall-back): keep the first
                    continue
                end = start + window_s
                r = _Round(
                    id=rid,
                    schedule=sched,
                    route=route,
                    start=start,
                    end=end,
                    grace_end=start + sched.grace_minutes * 60.0,
                    local_start=local_start,
                    day=self.day_of(end),
                    responsible=self.section.responsible_guards(sched),
                )
                self._rounds[rid] = r
                bisect.insort(self._by_route[route.id], (start, rid))
                self._by_day.setdefault(r.day, []).append(rid)
                if r.day not in self._summary_due:
                    due = self.summary_time(r.day)
                    self._summary_due[r.day] = due
                    heapq.heappush(self._heap, (due, _PRIO_SUMMARY, r.day, 0, ""))
                self._schedule(r)

    def _schedule(self, r: _Round) -> None:
        """(Re)compute the round's next deadline; older heap entries go stale by generation."""
        r.generation += 1
        nxt = self._next_deadline(r)
        if nxt is not None:
            when, prio, detail = nxt
            heapq.heappush(self._heap, (when, prio, r.id, r.generation, detail))

    def _next_deadline(self, r: _Round) -> tuple[float, int, str] | None:
        if r.closed:
            return None
        best: tuple[float, int, str] = (r.end, _PRIO_CLOSE, "")
        if not r.grace_done:
            best = min(best, (r.grace_end, _PRIO_GRACE, ""))
        if r.taps:
            a = self._analyse(r)
            if a.credited:
                for cp, when in self._overdue_times(r, a).items():
                    if cp not in r.overdue_done and when < r.end:
                        best = min(best, (when, _PRIO_OVERDUE, cp))
        return best

    def _update_overdue(self, r: _Round, a: _Analysis, cp: str) -> None:
        """``cp`` got its first tap (the latest in time): only it and its successor change."""
        if a.overdue is None:
            return
        a.overdue.pop(cp, None)
        cps = r.route.checkpoints
        i = self._position[r.route.id].get(cp, -1)
        if r.route.ordered and 0 <= i < len(cps) - 1 and cps[i + 1] not in a.first_at:
            _, max_s = self._leg_limits(r.route, cp, cps[i + 1])
            if max_s is not None:
                a.overdue[cps[i + 1]] = a.first_at[cp] + max_s

    def _overdue_times(self, r: _Round, a: _Analysis) -> dict[str, float]:
        """When each not-yet-tapped checkpoint becomes overdue (round started)."""
        if a.overdue is not None:
            return a.overdue
        started = a.credited[0].at
        by_duration = started + r.schedule.expected_minutes * 60.0
        out: dict[str, float] = {}
        cps = r.route.checkpoints
        for i, cp in enumerate(cps):
            if cp in a.first_at:
                continue
            when = by_duration
            if r.route.ordered and i > 0 and cps[i - 1] in a.first_at:
                _, max_s = self._leg_limits(r.route, cps[i - 1], cp)
                if max_s is not None:
                    when = a.first_at[cps[i - 1]] + max_s
            out[cp] = when
        a.overdue = out
        return out

    def _advance(self, to: float) -> None:
        self._plan_until(to)
        while self._heap and self._heap[0][0] < to:
            when, prio, key, gen, detail = heapq.heappop(self._heap)
            self.now = max(self.now, when)
            if prio == _PRIO_SUMMARY:
                self._run_summary(key, when)
                continue
            r = self._rounds[key]
            if gen != r.generation or r.closed:
                continue
            if prio == _PRIO_GRACE:
                self._run_grace(r, when)
            elif prio == _PRIO_OVERDUE:
                self._run_overdue(r, detail, when)
            else:
                self._run_close(r, when)
            self._schedule(r)
        self.now = max(self.now, to)

    # ----------------------------------------------------------------- inputs

    def _on_heartbeat(self, h: Heartbeat) -> None:
        if (
            h.clock_synced
            and h.boot_id == self._boot
            and h.kind not in ("daemon.started", "daemon.stopped")
            and self._stopped_at is None
            and self._gateway_open is None
            and self._clock_open is None
            and not self._reader_close_pending
        ):
            self._trusted(h.at)  # the common case: up, same boot, clock fine
            return
        restarted = h.kind == "daemon.started" or (
            self._boot is not None and h.boot_id != self._boot
        )
        if restarted and self._gateway_open is None:
            start = self._stopped_at
            if start is None:
                start = h.last_event_wall if h.last_event_wall is not None else self._last_trusted
            if start is not None and self._last_trusted is not None:
                start = min(start, self._last_trusted)
            if start is not None:
                span = _Span("gateway", "", start, None)
                self._add_span(span)
                self._gateway_open = span
        self._stopped_at = h.at if h.kind == "daemon.stopped" and h.clock_synced else None
        self._boot = h.boot_id
        if not h.clock_synced:
            if self._clock_open is None:
                start = self._last_trusted if self._last_trusted is not None else -math.inf
                self._clock_open = _Span("clock", "", start, None)
                self._add_span(self._clock_open)
            return
        self._ensure_origin(h.at)
        if self._gateway_open is not None:
            self._close_span(self._gateway_open, h.at)
            self._gateway_open = None
        if self._clock_open is not None:
            self._close_span(self._clock_open, h.at)
            self._clock_open = None
        for cp in sorted(self._reader_close_pending):
            if cp in self._reader_open:
                self._close_span(self._reader_open.pop(cp), h.at)
        self._reader_close_pending.clear()
        self._trusted(h.at)

    def _trusted(self, at: float) -> None:
        self._last_trusted = at if self._last_trusted is None else max(self._last_trusted, at)
        if at > self.now:
            self._advance(at)

    def _on_tap(self, t: Tap) -> None:
        if not t.clock_synced:
            # Its time cannot place it in any window; the clock span makes those windows fair.
            self.unplaced_taps += 1
            return
        self._ensure_origin(t.known_at)
        self._trusted(t.known_at)
        self._plan_until(max(t.at, self.now if math.isfinite(self.now) else t.at))
        for route_id in self._route_of_cp.get(t.checkpoint, ()):
            lst = self._by_route[route_id]
            # Rounds of a route are few at a time: look back from the last start <= t.at.
            i = bisect.bisect_right(lst, (t.at, "\uffff"))
            j = i - 1
            while j >= 0:
                start, rid = lst[j]
                r = self._rounds[rid]
                if t.at - start >= self._longest_window[route_id]:
                    break  # this round and every earlier one ended before the tap
                if t.at < r.end:
                    self._add_tap(r, t)
                j -= 1

    def _add_tap(self, r: _Round, t: Tap) -> None:
        key = (t.at, t.seq, t)
        if r.taps and key[:2] < r.taps[-1][:2]:
            bisect.insort(r.taps, key)
            r.analysis = None  # a tap from the past (an offline buffer): judge afresh
        else:
            r.taps.append(key)
            if r.analysis is not None:
                self._apply_tap(r, r.analysis, t)
        self._dirty.add(r.id)

    def _on_reader(self, s: ReaderState) -> None:
        if s.clock_synced:
            self._ensure_origin(s.at)
            self._trusted(s.at)
        open_span = self._reader_open.get(s.checkpoint)
        if not s.online:
            self._reader_close_pending.discard(s.checkpoint)
            if open_span is None:
                start = s.at if s.clock_synced else (self._last_trusted or -math.inf)
                span = _Span("reader", s.checkpoint, start, None)
                self._reader_open[s.checkpoint] = span
                self._add_span(span)
        elif open_span is not None:
            if s.clock_synced:
                self._close_span(open_span, s.at)
                del self._reader_open[s.checkpoint]
            else:  # its time cannot be trusted: close at the next trusted time
                self._reader_close_pending.add(s.checkpoint)

    def _on_outage(self, o: Outage) -> None:
        self._add_span(_Span(o.kind, o.subject, o.start, o.end))

    def _add_span(self, span: _Span) -> None:
        self._spans.append(span)
        self._touch_span(span, span.start, span.end)

    def _close_span(self, span: _Span, end: float) -> None:
        old_end = span.end
        span.end = max(end, span.start)
        self._touch_span(span, span.end, old_end)

    def _touch_span(self, span: _Span, lo: float, hi: float | None) -> None:
        """Mark rounds whose judgement the span's change in [lo, hi) may affect."""
        top = math.inf if hi is None else hi
        routes = self._route_of_cp.get(span.subject, ()) if span.kind == "reader" else self._routes
        for route_id in routes:
            lst = self._by_route[route_id]
            first = lo - self._longest_window[route_id]
            i = 0 if first == -math.inf else bisect.bisect_left(lst, (first, ""))
            for start, rid in lst[i:]:
                if start >= top:
                    break
                if self._rounds[rid].end > lo:
                    self._dirty.add(rid)

    # ----------------------------------------------------------------- deadlines

    def _run_grace(self, r: _Round, when: float) -> None:
        r.grace_done = True
        a = self._analyse(r)
        if a.credited:
            return
        if any(s.kind in ("gateway", "clock") and s.overlaps(r.start, when) for s in self._spans):
            return  # we could not have seen a start: no alert, the verdict will say why
        minutes = r.schedule.grace_minutes
        self._raise(
            r,
            f"{r.id}/{ALERT_NOT_STARTED}",
            ALERT_NOT_STARTED,
            when,
            f"round {r.id} ({r.route.display_name()}) not started {minutes:g} min after "
            f"{self._hhmm(r.start)}",
        )

    def _run_overdue(self, r: _Round, cp: str, when: float) -> None:
        r.overdue_done.add(cp)
        a = self._analyse(r)
        if cp in a.first_at:
            return
        if any(
            s.overlaps(r.start, when)
            and (s.kind in ("gateway", "clock") or (s.kind == "reader" and s.subject == cp))
            for s in self._spans
        ):
            return  # its reader (or the gateway) was down: a tap may not have been seen
        self._raise(
            r,
            f"{r.id}/{ALERT_OVERDUE}/{cp}",
            ALERT_OVERDUE,
            when,
            f"checkpoint {cp} overdue on round {r.id} (due by {self._hhmm(when)})",
            checkpoint=cp,
        )

    def _run_close(self, r: _Round, when: float) -> None:
        r.closed = True
        report = self._assess(r, when)
        for alert_id in sorted(r.open_alerts):
            self._resolve(r, alert_id, when, f"window closed: {report.state}")
        self._publish_verdict(r, report, when)

    def _run_summary(self, day: str, when: float) -> None:
        summary = self._summarise(day, when)
        self._summaries[day] = summary
        self._emit(None, summary)
        for rid in self.round_ids(day):
            r = self._rounds[rid]
            for alert_id in sorted(r.open_alerts):
                self._resolve(r, alert_id, when, "closed by the daily summary")

    # ----------------------------------------------------------------- changes

    def _settle_dirty(self) -> None:
        """Re-judge rounds whose facts changed: revise closed ones, update live alerts."""
        if not self._dirty:
            return
        dirty = sorted(self._dirty, key=lambda rid: (self._rounds[rid].start, rid))
        self._dirty.clear()
        days: set[str] = set()
        for rid in dirty:
            r = self._rounds[rid]
            if r.closed:
                report = self._assess(r, r.end)
                if r.verdict is not None and report.content() != r.verdict.content():
                    self._publish_verdict(r, report, self.now)
                    days.add(r.day)
            else:
                self._live_checks(r)
                self._schedule(r)
        for day in sorted(days):
            old = self._summaries.get(day)
            if old is None:
                continue
            new = self._summarise(day, self.summary_time(day))
            if new.content() != old.content():
                new = DailySummary(
                    day, self.now, new.routes, new.guards, new.missed_rounds, old.revision + 1
                )
                self._summaries[day] = new
                self._emit(None, new)

    def _live_checks(self, r: _Round) -> None:
        if r.start > self.now:
            return
        a = self._analyse(r)
        if not r.open_alerts and not a.implausible and not a.repeats:
            return
        not_started = f"{r.id}/{ALERT_NOT_STARTED}"
        if a.credited and not_started in r.open_alerts:
            first = a.credited[0]
            self._resolve(
                r, not_started, self.now, f"started at {self._hhmm(first.at)} by {first.guard}"
            )
        for cp, when in a.first_at.items():
            overdue = f"{r.id}/{ALERT_OVERDUE}/{cp}"
            if overdue in r.open_alerts:
                self._resolve(r, overdue, self.now, f"tapped at {self._hhmm(when)}")
        for a_cp, b_cp, dt, lim in a.implausible:
            self._raise(
                r,
                f"{r.id}/{ALERT_SUSPICIOUS}/implausible_walk/{a_cp}>{b_cp}",
                ALERT_SUSPICIOUS,
                self.now,
                f"implausible walk on round {r.id}: {a_cp} to {b_cp} in {dt:.0f} s "
                f"(fastest plausible {lim:.0f} s)",
                checkpoint=b_cp,
            )
        for cp, n in sorted(a.repeats.items()):
            if n >= self.section.suspicious_repeats:
                self._raise(
                    r,
                    f"{r.id}/{ALERT_SUSPICIOUS}/repeated_taps/{cp}",
                    ALERT_SUSPICIOUS,
                    self.now,
                    f"{n} repeated taps at {cp} on round {r.id}",
                    checkpoint=cp,
                )

    def _publish_verdict(self, r: _Round, report: RoundReport, at: float) -> None:
        r.verdict = report
        r.revision += 1
        self._emit(r, RoundVerdict(report, at, r.revision))
        alert_id = f"{r.id}/{ALERT_INCOMPLETE}"
        summarised = r.day in self._summaries
        if report.state == INCOMPLETE and not summarised:
            self._raise(
                r,
                alert_id,
                ALERT_INCOMPLETE,
                at,
                f"round {r.id} ({r.route.display_name()}) incomplete at window end: missing "
                + ", ".join(report.missing),
            )
        elif report.state != INCOMPLETE:
            self._resolve(r, alert_id, at, f"verdict revised: {report.state}")

    def _raise(
        self, r: _Round, alert_id: str, kind: str, at: float, message: str, checkpoint: str = ""
    ) -> None:
        if alert_id in r.raised:
            return  # every alert is raised at most once
        r.raised.add(alert_id)
        r.open_alerts[alert_id] = kind
        self._emit(r, AlertRaised(alert_id, kind, r.id, at, message, checkpoint))

    def _resolve(self, r: _Round, alert_id: str, at: float, resolution: str) -> None:
        kind = r.open_alerts.pop(alert_id, None)
        if kind is not None:
            self._emit(r, AlertResolved(alert_id, kind, r.id, at, resolution))

    def _emit(self, r: _Round | None, out: Output) -> None:
        self._out.append(out)
        if r is not None:
            r.history.append(out)

    def _drain(self) -> list[Output]:
        out, self._out = self._out, []
        return out

    # ----------------------------------------------------------------- judging

    def _leg_limits(self, route: RouteSection, a: str, b: str) -> tuple[float | None, float | None]:
        legs = self._legs[route.id]
        limits = legs.get((a, b)) or legs.get((b, a))
        if limits is not None:
            return limits
        return route.min_walk_s, route.max_walk_s

    def _analyse(self, r: _Round) -> _Analysis:
        if r.analysis is None:
            r.analysis = self._analyse_taps(r)
        return r.analysis

    def _analyse_taps(self, r: _Round) -> _Analysis:
        a = _Analysis([], [], dict.fromkeys(r.route.checkpoints, 0), {}, {}, {}, [], [], {})
        for _, _, t in r.taps:
            self._apply_tap(r, a, t)
        return a

    def _apply_tap(self, r: _Round, a: _Analysis, t: Tap) -> None:
        """Credit (or not) one tap that comes after every tap already in ``a``."""
        cp = t.checkpoint
        interval = self.section.repeat_interval_s
        if not t.clock_synced:
            a.uncredited.append((t, "clock not synchronised when journaled"))
        elif t.guard in ("", UNKNOWN_GUARD):
            a.uncredited.append((t, "unknown wristband"))
        elif r.responsible and t.guard not in r.responsible:
            a.uncredited.append((t, f"guard {t.guard} is not responsible for {r.schedule.id}"))
        elif cp in a.last_credit and t.at - a.last_credit[cp] < interval:
            a.repeats[cp] = a.repeats.get(cp, 0) + 1
            a.uncredited.append((t, f"repeat within {interval:g} s at {cp}"))
        else:
            if a.credited and a.credited[-1].checkpoint != cp:
                prev = a.credited[-1]
                lo, hi = self._leg_limits(r.route, prev.checkpoint, cp)
                dt = t.at - prev.at
                if lo is not None and dt < lo:
                    a.implausible.append((prev.checkpoint, cp, dt, lo))
                if hi is not None and dt > hi:
                    a.slow.append((prev.checkpoint, cp, dt, hi))
            a.credited.append(t)
            a.last_credit[cp] = t.at
            a.counts[cp] += 1
            if cp not in a.first_at:
                a.first_at[cp] = t.at
                self._update_overdue(r, a, cp)
            if a.counts[cp] == r.schedule.min_taps:
                a.kth_at[cp] = t.at

    def _assess(self, r: _Round, as_of: float) -> RoundReport:
        a = self._analyse(r)
        route, sched = r.route, r.schedule
        k = sched.min_taps
        final = as_of >= r.end
        reasons: list[str] = []
        codes: list[str] = []
        started_at = a.credited[0].at if a.credited else None
        shortfall = [cp for cp in route.checkpoints if a.counts[cp] < k]
        finished_at = max(a.kth_at.values()) if not shortfall and a.kth_at else None

        spans = [s for s in self._spans if s.overlaps(r.start, r.end)]
        reader_spans = {
            cp: [s for s in spans if s.kind == "reader" and s.subject == cp]
            for cp in route.checkpoints
        }
        global_spans = [s for s in spans if s.kind in ("gateway", "clock")]
        outages = tuple(
            self._describe_span(s, r)
            for s in spans
            if s.kind != "reader" or (s.subject in reader_spans)
        )

        def explained_by(lo: float, hi: float) -> list[str]:
            found = [
                self._describe_span(s, r)
                for s in spans
                if s.overlaps(lo, hi) and (s.kind != "reader" or s.subject in reader_spans)
            ]
            return found

        # Sequence adherence (ordered routes): consecutive route checkpoints, first taps.
        out_of_order: list[str] = []
        legs_in_order = legs_judged = 0
        if route.ordered:
            cps = route.checkpoints
            for x, y in itertools.pairwise(cps):
                if x in a.first_at and y in a.first_at:
                    legs_judged += 1
                    if a.first_at[x] <= a.first_at[y]:
                        legs_in_order += 1
                    else:
                        out_of_order.append(f"{x}>{y}")

        missing: list[str] = []
        excused: list[str] = []
        if not final:
            state = STARTED if a.credited else PLANNED
            if shortfall and a.credited:
                reasons.append(
                    f"{len(route.checkpoints) - len(shortfall)} of {len(route.checkpoints)} "
                    "checkpoints done so far"
                )
        elif not shortfall:
            assert started_at is not None and finished_at is not None
            late: list[str] = []
            if started_at > r.grace_end:
                late.append(
                    f"started {self._hhmm(started_at)}, "
                    f"{(started_at - r.grace_end) / 60:.0f} min after the grace ended "
                    f"at {self._hhmm(r.grace_end)}"
                )
                codes.append("late_start")
            due = r.grace_end + sched.expected_minutes * 60.0
            if finished_at > due:
                late.append(
                    f"finished {self._hhmm(finished_at)}, after the expected finish "
                    f"{self._hhmm(due)}"
                )
                codes.append("late_finish")
            if not late:
                state = COMPLETED
                reasons.append(
                    f"all {len(route.checkpoints)} checkpoints tapped"
                    + (f" {k} times" if k > 1 else "")
                    + f", started {self._hhmm(started_at)}, finished {self._hhmm(finished_at)}"
                )
            else:
                causes = explained_by(
                    r.start, finished_at if "late_finish" in codes else started_at
                )
                if causes:
                    state = UNASSESSABLE
                    reasons.append(
                        "completed late, but lateness cannot be judged: " + "; ".join(causes)
                    )
                    reasons.extend(late)
                else:
                    state = LATE_COMPLETED
                    reasons.extend(late)
        elif not a.credited:
            causes = explained_by(r.start, r.end)
            if causes:
                state = UNASSESSABLE
                excused = list(shortfall)
                reasons.append(
                    "no tap recorded, but the round cannot be judged: " + "; ".join(causes)
                )
            else:
                state = MISSED
                missing = list(shortfall)
                reasons.append(
                    f"no credited tap between {self._hhmm(r.start)} and {self._hhmm(r.end)}"
                )
        else:
            for cp in shortfall:
                if global_spans or reader_spans[cp]:
                    excused.append(cp)
                else:
                    missing.append(cp)
            if missing:
                state = INCOMPLETE
                reasons.append(
                    "missing " + ", ".join(f"{cp} ({a.counts[cp]} of {k} taps)" for cp in missing)
                )
                if started_at is not None and started_at > r.grace_end:
                    codes.append("late_start")
                    reasons.append(f"also started late, at {self._hhmm(started_at)}")
                if excused:
                    reasons.append(
                        "not judged (outage): " + ", ".join(excused) + ": " + "; ".join(outages)
                    )
            else:
                state = UNASSESSABLE
                reasons.append(
                    "short of "
                    + ", ".join(excused)
                    + ", each explained by an outage: "
                    + "; ".join(outages)
                )
        if shortfall and final:
            codes.append("missing")
        if out_of_order:
            codes.append("out_of_order")
            reasons.append("out of order: " + ", ".join(out_of_order))
        if a.implausible:
            codes.append("implausible_walk")
            reasons.append(
                "implausible walk: "
                + ", ".join(
                    f"{x}>{y} in {dt:.0f} s (< {lo:.0f} s)" for x, y, dt, lo in a.implausible
                )
            )
        if a.slow:
            codes.append("slow_walk")
            reasons.append(
                "slow walk: "
                + ", ".join(f"{x}>{y} in {dt:.0f} s (> {hi:.0f} s)" for x, y, dt, hi in a.slow)
            )
        n_repeats = sum(a.repeats.values())
        if n_repeats:
            codes.append("repeated_taps")
            reasons.append(f"{n_repeats} repeated tap(s) not counted again")
        n_buffered = sum(1 for t in a.credited if t.buffered)
        if n_buffered:
            codes.append("buffered_taps")
            reasons.append(
                f"{n_buffered} credited tap(s) arrived late from a node's offline buffer"
            )
        if a.uncredited and len(a.uncredited) > n_repeats:
            codes.append("uncredited_taps")
        for s in spans:
            code = {
                "reader": "reader_offline",
                "gateway": "gateway_down",
                "clock": "clock_unsynced",
            }[s.kind]
            if code not in codes:
                codes.append(code)
        return RoundReport(
            round_id=r.id,
            schedule_id=sched.id,
            route_id=route.id,
            route_name=route.display_name(),
            day=r.day,
            window_start=r.start,
            window_end=r.end,
            local_start=r.local_start.isoformat(),
            local_end=self.local(r.end).isoformat(),
            state=state,
            final=final,
            reasons=tuple(reasons),
            codes=tuple(codes),
            started_at=started_at,
            finished_at=finished_at,
            required_taps=k,
            counts=tuple((cp, a.counts[cp]) for cp in route.checkpoints),
            missing=tuple(missing),
            excused=tuple(excused),
            out_of_order=tuple(out_of_order),
            implausible_legs=tuple(
                f"{x}>{y}:{dt:.0f}s<{lo:.0f}s" for x, y, dt, lo in a.implausible
            ),
            slow_legs=tuple(f"{x}>{y}:{dt:.0f}s>{hi:.0f}s" for x, y, dt, hi in a.slow),
            repeated_taps=n_repeats,
            uncredited_taps=len(a.uncredited),
            buffered_taps=n_buffered,
            guards=tuple(sorted({t.guard for t in a.credited})),
            responsible=tuple(sorted(r.responsible)),
            outages=outages,
            legs_in_order=legs_in_order,
            legs_judged=legs_judged,
        )

    def _describe_span(self, s: _Span, r: _Round) -> str:
        lo = max(s.start, r.start)
        hi = r.end if s.end is None else min(s.end, r.end)
        what = {
            "reader": f"reader at {s.subject} offline",
            "gateway": "gateway down",
            "clock": "clock not synchronised",
        }[s.kind]
        return f"{what} {self._hhmm(lo)}-{self._hhmm(hi)}"

    def _hhmm(self, t: float) -> str:
        return self.local(t).strftime("%H:%M")

    # ----------------------------------------------------------------- summary

    def _summarise(self, day: str, as_of: float) -> DailySummary:
        per_route: dict[str, dict[str, int]] = {}
        per_guard: dict[str, dict[str, int]] = {}
        missed: list[str] = []
        for rid in self.round_ids(day):
            r = self._rounds[rid]
            rep = r.verdict if r.closed and r.verdict is not None else self._assess(r, as_of)
            guards = list(rep.guards) or list(rep.responsible) or ["(unassigned)"]
            for table, key in [(per_route, r.route.id)] + [(per_guard, g) for g in guards]:
                row = table.setdefault(key, dict.fromkeys(_ROW_FIELDS, 0))
                _count(row, rep)
            if rep.final and rep.state == MISSED:
                missed.append(rid)
        return DailySummary(
            day=day,
            at=as_of,
            routes=tuple(SummaryRow(k, **v) for k, v in sorted(per_route.items())),
            guards=tuple(SummaryRow(k, **v) for k, v in sorted(per_guard.items())),
            missed_rounds=tuple(missed),
        )


_ROW_FIELDS = (
    "planned",
    "completed",
    "late",
    "incomplete",
    "missed",
    "unassessable",
    "pending",
    "checkpoints_done",
    "checkpoints_due",
    "legs_in_order",
    "legs_judged",
)
_STATE_FIELD = {
    COMPLETED: "completed",
    LATE_COMPLETED: "late",
    INCOMPLETE: "incomplete",
    MISSED: "missed",
    UNASSESSABLE: "unassessable",
}


def _count(row: dict[str, int], rep: RoundReport) -> None:
    row["planned"] += 1
    if not rep.final:
        row["pending"] += 1
        return
    row[_STATE_FIELD[rep.state]] += 1
    if rep.state == UNASSESSABLE:
        return  # fairness: what could not be judged is in no rate
    row["checkpoints_done"] += rep.covered
    row["checkpoints_due"] += len(rep.counts) - len(rep.excused)
    row["legs_in_order"] += rep.legs_in_order
    row["legs_judged"] += rep.legs_judged


def replay(
    section: PatrolSection,
    events: Sequence[Mapping[str, Any]],
    now: float | None = None,
    *,
    origin: float | None = None,
) -> tuple[PatrolEngine, list[Output]]:
    """An engine fed a journal's events (dict shape), then advanced to ``now`` if given.

    ``engine, outputs = replay(cfg.patrol, [e.to_dict() for e in events], now=time.time())``
    """
    engine = PatrolEngine(section, origin=origin)
    out = engine.feed_events(events)
    if now is not None:
        out.extend(engine.advance(now))
    return engine, out


__all__ = [
    "COMPLETED",
    "INCOMPLETE",
    "LATE_COMPLETED",
    "MISSED",
    "PLANNED",
    "STARTED",
    "UNASSESSABLE",
    "AlertRaised",
    "AlertResolved",
    "DailySummary",
    "EngineInput",
    "Heartbeat",
    "Outage",
    "Output",
    "PatrolEngine",
    "ReaderState",
    "RoundReport",
    "RoundVerdict",
    "SummaryRow",
    "Tap",
    "engine_inputs_from_event",
    "replay",
]
