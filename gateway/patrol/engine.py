"""The patrol engine: taps + device health + time in, round verdicts, alerts and summaries out.

    engine = PatrolEngine(cfg.patrol)
    outputs = engine.feed(engine_inputs_from_event(ev.to_dict()))   # journal order
    outputs += engine.advance(now)                                 # time passing, no events
    engine.report("night@2026-11-28T22:00").state                  # "late_completed"

Pure: no I/O, no clock, no asyncio. "Now" is always an argument, so the same inputs give the
same outputs, whatever the batching (deterministic replay from the journal).

Journal events it reads (the tap path and the daemon must match these)
----------------------------------------------------------------------
Every event: ``seq``, ``kind``, ``wall_time``, ``boot_id``, ``clock_synced``. Each one is a
*heartbeat*: the gateway was up at ``wall_time``; a change of ``boot_id`` or a
``daemon.started`` means it was down since the previous event; a ``clock_synced`` false opens a
clock-unsynchronised span from the last trusted time to the next synchronised event.

- ``tap``: payload ``checkpoint`` (str), ``guard`` (str, ``"unknown"`` for an unknown wristband),
  ``wristband`` (str), ``reader`` (str, optional), ``tapped_at`` (Unix s, optional: when the node
  saw the tap, for taps delivered late from a node's offline buffer; default ``wall_time``),
  ``buffered`` (bool, optional; also true when ``tapped_at`` is more than
  :data:`LATE_TAP_S` before ``wall_time``).
  A ``tap`` may carry ``time_uncertain_s`` (the reader held it through a drop-out of at most
  that long): credited as usual, the patrol's resolution being minutes.
- ``tap.delivered_late`` (a read a reader held while out of contact for longer or for an unknown
  time: docs/patrol.md, *Tap timing*) is deliberately *not* a tap here: a heartbeat only, never
  credited, because its time is unknown.
- ``reader.state``: payload ``reader``, ``checkpoint``, ``state`` = ``"online"`` | ``"offline"``.
- ``daemon.started`` (payload ``last_event_wall`` optional) and ``daemon.stopped``.
- ``patrol.*`` (our own output) and all other kinds: heartbeats only.

Theory of operation
-------------------
Every input has a *known-at* time (the event's ``wall_time``). Time only moves on trusted
(clock-synchronised) inputs or :meth:`PatrolEngine.advance`. Deadlines (grace ends, checkpoint
overdue, window end, daily summary) are processed when time moves strictly past them, in
(time, kind, round) order, so a deadline at ``d`` sees exactly the facts known at or before
``d``. Gateway-down and clock spans are applied before time moves over them (the engine was not
running then). Round verdicts are made at window end and *revised* when later facts (a tap from
an offline buffer, an outage reported late) change them.

Verdict rules (docs/patrol.md has worked examples): positive evidence wins — a round whose every
checkpoint got its credited taps is completed (or late_completed) whatever else happened; a
shortfall (missing checkpoint, no start, lateness) that a reader outage, gateway downtime or an
unsynchronised clock could explain is *unassessable*, never missed.
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
_ONE_DAY = timedelta(days=1)
_DAEMON_KINDS = frozenset({"daemon.started", "daemon.stopped"})

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
    if kind == "tap":
        tap = _tap_from_event(event, wall, synced)
        if tap is not None:
            out.append(tap)
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


_new_object = object.__new__
(_set_seq, _set_cp, _set_guard, _set_wb, _set_at, _set_known, _set_synced, _set_buffered,
 _set_reader) = (getattr(Tap, name).__set__ for name in Tap.__slots__)  # fmt: skip


def _make_tap(
    seq: int,
    checkpoint: str,
    guard: str,
    wristband: str,
    at: float,
    known_at: float,
    clock_synced: bool,
    buffered: bool,
    reader: str,
) -> Tap:
    """``Tap(...)``, every field given, in half the time: the ``__init__`` of a frozen
    dataclass sets each field through ``object.__setattr__``; this sets the slots directly.
    A replay makes one per tap. (tests/patrol/test_replay_equivalence.py compares the two.)
    """
    tap: Tap = _new_object(Tap)
    _set_seq(tap, seq)
    _set_cp(tap, checkpoint)
    _set_guard(tap, guard)
    _set_wb(tap, wristband)
    _set_at(tap, at)
    _set_known(tap, known_at)
    _set_synced(tap, clock_synced)
    _set_buffered(tap, buffered)
    _set_reader(tap, reader)
    return tap


def _tap_order(t: Tap) -> tuple[float, int]:
    return t.at, t.seq


def _tap_from_event(event: Mapping[str, Any], wall: float, synced: bool) -> Tap | None:
    """The :class:`Tap` a ``tap`` event carries (None without a checkpoint)."""
    payload: Mapping[str, Any] = event.get("payload") or {}
    checkpoint = payload.get("checkpoint")
    if not isinstance(checkpoint, str):
        return None
    tapped = payload.get("tapped_at")
    at = wall
    if tapped is not None and isinstance(tapped, int | float) and math.isfinite(tapped):
        at = min(float(tapped), wall)  # a node cannot have seen a tap after we journaled it
    # This runs once per tap on every replay: positional, and str() only where not a str.
    seq = event["seq"]
    guard = payload.get("guard")
    wristband = payload.get("wristband", "")
    reader = payload.get("reader", "")
    return _make_tap(
        seq if type(seq) is int else int(seq),
        checkpoint,
        guard if type(guard) is str and guard else str(guard or UNKNOWN_GUARD),
        wristband if type(wristband) is str else str(wristband),
        at,
        wall,
        synced,
        bool(payload.get("buffered", False)) or wall - at > LATE_TAP_S,
        reader if type(reader) is str else str(reader),
    )


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


def _minute_iso(local: datetime) -> str:
    """``local.strftime("%Y-%m-%dT%H:%M")`` (a round id's time) without strftime's cost."""
    return f"{local.year:04d}-{local.month:02d}-{local.day:02d}T{local.hour:02d}:{local.minute:02d}"


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

    serial: int = 0  # the order spans became known in (the order reports list them in)

    def overlaps(self, lo: float, hi: float) -> bool:
        return self.start < hi and (self.end is None or self.end > lo)


class _Spans:
    """Outage spans, in the order they became known, indexed by start for overlap queries.

    A month of reader drop-outs is thousands of spans; every round's verdict asks which
    overlap its window. Closed spans are found by bisecting their starts (no span is longer
    than the longest closed one); open spans are few and kept apart.
    """

    def __init__(self, spans: Iterable[_Span] = ()) -> None:
        self.all: list[_Span] = []
        self._starts: list[float] = []  # sorted, with _by_start
        self._by_start: list[_Span] = []
        self._open: dict[int, _Span] = {}  # serial -> span, end None
        self._longest = 0.0  # the longest closed span
        self._serial = 0
        for span in spans:
            self.add(span, span.serial)

    def add(self, span: _Span, serial: int | None = None) -> None:
        if serial is None:
            self._serial += 1
            serial = self._serial
        span.serial = serial
        self._serial = max(self._serial, serial)
        self.all.append(span)
        i = bisect.bisect_right(self._starts, span.start)
        self._starts.insert(i, span.start)
        self._by_start.insert(i, span)
        if span.end is None:
            self._open[serial] = span
        else:
            self._longest = max(self._longest, span.end - span.start)

    def close(self, span: _Span, end: float) -> None:
        self._open.pop(span.serial, None)
        span.end = end
        self._longest = max(self._longest, end - span.start)

    def overlapping(self, lo: float, hi: float) -> list[_Span]:
        """Spans overlapping [lo, hi), in the order they became known."""
        if len(self.all) <= 16:
            return [s for s in self.all if s.start < hi and (s.end is None or s.end > lo)]
        i = bisect.bisect_left(self._starts, lo - self._longest)
        j = bisect.bisect_left(self._starts, hi)
        found = [s for s in self._by_start[i:j] if s.end is not None and s.end > lo]
        found += [s for s in self._open.values() if s.start < hi]
        found.sort(key=_serial)
        return found


def _serial(span: _Span) -> int:
    return span.serial


_NO_SPANS: list[_Span] = []  # shared, never appended to
# A round's alert ids raised and overdue checks run start as this shared empty set (never added
# to; replaced by a set of the round's own at the first add): most rounds raise nothing, and a
# month's 8,000 empty sets were 12 % of the objects the engine keeps for the collector.
_NO_IDS: set[str] = set()
_SPAN_CODES = {"reader": "reader_offline", "gateway": "gateway_down", "clock": "clock_unsynced"}


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
    overdue_done: set[str]  # checkpoints whose overdue check ran (_NO_IDS: none yet)
    raised: set[str]  # alert ids ever raised (_NO_IDS: none yet)
    taps: list[Tap] = field(default_factory=list)  # by (at, seq)
    queued: tuple[float, int, str] | None = None  # see _offer
    grace_done: bool = False
    closed: bool = False
    verdict: RoundReport | None = None
    revision: int = 0
    open_alerts: dict[str, str] = field(default_factory=dict)  # id -> alert kind
    history: list[Output] = field(default_factory=list)
    analysis: _Analysis | None = None  # cached; dropped when a tap is added
    iso_: tuple[str, str] | None = None  # see iso

    @property
    def iso(self) -> tuple[str, str]:
        """Local start and end, ISO 8601 (a report's; made once)."""
        if self.iso_ is None:
            end = datetime.fromtimestamp(self.end, self.local_start.tzinfo)
            self.iso_ = (self.local_start.isoformat(), end.isoformat())
        return self.iso_


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
    overdue: dict[str, float] | None = None  # _overdue_times, kept up to date


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
        # Leg limits looked up in one step: either direction, else the route's.
        self._route_limits = {r.id: (r.min_walk_s, r.max_walk_s) for r in section.routes}
        self._leg_table: dict[str, dict[str, dict[str, tuple[float | None, float | None]]]] = {}
        for rid, legs in self._legs.items():
            table: dict[str, dict[str, tuple[float | None, float | None]]] = {}
            for a, b in legs:
                table.setdefault(a, {})[b] = legs[(a, b)]
                table.setdefault(b, {})[a] = legs.get((b, a)) or legs[(a, b)]
            self._leg_table[rid] = table
        self._pairs = {r.id: list(itertools.pairwise(r.checkpoints)) for r in section.routes}
        # Ordered routes: checkpoint -> (next checkpoint, max walk) where there is a max walk.
        self._successor: dict[str, dict[str, tuple[str, float]]] = {}
        for route in section.routes:
            nxt: dict[str, tuple[str, float]] = {}
            if route.ordered:
                for a, b in itertools.pairwise(route.checkpoints):
                    max_s = self._leg_limits(route, a, b)[1]
                    if max_s is not None:
                        nxt[a] = (b, max_s)
            self._successor[route.id] = nxt
        self._rounds: dict[str, _Round] = {}
        self._longest_window = {r.id: 0.0 for r in section.routes}
        for sched in section.schedules:
            window_s = (sched.window_minutes_effective() or 60.0) * 60.0
            self._longest_window[sched.route] = max(self._longest_window[sched.route], window_s)
        # Each route's rounds by (start, id), and their starts alone (for bisect on a float).
        self._route_rounds: dict[str, list[_Round]] = {r.id: [] for r in section.routes}
        self._route_starts: dict[str, list[float]] = {r.id: [] for r in section.routes}
        self._cp_routes: dict[str, list[tuple[list[float], list[_Round], float]]] = {
            cp: [
                (self._route_starts[rid], self._route_rounds[rid], self._longest_window[rid])
                for rid in rids
            ]
            for cp, rids in self._route_of_cp.items()
        }
        self._by_day: dict[str, list[str]] = {}
        self._plans = [  # what planning a day needs of each schedule
            (
                sched,
                self._routes[sched.route],
                (sched.window_minutes_effective() or 60.0) * 60.0,
                sched.start_offsets_minutes(),
                section.responsible_guards(sched),
            )
            for sched in section.schedules
        ]
        self._route_names = {r.id: r.display_name() for r in section.routes}
        self._pair_cache: dict[str, list[tuple[str, int]]] = {}  # cp -> [(cp, n) by n]
        self._responsible_sorted = {
            s.id: tuple(sorted(section.responsible_guards(s))) for s in section.schedules
        }
        self._planned_through: date | None = None
        self._plan_next_ts = -math.inf  # local midnight after the last planned day
        self._heap: list[tuple[float, int, str, int, str]] = []
        self._summaries: dict[str, DailySummary] = {}
        self._summary_due: dict[str, float] = {}
        self._spans = _Spans()
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
        """``feed`` for journal events in their dict shape.

        Same result as ``feed(engine_inputs_from_event(ev))`` per event. The common event (any
        kind but the daemon's own, clock synchronised, same boot, nothing open) takes a short
        path that builds no :class:`Heartbeat`: this is what a replay spends its time on.
        """
        for ev in events:
            kind = ev["kind"]
            wall = ev["wall_time"]
            if (
                ev.get("clock_synced", True) is True
                and type(wall) is float
                and ev.get("boot_id", "") == self._boot
                and kind not in _DAEMON_KINDS
                and self._stopped_at is None
                and self._gateway_open is None
                and self._clock_open is None
                and not self._reader_close_pending
            ):
                # _on_heartbeat's common case, inlined.
                last = self._last_trusted
                self._last_trusted = wall if last is None or wall > last else last
                if wall > self.now:
                    heap = self._heap
                    if (heap and heap[0][0] < wall) or wall + PLAN_AHEAD_S >= self._plan_next_ts:
                        self._advance(wall)
                    else:
                        self.now = wall  # _advance with nothing due and nothing to plan
                if self._dirty:
                    self._settle_dirty()
                if kind == "tap":
                    tap = _tap_from_event(ev, wall, True)
                    if tap is not None:
                        if self.origin is None:
                            self.origin = wall
                        self._place_tap(tap)  # _on_tap minus the time it was known at: done
                        if self._dirty:
                            self._settle_dirty()
                        continue
                if kind != "reader.state":
                    continue
                inputs = engine_inputs_from_event(ev)[1:]
            else:
                inputs = engine_inputs_from_event(ev)
            self._apply_inputs(inputs)
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
                rounds = self._route_rounds[r.route.id]
                i = rounds.index(r)
                del rounds[i]
                del self._route_starts[r.route.id][i]
                dropped += 1
            del self._summaries[day]
        self._spans = _Spans(s for s in self._spans.all if s.end is None or s.end >= t)
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
        return [(t, status[id(t)]) for t in r.taps]

    def outages_in(self, lo: float, hi: float) -> list[tuple[str, str, float, float | None]]:
        """(kind, subject, start, end) of spans overlapping [lo, hi)."""
        return [(s.kind, s.subject, s.start, s.end) for s in self._spans.overlapping(lo, hi)]

    def day_of(self, t: float) -> str:
        """The patrol day a window ending at ``t`` belongs to (see ``summary_hour``)."""
        # The date of (local time - summary_hour - 1 us), without the datetime arithmetic.
        local = datetime.fromtimestamp(t, self.tz)
        hour = self.section.summary_hour
        d = local.date()
        if local.hour < hour or (
            local.hour == hour and not (local.minute or local.second or local.microsecond)
        ):
            d -= _ONE_DAY
        return d.isoformat()

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
        midnight = self._local_ts(d, 0)
        dates = (d, d + _ONE_DAY, d + 2 * _ONE_DAY)  # start offsets stay under 2 days
        for sched, route, window_s, offsets, responsible in self._plans:
            for offset in offsets:
                # Local midnight plus the offset, unless the zone's UTC offset changes in
                # between: the local time that gives says so (and the round id needs it).
                start = midnight + offset * 60
                local_start = datetime.fromtimestamp(start, self.tz)
                hour, minute = divmod(offset % 1440, 60)
                if (
                    local_start.minute != minute
                    or local_start.hour != hour
                    or local_start.second
                    or local_start.microsecond
                    or local_start.fold
                    or local_start.date() != dates[offset // 1440]
                ):
                    start = self._local_ts(d, offset)
                    local_start = self.local(start)
                if start < self.origin:
                    continue
                rid = f"{sched.id}@{_minute_iso(local_start)}"
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
                    responsible=responsible,
                    overdue_done=_NO_IDS,
                    raised=_NO_IDS,
                )
                self._rounds[rid] = r
                starts, rounds = self._route_starts[route.id], self._route_rounds[route.id]
                i = bisect.bisect_right(starts, start)
                while i > 0 and starts[i - 1] == start and rounds[i - 1].id > rid:
                    i -= 1
                starts.insert(i, start)
                rounds.insert(i, r)
                self._by_day.setdefault(r.day, []).append(rid)
                if r.day not in self._summary_due:
                    due = self.summary_time(r.day)
                    self._summary_due[r.day] = due
                    heapq.heappush(self._heap, (due, _PRIO_SUMMARY, r.day, 0, ""))
                self._offer(r, r.grace_end, _PRIO_GRACE)
                self._offer(r, r.end, _PRIO_CLOSE)

    def _offer(self, r: _Round, when: float, prio: int, detail: str = "") -> None:
        """A deadline of the round became known: queue it if it is earlier than the queued one.

        The heap holds, for each open round, an entry no later than its next deadline
        (``r.queued``). A later deadline is found when that entry comes up (``_advance``), so a
        tap, which usually only adds a later overdue time, costs no queueing at all.
        """
        queued = r.queued
        if queued is not None and when > queued[0]:
            return  # the usual answer, without building a tuple
        key = (when, prio, detail)
        if not r.closed and (queued is None or key < queued):
            r.queued = key
            heapq.heappush(self._heap, (when, prio, r.id, 0, detail))

    def _next_deadline(self, r: _Round) -> tuple[float, int, str] | None:
        """The round's next deadline as (time, kind, checkpoint), None once closed."""
        if r.closed:
            return None
        best: tuple[float, int, str] = (r.end, _PRIO_CLOSE, "")
        if not r.grace_done and r.grace_end <= r.end:
            best = (r.grace_end, _PRIO_GRACE, "")
        if r.taps:
            a = self._analyse(r)
            if a.credited:
                done, end = r.overdue_done, r.end
                for cp, when in self._overdue_times(r, a).items():
                    if when < end and cp not in done and (when, _PRIO_OVERDUE, cp) < best:
                        best = (when, _PRIO_OVERDUE, cp)
        return best

    def _update_overdue(self, r: _Round, a: _Analysis, cp: str) -> None:
        """``cp`` got its first tap (the latest in time): only it and its successor change."""
        if a.overdue is None:
            return
        a.overdue.pop(cp, None)
        nxt = self._successor[r.route.id].get(cp)  # ordered routes with a max walk only
        if nxt is not None and nxt[0] not in a.first_at:
            when = a.first_at[cp] + nxt[1]
            a.overdue[nxt[0]] = when
            queued = r.queued  # usually queued earlier: then _offer would do nothing
            if (
                (queued is None or when <= queued[0])
                and when < r.end
                and nxt[0] not in r.overdue_done
            ):
                self._offer(r, when, _PRIO_OVERDUE, nxt[0])

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
        first: tuple[float, str] | None = None
        for cp, when in out.items():
            if when < r.end and cp not in r.overdue_done and (first is None or (when, cp) < first):
                first = (when, cp)
        if first is not None:
            self._offer(r, first[0], _PRIO_OVERDUE, first[1])
        return out

    def _advance(self, to: float) -> None:
        if to + PLAN_AHEAD_S >= self._plan_next_ts:
            self._plan_until(to)
        heap = self._heap
        while heap and heap[0][0] < to:
            when, prio, key, _, detail = heapq.heappop(heap)
            if prio == _PRIO_SUMMARY:
                self.now = max(self.now, when)
                self._run_summary(key, when)
                continue
            r = self._rounds.get(key)
            if r is None or r.queued != (when, prio, detail):
                continue  # superseded by an earlier entry of the same round
            r.queued = None
            nxt = self._next_deadline(r)
            if nxt != (when, prio, detail):  # it moved later: queue where it is now
                if nxt is not None:
                    self._offer(r, *nxt)
                continue
            self.now = max(self.now, when)
            if prio == _PRIO_GRACE:
                self._run_grace(r, when)
            elif prio == _PRIO_OVERDUE:
                self._run_overdue(r, detail, when)
            else:
                self._run_close(r, when)
            r.queued = None
            nxt = self._next_deadline(r)
            if nxt is not None:
                self._offer(r, *nxt)
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
        if self.origin is None:
            self.origin = t.known_at
        self._trusted(t.known_at)
        self._place_tap(t)

    def _place_tap(self, t: Tap) -> None:
        """Add a synchronised tap, known at a trusted time already reached, to its rounds."""
        at = t.at
        now = self.now
        if max(at, now if math.isfinite(now) else at) + PLAN_AHEAD_S >= self._plan_next_ts:
            self._plan_until(max(at, now if math.isfinite(now) else at))
        for starts, rounds, longest in self._cp_routes.get(t.checkpoint, ()):
            # Rounds of a route are few at a time: look back from the last start <= t.at.
            j = bisect.bisect_right(starts, at) - 1
            while j >= 0:
                if at - starts[j] >= longest:
                    break  # this round and every earlier one ended before the tap
                r = rounds[j]
                if at < r.end:
                    self._add_tap(r, t)
                j -= 1

    def _add_tap(self, r: _Round, t: Tap) -> None:
        taps = r.taps
        if taps and (t.at < taps[-1].at or (t.at == taps[-1].at and t.seq < taps[-1].seq)):
            bisect.insort(taps, t, key=_tap_order)
            r.analysis = None  # a tap from the past (an offline buffer): judge afresh
        else:
            taps.append(t)
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
        self._spans.add(span)
        self._touch_span(span, span.start, span.end)

    def _close_span(self, span: _Span, end: float) -> None:
        old_end = span.end
        end = max(end, span.start)
        self._spans.close(span, end)
        self._touch_span(span, end, old_end)

    def _touch_span(self, span: _Span, lo: float, hi: float | None) -> None:
        """Mark rounds whose judgement the span's change in [lo, hi) may affect."""
        top = math.inf if hi is None else hi
        routes = self._route_of_cp.get(span.subject, ()) if span.kind == "reader" else self._routes
        for route_id in routes:
            starts, rounds = self._route_starts[route_id], self._route_rounds[route_id]
            first = lo - self._longest_window[route_id]
            i = 0 if first == -math.inf else bisect.bisect_left(starts, first)
            for r in rounds[i:]:
                if r.start >= top:
                    break
                if r.end > lo:
                    self._dirty.add(r.id)

    # ----------------------------------------------------------------- deadlines

    def _run_grace(self, r: _Round, when: float) -> None:
        r.grace_done = True
        a = self._analyse(r)
        if a.credited:
            return
        if any(s.kind in ("gateway", "clock") for s in self._spans.overlapping(r.start, when)):
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
        if r.overdue_done is _NO_IDS:
            r.overdue_done = set()
        r.overdue_done.add(cp)
        a = self._analyse(r)
        if cp in a.first_at:
            return
        if any(
            s.kind in ("gateway", "clock") or (s.kind == "reader" and s.subject == cp)
            for s in self._spans.overlapping(r.start, when)
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
        # The verdict holds what a closed round is asked for; its analysis (a handful of lists
        # and dicts kept alive per round, work for the garbage collector and RAM on a Pi) is
        # made again on demand if a late fact re-judges the round.
        r.analysis = None
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
        if len(self._dirty) == 1:
            r = self._rounds[next(iter(self._dirty))]
            if not r.closed:  # the common case: a tap on a round under way
                self._dirty.clear()
                self._settle_open(r)
                return
        dirty = sorted(self._dirty, key=lambda rid: (self._rounds[rid].start, rid))
        self._dirty.clear()
        days: set[str] = set()
        for rid in dirty:
            r = self._rounds[rid]
            if r.closed:
                report = self._assess(r, r.end)
                r.analysis = None  # as in _run_close
                if r.verdict is not None and report.content() != r.verdict.content():
                    self._publish_verdict(r, report, self.now)
                    days.add(r.day)
            else:
                self._settle_open(r)
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

    def _settle_open(self, r: _Round) -> None:
        if r.start <= self.now:
            a = r.analysis if r.analysis is not None else self._analyse(r)
            if r.open_alerts or a.implausible or a.repeats:  # else nothing to check
                self._live_checks(r)
        if r.taps:
            a = r.analysis if r.analysis is not None else self._analyse(r)
            if a.credited and a.overdue is None:
                self._overdue_times(r, a)  # queues the overdue checks

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
        elif report.state != INCOMPLETE and alert_id in r.open_alerts:
            self._resolve(r, alert_id, at, f"verdict revised: {report.state}")

    def _raise(
        self, r: _Round, alert_id: str, kind: str, at: float, message: str, checkpoint: str = ""
    ) -> None:
        if alert_id in r.raised:
            return  # every alert is raised at most once
        if r.raised is _NO_IDS:
            r.raised = set()
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
        legs = self._leg_table[route.id].get(a)
        limits = legs.get(b) if legs is not None else None
        return limits if limits is not None else self._route_limits[route.id]

    def _analyse(self, r: _Round) -> _Analysis:
        if r.analysis is None:
            r.analysis = self._analyse_taps(r)
        return r.analysis

    def _analyse_taps(self, r: _Round) -> _Analysis:
        a = _Analysis([], [], dict.fromkeys(r.route.checkpoints, 0), {}, {}, {}, [], [], {})
        for t in r.taps:
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
                legs = self._leg_table[r.route.id].get(prev.checkpoint)  # _leg_limits, inline
                limits = legs.get(cp) if legs is not None else None
                lo, hi = limits if limits is not None else self._route_limits[r.route.id]
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
        shortfall = [cp for cp, n in a.counts.items() if n < k]  # route order
        finished_at = max(a.kth_at.values()) if not shortfall and a.kth_at else None

        w_start, w_end = r.start, r.end
        spans = self._spans.overlapping(w_start, w_end)
        reader_spans: dict[str, list[_Span]] = dict.fromkeys(route.checkpoints, _NO_SPANS)
        for s in spans:
            if s.kind == "reader" and s.subject in reader_spans:
                if reader_spans[s.subject] is _NO_SPANS:
                    reader_spans[s.subject] = []
                reader_spans[s.subject].append(s)
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
            first_at = a.first_at
            for x, y in self._pairs[route.id]:
                fx = first_at.get(x)
                if fx is not None:
                    fy = first_at.get(y)
                    if fy is not None:
                        legs_judged += 1
                        if fx <= fy:
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
            code = _SPAN_CODES[s.kind]
            if code not in codes:
                codes.append(code)
        # Positional, in field order: 31 keywords cost more to match than the rest of the call.
        return RoundReport(
            r.id,  # round_id
            sched.id,  # schedule_id
            route.id,  # route_id
            self._route_names[route.id],  # route_name
            r.day,  # day
            r.start,  # window_start
            r.end,  # window_end
            r.iso[0],  # local_start
            r.iso[1],  # local_end
            state,  # state
            final,  # final
            tuple(reasons),  # reasons
            tuple(codes),  # codes
            started_at,  # started_at
            finished_at,  # finished_at
            k,  # required_taps
            self._count_pairs(a.counts),  # counts
            tuple(missing),  # missing
            tuple(excused),  # excused
            tuple(out_of_order),  # out_of_order
            # implausible_legs
            tuple(f"{x}>{y}:{dt:.0f}s<{lo:.0f}s" for x, y, dt, lo in a.implausible),
            tuple(f"{x}>{y}:{dt:.0f}s>{hi:.0f}s" for x, y, dt, hi in a.slow),  # slow_legs
            n_repeats,  # repeated_taps
            len(a.uncredited),  # uncredited_taps
            n_buffered,  # buffered_taps
            tuple(sorted({t.guard for t in a.credited})),  # guards
            self._responsible_sorted[sched.id],  # responsible
            outages,  # outages
            legs_in_order,  # legs_in_order
            legs_judged,  # legs_judged
        )

    def _count_pairs(self, counts: dict[str, int]) -> tuple[tuple[str, int], ...]:
        """``tuple(counts.items())`` (route order: made by dict.fromkeys), the pairs shared.

        A month keeps every round's report; ten fresh pairs in each were a third of the
        objects the garbage collector had to look at.
        """
        cache = self._pair_cache
        out = []
        for cp, n in counts.items():
            row = cache.get(cp)
            if row is None:
                row = cache[cp] = []
            while len(row) <= n:
                row.append((cp, len(row)))
            out.append(row[n])
        return tuple(out)

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
        local = datetime.fromtimestamp(t, self.tz)
        return f"{local.hour:02d}:{local.minute:02d}"  # strftime("%H:%M"), 4x slower

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
                row = table.get(key)
                if row is None:
                    row = table[key] = dict.fromkeys(_ROW_FIELDS, 0)
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
