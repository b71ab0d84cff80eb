"""Chart geometry for the bulletin pages: numbers here, SVG markup in ``templates/_charts.html``.

Theory of operation
-------------------
Three charts, each drawn server-side as inline SVG (no script is needed to read them) and each
paired on the page with a table holding the same numbers (the text alternative):

* **patrol compliance per township per day** (:func:`compliance_series` then
  :func:`compliance_chart`): one bar per day, its height the share of judged rounds walked in
  full (on time or late) that day, as :attr:`PatrolTally.compliance`; a day with no judged
  round is *unknown* and is drawn as a dashed outline at full height, never as a 0 % bar;
* **device uptime per compound** (:func:`uptime_chart`): one stacked horizontal bar per
  compound, working (up or degraded) / not working (down) / unknown seconds over all seconds of
  its devices; a compound with no device time is one unknown bar;
* **missed rounds by hour of day** (:func:`missed_by_hour` then :func:`heatmap`): one row per
  township, 24 cells, the shade proportional to the count (the darkest cell is the largest).

Every function is pure; heights and widths are rounded to 0.1 px so tests can compare them.

    series = compliance_series(units, verdicts, days, tz)
    chart = compliance_chart(series, days)      # .townships[i].bars[j].height
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from centre.bulletins.model import (
    MISSED,
    DeviceUptime,
    MonthlyBulletin,
    PatrolTally,
    RoundCount,
    Unit,
    Verdict,
    tally,
)

PLOT_H: Final = 80.0  # px, height of a compliance panel's plot area
BAR_W: Final = 8.0  # px, one day
BAR_GAP: Final = 2.0
LEFT: Final = 34.0  # room for the axis labels
TOP: Final = 6.0
BOTTOM: Final = 18.0
UPTIME_W: Final = 240.0  # px, the full width of an uptime bar (100 %)
UPTIME_ROW: Final = 22.0
UPTIME_LABEL_W: Final = 120.0
CELL: Final = 14.0  # px, one heatmap cell
HEAT_LABEL_W: Final = 90.0
HOURS: Final = tuple(range(24))


@dataclass(frozen=True, slots=True)
class History:
    """What the charts need beyond one bulletin: the units and the latest verdicts of the days
    shown (see :func:`centre.bulletins.source.patrol_history`)."""

    units: Sequence[Unit]
    verdicts: Sequence[Verdict]  # every missed verdict is listed here
    days: Sequence[str]
    counts: Sequence[RoundCount] = ()  # the other verdicts, when counted (PatrolDigest)


def _r(x: float) -> float:
    return round(x, 1)


# --------------------------------------------------------------------------- compliance


def compliance_series(
    units: Sequence[Unit],
    verdicts: Iterable[Verdict],
    days: Sequence[str],
    counts: Iterable[RoundCount] = (),
) -> dict[str, list[PatrolTally]]:
    """Per township (sorted), one tally per day of ``days`` from the latest verdicts (listed,
    and ``counts`` of more)."""
    township_of = {gw: u.township for u in units for gw in u.gateways}
    wanted = set(days)
    by: dict[tuple[str, str], list[Verdict]] = {}
    for v in verdicts:
        if v.day not in wanted:
            continue
        town = township_of.get(v.gateway_id, v.township)
        by.setdefault((town, v.day), []).append(v)
    counted: dict[tuple[str, str], list[RoundCount]] = {}
    for c in counts:
        if c.day not in wanted:
            continue
        town = township_of.get(c.gateway_id, c.township)
        counted.setdefault((town, c.day), []).append(c)
    towns = sorted({u.township for u in units} | {t for t, _ in by} | {t for t, _ in counted})
    return {
        t: [tally(by.get((t, d), ()), counted=counted.get((t, d), ())) for d in days] for t in towns
    }


@dataclass(frozen=True, slots=True)
class Bar:
    day: str
    x: float
    y: float
    height: float
    value: float | None  # 0..1, None when unknown

    @property
    def unknown(self) -> bool:
        return self.value is None


@dataclass(frozen=True, slots=True)
class CompliancePanel:
    township: str
    bars: tuple[Bar, ...]
    mean: float | None  # over the known days


@dataclass(frozen=True, slots=True)
class ComplianceChart:
    days: tuple[str, ...]
    panels: tuple[CompliancePanel, ...]
    width: float
    height: float
    plot_h: float = PLOT_H
    left: float = LEFT
    top: float = TOP


def compliance_chart(
    series: Mapping[str, Sequence[PatrolTally]], days: Sequence[str]
) -> ComplianceChart:
    """One panel per township, one bar per day (see the module doc)."""
    panels = []
    for town, tallies in series.items():
        bars = []
        for i, (day, t) in enumerate(zip(days, tallies, strict=True)):
            value = t.compliance
            x = LEFT + i * (BAR_W + BAR_GAP)
            h = PLOT_H if value is None else _r(value * PLOT_H)
            bars.append(Bar(day, _r(x), _r(TOP + PLOT_H - h), h, value))
        known = [b.value for b in bars if b.value is not None]
        panels.append(
            CompliancePanel(town, tuple(bars), sum(known) / len(known) if known else None)
        )
    width = LEFT + len(days) * (BAR_W + BAR_GAP) + 4
    return ComplianceChart(tuple(days), tuple(panels), _r(width), TOP + PLOT_H + BOTTOM)


# --------------------------------------------------------------------------- uptime


@dataclass(frozen=True, slots=True)
class UptimeRow:
    compound: str
    township: str
    y: float
    working: float | None  # shares 0..1 of the devices' time; None: no device time at all
    down: float | None
    unknown: float | None
    working_w: float
    down_w: float
    unknown_w: float

    @property
    def all_unknown(self) -> bool:
        return self.working is None or (self.unknown or 0.0) >= 1.0


@dataclass(frozen=True, slots=True)
class UptimeChart:
    rows: tuple[UptimeRow, ...]
    width: float
    height: float
    label_w: float = UPTIME_LABEL_W
    bar_w: float = UPTIME_W
    row_h: float = UPTIME_ROW


def uptime_shares(devices: Sequence[DeviceUptime]) -> tuple[float, float, float] | None:
    """(working, down, unknown) shares of all the devices' seconds; None if there are none."""
    period = sum(d.period_s for d in devices)
    if period <= 0:
        return None
    working = sum(d.up_s + d.degraded_s for d in devices) / period
    unknown = sum(d.unknown_s for d in devices) / period
    return working, max(0.0, 1.0 - working - unknown), unknown


