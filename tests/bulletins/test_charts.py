"""The bulletin charts as drawn: SVG parsed back, bars and cells counted and measured; unknown is
drawn as unknown; the Chinese page carries no untranslated catalogue string."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

from centre.bulletins import pages
from centre.bulletins.charts import PLOT_H, UPTIME_W, History
from centre.bulletins.model import (
    Broadcasts,
    DeviceUptime,
    MonthlyBulletin,
    MonthlyCompound,
    MonthlyTownship,
    PatrolTally,
    Unit,
    daily_bulletin,
    latest_summaries,
    latest_verdicts,
    month_bounds,
)
from centre.bulletins.security import security_bulletin, security_html
from tests.bulletins.helpers import NOV_2, at_gateway, event, summary, verdict

PO = Path(pages.__file__).parent / "locale" / "zh_CN" / "LC_MESSAGES" / "bulletins.po"
UNITS = [
    Unit("Rose Garden", "North", ("gw-rose",)),
    Unit("Bamboo", "South", ("gw-bamboo",)),
]
DAYS = ("2026-11-01", "2026-11-02", "2026-11-03")


class Svg(HTMLParser):
    """Every element with its attributes, and every text node (with its enclosing tags)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())

    def rects(self, cls: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == "rect" and cls in a.get("class", "").split()]


def parse(page: str) -> Svg:
    p = Svg()
    p.feed(page)
    return p


def rounds() -> list[dict[str, Any]]:
    """North: day 1 two walked and one missed (04:00); day 2 nothing judged; day 3 one late.
    South: day 1 one missed at 04:00, day 3 one missed at 23:00 and one unassessable."""
    evs = []
    seq = 0

    def add(gw: str, compound: str, town: str, rid: str, day: str, state: str) -> None:
        nonlocal seq
        seq += 1
        evs.append(at_gateway(event(seq, "patrol.round", verdict(rid, day, state), NOV_2), gw,
                              compound, town))  # fmt: skip

    add("gw-rose", "Rose Garden", "North", "a@2026-11-01T20:00", DAYS[0], "completed")
    add("gw-rose", "Rose Garden", "North", "b@2026-11-01T22:00", DAYS[0], "late_completed")
    add("gw-rose", "Rose Garden", "North", "c@2026-11-02T04:00", DAYS[0], "missed")
    add("gw-rose", "Rose Garden", "North", "d@2026-11-03T22:00", DAYS[2], "late_completed")
    add("gw-bamboo", "Bamboo", "South", "a@2026-11-02T04:00", DAYS[0], "missed")
    add("gw-bamboo", "Bamboo", "South", "b@2026-11-03T23:00", DAYS[2], "missed")
    add("gw-bamboo", "Bamboo", "South", "c@2026-11-03T20:00", DAYS[2], "unassessable")
    return evs


def daily_page(lang: str = "zh-CN") -> str:
    evs = rounds()
    verdicts = latest_verdicts(evs)
    b = daily_bulletin(DAYS[2], UNITS, verdicts, {}, [], now=NOV_2 + 3 * 86400)
    history = History(UNITS, list(verdicts.values()), DAYS)
    return pages.daily_html(b, lang=lang, history=history)


def test_compliance_bars_have_the_right_count_heights_and_labels() -> None:
    svg = parse(daily_page())
    bars = svg.rects("bar")
    assert len(bars) == 2 * len(DAYS)  # two townships, one bar a day
    north = [b for b in bars if b["data-day"] in DAYS][:3]
    south = bars[3:]
    assert [b["data-value"] for b in north] == ["66.7%", "未知", "100.0%"]
    assert [float(b["height"]) for b in north] == [round(2 / 3 * PLOT_H, 1), PLOT_H, PLOT_H]
    assert [b["class"] for b in north] == ["bar good", "bar unknown", "bar good"]
    # Bars stand on the same baseline: y + height is constant.
    assert len({round(float(b["y"]) + float(b["height"]), 1) for b in bars}) == 1
    # South never walked a judged round in full: 0 % is drawn as 0, unknown as unknown.
    assert [b["data-value"] for b in south] == ["0.0%", "未知", "0.0%"]
    assert [float(b["height"]) for b in south] == [0.0, PLOT_H, 0.0]
    # Each chart has a Chinese title and a table alternative with the same values.
    text = " ".join(svg.texts)
    assert "North：每日巡逻达标率" in text and "数据表：North 每日巡逻达标率" in text
    assert "2026-11-01 66.7%" in " ".join(
        f"{a} {b}" for a, b in zip(svg.texts, svg.texts[1:], strict=False)
    )


def test_heatmap_has_24_cells_per_township_with_the_missed_counts() -> None:
    svg = parse(daily_page())
    cells = svg.rects("cell")
    assert len(cells) == 2 * 24
    counts = {(c["data-township"], int(c["data-hour"])): int(c["data-count"]) for c in cells}
    assert {k: v for k, v in counts.items() if v} == {
        ("North", 4): 1,
        ("South", 4): 1,
        ("South", 23): 1,
    }
    # The largest count gets the darkest shade; an empty hour gets the "zero" style, no shade.
    dark = [c for c in cells if c["data-count"] != "0"]
    assert {c["fill-opacity"] for c in dark} == {"1.0"}
    assert all("fill-opacity" not in c and "zero" in c["class"] for c in cells if c not in dark)


