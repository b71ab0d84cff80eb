"""How fast anyone can get from one checkpoint to another in a compound: the walking-time table.

    walks = walking_times_from_routes(routes, positions={"gate": (0, 0), "b3": (120, 40)})
    walks.minimum("gate", "b3")        # 48.0 s (a leg's min_walk_s, or distance / top speed)
    walks.minimum("gate", "nowhere")   # None: no lower bound known, the pair is not judged

``routes`` have the shape of the gateway's ``[[patrol.routes]]`` (``gateway/patrol/config.py``:
``id``, ``checkpoints``, ``min_walk_s``, ``legs`` of ``from_checkpoint``/``to_checkpoint``/
``min_walk_s``), as the gateway's patrol data file holds them, so one table serves the gateway's
in-round check and the centre's detectors. The centre never imports the gateway; it reads the
same fields from plain mappings and refuses anything else with :class:`WalkingTableError`.

Only *lower bounds* are kept, because an alert must mean "nobody could have walked this":

- a route's ``min_walk_s`` bounds every pair of distinct checkpoints on that route, in either
  direction, and a leg's ``min_walk_s`` overrides it for its pair (exactly the gateway patrol
  engine's rule for consecutive taps in a round); when routes disagree on a pair, the smaller
  (more lenient) wins;
- checkpoint positions (metres on a site plan) bound every pair by straight-line distance over
  ``top_speed_m_s`` (a guard running), which is what makes checkpoints of different routes
  comparable;
- the larger of the two bounds is used when both exist (each is a true lower bound).

Pairs with neither are not judged. A chain of legs is deliberately *not* summed into a bound: a
guard may cut across, so a path along the route is no lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from centre.errors import CentreError

DEFAULT_TOP_SPEED_M_S = 3.0  # a guard running in work boots; faster is not a walk
MAX_CHECKPOINTS = 5000


class WalkingTableError(CentreError):
    """A walking-time table or its routes are malformed; ``key`` names the place."""

    status = 400
    code = "bad_walking_table"

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}", key=key)
        self.key = key


@dataclass(frozen=True, slots=True)
class RouteWalks:
    """One route's bounds: ``default_s`` for any two of its checkpoints, ``legs`` override."""

    checkpoints: frozenset[str]
    default_s: float | None
    legs: Mapping[tuple[str, str], float]  # both directions

    def minimum(self, a: str, b: str) -> float | None:
        if a not in self.checkpoints or b not in self.checkpoints:
            return None
        leg = self.legs.get((a, b))
        return leg if leg is not None else self.default_s


@dataclass(frozen=True, slots=True)
class WalkingTimes:
    """Lower bounds on the walking time between checkpoint pairs (seconds)."""

    routes: tuple[RouteWalks, ...] = ()
    positions: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    top_speed_m_s: float = DEFAULT_TOP_SPEED_M_S

    def minimum(self, a: str, b: str) -> float | None:
        """The fastest anyone can get from ``a`` to ``b``, or None when nothing bounds it."""
        if a == b:
            return 0.0
        by_route = [m for r in self.routes if (m := r.minimum(a, b)) is not None]
        bounds = [min(by_route)] if by_route else []
        pa, pb = self.positions.get(a), self.positions.get(b)
        if pa is not None and pb is not None:
            bounds.append(math.dist(pa, pb) / self.top_speed_m_s)
        return max(bounds) if bounds else None


def walking_times_from_routes(
    routes: Iterable[Mapping[str, Any]],
    *,
    positions: Mapping[str, Any] | None = None,
    top_speed_m_s: float = DEFAULT_TOP_SPEED_M_S,
) -> WalkingTimes:
    """Build the table from gateway-shaped routes and optional positions (see the module doc).

    Raises :class:`WalkingTableError` naming the key (``routes[1].legs[0].min_walk_s``).
    """
    if (
        isinstance(top_speed_m_s, bool)
        or not isinstance(top_speed_m_s, int | float)
        or not 0.1 <= top_speed_m_s <= 20.0
    ):
        raise WalkingTableError("top_speed_m_s", f"{_short(top_speed_m_s)} is outside 0.1..20 m/s")
    if isinstance(routes, Mapping | str | bytes) or not isinstance(routes, Iterable):
        raise WalkingTableError("routes", "must be a list of routes")
    out: list[RouteWalks] = []
    for i, route in enumerate(routes):
        key = f"routes[{i}]"
        if not isinstance(route, Mapping):
            raise WalkingTableError(key, "must be a table")
        cps = route.get("checkpoints")
        if (
            not isinstance(cps, list | tuple)
            or len(cps) > MAX_CHECKPOINTS
            or not all(isinstance(c, str) and c for c in cps)
        ):
            raise WalkingTableError(f"{key}.checkpoints", "must be a list of checkpoint ids")
        default = _seconds(route.get("min_walk_s"), f"{key}.min_walk_s")
        legs: dict[tuple[str, str], float] = {}
        raw_legs = route.get("legs", ())
        if not isinstance(raw_legs, list | tuple):
            raise WalkingTableError(f"{key}.legs", "must be a list of legs")
        for j, leg in enumerate(raw_legs):
            lkey = f"{key}.legs[{j}]"
            if not isinstance(leg, Mapping):
                raise WalkingTableError(lkey, "must be a table")
            a, b = leg.get("from_checkpoint"), leg.get("to_checkpoint")
            if not isinstance(a, str) or not isinstance(b, str) or not a or not b:
                raise WalkingTableError(lkey, "needs from_checkpoint and to_checkpoint")
            seconds = _seconds(leg.get("min_walk_s"), f"{lkey}.min_walk_s")
            if seconds is None:
                seconds = default
            if seconds is not None:
                # Two legs naming one pair: the more lenient bound (an alert must be certain).
                legs[(a, b)] = legs[(b, a)] = min(seconds, legs.get((a, b), math.inf))
        out.append(RouteWalks(frozenset(cps), default, legs))
    table = _positions(positions if positions is not None else {})
    return WalkingTimes(tuple(out), table, float(top_speed_m_s))


def _seconds(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WalkingTableError(key, f"{_short(value)} is not a number of seconds")
    if not 0.0 <= value <= 86400.0:  # also refuses NaN; compares 10**400 without overflow
        raise WalkingTableError(key, f"{_short(value)} is outside 0..86400")
    return float(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _positions(raw: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    if not isinstance(raw, Mapping):
        raise WalkingTableError("positions", "must map checkpoint ids to [x, y] metres")
    if len(raw) > MAX_CHECKPOINTS:
        raise WalkingTableError("positions", f"more than {MAX_CHECKPOINTS} checkpoints")
    out: dict[str, tuple[float, float]] = {}
    for cp, xy in raw.items():
        key = f"positions.{cp}"
        if (
            not isinstance(xy, list | tuple)
            or len(xy) != 2
            # A chained comparison refuses NaN and infinities and never overflows.
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and -1e6 <= v <= 1e6
                for v in xy
            )
        ):
            raise WalkingTableError(key, "must be [x, y] in metres (finite, within 1000 km)")
        out[str(cp)] = (float(xy[0]), float(xy[1]))
    return out


__all__ = ["RouteWalks", "WalkingTableError", "WalkingTimes", "walking_times_from_routes"]
