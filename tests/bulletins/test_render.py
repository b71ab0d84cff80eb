"""Renderers: exact CSV tables for the fixture, hostile names escaped in HTML and defused in CSV."""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from pathlib import Path

from centre.bulletins import render
from centre.bulletins.model import (
    Explanation,
    GatewayActivity,
    Unit,
    daily_bulletin,
    latest_summaries,
    latest_verdicts,
    monthly_bulletin,
)
from centre.bulletins.source import write_daily_files, write_monthly_files
from tests.bulletins.helpers import NOV_1, NOV_2, OCT_1, H, at_gateway, event, summary, verdict
from tests.bulletins.test_daily import DAY, build, lotus_events, rose_events

HOSTILE = [
    '<script>alert("x")</script>',
    '=HYPERLINK("http://evil","click")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\tTab",
    'Rose "Garden", Block 3\r\nsecond line',
    "Lotus & <b>bold</b> 'quoted'",
]


class TextCollector(HTMLParser):
    """Every text node and attribute value as the browser would see it; and any tag names."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.attrs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(v for _, v in attrs if v is not None)

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def test_daily_csv_is_the_expected_table() -> None:
    x = Explanation(1, "Rose Garden", "night@2026-11-03T04:00", "guard ill", "chief Wang",
                    "duty-1", NOV_2 + 3 * 86400 + 8 * H)  # fmt: skip
    b = build(rose_events() + lotus_events(), [x])
    text = render.daily_csv(b)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    assert text.split("\r\n") == [
        "day,township,compound,planned,completed,late,incomplete,missed,unassessable,awaited,"
        "checkpoints_done,checkpoints_due,checkpoint_completion_pct,missed_explained,status",
        "2026-11-02,North,Lotus Court,3,1,0,0,0,1,1,2,2,100.0,0,verdicts awaited",
        "2026-11-02,North,Rose Garden,4,1,1,1,1,0,0,8,12,66.7,1,explained",
        "2026-11-02,South,Bamboo,0,0,0,0,0,0,0,0,0,,0,no data",
        "",
    ]
    missed = list(csv.reader(io.StringIO(render.missed_csv(b))))
    assert missed == [
        list(render.MISSED_HEADER),
        [
            "2026-11-02", "North", "Rose Garden", "gw-rose", "night@2026-11-03T04:00", "north",
            "2026-11-03 04:00", "2026-11-03 06:00", "g1 g2",
            "no credited tap between 04:00 and 06:00", "yes",
            # NOV_2 (local midnight) + 3 days + 8 h
            "2026-11-05 08:00 duty-1 (given by chief Wang): guard ill",
        ],
    ]  # fmt: skip


def test_percentages_and_blanks() -> None:
    assert render.pct(None) == "n/a"
    assert render.pct(2 / 3) == "66.7%"
    assert render.pct_number(1.0) == "100.0"
    assert render.pct_number(None) == ""


def hostile_daily() -> str:
    units = [Unit(name, name, (f"gw-{i}",)) for i, name in enumerate(HOSTILE)]
    evs = []
    for i, name in enumerate(HOSTILE):
        rid = f"n<{i}>@2026-11-03T04:00"
        evs.append(
            at_gateway(
                event(1, "patrol.round", verdict(rid, DAY, "missed", reasons=[name],
                                                 counts={name: 0}), NOV_2),
                f"gw-{i}", name, name,
            )
        )  # fmt: skip
    expl = [Explanation(1, HOSTILE[0], "n<0>@2026-11-03T04:00", HOSTILE[1], HOSTILE[5],
                        HOSTILE[7], NOV_2)]  # fmt: skip
    b = daily_bulletin(DAY, units, latest_verdicts(evs), {}, expl, now=NOV_2)
    return render.daily_html(b)


def test_hostile_names_are_escaped_in_html() -> None:
    page = hostile_daily()
    assert "<script" not in page
    assert "<b>bold" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    p = TextCollector()
    p.feed(page)
    # Only our own tags: nothing a name carried became markup.
    assert set(p.tags) <= {
        "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "section",
        "div", "b", "span", "code", "small", "table", "thead", "tbody", "tr", "th", "td",
        "nav", "a", "figure", "figcaption", "svg", "rect", "text", "line", "g",
        "details", "summary", "i",
    }  # fmt: skip
    text = "".join(p.texts)
    for name in HOSTILE:
        # Each name reads back exactly (line breaks aside) as text and as an attribute value.
        assert name.replace("\r\n", "\n").split("\n")[0] in text
        assert name in p.attrs or name.replace("\r\n", "\n") in p.attrs


def test_hostile_names_are_defused_in_csv() -> None:
    units = [Unit(name, "T", (f"gw-{i}",)) for i, name in enumerate(HOSTILE)]
    b = daily_bulletin(DAY, units, {}, {}, [], now=NOV_2)
    rows = list(csv.reader(io.StringIO(render.daily_csv(b), newline="")))
    names = [r[2] for r in rows[1:]]
    expected = []
    for name in HOSTILE:
        expected.append("'" + name if name[0] in "=+-@\t\r" else name)
    assert sorted(names) == sorted(expected)
    for cell in (c for r in rows for c in r):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert render.safe_cell(-3) == "-3"  # our own numbers are left alone


def test_monthly_renders_and_files_are_written(tmp_path: Path) -> None:
    units = [Unit(HOSTILE[0], HOSTILE[1], ("gw-1",))]
    evs = [
        at_gateway(e, "gw-1", HOSTILE[0], HOSTILE[1])
        for e in (
            event(1, "health.state", {"device": HOSTILE[2], "kind": "camera", "state": "down",
                                      "reason": HOSTILE[3]}, OCT_1 - H),
        )
    ]  # fmt: skip
    act = GatewayActivity("gw-1", horizon=NOV_1 + 86400, state_events=evs)
    b = monthly_bulletin("2026-10", units, {}, {"gw-1": act}, now=NOV_1 + 86400)
    page = render.monthly_html(b)
    assert "<script" not in page
    p = TextCollector()
    p.feed(page)
    assert HOSTILE[0] in "".join(p.texts)
    faults = list(csv.reader(io.StringIO(render.faults_csv(b), newline="")))
    assert faults[1][1:] == [
        "'" + HOSTILE[1], HOSTILE[0], "gw-1", "camera", "'" + HOSTILE[2], "down",
        "2026-09-30 23:00", "'" + HOSTILE[3],
    ]  # fmt: skip
    devices = list(csv.reader(io.StringIO(render.devices_csv(b), newline="")))
    assert devices[1][7:12] == ["0.0", "0.0", "2678400.0", "0.0", "0.0"]
    monthly = list(csv.reader(io.StringIO(render.monthly_csv(b), newline="")))
    assert [r[1] for r in monthly[1:]] == ["township", "compound"]
    assert monthly[2][15] == "0.0"  # camera uptime
    paths = write_monthly_files(b, tmp_path / "out")
    assert sorted(x.name for x in paths) == [
        "monthly-2026-10-devices.csv",
        "monthly-2026-10-faults.csv",
        "monthly-2026-10.csv",
        "monthly-2026-10.html",
    ]
    assert (tmp_path / "out" / "monthly-2026-10.html").read_text(encoding="utf-8") == page
    daily = write_daily_files(build(rose_events()), tmp_path / "out")
    assert [x.name for x in daily] == [
        "daily-2026-11-02.html",
        "daily-2026-11-02.csv",
        "daily-2026-11-02-missed.csv",
    ]
    assert not [x for x in (tmp_path / "out").iterdir() if x.name.startswith(".")]


def test_summary_only_compound_counts_as_awaited() -> None:
    evs = [at_gateway(event(1, "patrol.daily_summary", summary(DAY, [2]), NOV_2), "gw-0", "A", "T")]
    b = daily_bulletin(DAY, [Unit("A", "T", ("gw-0",))], {}, latest_summaries(evs), [], now=NOV_2)
    assert (b.rows[0].tally.planned, b.rows[0].tally.awaiting, b.rows[0].status) == (
        2, 2, "verdicts awaited",
    )  # fmt: skip
