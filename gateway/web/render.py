"""HTML for the status page: small, escaped, no scripts, no external assets.

    html = render_dashboard(view, login=LoginInfo(...), refresh_s=15)

Every piece of data goes through :func:`esc`. Forms carry the session's CSRF token; there is
no JavaScript at all (the page reloads itself with a meta refresh), so a strict
Content-Security-Policy holds.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from gateway.web.view import is_secret_name

MAX_DEPTH: Final = 4
MAX_ROWS: Final = 200
MAX_COLUMNS: Final = 14

_GOOD = {"ok", "online", "running", "up", "green", "on_time", "complete", "completed", "done"}
_WARN = {"degraded", "warn", "warning", "late", "backoff", "starting", "unknown", "partial"}
_BAD = {"offline", "down", "failed", "crashed", "missed", "error", "red", "alarm", "stopped"}


def esc(value: Any) -> str:
    """Text for HTML (quotes escaped too, so it is safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def badge(state: Any) -> str:
    word = str(state).lower()
    cls = "good" if word in _GOOD else "bad" if word in _BAD else "warn" if word in _WARN else ""
    return f'<span class="badge {cls}">{esc(state)}</span>'


@dataclass(frozen=True, slots=True)
class LoginInfo:
    """What the page needs to know about the viewer's login."""

    logged_in: bool
    csrf: str = ""
    password_set: bool = False


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return esc(f"{value:.3f}".rstrip("0").rstrip("."))
    return esc(value)


def render_value(value: Any, depth: int = 0) -> str:
    """Any JSON value as HTML: tables for lists of objects, definition lists for objects."""
    if depth >= MAX_DEPTH:
        return f"<code>{esc(json.dumps(value, default=str)[:300])}</code>"
    if isinstance(value, Mapping):
        if not value:
            return '<span class="muted">none</span>'
        rows = "".join(
            f"<dt>{esc(k)}</dt><dd>{render_value(v, depth + 1)}</dd>"
            for k, v in list(value.items())[:MAX_ROWS]
        )
        return f'<dl class="kv">{rows}</dl>'
    if isinstance(value, list | tuple):
        if not value:
            return '<span class="muted">none</span>'
        if all(isinstance(v, Mapping) for v in value):
            return table(value, None, depth + 1)
        return esc(
            ", ".join(
                json.dumps(v, default=str) if not isinstance(v, str) else v
                for v in value[:MAX_ROWS]
            )
        )
    return _scalar(value)


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        for key in row:
            if key not in cols:
                cols.append(str(key))
    return cols[:MAX_COLUMNS]


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    depth: int = 0,
    *,
    state_columns: Iterable[str] = ("state", "verdict", "status"),
) -> str:
    """Rows as a scrollable table; state-like columns drawn as coloured badges."""
    if not rows:
        return '<p class="muted">none</p>'
    cols = list(columns) if columns is not None else _columns(rows)
    states = set(state_columns)
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    body = []
    for row in list(rows)[:MAX_ROWS]:
        cells = []
        for c in cols:
            v = row.get(c, "")
            if is_secret_name(c):
                v = "(hidden)"
            cell = badge(v) if c in states and v not in ("", None) else render_value(v, depth + 1)
            cells.append(f"<td>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def panel(title: str, body: str, *, panel_id: str, note: str = "") -> str:
    extra = f' <span class="muted">{esc(note)}</span>' if note else ""
    return f'<section id="{esc(panel_id)}"><h2>{esc(title)}{extra}</h2>{body}</section>'


def page(title: str, body: str, *, refresh_s: int = 0) -> str:
    """A whole HTML document around ``body`` (viewport set for phones, local CSS only)."""
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">' if refresh_s > 0 else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'{refresh}<title>{esc(title)}</title><link rel="stylesheet" href="/style.css">'
        f"</head><body>{body}</body></html>\n"
    )


def _alerts_html(alerts: Sequence[Mapping[str, Any]], login: LoginInfo) -> str:
    if not alerts:
        return '<p class="muted">no alerts</p>'
    items = []
    for a in alerts:
        done = a.get("resolved") or a.get("acknowledged")
        status = (
            f"resolved: {esc(a['resolved'])}"
            if a.get("resolved")
            else f"acknowledged {esc(a['acknowledged'])}"
            if a.get("acknowledged")
            else '<span class="badge bad">open</span>'
        )
        action = ""
        if login.logged_in and not done:
            action = (
                '<form method="post" action="/alerts/ack" class="inline">'
                f'<input type="hidden" name="csrf" value="{esc(login.csrf)}">'
                f'<input type="hidden" name="alert" value="{esc(a["alert"])}">'
                '<button type="submit">Acknowledge</button></form>'
            )
        items.append(
            f'<li class="alert{" done" if done else ""}"><b>{esc(a.get("alert_kind"))}</b> '
            f'{esc(a.get("checkpoint"))} <span class="muted">{esc(a.get("at"))}</span><br>'
            f"{esc(a.get('message'))}<br>{status} {action}</li>"
        )
    return f'<ul class="alerts">{"".join(items)}</ul>'


