"""Can the patrol records be trusted? Unverified bands and anti-fraud alerts, per compound.

Two kinds of fact sit beside the patrol verdicts in the bulletins (docs/bulletins.md,
"Credentials and anti-fraud"):

- **Unverified credentials.** A gateway marks every ``tap`` with ``verified``: ``true`` only
  for an NTAG 424 DNA band whose SUN message checked out (docs/credentials.md). A site that
  accepts UID-only bands records their taps with ``verified: false``; such a band can be
  cloned in seconds, so each of its taps is listed and counted. A tap without the field
  (a gateway older than band verification) is unverified too: nothing vouches for it.
- **Anti-fraud alerts** the centre recorded (``impossible_travel``, ``buddy_tap``, from
  :mod:`centre.antifraud`), with their evidence: the taps, their times, snapshot hashes.

Pure: events and alert records in, tables out; no I/O, no clock.

    daily = compound_integrity(units, tap_events, alert_records, start, end)   # listed
    monthly = compound_counts(units, repo_tap_tallies, alert_records, start, end)  # counted
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

IMPOSSIBLE_TRAVEL: Final = "impossible_travel"
BUDDY_TAP: Final = "buddy_tap"
FRAUD_KINDS: Final = (IMPOSSIBLE_TRAVEL, BUDDY_TAP)


@dataclass(frozen=True, slots=True)
class TapMark:
    """One tap as the bulletin lists it; ``verified`` False is the "unverified band" mark."""

    gateway_id: str
    seq: int
    at: float
    checkpoint: str
    guard: str
    wristband: str
    verified: bool
    snapshots: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FraudAlert:
    """An impossible-travel or buddy-tap alert with its evidence taps (time order)."""

    kind: str
    gateway_id: str
    seq: int | None
    at: float
    guards: tuple[str, ...]
    wristbands: tuple[str, ...]
    checkpoints: tuple[str, ...]
    taps: tuple[TapMark, ...]
    elapsed_s: float | None = None  # impossible travel: how long the band took
    min_walk_s: float | None = None  # ... and the least anyone needs on foot


@dataclass(frozen=True, slots=True)
class CompoundIntegrity:
    """One compound's credential and anti-fraud facts for a period."""

    compound: str
    township: str
    taps: int
    unverified_count: int
    unverified_bands: int
    alerts: tuple[FraudAlert, ...]
    unverified: tuple[TapMark, ...] = ()  # listed (daily); the monthly only counts

    @property
    def travel_alerts(self) -> int:
        return sum(1 for a in self.alerts if a.kind == IMPOSSIBLE_TRAVEL)

    @property
    def buddy_alerts(self) -> int:
        return sum(1 for a in self.alerts if a.kind == BUDDY_TAP)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def tap_mark(ev: Mapping[str, Any]) -> TapMark | None:
    """A stored ``tap`` event (centre shape) as a :class:`TapMark`; None if it is not one."""
    p = ev.get("payload")
    seq, wall = ev.get("seq"), _finite(ev.get("wall_time"))
    if ev.get("kind") != "tap" or not isinstance(p, Mapping) or wall is None:
        return None
    if isinstance(seq, bool) or not isinstance(seq, int):
        return None
    tapped = _finite(p.get("tapped_at"))
    return TapMark(
        gateway_id=str(ev.get("gateway_id", "")),
        seq=seq,
        at=min(tapped, wall) if tapped is not None else wall,
        checkpoint=_text(p.get("checkpoint")),
        guard=_text(p.get("guard")),
        wristband=_text(p.get("wristband")),
        verified=p.get("verified") is True,
    )


def _evidence_tap(gateway_id: str, d: Any) -> TapMark | None:
    if not isinstance(d, Mapping):
        return None
    at, seq = _finite(d.get("at")), d.get("seq")
    if at is None or isinstance(seq, bool) or not isinstance(seq, int):
        return None
    snaps = d.get("snapshots")
    return TapMark(
        gateway_id=_text(d.get("gateway")) or gateway_id,
        seq=seq,
        at=at,
        checkpoint=_text(d.get("checkpoint")),
        guard=_text(d.get("guard")),
        wristband=_text(d.get("wristband")),
        verified=True,  # not known from the alert; the tap list shows the mark
        snapshots=tuple(s for s in snaps if isinstance(s, str)) if isinstance(snaps, list) else (),
    )