def uptime_chart(b: MonthlyBulletin) -> UptimeChart:
    rows = []
    compounds = [c for t in b.townships for c in t.compounds]
    for i, c in enumerate(compounds):
        shares = uptime_shares(c.devices)
        y = _r(i * UPTIME_ROW)
        if shares is None:
            rows.append(UptimeRow(c.compound, c.township, y, None, None, None, 0.0, 0.0, 0.0))
            continue
        w, d, u = shares
        ww, dw = _r(w * UPTIME_W), _r(d * UPTIME_W)
        rows.append(
            UptimeRow(c.compound, c.township, y, w, d, u, ww, dw, _r(max(0.0, UPTIME_W - ww - dw)))
        )
    return UptimeChart(
        tuple(rows), UPTIME_LABEL_W + UPTIME_W + 60, _r(max(1, len(rows)) * UPTIME_ROW + 4)
    )


# --------------------------------------------------------------------------- heatmap


def local_hour(iso: str, tz: str) -> int | None:
    """The hour (0..23) of a gateway's local ISO time in the district's zone; None if unreadable."""
    try:
        t = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(ZoneInfo(tz))
    return t.hour


def missed_by_hour(
    units: Sequence[Unit], verdicts: Iterable[Verdict], days: Sequence[str], tz: str
) -> dict[str, list[int]]:
    """Per township (sorted), 24 counts of missed rounds by the hour their window opened."""
    township_of = {gw: u.township for u in units for gw in u.gateways}
    wanted = set(days)
    out: dict[str, list[int]] = {t: [0] * 24 for t in sorted({u.township for u in units})}
    for v in verdicts:
        if v.day not in wanted or v.verdict != MISSED:
            continue
        hour = local_hour(v.local_start, tz)
        if hour is None:
            continue
        town = township_of.get(v.gateway_id, v.township)
        out.setdefault(town, [0] * 24)[hour] += 1
    return dict(sorted(out.items()))


@dataclass(frozen=True, slots=True)
class Cell:
    hour: int
    x: float
    count: int
    shade: float  # fill opacity 0..1 (0 for no missed round)


@dataclass(frozen=True, slots=True)
class HeatRow:
    township: str
    y: float
    cells: tuple[Cell, ...]
    total: int


@dataclass(frozen=True, slots=True)
class Heatmap:
    rows: tuple[HeatRow, ...]
    peak: int
    width: float
    height: float
    cell: float = CELL
    label_w: float = HEAT_LABEL_W


def heatmap(counts: Mapping[str, Sequence[int]]) -> Heatmap:
    peak = max((n for row in counts.values() for n in row), default=0)
    rows = []
    for i, (town, row) in enumerate(counts.items()):
        cells = tuple(
            Cell(h, _r(HEAT_LABEL_W + h * CELL), n, round(n / peak, 2) if peak else 0.0)
            for h, n in enumerate(row)
        )
        rows.append(HeatRow(town, _r(i * CELL + 14), cells, sum(row)))
    return Heatmap(tuple(rows), peak, HEAT_LABEL_W + 24 * CELL + 4, _r(len(rows) * CELL + 14 + 4))


__all__ = [
    "ComplianceChart",
    "Heatmap",
    "History",
    "UptimeChart",
    "compliance_chart",
    "compliance_series",
    "heatmap",
    "local_hour",
    "missed_by_hour",
    "uptime_chart",
    "uptime_shares",
]
