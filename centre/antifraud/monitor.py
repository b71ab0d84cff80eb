"""The detectors on ingest: after each stored batch, judge the taps around the new ones.

    monitor = AntifraudMonitor(repo, walks=lambda gateway_id: table_or_none)
    added = await monitor.after_ingest("gw-rose-01", batch.events, now=time.time())

For a batch that brought taps, the monitor reads that gateway's stored ``tap`` and
``camera.snapshot`` events from ``lookback_s`` before its earliest new tap to ``lookback_s``
after its latest (a buddy-tap episode or a travel pair may straddle batches), runs
:func:`detect_impossible_travel` (only where ``walks`` gives the gateway a walking table) and
:func:`detect_buddy_taps`, and records every alert in the centre's alert store keyed by its
``alert_id``: running again over overlapping windows never records one twice. Batches without
taps cost nothing. The cost is one indexed time-range read per batch with taps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from centre.antifraud.detectors import (
    BuddyRules,
    BuddyTap,
    ImpossibleTravel,
    TravelRules,
    detect_buddy_taps,
    detect_impossible_travel,
    tap_records_from_events,
)
from centre.antifraud.walking import WalkingTimes
from centre.store import NewAlert, Repository

DEFAULT_LOOKBACK_S: Final = 6 * 3600.0
MAX_WINDOW_EVENTS: Final = 50_000


def _no_walks(gateway_id: str) -> WalkingTimes | None:
    return None


class AntifraudMonitor:
    """Runs the detectors over the taps an ingest brought (see the module doc)."""

    def __init__(
        self,
        repo: Repository,
        *,
        walks: Callable[[str], WalkingTimes | None] = _no_walks,
        travel: TravelRules | None = None,
        buddy: BuddyRules | None = None,
        lookback_s: float = DEFAULT_LOOKBACK_S,
    ) -> None:
        self.repo = repo
        self.walks = walks
        self.travel = travel or TravelRules()
        self.buddy = buddy or BuddyRules()
        self.lookback_s = lookback_s

    async def after_ingest(
        self, gateway_id: str, events: Iterable[Mapping[str, Any]], *, now: float
    ) -> int:
        """Judge the window around the new taps; returns how many alerts were new."""
        new_taps = tap_records_from_events(gateway_id, events)
        if not new_taps:
            return 0
        since = min(t.at for t in new_taps) - self.lookback_s
        until = max(t.at for t in new_taps) + self.lookback_s
        window: list[dict[str, Any]] = []
        for kind in ("tap", "camera.snapshot"):
            window += await self.repo.events(
                gateway_id=gateway_id, kind=kind, since=since, until=until, limit=MAX_WINDOW_EVENTS
            )
        taps = tap_records_from_events(gateway_id, window)
        found: list[ImpossibleTravel | BuddyTap] = []
        table = self.walks(gateway_id)
        if table is not None:
            found += detect_impossible_travel(taps, table, self.travel)
        found += detect_buddy_taps(taps, self.buddy)
        return await self.repo.add_alerts([_alert(gateway_id, a) for a in found], now)


def _alert(gateway_id: str, a: ImpossibleTravel | BuddyTap) -> NewAlert:
    if isinstance(a, ImpossibleTravel):
        seq, at = a.second.seq, a.second.at
    else:
        first = a.co_taps[0]
        seq, at = first.b.seq, a.start
    return NewAlert(a.alert_id, a.kind, gateway_id, seq, at, a.as_dict())