def _header(view: Mapping[str, Any], login: LoginInfo) -> str:
    age = view.get("board_age_s")
    if age is None:
        daemon = '<span class="badge bad">daemon status unknown</span>'
    elif age > 60:
        daemon = f'<span class="badge warn">status {esc(age)} s old</span>'
    else:
        daemon = '<span class="badge good">daemon running</span>'
    if login.logged_in:
        who = (
            '<form method="post" action="/logout" class="inline">'
            f'<input type="hidden" name="csrf" value="{esc(login.csrf)}">'
            '<button type="submit">Log out</button></form>'
        )
    else:
        who = '<a href="/login">Log in to make changes</a>'
    return (
        f"<header><h1>{esc(view.get('compound'))}</h1>"
        f"<p>gateway <b>{esc(view.get('gateway'))}</b> · {esc(view.get('now'))} · {daemon}</p>"
        f'<p class="login">{who}</p></header>'
    )


def render_dashboard(view: Mapping[str, Any], *, login: LoginInfo, refresh_s: int) -> str:
    """The main page: alerts, rounds, taps, devices, link, broadcast, services, journal."""
    j = view.get("journal") or {}
    journal_body = (
        f"<p>{esc(j['error'])}</p>"
        if "error" in j
        else render_value({k: j.get(k) for k in ("events", "last_seq", "unsynced", "dropped")})
    )
    sections = view.get("sections") or {}
    link = sections.get("sync", sections.get("link"))
    parts = [
        _header(view, login),
        panel("Alerts", _alerts_html(view.get("alerts") or [], login), panel_id="alerts"),
        panel(
            "Today's rounds",
            table(
                view.get("rounds") or [],
                ("round", "route", "window", "verdict", "missing", "reasons"),
            ),
            panel_id="rounds",
            note=str(view.get("today", "")),
        ),
        panel(
            "Last taps",
            table(view.get("taps") or [], ("at", "checkpoint", "guard", "reader")),
            panel_id="taps",
        ),
        panel(
            "Readers",
            table(
                view.get("readers") or [],
                ("reader", "checkpoint", "state", "sc_active", "reason", "since"),
            ),
            panel_id="readers",
        ),
        panel(
            "Devices",
            table(view.get("health") or [], ("device", "kind", "state", "reason", "since")),
            panel_id="devices",
        ),
        panel(
            "Link to the district centre",
            render_value(link) if link is not None else '<p class="muted">no link status</p>',
            panel_id="link",
        ),
        panel(
            "Broadcast",
            table(view.get("broadcasts") or [], ("at", "kind", "detail")),
            panel_id="broadcast",
        ),
        panel(
            "Services",
            table(view.get("services") or [], ("service", "state", "restarts", "last_error")),
            panel_id="services",
        ),
        panel("Journal", journal_body, panel_id="journal"),
    ]
    for name, value in sections.items():
        if name in ("sync", "link"):
            continue
        parts.append(
            f'<section id="section-{esc(name)}"><details><summary><h2>{esc(name)}</h2>'
            f"</summary>{render_value(value)}</details></section>"
        )
    title = f"{view.get('compound')} · gateway status"
    return page(title, "<main>" + "".join(parts) + "</main>", refresh_s=refresh_s)


def render_login(*, password_set: bool, csrf: str, message: str = "", problem: str = "") -> str:
    """The login form, or why there is none (no password set, or its file is unsafe)."""
    if problem:
        body = (
            '<h1>Log in</h1><p class="notice">Logging in is disabled: the password file is not '
            "safe to use. Set the password again on the gateway with "
            "<code>compound-gw web set-password</code>.</p>"
        )
    elif not password_set:
        body = (
            '<h1>Log in</h1><p class="notice">No password is set on this gateway, so nobody '
            "can log in and the page is read-only. An installer sets one on the gateway with "
            "<code>compound-gw web set-password</code>.</p>"
        )
    else:
        note = f'<p class="notice">{esc(message)}</p>' if message else ""
        body = (
            f"<h1>Log in</h1>{note}"
            '<form method="post" action="/login">'
            f'<input type="hidden" name="csrf" value="{esc(csrf)}">'
            '<label>Password <input type="password" name="password" autocomplete="current-password"'
            " required></label>"
            '<button type="submit">Log in</button></form>'
        )
    return page("Log in", f'<main class="narrow">{body}<p><a href="/">Back</a></p></main>')


def render_message(title: str, message: str, *, back: str = "/") -> str:
    """A small page for refusals and errors."""
    return page(
        title,
        f'<main class="narrow"><h1>{esc(title)}</h1><p>{esc(message)}</p>'
        f'<p><a href="{esc(back)}">Back</a></p></main>',
    )
