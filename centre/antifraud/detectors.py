"""Impossible travel and buddy-tapping, judged over a compound's tap records.

    taps = tap_records_from_events("gw-7", events)         # stored events, any order
    walks = walking_times_from_routes(routes, positions=plan)
    alerts = detect_impossible_travel(taps, walks) + detect_buddy_taps(taps)

Pure: no I/O, no clock. Each detector is a function of the *set* of taps: the same taps in any
order (or with a tap given twice) give the same alerts in the same order, so a replay at the
centre after late uploads or a restart never changes what was already said.

Theory of operation
-------------------
**Impossible travel.** One wristband's taps at one gateway, in time order. For each tap and the
band's previous tap, the walking-time table gives the fastest anyone could get from one
checkpoint to the other. If the time between the two taps, plus the tolerance and both taps'
own time uncertainty, is still shorter, the band was in two places at once: a cloned band, or a
band passed over a fence to a colleague. The same holds for a *chain* of taps: the band had to
pass every checkpoint in between, so the sum of the legs' bounds is a lower bound too, and a
clone whose every hop just fits inside the tolerance is still caught once the hops add up.
Pairs the table does not bound count as 0 s. Taps journaled with an unsynchronised clock are not
judged (their time is not evidence).

**Buddy tap.** One guard carrying a colleague's band taps both, seconds apart, at every
checkpoint. A *co-tap* is two different bands at the same checkpoint within ``window_s``. Two
guards meeting at a shared gate co-tap once; a guard carrying two bands co-taps at checkpoint
after checkpoint. So a pair's co-taps are chained into *episodes* (next co-tap of the pair less
than ``episode_gap_s`` after the last, about one round), and an episode raises an alert once it
covers ``min_checkpoints`` distinct checkpoints. Pairs of guards who patrol together by rule
are listed in ``allowed_guard_pairs``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from centre.antifraud.walking import WalkingTimes

UNKNOWN_GUARD = "unknown"
LATE_TAP_S = 30.0  # as the gateway's patrol engine: older than this when journaled = buffered
BUFFERED_UNCERTAINTY_S = 5.0  # a node's own clock, set from the gateway, drifts a little


@dataclass(frozen=True, slots=True)
class TapRecord:
    """A tap as the centre stores it: which band, where, when (Unix seconds)."""

    gateway: str
    seq: int
    checkpoint: str
    wristband: str
    guard: str
    at: float
    clock_synced: bool = True
    time_uncertain_s: float = 0.0
    snapshots: tuple[str, ...] = ()  # SHA-256 of camera snapshots this tap triggered

    def sort_key(self) -> tuple[float, str, int, str, str]:
        return (self.at, self.gateway, self.seq, self.checkpoint, self.wristband)

    def as_dict(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "seq": self.seq,
            "checkpoint": self.checkpoint,
            "wristband": self.wristband,
            "guard": self.guard,
            "at": self.at,
            "time_uncertain_s": self.time_uncertain_s,
            "snapshots": list(self.snapshots),
        }


# Tap times are judged to the millisecond: a bound that beats the elapsed time by less is no
# evidence (hypothesis found checkpoints 1e-38 m apart "impossible" at tolerance 0).
TIME_RESOLUTION_S = 0.001


@dataclass(frozen=True, slots=True)
class TravelRules:
    tolerance_s: float = 10.0  # reader and clock jitter on top of each tap's own uncertainty


@dataclass(frozen=True, slots=True)
class BuddyRules:
    window_s: float = 5.0  # two bands this close at one checkpoint are one visit
    min_checkpoints: int = 3  # distinct checkpoints co-tapped in one episode to raise an alert
    episode_gap_s: float = 1800.0  # co-taps further apart than this start a new episode
    allowed_guard_pairs: frozenset[frozenset[str]] = frozenset()  # patrol together by rule


@dataclass(frozen=True, slots=True)
class ImpossibleTravel:
    """One band at two checkpoints faster than anyone can walk between them."""

    first: TapRecord
    second: TapRecord
    elapsed_s: float
    min_walk_s: float  # the sum of the leg bounds when the band went ``via`` other checkpoints
    via: tuple[TapRecord, ...] = ()  # taps between, when no single jump was impossible

    kind = "impossible_travel"

    @property
    def alert_id(self) -> str:
        f, s = self.first, self.second
        return f"{self.kind}/{f.gateway}/{f.wristband}/{f.seq}-{s.seq}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "gateway": self.first.gateway,
            "guard": self.second.guard,
            "wristband": self.first.wristband,
            "from_checkpoint": self.first.checkpoint,
            "to_checkpoint": self.second.checkpoint,
            "elapsed_s": round(self.elapsed_s, 1),
            "min_walk_s": round(self.min_walk_s, 1),
            "via_checkpoints": [t.checkpoint for t in self.via],
            "taps": [t.as_dict() for t in (self.first, *self.via, self.second)],
        }


@dataclass(frozen=True, slots=True)
class CoTap:
    """Two different bands at one checkpoint within the window (``a`` the earlier)."""

    a: TapRecord
    b: TapRecord


@dataclass(frozen=True, slots=True)
class BuddyTap:
    """Two bands co-tapped at checkpoint after checkpoint: one guard carrying both."""

    wristbands: tuple[str, str]  # sorted
    guards: tuple[str, str]  # in the order of ``wristbands``
    co_taps: tuple[CoTap, ...]  # time order

    kind = "buddy_tap"

    @property
    def gateway(self) -> str:
        return self.co_taps[0].a.gateway

    @property
    def checkpoints(self) -> tuple[str, ...]:
        """Distinct checkpoints co-tapped, in the order first co-tapped."""
        return tuple(dict.fromkeys(c.a.checkpoint for c in self.co_taps))

    @property
    def start(self) -> float:
        return self.co_taps[0].a.at

    @property
    def end(self) -> float:
        return max(max(c.a.at, c.b.at) for c in self.co_taps)

    @property
    def alert_id(self) -> str:
        first = self.co_taps[0]
        seq = min(first.a.seq, first.b.seq)
        return f"{self.kind}/{self.gateway}/{'+'.join(self.wristbands)}/{seq}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "gateway": self.gateway,
            "wristbands": list(self.wristbands),
            "guards": list(self.guards),
            "checkpoints": list(self.checkpoints),
            "start": self.start,
            "end": self.end,
            "taps": [[c.a.as_dict(), c.b.as_dict()] for c in self.co_taps],
        }


Alert = ImpossibleTravel | BuddyTap


def _distinct(taps: Iterable[TapRecord]) -> list[TapRecord]:
    """Each (gateway, seq) once, in time order (a batch uploaded twice is still one tap)."""
    unique: dict[tuple[str, int], TapRecord] = {}
    for t in taps:
        key = (t.gateway, t.seq)
        kept = unique.get(key)
        # Two different records under one key should not happen; keep a deterministic one.
        if kept is None or t.sort_key() < kept.sort_key():
            unique[key] = t
    return sorted(unique.values(), key=TapRecord.sort_key)


def _judged(t: TapRecord) -> bool:
    return t.clock_synced and bool(t.wristband) and math.isfinite(t.at)


def detect_impossible_travel(
    taps: Iterable[TapRecord],
    walks: WalkingTimes | Mapping[str, WalkingTimes],
    rules: TravelRules = TravelRules(),
) -> list[ImpossibleTravel]:
    """Every pair of a band's successive taps that nobody could have walked (module doc).

    ``walks`` is one compound's table, or a table per gateway id (taps at a gateway without
    one are not judged). Alerts come in time order of their second tap.
    """
    by_band: dict[tuple[str, str], list[TapRecord]] = defaultdict(list)
    for t in _distinct(taps):
        if _judged(t):
            by_band[(t.gateway, t.wristband)].append(t)
    alerts: list[ImpossibleTravel] = []
    for (gateway, _), band_taps in by_band.items():
        table = walks if isinstance(walks, WalkingTimes) else walks.get(gateway)
        if table is not None:
            alerts.extend(_band_travel(band_taps, table, rules.tolerance_s))
    alerts.sort(key=lambda a: (a.second.sort_key(), a.first.sort_key()))
    return alerts


def _band_travel(
    taps: list[TapRecord], table: WalkingTimes, tolerance_s: float
) -> list[ImpossibleTravel]:
    """One band's taps in time order: each jump, then each chain, nobody could have walked.

    With ``S_k`` the sum of the leg bounds from the first tap to tap ``k`` (0 for a pair the
    table does not bound), taps ``i < j`` are impossible when ``S_j - S_i`` exceeds
    ``t_j - t_i`` plus the slack. The band had to pass every checkpoint between, so the sum is a
    lower bound as good as each leg's; it catches a clone whose every hop just fits inside the
    tolerance. Keeping the smallest ``S_i - t_i + u_i`` so far makes this one pass. After an
    alert the chain starts again at its second tap, so one jump is reported once.
    """
    out: list[ImpossibleTravel] = []
    if not taps:
        return out
    legs = 0.0  # S_k
    start = 0  # index of the smallest S_i - t_i + u_i since the last alert
    start_key = -taps[0].at + taps[0].time_uncertain_s
    sums = [0.0]
    for k in range(1, len(taps)):
        prev, t = taps[k - 1], taps[k]
        need = table.minimum(prev.checkpoint, t.checkpoint)
        legs += need or 0.0
        sums.append(legs)
        slack = tolerance_s + prev.time_uncertain_s + t.time_uncertain_s + TIME_RESOLUTION_S
        key = legs - t.at + t.time_uncertain_s
        if need and t.at - prev.at + slack < need:
            out.append(ImpossibleTravel(prev, t, t.at - prev.at, need))
            start, start_key = k, key
        elif legs - t.at - t.time_uncertain_s - start_key > tolerance_s + TIME_RESOLUTION_S:
            first = taps[start]
            via = tuple(taps[start + 1 : k])
            out.append(ImpossibleTravel(first, t, t.at - first.at, legs - sums[start], via))
            start, start_key = k, key
        elif key < start_key:
            start, start_key = k, key
    return out


def co_taps(taps: Iterable[TapRecord], window_s: float) -> list[CoTap]:
    """Every two different bands at one checkpoint of one gateway within ``window_s``."""
    by_point: dict[tuple[str, str], list[TapRecord]] = defaultdict(list)
    for t in _distinct(taps):
        if _judged(t):
            by_point[(t.gateway, t.checkpoint)].append(t)
    out: list[CoTap] = []
    for point_taps in by_point.values():
        for i, a in enumerate(point_taps):
            for b in point_taps[i + 1 :]:
                if b.at - a.at > window_s:
                    break
                if b.wristband != a.wristband:
                    out.append(CoTap(a, b))
    out.sort(key=lambda c: (c.a.sort_key(), c.b.sort_key()))
    return out


def detect_buddy_taps(
    taps: Iterable[TapRecord], rules: BuddyRules = BuddyRules()
) -> list[BuddyTap]:
    """Pairs of bands co-tapped at ``min_checkpoints`` checkpoints in one episode (module doc).

    Alerts come in time order of their first co-tap.
    """
    by_pair: dict[tuple[str, str, str], list[CoTap]] = defaultdict(list)
    guards: dict[tuple[str, str], str] = {}
    for c in co_taps(taps, rules.window_s):
        lo, hi = sorted((c.a.wristband, c.b.wristband))
        by_pair[(c.a.gateway, lo, hi)].append(c)
        for t in (c.a, c.b):
            guards.setdefault((t.gateway, t.wristband), t.guard)
    alerts: list[BuddyTap] = []
    for (gateway, lo, hi), pair_co_taps in by_pair.items():
        pair_guards = (guards[(gateway, lo)], guards[(gateway, hi)])
        if UNKNOWN_GUARD not in pair_guards and frozenset(pair_guards) in rules.allowed_guard_pairs:
            continue
        episode: list[CoTap] = []
        for c in pair_co_taps:
            if episode and c.a.at - episode[-1].a.at > rules.episode_gap_s:
                _close_episode(episode, (lo, hi), pair_guards, rules, alerts)
                episode = []
            episode.append(c)
        _close_episode(episode, (lo, hi), pair_guards, rules, alerts)
    alerts.sort(key=lambda a: (a.co_taps[0].a.sort_key(), a.wristbands))
    return alerts


def _close_episode(
    episode: list[CoTap],
    bands: tuple[str, str],
    guards: tuple[str, str],
    rules: BuddyRules,
    alerts: list[BuddyTap],
) -> None:
    if len({c.a.checkpoint for c in episode}) >= rules.min_checkpoints:
        alerts.append(BuddyTap(bands, guards, tuple(episode)))


def tap_records_from_events(gateway: str, events: Iterable[Mapping[str, Any]]) -> list[TapRecord]:
    """The tap records in one gateway's stored events (journal shape, any order).

    ``tap`` events become records (``tapped_at`` when a node buffered the tap, never after the
    journal time, as the gateway's patrol engine reads them); ``camera.snapshot`` events attach
    their SHA-256 to the tap that triggered them. An event without a usable checkpoint,
    wristband or time is not a tap record: it stays stored, it just cannot be judged.
    """
    records: list[TapRecord] = []
    snapshots: dict[int, list[str]] = defaultdict(list)
    for ev in events:
        if type(ev) is not dict and not isinstance(ev, Mapping):  # exact type first: cheap
            continue
        kind = ev.get("kind")
        # Most of a backlog is telemetry. A tuple, not a set: an unhashable kind compares.
        if kind not in ("tap", "camera.snapshot"):
            continue
        payload = ev.get("payload")
        if not isinstance(payload, Mapping):
            continue
        if kind == "camera.snapshot":
            trigger, digest = payload.get("trigger_seq"), payload.get("sha256")
            if _is_int(trigger) and isinstance(digest, str) and digest:
                snapshots[trigger].append(digest)
            continue
        if kind != "tap":
            continue
        seq, wall = ev.get("seq"), _finite(ev.get("wall_time"))
        cp, band = payload.get("checkpoint"), payload.get("wristband")
        if not _is_int(seq) or wall is None:
            continue
        if not (isinstance(cp, str) and cp and isinstance(band, str) and band):
            continue
        tapped = _finite(payload.get("tapped_at"))
        at = min(tapped if tapped is not None else wall, wall)
        uncertainty = max(0.0, _finite(payload.get("time_uncertain_s")) or 0.0)
        if payload.get("buffered") is True or wall - at > LATE_TAP_S:
            uncertainty += BUFFERED_UNCERTAINTY_S
        guard = payload.get("guard")
        records.append(
            TapRecord(
                gateway=gateway,
                seq=seq,
                checkpoint=cp,
                wristband=band,
                guard=guard if isinstance(guard, str) and guard else UNKNOWN_GUARD,
                at=at,
                clock_synced=ev.get("clock_synced", True) is not False,
                time_uncertain_s=uncertainty,
            )
        )
    return [
        TapRecord(
            r.gateway,
            r.seq,
            r.checkpoint,
            r.wristband,
            r.guard,
            r.at,
            r.clock_synced,
            r.time_uncertain_s,
            tuple(sorted(snapshots.get(r.seq, ()))),
        )
        for r in records
    ]


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(value: object) -> float | None:
    """A JSON number as a finite float, else None (NaN, infinities, 10**400, text, ...)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


__all__ = [
    "Alert",
    "BuddyRules",
    "BuddyTap",
    "CoTap",
    "ImpossibleTravel",
    "TapRecord",
    "TravelRules",
    "co_taps",
    "detect_buddy_taps",
    "detect_impossible_travel",
    "tap_records_from_events",
]
