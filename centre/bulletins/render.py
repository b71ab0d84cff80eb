"""Bulletins as HTML pages (phone-readable, printable, self-contained) and CSV (RFC 4180).

Every piece of text from a gateway or the registry (compound names, round ids, reasons,
explanations) is hostile input: it is HTML-escaped on the page, and a CSV cell that a
spreadsheet would take for a formula (``= + - @``, tab, CR) gets a leading ``'``.

    html = daily_html(bulletin)          # str, UTF-8 page with inline CSS, no script
    text = daily_csv(bulletin)           # str, CRLF line ends
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from html import escape
from typing import Any, Final

from centre.bulletins.model import (
    CAMERA,
    LINK,
    READER,
    RELAY,
    STATUS_EXPLAIN,
    STATUS_EXPLAINED,
    STATUS_NO_DATA,
    STATUS_OK,
    DailyBulletin,
    DeviceUptime,
    Explanation,
    Fault,
    KindUptime,
    MonthlyBulletin,
    MonthlyCompound,
    PatrolTally,
    local_text,
)

FORMULA_LEADS: Final = ("=", "+", "-", "@", "\t", "\r")
KIND_TITLES: Final = {READER: "Readers", CAMERA: "Cameras", RELAY: "Relay boards", LINK: "Link"}
CONTENT_TYPE_HTML: Final = "text/html"
CONTENT_TYPE_CSV: Final = "text/csv"

_CSS: Final = """
:root{--fg:#1b1f24;--muted:#59636e;--line:#d0d7de;--bad:#b3261e;--warn:#8a5a00;--ok:#1a7f37;
--bg:#fff;--head:#f3f5f7}
*{box-sizing:border-box}
body{margin:0;padding:12px;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"Noto Sans","Noto Sans CJK SC",sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:1.3rem;margin:0 0 4px}
h2{font-size:1.1rem;margin:20px 0 8px;border-bottom:2px solid var(--line);padding-bottom:4px}
h3{font-size:1rem;margin:14px 0 6px}
.meta{color:var(--muted);font-size:.85rem;margin:0 0 12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(92px,1fr));gap:8px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px;text-align:center}
.card b{display:block;font-size:1.35rem}
.card span{font-size:.75rem;color:var(--muted)}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{border-bottom:1px solid var(--line);padding:5px 6px;text-align:right;white-space:nowrap}
th{background:var(--head);position:sticky;top:0;white-space:normal;vertical-align:bottom}
th:first-child,td:first-child,td.text,th.text{text-align:left;white-space:normal;
overflow-wrap:anywhere;min-width:7em}
.bad{color:var(--bad);font-weight:600}
.warn{color:var(--warn);font-weight:600}
.ok{color:var(--ok)}
.missed{border:1px solid var(--line);border-left:4px solid var(--bad);border-radius:6px;
padding:8px 10px;margin:8px 0;overflow-wrap:anywhere}
.missed.explained{border-left-color:var(--ok)}
.missed p{margin:4px 0}
.expl{background:var(--head);border-radius:4px;padding:6px 8px;margin:6px 0;white-space:pre-wrap}
.empty{color:var(--muted);font-style:italic}
td small{display:block;color:var(--muted);font-size:.7rem;white-space:normal}
footer{margin-top:24px;color:var(--muted);font-size:.75rem}
@media screen and (max-width:560px){
table.stack thead{display:none}
table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}
table.stack tr{border:1px solid var(--line);border-radius:8px;margin:0 0 8px;padding:4px 10px}
table.stack td{display:flex;justify-content:space-between;gap:12px;border:0;padding:2px 0;
white-space:normal;text-align:right;min-width:0}
table.stack td::before{content:attr(data-label);color:var(--muted);text-align:left}
table.stack td:first-child{font-weight:600;font-size:1rem;text-align:left}
table.stack td:first-child::before{content:none}
}
@page{size:A4;margin:12mm}
@media print{body{padding:0;font-size:10pt}.scroll{overflow:visible}th{position:static}
h2{break-after:avoid}.missed,tr{break-inside:avoid}a{color:inherit;text-decoration:none}}
"""


# --------------------------------------------------------------------------- helpers


def pct(x: float | None) -> str:
    """``0.9412`` → ``94.1%``; None (nothing to divide by) → ``n/a``."""
    return "n/a" if x is None else f"{x * 100:.1f}%"


def pct_number(x: float | None) -> str:
    """For CSV: ``94.1`` or empty."""
    return "" if x is None else f"{x * 100:.1f}"


def short_time(iso: str) -> str:
    """``2026-11-03T04:00:00+08:00`` (a gateway's local time) → ``2026-11-03 04:00``."""
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def window_text(start: str, end: str) -> str:
    """``2026-11-03 04:00-06:00`` (the end's date is shown only when it differs)."""
    a, b = short_time(start), short_time(end)
    if not b:
        return a
    return f"{a}-{b[11:]}" if a[:11] == b[:11] and len(b) == 16 else f"{a} to {b}"


def safe_cell(value: Any) -> str:
    """A CSV cell that no spreadsheet will evaluate (OWASP CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_LEADS) else text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """RFC 4180: comma separated, CRLF line ends, fields quoted when needed."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow([safe_cell(h) for h in header])
    for row in rows:
        w.writerow([safe_cell(c) for c in row])
    return buf.getvalue()


def e(value: Any) -> str:
    return escape(str(value), quote=True)


def _page(title: str, meta: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{_CSS}</style></head>\n"
        f'<body><header><h1 id="title">{e(title)}</h1><p class="meta">{meta}</p></header>\n'
        f"{body}\n"
        "<footer>Compound Gateway district centre. Counts come from the gateways' own patrol "
        "verdicts (latest revision of each round); unknown time is never counted as up. "
        "See docs/bulletins.md.</footer>\n"
        "</body></html>\n"
    )


def _table(
    table_id: str,
    header: Sequence[str],
    rows: Sequence[str],
    empty: str = "nothing to show",
    text_cols: Collection[int] = (0,),
) -> str:
    """A table that turns into one card per row on a narrow screen (labels from the header).

    ``text_cols``: columns of words (left-aligned headings); the others hold numbers.
    """
    if not rows:
        return f'<p class="empty" id="{e(table_id)}">{e(empty)}</p>'
    head = "".join(
        f'<th scope="col"{" class=text" if i in text_cols else ""}>{e(h)}</th>'
        for i, h in enumerate(header)
    )
    labelled = []
    for row in rows:
        # Rows are built in this module from escaped text, so "<td" only ever opens one of our
        # cells: each gets its column's label for the phone layout.
        parts = row.split("<td")
        labelled.append(
            parts[0]
            + "".join(
                f'<td data-label="{e(header[i]) if i < len(header) else ""}"{part}'
                for i, part in enumerate(parts[1:])
            )
        )
    return (
        f'<div class="scroll"><table class="stack" id="{e(table_id)}"><thead><tr>{head}</tr>'
        f"</thead><tbody>{''.join(labelled)}</tbody></table></div>"
    )


def _cls_count(n: int, cls: str) -> str:
    return f'<td class="{cls}">{n}</td>' if n else f"<td>{n}</td>"


_STATUS_CLASS: Final = {
    STATUS_EXPLAIN: "bad",
    STATUS_EXPLAINED: "ok",
    STATUS_NO_DATA: "warn",
    STATUS_OK: "ok",
}


def _explanation_html(x: Explanation, tz: str) -> str:
    who = e(x.recorded_by) + (f" (given by {e(x.given_by)})" if x.given_by else "")
    return (
        f'<div class="expl"><small>{e(local_text(x.recorded_at, tz))} · {who}</small>\n'
        f"{e(x.text)}</div>"
    )


# --------------------------------------------------------------------------- daily


def daily_html(b: DailyBulletin) -> str:
    """The daily patrol bulletin page."""
    t = b.total
    cards = "".join(
        f'<div class="card" id="total-{key}"><b>{val}</b><span>{e(label)}</span></div>'
        for key, val, label in (
            ("planned", t.planned, "planned"),
            ("completed", t.completed, "completed"),
            ("late", t.late, "late"),
            ("incomplete", t.incomplete, "incomplete"),
            ("missed", t.missed, "missed"),
            ("unassessable", t.unassessable, "unassessable"),
            ("awaiting", t.awaiting, "awaited"),
            ("checkpoints", pct(t.checkpoint_completion), "checkpoints"),
        )
    )
    must = b.must_explain
    if b.missed:
        items = []
        for m in b.missed:
            expl = "".join(_explanation_html(x, b.timezone) for x in m.explanations)
            state = (
                '<p class="ok">explained</p>'
                if m.explanations
                else '<p class="bad">no explanation yet: the unit must explain</p>'
            )
            responsible = ", ".join(m.responsible) or "(none named)"
            items.append(
                f'<div class="missed{" explained" if m.explanations else ""}" '
                f'data-compound="{e(m.compound)}" data-round="{e(m.round_id)}">'
                f"<p><b>{e(m.compound)}</b> · {e(m.township)}</p>"
                f"<p>Round <code>{e(m.round_id)}</code> (route {e(m.route)}), "
                f"{e(window_text(m.local_start, m.local_end))}</p>"
                f"<p>Responsible: {e(responsible)}</p>"
                f"<p>{e('; '.join(m.reasons))}</p>{state}{expl}</div>"
            )
        missed = "".join(items)
    else:
        missed = '<p class="empty" id="no-missed">Every unit patrolled: no missed round.</p>'
    rows = []
    for r in b.rows:
        c = r.tally
        rows.append(
            f'<tr data-compound="{e(r.compound)}"><td>{e(r.compound)}</td>'
            f'<td class="text">{e(r.township)}</td><td>{c.planned}</td><td>{c.completed}</td>'
            f"{_cls_count(c.late, 'warn')}{_cls_count(c.incomplete, 'warn')}"
            f"{_cls_count(c.missed, 'bad')}<td>{c.unassessable}</td>"
            f"{_cls_count(c.awaiting, 'warn')}<td>{pct(c.checkpoint_completion)}</td>"
            f'<td class="{_STATUS_CLASS.get(r.status, "warn")} text">{e(r.status)}</td></tr>'
        )
    body = (
        f'<section id="totals"><h2>All compounds</h2><div class="cards">{cards}</div></section>\n'
        f'<section id="did-not-patrol"><h2>Units that did not patrol ({len(must)} still to '
        f"explain)</h2>{missed}</section>\n"
        '<section id="by-compound"><h2>By compound</h2>'
        + _table(
            "compounds",
            (
                "Compound",
                "Township",
                "Planned",
                "Completed",
                "Late",
                "Incompl.",
                "Missed",
                "Unassess.",
                "Awaited",
                "Checkpoints",
                "Status",
            ),
            rows,
            "No compound is enrolled.",
            text_cols=(0, 1, 10),
        )
        + "</section>"
    )
    meta = (
        f"Patrol day {e(b.day)} · times in {e(b.timezone)} · "
        f"generated {e(local_text(b.generated_at, b.timezone))}"
    )
    return _page(f"Daily patrol bulletin {b.day}", meta, body)


DAILY_HEADER: Final = (
    "day",
    "township",
    "compound",
    "planned",
    "completed",
    "late",
    "incomplete",
    "missed",
    "unassessable",
    "awaited",
    "checkpoints_done",
    "checkpoints_due",
    "checkpoint_completion_pct",
    "missed_explained",
    "status",
)


def daily_csv(b: DailyBulletin) -> str:
    """One row per compound (the table of the page)."""
    return to_csv(
        DAILY_HEADER,
        (
            (
                b.day,
                r.township,
                r.compound,
                *_tally_counts(r.tally),
                pct_number(r.tally.checkpoint_completion),
                r.tally.missed_explained,
                r.status,
            )
            for r in b.rows
        ),
    )


def _tally_counts(t: PatrolTally) -> tuple[int, ...]:
    return (
        t.planned,
        t.completed,
        t.late,
        t.incomplete,
        t.missed,
        t.unassessable,
        t.awaiting,
        t.checkpoints_done,
        t.checkpoints_due,
    )


MISSED_HEADER: Final = (
    "day",
    "township",
    "compound",
    "gateway",
    "round",
    "route",
    "start",
    "end",
    "responsible",
    "reasons",
    "explained",
    "explanations",
)


def missed_csv(b: DailyBulletin) -> str:
    """One row per missed round, with every explanation recorded so far."""
    return to_csv(
        MISSED_HEADER,
        (
            (
                b.day,
                m.township,
                m.compound,
                m.gateway_id,
                m.round_id,
                m.route,
                short_time(m.local_start),
                short_time(m.local_end),
                " ".join(m.responsible),
                "; ".join(m.reasons),
                bool(m.explanations),
                " | ".join(
                    f"{local_text(x.recorded_at, b.timezone)} {x.recorded_by}"
                    + (f" (given by {x.given_by})" if x.given_by else "")
                    + f": {x.text}"
                    for x in m.explanations
                ),
            )
            for m in b.missed
        ),
    )


# --------------------------------------------------------------------------- monthly


def _uptime_cells(kinds: dict[str, KindUptime]) -> str:
    cells = []
    for k in (READER, CAMERA, RELAY, LINK):
        u = kinds[k]
        if not u.devices:
            cells.append("<td>-</td>")
            continue
        note = f" ({pct(u.unknown)} unknown)" if u.unknown_s > 0 else ""
        cells.append(f"<td><span>{pct(u.uptime)}<small>{e(note)}</small></span></td>")
    return "".join(cells)


_MONTHLY_COLS: Final = (
    "Planned",
    "Compliance",
    "On time",
    "Missed",
    "Checkpoints",
    "Readers",
    "Cameras",
    "Relays",
    "Link",
    "Broadcasts",
    "Open faults",
)


def _monthly_row(
    name: str, tag: str, t: PatrolTally, kinds: dict[str, KindUptime], run: int, faults: int
) -> str:
    return (
        f'<tr data-{tag}="{e(name)}"><td>{e(name)}</td><td>{t.planned}</td>'
        f"<td>{pct(t.compliance)}</td><td>{pct(t.on_time)}</td>{_missed_cell(t)}"
        f"<td>{pct(t.checkpoint_completion)}</td>{_uptime_cells(kinds)}<td>{run}</td>"
        f"{_cls_count(faults, 'bad')}</tr>"
    )


def _missed_cell(t: PatrolTally) -> str:
    if not t.missed:
        return "<td>0</td>"
    cls = "ok" if t.missed_explained == t.missed else "bad"
    return f'<td class="{cls}">{t.missed} ({t.missed_explained} explained)</td>'


def _fault_row(f: Fault, tz: str) -> str:
    cls = "bad" if f.state == "down" else "warn"
    return (
        f'<tr><td>{e(f.compound)}</td><td class="text">{e(f.kind)}</td>'
        f'<td class="text">{e(f.device)}</td><td class="{cls} text">{e(f.state)}</td>'
        f'<td class="text">{e(local_text(f.since, tz))}</td>'
        f'<td class="text">{e(f.reason)}</td></tr>'
    )


def _device_row(d: DeviceUptime) -> str:
    p = d.period_s or 1.0
    name = d.device + (f" ({d.label})" if d.label else "")
    return (
        f"<tr><td>{e(d.compound)}</td><td class='text'>{e(d.kind)}</td>"
        f"<td class='text'>{e(name)}</td><td>{pct(d.up_s / p)}</td>"
        f"<td>{pct(d.degraded_s / p)}</td><td>{pct(d.down_s / p)}</td>"
        f"<td>{pct(d.unknown_s / p)}</td><td>{e(d.state_at_end)}</td></tr>"
    )


def monthly_html(b: MonthlyBulletin) -> str:
    """The monthly bulletin page: townships, their compounds, open faults, every device."""
    sections = []
    town_rows = [
        _monthly_row(
            t.township or "(no township)",
            "township",
            t.patrol,
            t.uptime_by_kind,
            t.broadcasts.run,
            t.faults,
        )
        for t in b.townships
    ]
    sections.append(
        '<section id="townships"><h2>By township</h2>'
        + _table("township-table", ("Township", *_MONTHLY_COLS), town_rows, "No compound.")
        + "</section>"
    )
    for i, t in enumerate(b.townships):
        comp_rows = [_compound_row(c) for c in t.compounds]
        faults = [_fault_row(f, b.timezone) for c in t.compounds for f in c.faults]
        devices = [_device_row(d) for c in t.compounds for d in c.devices]
        sections.append(
            f'<section class="township" id="township-{i}">'
            f"<h2>{e(t.township or '(no township)')}</h2>"
            + _table(f"compounds-{i}", ("Compound", *_MONTHLY_COLS), comp_rows)
            + "<h3>Open faults at the end of the period</h3>"
            + _table(
                f"faults-{i}",
                ("Compound", "Kind", "Device", "State", "Since", "Reason"),
                faults,
                "No open fault.",
                text_cols=(0, 1, 2, 3, 4, 5),
            )
            + "<h3>Device uptime (share of the period)</h3>"
            + _table(
                f"devices-{i}",
                ("Compound", "Kind", "Device", "Up", "Degraded", "Down", "Unknown", "At end"),
                devices,
                "No device reported a state.",
                text_cols=(0, 1, 2),
            )
            + "</section>"
        )
    until = local_text(b.period_end, b.timezone)
    meta = (
        f"Month {e(b.month)} · {e(local_text(b.period_start, b.timezone))} to {e(until)}"
        + (" (month under way)" if b.partial else "")
        + f" · times in {e(b.timezone)} · generated {e(local_text(b.generated_at, b.timezone))}"
    )
    return _page(f"Monthly bulletin {b.month}", meta, "\n".join(sections))


def _compound_row(c: MonthlyCompound) -> str:
    return _monthly_row(
        c.compound, "compound", c.patrol, c.uptime_by_kind, c.broadcasts.run, len(c.faults)
    )


MONTHLY_HEADER: Final = (
    "month",
    "level",
    "township",
    "compound",
    "planned",
    "completed",
    "late",
    "incomplete",
    "missed",
    "unassessable",
    "missed_explained",
    "compliance_pct",
    "on_time_pct",
    "checkpoint_completion_pct",
    "reader_uptime_pct",
    "camera_uptime_pct",
    "relay_uptime_pct",
    "link_uptime_pct",
    "unknown_pct",
    "broadcasts_run",
    "broadcasts_failed",
    "broadcasts_refused",
    "open_faults",
)


def _monthly_csv_row(
    month: str,
    level: str,
    township: str,
    compound: str,
    t: PatrolTally,
    kinds: dict[str, KindUptime],
    casts: Any,
    faults: int,
) -> tuple[Any, ...]:
    all_kinds = KindUptime("all")
    for k in kinds.values():
        all_kinds = all_kinds + k
    return (
        month,
        level,
        township,
        compound,
        t.planned,
        t.completed,
        t.late,
        t.incomplete,
        t.missed,
        t.unassessable,
        t.missed_explained,
        pct_number(t.compliance),
        pct_number(t.on_time),
        pct_number(t.checkpoint_completion),
        *(pct_number(kinds[k].uptime) for k in (READER, CAMERA, RELAY, LINK)),
        pct_number(all_kinds.unknown),
        casts.run,
        casts.failed,
        casts.refused,
        faults,
    )


def monthly_csv(b: MonthlyBulletin) -> str:
    """A township row followed by its compounds' rows (``level`` says which)."""
    rows = []
    for t in b.townships:
        rows.append(
            _monthly_csv_row(
                b.month,
                "township",
                t.township,
                "",
                t.patrol,
                t.uptime_by_kind,
                t.broadcasts,
                t.faults,
            )
        )
        for c in t.compounds:
            rows.append(
                _monthly_csv_row(
                    b.month,
                    "compound",
                    t.township,
                    c.compound,
                    c.patrol,
                    c.uptime_by_kind,
                    c.broadcasts,
                    len(c.faults),
                )
            )
    return to_csv(MONTHLY_HEADER, rows)


DEVICES_HEADER: Final = (
    "month",
    "township",
    "compound",
    "gateway",
    "kind",
    "device",
    "label",
    "up_s",
    "degraded_s",
    "down_s",
    "unknown_s",
    "uptime_pct",
    "state_at_end",
    "since",
)


def devices_csv(b: MonthlyBulletin) -> str:
    rows = [
        (
            b.month,
            t.township,
            d.compound,
            d.gateway_id,
            d.kind,
            d.device,
            d.label,
            round(d.up_s, 3),
            round(d.degraded_s, 3),
            round(d.down_s, 3),
            round(d.unknown_s, 3),
            pct_number(d.uptime),
            d.state_at_end,
            local_text(d.since, b.timezone),
        )
        for t in b.townships
        for c in t.compounds
        for d in c.devices
    ]
    return to_csv(DEVICES_HEADER, rows)


FAULTS_HEADER: Final = (
    "month",
    "township",
    "compound",
    "gateway",
    "kind",
    "device",
    "state",
    "since",
    "reason",
)


def faults_csv(b: MonthlyBulletin) -> str:
    rows = [
        (
            b.month,
            t.township,
            f.compound,
            f.gateway_id,
            f.kind,
            f.device,
            f.state,
            local_text(f.since, b.timezone),
            f.reason,
        )
        for t in b.townships
        for c in t.compounds
        for f in c.faults
    ]
    return to_csv(FAULTS_HEADER, rows)


__all__ = [
    "daily_csv",
    "daily_html",
    "devices_csv",
    "faults_csv",
    "missed_csv",
    "monthly_csv",
    "monthly_html",
    "pct",
    "safe_cell",
    "to_csv",
]
