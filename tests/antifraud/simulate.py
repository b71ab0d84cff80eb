"""Honest patrols of a simulated compound, as the gateway journals them, and fraud to inject.

    site = SITE
    events = honest_month(seed=1, days=30)                 # journal-shaped event dicts
    cases = inject_clones(events, rng, 20) + inject_buddies(events, rng, 20)

Shared by ``tests/antifraud`` and ``bench/antifraud_false_alarms.py``. The compound has eleven
checkpoints on a site plan (metres), three routes sharing the gate and the hub, four guards in
two shifts. Each guard is one body: a round starts when it is due *and* the guard has walked
there from wherever the last round ended. Honest people walk at 0.8-1.6 m/s along paths 10-45 %
longer than the straight line, linger at checkpoints, sometimes tap twice, walk an unordered
route in their own order, and once a week the night shift walks a round together (a pair the
site allows). The gateway adds what it really adds: reader latency, taps a node held in its
offline buffer (``tapped_at``, ``buffered``) with its own clock's drift, and hours of
unsynchronised clock (times off by minutes, ``clock_synced`` false).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from centre.antifraud import (
    Alert,
    BuddyRules,
    BuddyTap,
    ImpossibleTravel,
    detect_buddy_taps,
    detect_impossible_travel,
    tap_records_from_events,
    walking_times_from_routes,
)

TZ = ZoneInfo("Asia/Shanghai")
GATEWAY = "gw-sim"
INJECTED = "sim_injected"  # payload key naming the fraud case an injected tap belongs to

POSITIONS: dict[str, tuple[float, float]] = {
    "gate": (0.0, 0.0),
    "lobby": (60.0, 20.0),
    "b1": (120.0, 0.0),
    "b2": (180.0, 40.0),
    "b3": (240.0, 0.0),
    "pool": (150.0, 110.0),
    "park": (60.0, 120.0),
    "b4": (240.0, 140.0),
    "b5": (300.0, 80.0),
    "shop": (0.0, 90.0),
    "hub": (150.0, 55.0),
}

# Routes as the gateway's patrol data holds them (gateway/patrol/config.py RouteSection).
ROUTES: list[dict[str, Any]] = [
    {
        "id": "east",
        "checkpoints": ["gate", "lobby", "b1", "b2", "b3", "b5", "hub"],
        "min_walk_s": 20,
        "legs": [{"from_checkpoint": "b3", "to_checkpoint": "b5", "min_walk_s": 40}],
    },
    {
        "id": "west",
        "checkpoints": ["gate", "shop", "park", "pool", "hub", "lobby"],
        "min_walk_s": 20,
    },
    {
        "id": "loop",
        "checkpoints": ["hub", "b2", "b4", "b5", "b3", "b1"],
        "ordered": False,
        "min_walk_s": 10,
    },
]

WRISTBANDS = {"g1": "04a1b2c3d4e501", "g2": "04a1b2c3d4e502", "g3": "04a1b2c3d4e503",
              "g4": "04a1b2c3d4e504"}  # fmt: skip
NIGHT = ("g1", "g2")  # 22:00-06:00, rounds every hour on every route
DAY = ("g3", "g4")  # 06:00-22:00, rounds every 2 hours
ALLOWED_PAIRS = frozenset({frozenset(NIGHT)})  # the night shift walks together on Saturdays

MIN_SPEED_M_S, MAX_SPEED_M_S = 0.8, 1.6
START = datetime(2026, 11, 1, tzinfo=TZ)


def distance(a: str, b: str) -> float:
    return math.dist(POSITIONS[a], POSITIONS[b])


@dataclass(slots=True)
class _Guard:
    id: str
    where: str = "gate"
    free_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Visit:
    """A tap as it truly happened (before the gateway's latency and clock)."""

    at: float
    checkpoint: str
    guard: str
    wristband: str


def _walk_s(rng: random.Random, a: str, b: str) -> float:
    path = distance(a, b) * rng.uniform(1.10, 1.45)
    return path / rng.uniform(MIN_SPEED_M_S, MAX_SPEED_M_S)


def _walk_round(
    rng: random.Random, guard: _Guard, route: dict[str, Any], due: float, band: str
) -> list[Visit]:
    order = list(route["checkpoints"])
    if not route.get("ordered", True):
        rng.shuffle(order)
    elif rng.random() < 0.05:
        order.pop(rng.randrange(1, len(order)))  # a skipped checkpoint
    t = max(due + rng.uniform(0, 600), guard.free_at + _walk_s(rng, guard.where, order[0]))
    visits: list[Visit] = []
    here = order[0]
    for cp in order:
        t += _walk_s(rng, here, cp) if cp != here else 0.0
        visits.append(Visit(t, cp, guard.id, band))
        if rng.random() < 0.03:  # the light was missed: tapped again before walking on
            t += rng.uniform(3, 40)
            visits.append(Visit(t, cp, guard.id, band))
        t += rng.uniform(5, 90)  # a look around
        here = cp
    guard.where, guard.free_at = here, t
    return visits


def honest_visits(seed: int, days: int = 30) -> list[Visit]:
    """A month of honest patrols: who was where, when (true times)."""
    rng = random.Random(seed)
    guards = {g: _Guard(g, free_at=START.timestamp()) for g in (*NIGHT, *DAY)}
    visits: list[Visit] = []
    for day in range(days):
        midnight = START + timedelta(days=day)
        for hour in range(24):
            due = (midnight + timedelta(hours=hour)).timestamp()
            night = hour >= 22 or hour < 6
            if not night and hour % 2:
                continue
            shift = NIGHT if night else DAY
            saturday = (midnight + timedelta(hours=hour - 6)).weekday() == 5
            if night and saturday and hour == 2:
                # The night shift walks "west" together, tapping one after the other.
                a, b = (guards[g] for g in shift)
                first = ROUTES[1]["checkpoints"][0]
                met = max(g.free_at + _walk_s(rng, g.where, first) for g in (a, b))
                for g in (a, b):  # both walk to the start and meet there
                    g.where, g.free_at = first, met
                lead = _walk_round(rng, a, ROUTES[1], due, WRISTBANDS[a.id])
                for v in lead:
                    visits.append(v)
                    follow = v.at + rng.uniform(1, 6)
                    visits.append(Visit(follow, v.checkpoint, b.id, WRISTBANDS[b.id]))
                b.where, b.free_at = a.where, a.free_at + 6
                continue
            for route in ROUTES:
                # Whoever of the shift is free first takes the round.
                guard = min((guards[g] for g in shift), key=lambda g: (g.free_at, g.id))
                visits.extend(_walk_round(rng, guard, route, due, WRISTBANDS[guard.id]))
    return visits


def journal(visits: list[Visit], seed: int, gateway: str = GATEWAY) -> list[dict[str, Any]]:
    """The tap events a gateway would journal for these visits (sequence in journal order)."""
    rng = random.Random(seed * 7919 + 1)
    rows: list[tuple[float, dict[str, Any], bool]] = []
    unsynced: list[tuple[float, float, float]] = []  # (from, to, clock error)
    if visits:
        lo, hi = min(v.at for v in visits), max(v.at for v in visits)
        for _ in range(max(1, int((hi - lo) / 86400 / 10))):  # about every ten days
            start = rng.uniform(lo, hi)
            unsynced.append((start, start + rng.uniform(600, 7200), rng.uniform(-300, 300)))
    for v in visits:
        payload: dict[str, Any] = {
            "checkpoint": v.checkpoint,
            "guard": v.guard,
            "wristband": v.wristband,
            "reader": f"bus0/{sorted(POSITIONS).index(v.checkpoint) + 1}",
        }
        error = next((e for s, t, e in unsynced if s <= v.at < t), None)
        wall = v.at + rng.uniform(0.05, 1.5) + (error or 0.0)  # poll + decode + fsync
        if rng.random() < 0.01:  # a node held it while its bus was down
            wall += rng.uniform(60, 900)
            payload["tapped_at"] = round(v.at + rng.uniform(-2.0, 2.0), 3)  # node clock drift
            payload["buffered"] = True
        rows.append((wall, payload, error is None))
    rows.sort(key=lambda r: r[0])
    return [
        {
            "seq": i,
            "kind": "tap",
            "cls": "evidence",
            "payload": payload,
            "wall_time": round(wall, 3),
            "mono_time": 0.0,
            "boot_id": "boot",
            "clock_synced": synced,
        }
        for i, (wall, payload, synced) in enumerate(rows, 1)
    ]


def honest_month(seed: int, days: int = 30) -> list[dict[str, Any]]:
    return journal(honest_visits(seed, days), seed)


# --------------------------------------------------------------------------- fraud


def _append(events: list[dict[str, Any]], at: float, payload: dict[str, Any]) -> None:
    events.append(
        {
            "seq": max((e["seq"] for e in events), default=0) + 1,
            "kind": "tap",
            "cls": "evidence",
            "payload": payload,
            "wall_time": round(at + 0.4, 3),
            "mono_time": 0.0,
            "boot_id": "boot",
            "clock_synced": True,
        }
    )


def _rounds(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Honest synchronised taps of one band, cut where the band rested over 10 minutes."""
    by_band: dict[str, list[dict[str, Any]]] = {}
    for ev in events:
        if ev["clock_synced"] and "tapped_at" not in ev["payload"]:
            by_band.setdefault(ev["payload"]["wristband"], []).append(ev)
    out: list[list[dict[str, Any]]] = []
    for taps in by_band.values():
        taps.sort(key=lambda e: e["wall_time"])
        current: list[dict[str, Any]] = []
        for ev in taps:
            if current and ev["wall_time"] - current[-1]["wall_time"] > 600:
                out.append(current)
                current = []
            current.append(ev)
        if current:
            out.append(current)
    return [r for r in out if len({e["payload"]["checkpoint"] for e in r}) >= 4]


def inject_clones(events: list[dict[str, Any]], rng: random.Random, n: int) -> list[str]:
    """``n`` cloned bands: while a guard walks a round, someone else walks another route with
    a copy of the guard's band. Returns the case ids (taps carry them under INJECTED)."""
    rounds = _rounds(events)
    cases = []
    for k in range(n):
        real = rng.choice(rounds)
        band, guard = real[0]["payload"]["wristband"], real[0]["payload"]["guard"]
        walked = {e["payload"]["checkpoint"] for e in real}
        other = max(ROUTES, key=lambda r: len(set(r["checkpoints"]) - walked))
        case = f"clone-{k}"
        t = real[0]["wall_time"] + rng.uniform(-60, 60)
        for cp in other["checkpoints"]:
            payload = {"checkpoint": cp, "guard": guard, "wristband": band, INJECTED: case}
            _append(events, t, payload)
            t += rng.uniform(40, 120)
        cases.append(case)
    return cases


def inject_buddies(events: list[dict[str, Any]], rng: random.Random, n: int) -> list[str]:
    """``n`` rounds in which a guard carries an off-duty colleague's band and taps both."""
    rounds = _rounds(events)
    cases = []
    for k in range(n):
        real = rng.choice(rounds)
        guard = real[0]["payload"]["guard"]
        absent = rng.choice(DAY if guard in NIGHT else NIGHT)  # never an allowed pair
        case = f"buddy-{k}"
        for ev in real:
            _append(
                events,
                ev["wall_time"] + rng.uniform(1.0, 4.0),
                {
                    "checkpoint": ev["payload"]["checkpoint"],
                    "guard": absent,
                    "wristband": WRISTBANDS[absent],
                    INJECTED: case,
                },
            )
        cases.append(case)
    return cases


# --------------------------------------------------------------------------- judging


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the detectors said about a journal, sorted into false alarms and caught cases."""

    travel: tuple[ImpossibleTravel, ...]
    buddies: tuple[BuddyTap, ...]
    false_alarms: tuple[Alert, ...]  # alerts without one injected tap
    caught: frozenset[str]  # fraud cases with at least one alert holding their taps


def judge(
    events: list[dict[str, Any]],
    allowed_pairs: frozenset[frozenset[str]] = ALLOWED_PAIRS,
    gateway: str = GATEWAY,
) -> Judgement:
    """Run both detectors over the journal as the centre would, with the site's table."""
    taps = tap_records_from_events(gateway, events)
    walks = walking_times_from_routes(ROUTES, positions=POSITIONS)
    travel = detect_impossible_travel(taps, walks)
    buddies = detect_buddy_taps(taps, BuddyRules(allowed_guard_pairs=allowed_pairs))
    case_of = {
        ev["seq"]: ev["payload"][INJECTED]
        for ev in events
        if ev["kind"] == "tap" and INJECTED in ev["payload"]
    }
    false_alarms: list[Alert] = []
    caught: set[str] = set()
    for alert in (*travel, *buddies):
        held = (
            (alert.first, alert.second)
            if isinstance(alert, ImpossibleTravel)
            else tuple(t for c in alert.co_taps for t in (c.a, c.b))
        )
        cases = {case_of[t.seq] for t in held if t.seq in case_of}
        if cases:
            caught |= cases
        else:
            false_alarms.append(alert)
    return Judgement(tuple(travel), tuple(buddies), tuple(false_alarms), frozenset(caught))


__all__ = [
    "ALLOWED_PAIRS",
    "GATEWAY",
    "INJECTED",
    "POSITIONS",
    "ROUTES",
    "WRISTBANDS",
    "Judgement",
    "Visit",
    "distance",
    "honest_month",
    "honest_visits",
    "inject_buddies",
    "inject_clones",
    "journal",
    "judge",
]