def _strs(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def fraud_alert(kind: str, gateway_id: str, seq: int | None, at: float,
                details: Mapping[str, Any]) -> FraudAlert | None:  # fmt: skip
    """An alert record's fields as a :class:`FraudAlert`; None for another kind of alert."""
    if kind not in FRAUD_KINDS:
        return None
    raw = details.get("taps")
    flat: list[Any] = []
    for item in raw if isinstance(raw, list) else []:
        flat.extend(item if isinstance(item, list) else [item])
    taps = sorted(
        (t for t in (_evidence_tap(gateway_id, d) for d in flat) if t is not None),
        key=lambda t: (t.at, t.seq),
    )
    if kind == IMPOSSIBLE_TRAVEL:
        guard, band = _text(details.get("guard")), _text(details.get("wristband"))
        checkpoints = (
            _text(details.get("from_checkpoint")),
            *_strs(details.get("via_checkpoints")),
            _text(details.get("to_checkpoint")),
        )
        return FraudAlert(
            kind, gateway_id, seq, at, (guard,) if guard else (), (band,) if band else (),
            tuple(c for c in checkpoints if c), tuple(taps),
            _finite(details.get("elapsed_s")), _finite(details.get("min_walk_s")),
        )  # fmt: skip
    return FraudAlert(
        kind, gateway_id, seq, at, _strs(details.get("guards")), _strs(details.get("wristbands")),
        _strs(details.get("checkpoints")), tuple(taps),
    )  # fmt: skip


def _alerts_of(records: Iterable[Any], start: float, end: float) -> list[FraudAlert]:
    out = []
    for r in records:
        at = _finite(getattr(r, "at", None))
        details = getattr(r, "details", None)
        if at is None or not start <= at < end or not isinstance(details, Mapping):
            continue
        a = fraud_alert(str(r.kind), str(r.gateway_id), r.seq, at, details)
        if a is not None:
            out.append(a)
    return sorted(out, key=lambda a: (a.at, a.gateway_id, a.seq or 0, a.kind))


def compound_integrity(
    units: Sequence[Any],
    tap_events: Iterable[Mapping[str, Any]],
    alerts: Iterable[Any],
    start: float,
    end: float,
) -> tuple[CompoundIntegrity, ...]:
    """Per compound (``units``: :class:`centre.bulletins.model.Unit`), the taps of
    ``[start, end)`` with the unverified ones listed, and the anti-fraud alerts of that time.
    Compounds with neither taps nor alerts are left out. Each (gateway, seq) counts once."""
    taps: dict[tuple[str, int], TapMark] = {}
    for ev in tap_events:
        t = tap_mark(ev)
        if t is not None and start <= t.at < end:
            taps.setdefault((t.gateway_id, t.seq), t)
    by_gw: dict[str, list[TapMark]] = {}
    for t in sorted(taps.values(), key=lambda t: (t.at, t.gateway_id, t.seq)):
        by_gw.setdefault(t.gateway_id, []).append(t)
    alerts_by_gw: dict[str, list[FraudAlert]] = {}
    for a in _alerts_of(alerts, start, end):
        alerts_by_gw.setdefault(a.gateway_id, []).append(a)
    out = []
    for unit in units:
        mine = [t for gw in unit.gateways for t in by_gw.get(gw, ())]
        found = [a for gw in unit.gateways for a in alerts_by_gw.get(gw, ())]
        if not mine and not found:
            continue
        unverified = sorted((t for t in mine if not t.verified), key=lambda t: (t.at, t.seq))
        out.append(
            CompoundIntegrity(
                compound=unit.compound,
                township=unit.township,
                taps=len(mine),
                unverified_count=len(unverified),
                unverified_bands=len({t.wristband for t in unverified}),
                alerts=tuple(sorted(found, key=lambda a: (a.at, a.gateway_id, a.seq or 0))),
                unverified=tuple(unverified),
            )
        )
    return tuple(out)


def compound_counts(
    units: Sequence[Any],
    tallies: Iterable[Any],
    alerts: Iterable[Any],
    start: float,
    end: float,
) -> tuple[CompoundIntegrity, ...]:
    """As :func:`compound_integrity`, from per-gateway tap counts (``TapTally``-shaped:
    ``gateway_id``, ``taps``, ``unverified``, ``unverified_bands``) instead of the taps
    themselves: the monthly bulletin counts, it does not list. A band seen at two gateways
    of one compound counts once per gateway."""
    by_gw = {str(t.gateway_id): t for t in tallies}
    alerts_by_gw: dict[str, list[FraudAlert]] = {}
    for a in _alerts_of(alerts, start, end):
        alerts_by_gw.setdefault(a.gateway_id, []).append(a)
    out = []
    for unit in units:
        mine = [by_gw[gw] for gw in unit.gateways if gw in by_gw]
        found = [a for gw in unit.gateways for a in alerts_by_gw.get(gw, ())]
        if not mine and not found:
            continue
        out.append(
            CompoundIntegrity(
                compound=unit.compound,
                township=unit.township,
                taps=sum(int(t.taps) for t in mine),
                unverified_count=sum(int(t.unverified) for t in mine),
                unverified_bands=sum(int(t.unverified_bands) for t in mine),
                alerts=tuple(sorted(found, key=lambda a: (a.at, a.gateway_id, a.seq or 0))),
            )
        )
    return tuple(out)


__all__ = [
    "BUDDY_TAP",
    "FRAUD_KINDS",
    "IMPOSSIBLE_TRAVEL",
    "CompoundIntegrity",
    "FraudAlert",
    "TapMark",
    "compound_counts",
    "compound_integrity",
    "fraud_alert",
    "tap_mark",
]
