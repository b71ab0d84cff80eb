"""Bulletins as CSV (RFC 4180); the HTML pages come from :mod:`centre.bulletins.pages`
(Jinja2 templates), re-exported here as :func:`daily_html` and :func:`monthly_html`.

Every piece of text from a gateway or the registry (compound names, round ids, reasons,
explanations) is hostile input: it is HTML-escaped on the page, and a CSV cell that a
spreadsheet would take for a formula (``= + - @``, tab, CR) gets a leading ``'``.

    html = daily_html(bulletin)          # str, UTF-8 page (zh-CN), inline CSS and SVG, no script
    text = daily_csv(bulletin)           # str, CRLF line ends
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final

from centre.bulletins.model import (
    CAMERA,
    LINK,
    READER,
    RELAY,
    DailyBulletin,
    KindUptime,
    MonthlyBulletin,
    PatrolTally,
    local_text,
)

FORMULA_LEADS: Final = ("=", "+", "-", "@", "\t", "\r")
CONTENT_TYPE_HTML: Final = "text/html"
CONTENT_TYPE_CSV: Final = "text/csv"

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


# --------------------------------------------------------------------------- daily


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


# --------------------------------------------------------------------------- integrity


INTEGRITY_HEADER: Final = (
    "day",
    "township",
    "compound",
    "gateway",
    "seq",
    "time",
    "item",
    "checkpoints",
    "guards",
    "wristbands",
    "verified",
    "evidence",
)


def integrity_csv(b: DailyBulletin) -> str:
    """One row per tap with an unverified band (``item`` unverified_tap) and per anti-fraud
    alert (``item`` impossible_travel / buddy_tap, its evidence taps as ``time checkpoint
    band`` separated by ``; ``)."""
    tz = b.timezone
    rows: list[tuple[Any, ...]] = []
    for c in b.integrity:
        for t in c.unverified:
            rows.append((b.day, c.township, c.compound, t.gateway_id, t.seq,
                         local_text(t.at, tz), "unverified_tap", t.checkpoint, t.guard,
                         t.wristband, "no", ""))  # fmt: skip
        for a in c.alerts:
            evidence = "; ".join(
                f"{local_text(t.at, tz)} {t.checkpoint} {t.wristband}" for t in a.taps
            )
            rows.append((b.day, c.township, c.compound, a.gateway_id,
                         "" if a.seq is None else a.seq, local_text(a.at, tz), a.kind,
                         " ".join(a.checkpoints), " ".join(a.guards), " ".join(a.wristbands),
                         "", evidence))  # fmt: skip
    return to_csv(INTEGRITY_HEADER, rows)


MONTHLY_INTEGRITY_HEADER: Final = (
    "month",
    "township",
    "compound",
    "taps",
    "unverified_taps",
    "unverified_bands",
    "impossible_travel_alerts",
    "buddy_tap_alerts",
)


def monthly_integrity_csv(b: MonthlyBulletin) -> str:
    """One row per compound: its taps, unverified ones and anti-fraud alerts of the month."""
    return to_csv(
        MONTHLY_INTEGRITY_HEADER,
        (
            (
                b.month,
                c.township,
                c.compound,
                c.taps,
                c.unverified_count,
                c.unverified_bands,
                c.travel_alerts,
                c.buddy_alerts,
            )
            for c in b.integrity
        ),
    )


from centre.bulletins.pages import daily_html, monthly_html  # noqa: E402

__all__ = [
    "daily_csv",
    "daily_html",
    "devices_csv",
    "faults_csv",
    "integrity_csv",
    "missed_csv",
    "monthly_csv",
    "monthly_html",
    "monthly_integrity_csv",
    "pct",
    "safe_cell",
    "to_csv",
]
