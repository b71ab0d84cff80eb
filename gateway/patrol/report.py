"""What ``compound-gw patrol today`` and ``compound-gw patrol explain ROUND`` print.

    engine, _ = replay(cfg.patrol, events, now=time.time())
    print(render_today(today_rows(engine)))
    print("\\n".join(explain(engine, "night@2026-11-28T22:00")))

Functions return data (for ``--json``) and small text renderers sit beside them. No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from gateway.patrol.engine import (
    AlertRaised,
    AlertResolved,
    DailySummary,
    PatrolEngine,
    RoundReport,
    RoundVerdict,
    SummaryRow,
)

TODAY_COLUMNS = ("round", "route", "window", "state", "done", "started", "guards", "note")


def today_rows(engine: PatrolEngine, day: str | None = None) -> list[dict[str, Any]]:
    """One row per round of the patrol day; without ``day``, :func:`current_rows`."""
    if day is None:
        return current_rows(engine)[1]
    return [_today_row(engine, engine.report(rid)) for rid in engine.round_ids(day)]


def current_day(engine: PatrolEngine) -> str | None:
    """The patrol day in progress at ``engine.now`` (None before any time is known)."""
    if not math.isfinite(engine.now):
        return None  # nothing journaled yet: no time, no patrol day
    return engine.day_of(engine.now + 1e-6)


def current_rows(engine: PatrolEngine) -> tuple[str | None, list[dict[str, Any]]]:
    """The patrol day in progress and what guards and the status page need to see now: its
    rounds, then the rounds of the next patrol day whose window has already opened.

    A round from 07:30 to 09:30 belongs to the patrol day whose summary is due tomorrow at
    ``summary_hour`` (08:00): at 07:45 the day in progress is still yesterday's, but the round
    is being walked now and must be on the page.
    """
    day = current_day(engine)
    if day is None:
        return None, []
    rows = today_rows(engine, day)
    following = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    for rid in engine.round_ids(following):
        rep = engine.report(rid)
        if rep.window_start > engine.now:
            break  # round_ids are in window-start order
        rows.append(_today_row(engine, rep))
    return day, rows


def _today_row(engine: PatrolEngine, rep: RoundReport) -> dict[str, Any]:
    """One ``patrol today`` row (the status page shows the same)."""
    note = ""
    if rep.missing:
        note = "missing " + ", ".join(rep.missing)
    elif rep.excused:
        note = "not judged " + ", ".join(rep.excused)
    elif rep.outages:
        note = rep.outages[0]
    flags = [c for c in rep.codes if c in ("out_of_order", "implausible_walk", "repeated_taps")]
    if flags:
        note = (note + "; " if note else "") + ", ".join(flags)
    return {
        "round": rep.round_id,
        "route": rep.route_id,
        "window": f"{_hhmm(rep.local_start)}-{_hhmm(rep.local_end)}",
        "state": rep.state,
        "done": f"{rep.covered}/{len(rep.counts)}",
        "started": "" if rep.started_at is None else engine.local(rep.started_at).strftime("%H:%M"),
        "guards": ",".join(rep.guards),
        "note": note,
    }


def render_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Plain left-aligned text table."""
    cells = [[str(c) for c in columns]] + [
        ["" if row.get(c) is None else str(row.get(c)) for c in columns] for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells
    ]
    return "\n".join(lines)


def render_today(rows: Sequence[dict[str, Any]]) -> str:
    """The ``patrol today`` table."""
    if not rows:
        return "no rounds planned for this patrol day"
    return render_table(rows, TODAY_COLUMNS)


SUMMARY_COLUMNS = (
    "key",
    "planned",
    "completed",
    "late",
    "incomplete",
    "missed",
    "unassessable",
    "pending",
    "checkpoints",
    "on_time",
    "sequence",
)


def summary_rows(rows: Sequence[SummaryRow]) -> list[dict[str, Any]]:
    return [
        {
            "key": r.key,
            "planned": r.planned,
            "completed": r.completed,
            "late": r.late,
            "incomplete": r.incomplete,
            "missed": r.missed,
            "unassessable": r.unassessable,
            "pending": r.pending,
            "checkpoints": _pct(r.checkpoint_completion),
            "on_time": _pct(r.on_time_rate),
            "sequence": _pct(r.sequence_adherence),
        }
        for r in rows
    ]


def render_summary(summary: DailySummary) -> str:
    """The daily summary as two text tables (routes, guards)."""
    parts = [f"patrol day {summary.day}", "", "by route:"]
    parts.append(render_table(summary_rows(summary.routes), SUMMARY_COLUMNS))
    parts += ["", "by guard:", render_table(summary_rows(summary.guards), SUMMARY_COLUMNS)]
    if summary.missed_rounds:
        parts += ["", "missed rounds: " + ", ".join(summary.missed_rounds)]
    return "\n".join(parts)


def explain(engine: PatrolEngine, round_id: str) -> list[str]:
    """Why a round has its state or verdict, as lines of text. KeyError for an unknown round."""
    rep = engine.report(round_id)
    sched = next(s for s in engine.section.schedules if s.id == rep.schedule_id)
    route = engine.section.route(rep.route_id)
    lines = [
        f"round {rep.round_id}: route {rep.route_name} "
        f"({'ordered' if route.ordered else 'any order'}, {len(route.checkpoints)} checkpoints, "
        f"each {rep.required_taps}x)",
        f"window {rep.local_start} .. {rep.local_end} ({engine.section.timezone}); "
        f"grace {sched.grace_minutes:g} min, expected {sched.expected_minutes:g} min",
        f"responsible: {', '.join(rep.responsible) or 'any known guard'}",
        f"{'verdict' if rep.final else 'state so far'}: {rep.state}",
    ]
    lines += [f"  - {reason}" for reason in rep.reasons]
    lines.append("checkpoints:")
    for cp, n in rep.counts:
        mark = (
            "ok"
            if n >= rep.required_taps
            else ("not judged" if cp in rep.excused else "MISSING" if rep.final else "pending")
        )
        lines.append(f"  {cp}: {n} of {rep.required_taps} tap(s) [{mark}]")
    taps = engine.round_taps(round_id)
    if taps:
        lines.append("taps:")
        for tap, status in taps:
            late = ""
            if tap.buffered:
                arrived = engine.local(tap.known_at).strftime("%H:%M:%S")
                late = f", arrived {arrived} from offline buffer"
            lines.append(
                f"  {engine.local(tap.at).strftime('%H:%M:%S')} {tap.checkpoint} by {tap.guard} "
                f"(seq {tap.seq}{late}): {status}"
            )
    if rep.outages:
        lines.append("outages in the window: " + "; ".join(rep.outages))
    history = engine.round_history(round_id)
    if history:
        lines.append("history:")
        for out in history:
            when = engine.local(out.at).strftime("%H:%M:%S")
            if isinstance(out, AlertRaised):
                lines.append(f"  {when} alert {out.alert_kind}: {out.message}")
            elif isinstance(out, AlertResolved):
                lines.append(f"  {when} resolved {out.alert_kind}: {out.resolution}")
            elif isinstance(out, RoundVerdict):
                lines.append(f"  {when} verdict {out.report.state} (revision {out.revision})")
    return lines


def _hhmm(iso: str) -> str:
    return iso[11:16]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


__all__ = [
    "current_day",
    "current_rows",
    "explain",
    "render_summary",
    "render_table",
    "render_today",
    "summary_rows",
    "today_rows",
]
