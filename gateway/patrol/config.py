"""Patrol configuration: routes, schedules, shifts, and when the daily summary is made.

    section = parse_section(PatrolSection, toml_data["patrol"], "patrol")
    check_checkpoints(section, {"north-gate", "b3-door"}, "patrol")   # ConfigError names the key

Checkpoints themselves (id -> reader, name, location) are configured by the tap path; this
section only refers to them by id, so :func:`check_checkpoints` takes the known ids as an
argument. Times of day are local to ``timezone`` ("HH:MM", 24-hour clock).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable
from dataclasses import dataclass

from gateway.config.schema import setting, timezone_problem
from gateway.errors import ConfigError

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
TIME_PATTERN = r"([01][0-9]|2[0-3]):[0-5][0-9]"
MINUTES_PER_DAY = 24 * 60


def minutes_of_day(hhmm: str) -> int:
    """``"22:30"`` -> 1350 (the string is already validated by TIME_PATTERN)."""
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True, slots=True)
class LegSection:
    """Walking-time limits for one pair of consecutive checkpoints (overrides the route's)."""

    from_checkpoint: str = setting(doc="checkpoint walked from", pattern=ID_PATTERN)
    to_checkpoint: str = setting(doc="checkpoint walked to", pattern=ID_PATTERN)
    min_walk_s: float | None = setting(
        None, min=0.0, max=86400.0, doc="faster than this is an implausible walk"
    )
    max_walk_s: float | None = setting(
        None, min=1.0, max=86400.0, doc="slower than this makes the next checkpoint overdue"
    )

    def check(self) -> Iterable[tuple[str, str]]:
        if self.from_checkpoint == self.to_checkpoint:
            yield "to_checkpoint", "must differ from from_checkpoint"
        if (
            self.min_walk_s is not None
            and self.max_walk_s is not None
            and self.max_walk_s < self.min_walk_s
        ):
            yield "max_walk_s", "must not be below min_walk_s"


@dataclass(frozen=True, slots=True)
class RouteSection:
    """A patrol route: the checkpoints a round must cover."""

    id: str = setting(doc="route id (used in round ids and reports)", pattern=ID_PATTERN)
    checkpoints: tuple[str, ...] = setting(
        doc="checkpoint ids on the route, in walking order if ordered", min_items=1, max_items=500
    )
    name: str = setting("", doc="human name for reports")
    ordered: bool = setting(True, doc="checkpoints must be visited in the listed order")
    min_walk_s: float | None = setting(
        None,
        min=0.0,
        max=86400.0,
        doc="default fastest plausible walk between consecutive checkpoints (seconds)",
    )
    max_walk_s: float | None = setting(
        None,
        min=1.0,
        max=86400.0,
        doc="default slowest walk before the next checkpoint is overdue (seconds)",
    )
    legs: tuple[LegSection, ...] = setting((), doc="per-leg walking limits")

    def check(self) -> Iterable[tuple[str, str]]:
        seen: dict[str, int] = {}
        for i, cp in enumerate(self.checkpoints):
            if cp in seen:
                yield f"checkpoints[{i}]", f"{cp!r} is listed twice (also at [{seen[cp]}])"
            seen[cp] = i
        if (
            self.min_walk_s is not None
            and self.max_walk_s is not None
            and self.max_walk_s < self.min_walk_s
        ):
            yield "max_walk_s", "must not be below min_walk_s"
        for i, leg in enumerate(self.legs):
            if leg.from_checkpoint not in seen:
                yield f"legs[{i}].from_checkpoint", f"{leg.from_checkpoint!r} is not on this route"
            if leg.to_checkpoint not in seen:
                yield f"legs[{i}].to_checkpoint", f"{leg.to_checkpoint!r} is not on this route"

    def display_name(self) -> str:
        return self.name or self.id


@dataclass(frozen=True, slots=True)
class ShiftSection:
    """A named group of guards (e.g. the night shift) a schedule can make responsible."""

    id: str = setting(doc="shift id", pattern=ID_PATTERN)
    guards: tuple[str, ...] = setting(doc="guard ids (from the roster)", min_items=1)
    name: str = setting("", doc="human name")


@dataclass(frozen=True, slots=True)
class ScheduleSection:
    """When rounds of a route are due: every N hours between two times, or at fixed times."""

    id: str = setting(doc="schedule id (round ids are '<id>@<local start>')", pattern=ID_PATTERN)
    route: str = setting(doc="route id", pattern=ID_PATTERN)
    every_hours: float | None = setting(
        None, min=0.25, max=24.0, doc="a round every this many hours from start to end"
    )
    start: str = setting(
        "00:00", doc="first round of the period (local HH:MM)", pattern=TIME_PATTERN
    )
    end: str = setting(
        "00:00",
        doc="end of the period (local HH:MM; before start means the next day; equal: 24 h)",
        pattern=TIME_PATTERN,
    )
    times: tuple[str, ...] = setting(
        (), doc="fixed round start times (local HH:MM), instead of every_hours"
    )
    window_minutes: float | None = setting(
        None,
        min=1.0,
        max=1440.0,
        doc="how long a round's window lasts (default: the every_hours interval)",
    )
    grace_minutes: float = setting(
        15.0, min=0.0, max=1440.0, doc="a round not started this long after its start is late"
    )
    expected_minutes: float = setting(
        60.0, min=1.0, max=1440.0, doc="expected round duration once started"
    )
    min_taps: int = setting(
        1, min=1, max=50, doc="each checkpoint must be tapped at least this many times per window"
    )
    guards: tuple[str, ...] = setting((), doc="responsible guard ids (empty: any known guard)")
    shift: str = setting("", doc="responsible shift id (its guards are added to guards)")

    def check(self) -> Iterable[tuple[str, str]]:
        if self.every_hours is None and not self.times:
            yield "every_hours", "give every_hours or times"
            return
        if self.every_hours is not None and self.times:
            yield "times", "give either every_hours or times, not both"
            return
        if self.every_hours is not None:
            step = self.every_hours * 60
            if abs(step - round(step)) > 1e-9:
                yield "every_hours", f"{self.every_hours} is not a whole number of minutes"
            elif self.window_minutes is not None and self.window_minutes > step:
                yield "window_minutes", "must not exceed the every_hours interval (rounds overlap)"
        else:
            if self.window_minutes is None:
                yield "window_minutes", "is required with fixed times"
            seen: set[str] = set()
            for i, t in enumerate(self.times):
                if not _valid_time(t):
                    yield f"times[{i}]", f"{t!r} is not a local time HH:MM"
                elif t in seen:
                    yield f"times[{i}]", f"{t!r} is listed twice"
                seen.add(t)
        window = self.window_minutes_effective()
        if window is not None and self.grace_minutes >= window:
            yield "grace_minutes", "must be shorter than the round window"

    def window_minutes_effective(self) -> float | None:
        if self.window_minutes is not None:
            return self.window_minutes
        if self.every_hours is not None:
            return self.every_hours * 60
        return None

    def start_offsets_minutes(self) -> tuple[int, ...]:
        """Round starts as minutes after local midnight of the schedule's day (may pass 1440)."""
        if self.times:
            return tuple(sorted(minutes_of_day(t) for t in self.times))
        assert self.every_hours is not None
        step = round(self.every_hours * 60)
        first = minutes_of_day(self.start)
        last = minutes_of_day(self.end)
        if last <= first:
            last += MINUTES_PER_DAY  # crosses midnight (or a full day when equal)
        return tuple(range(first, last, step))


def _valid_time(text: str) -> bool:
    return re.fullmatch(TIME_PATTERN, text) is not None


@dataclass(frozen=True, slots=True)
class PatrolSection:
    """The ``[patrol]`` section."""

    timezone: str = setting(
        "Asia/Shanghai", doc="IANA time zone for schedules, round ids and the daily summary"
    )
    summary_hour: int = setting(
        8,
        min=0,
        max=23,
        doc="local hour the daily summary is made; day D covers windows ending after D at "
        "this hour up to D+1 at this hour",
    )
    repeat_interval_s: float = setting(
        300.0,
        min=0.0,
        max=86400.0,
        doc="a tap at the same checkpoint sooner than this after a credited one is a repeat "
        "(not credited again)",
    )
    suspicious_repeats: int = setting(
        3, min=1, max=1000, doc="this many repeats at one checkpoint in a round raise an alert"
    )
    routes: tuple[RouteSection, ...] = setting((), doc="patrol routes")
    schedules: tuple[ScheduleSection, ...] = setting((), doc="when rounds are due")
    shifts: tuple[ShiftSection, ...] = setting((), doc="named guard groups")

    def check(self) -> Iterable[tuple[str, str]]:
        problem = timezone_problem(self.timezone)
        if problem is not None:
            yield "timezone", problem
        routes = yield from _unique_ids("routes", self.routes)
        shifts = yield from _unique_ids("shifts", self.shifts)
        yield from _unique_ids("schedules", self.schedules)
        for i, sched in enumerate(self.schedules):
            if sched.route not in routes:
                yield f"schedules[{i}].route", f"{sched.route!r} is not a route id"
            if sched.shift and sched.shift not in shifts:
                yield f"schedules[{i}].shift", f"{sched.shift!r} is not a shift id"

    def route(self, route_id: str) -> RouteSection:
        for route in self.routes:
            if route.id == route_id:
                return route
        raise KeyError(route_id)

    def responsible_guards(self, schedule: ScheduleSection) -> frozenset[str]:
        """Guards a schedule holds responsible (empty: any known guard)."""
        guards = set(schedule.guards)
        for shift in self.shifts:
            if shift.id == schedule.shift:
                guards.update(shift.guards)
        return frozenset(guards)


def _unique_ids(
    key: str, items: Iterable[RouteSection | ShiftSection | ScheduleSection]
) -> Generator[tuple[str, str], None, dict[str, int]]:
    """Yield an error for each repeated ``id`` in ``items``; return id -> first index."""
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.id in seen:
            yield f"{key}[{i}].id", f"{item.id!r} is already used by {key}[{seen[item.id]}]"
        else:
            seen[item.id] = i
    return seen


def check_checkpoints(section: PatrolSection, known: Iterable[str], path: str = "patrol") -> None:
    """Refuse routes naming checkpoints the checkpoint map does not know.

    ``check_checkpoints(cfg.patrol, {c.id for c in cfg.checkpoints}, "patrol")`` raises
    ``ConfigError("patrol.routes[1].checkpoints[2]", "'x' is not a known checkpoint")``.
    """
    known_ids = set(known)
    prefix = f"{path}." if path else ""
    for i, route in enumerate(section.routes):
        for j, cp in enumerate(route.checkpoints):
            if cp not in known_ids:
                raise ConfigError(
                    f"{prefix}routes[{i}].checkpoints[{j}]", f"{cp!r} is not a known checkpoint"
                )


__all__ = [
    "LegSection",
    "PatrolSection",
    "RouteSection",
    "ScheduleSection",
    "ShiftSection",
    "check_checkpoints",
    "minutes_of_day",
]