def _device(compound: str, up: float, down: float, unknown: float) -> DeviceUptime:
    return DeviceUptime(compound, "gw", "camera", "cam-1", "", up, 0.0, down, unknown, "up",
                        None, "")  # fmt: skip


def _compound(name: str, town: str, devices: tuple[DeviceUptime, ...]) -> MonthlyCompound:
    return MonthlyCompound(name, town, PatrolTally(), devices, Broadcasts(), ())


def _month(*compounds: MonthlyCompound) -> MonthlyBulletin:
    start, end = month_bounds("2026-10")
    return MonthlyBulletin(
        month="2026-10",
        timezone="Asia/Shanghai",
        generated_at=end,
        period_start=start,
        period_end=end,
        townships=(MonthlyTownship("North", compounds),),
    )


HALF = _compound("Half", "North", (_device("Half", 50.0, 25.0, 25.0),))
DARK = _compound("Dark", "North", (_device("Dark", 0.0, 0.0, 100.0),))
EMPTY = _compound("Empty", "North", ())


def test_uptime_bars_have_the_right_segments() -> None:
    svg = parse(pages.monthly_html(_month(HALF, DARK, EMPTY)))
    segs = [a for t, a in svg.elements if t == "rect" and "seg" in a.get("class", "")]
    assert [(s["data-part"], float(s["width"])) for s in segs] == [
        ("working", UPTIME_W / 2),
        ("down", UPTIME_W / 4),
        ("unknown", UPTIME_W / 4),
        ("unknown", UPTIME_W),  # Dark: all of its time unknown
        ("unknown", UPTIME_W),  # Empty: no device time at all
    ]
    assert [a["data-compound"] for t, a in svg.elements if t == "g"] == ["Half", "Dark", "Empty"]


def test_unknown_uptime_is_never_shown_as_zero_percent() -> None:
    page = pages.monthly_html(_month(DARK, EMPTY))
    # A device whose whole month is unknown reads "unknown", not "0.0%": in the chart, its
    # table, the summary tables and the device table.
    assert not re.search(r"(?<![0-9.])0\.0%", page)
    rows = re.findall(r'<tr data-compound="Dark">(.*?)</tr>', page, re.S)
    assert rows and "未知" in rows[0]
    # The same compound with a known month does show its share.
    assert "50.0%" in pages.monthly_html(_month(HALF))


def test_a_day_without_data_never_says_everyone_patrolled() -> None:
    b = daily_bulletin("2026-11-02", UNITS, {}, {}, [], now=NOV_2 + 86400)
    zh = pages.daily_html(b)
    en = pages.daily_html(b, lang="en")
    assert 'id="no-data"' in zh and "当天没有巡逻数据" in zh
    assert 'id="no-missed"' not in zh
    assert "No patrol data for this day" in en and "patrolled:" not in en.lower()
    # Rounds planned (a daily summary) but none judged yet: still no claim, and it says why.
    sums = latest_summaries(
        [at_gateway(event(1, "patrol.daily_summary", summary("2026-11-02", [3]), NOV_2),
                    "gw-rose", "Rose Garden", "North")]
    )  # fmt: skip
    b = daily_bulletin("2026-11-02", UNITS, {}, sums, [], now=NOV_2 + 86400)
    zh = pages.daily_html(b)
    assert "当天尚无已判定的巡逻（计划 3 次" in zh and 'id="no-missed"' not in zh


def _untranslated(page: str) -> list[str]:
    """Text nodes of ``page`` that are a catalogue source string left in English."""
    with PO.open("rb") as f:
        catalogue = read_po(f)
    patterns = []
    for m in catalogue:
        if not m.id or not isinstance(m.id, str) or m.string == m.id:
            continue
        pieces = re.split(r"%\(\w+\)[sd]", m.id)
        patterns.append(re.compile(".+".join(re.escape(p) for p in pieces) + r"\Z"))
    return [t for t in parse(page).texts if any(p.match(t) for p in patterns)]


def test_the_chinese_pages_hold_no_untranslated_string_and_the_check_can_fail() -> None:
    zh = daily_page()
    assert _untranslated(zh) == []
    start, end = month_bounds("2026-10")
    monthly = MonthlyBulletin("2026-10", "Asia/Shanghai", end, start, end, ())
    assert _untranslated(pages.monthly_html(monthly)) == []
    # The English page is full of them: the check finds what it is meant to find.
    found = _untranslated(daily_page("en"))
    assert "By compound" in found and any(t.startswith("Daily patrol bulletin") for t in found)


def test_the_security_bulletin_carries_the_charts() -> None:
    monthly = _month(HALF, DARK)
    sb = security_bulletin(monthly, cases=[], cases_imported=False, survey={})
    plain = security_html(sb)
    assert "<svg" not in plain  # without the month's data: no chart
    days = ("2026-10-30", "2026-10-31")
    page = security_html(sb, monthly=monthly, history=History(UNITS, [], days))
    svg = parse(page)
    parts = [a["data-part"] for t, a in svg.elements if t == "rect" and "seg" in a.get("class", "")]
    assert parts == ["working", "down", "unknown", "unknown"]
    assert len(svg.rects("bar")) == 2 * len(days)  # North and South, no verdict: all unknown
    assert {b["class"] for b in svg.rects("bar")} == {"bar unknown"}
    assert len(svg.rects("cell")) == 2 * 24
    assert _untranslated(page) == []
