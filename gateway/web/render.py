"""HTML for the status page: Jinja2 templates (autoescaped), every word from the catalogue.

    html = render_dashboard(view, login=LoginInfo(...), refresh_s=15, lang="zh-CN")

The view (:mod:`gateway.web.view`) is data, the same for every language and for
``/status.json``; :func:`dashboard_model` turns it into what a person reads: words for every
state and field (never a code such as ``sc_active`` or ``late_completed``), local times in the
compound's zone ("09:30", "12月5日 09:30"), yes/no, no Python reprs. The templates in
``templates/`` only lay that out. There is no JavaScript at all (the page reloads itself with a
meta refresh), so a strict Content-Security-Policy holds; forms carry the session's CSRF token.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import i18n
from gateway.i18n import (
    ALERT_KIND_WORDS,
    DEVICE_KIND_WORDS,
    LANGUAGE_NAMES,
    N_,
    REASON_WORDS,
    SERVICE_WORDS,
    SUPPORTED,
    get_language,
    tone,
    translations,
    word,
)

if TYPE_CHECKING:
    import jinja2

MAX_ROWS: Final = 200

BROADCAST_WORDS: Final = {
    "requested": N_("requested"),
    "accepted": N_("accepted"),
    "refused": N_("refused"),
    "on": N_("relays on"),
    "off": N_("relays off"),
    "start": N_("started"),
    "stop": N_("stopped"),
    "ending": N_("ending"),
    "failed": N_("failed"),
    "off_failed": N_("could not switch off"),
    "failsafe_off": N_("switched off for safety"),
    "force_off": N_("forced off"),
    "interrupted": N_("interrupted"),
    "amplifier_on": N_("amplifier on"),
    "audio_unavailable": N_("audio unavailable"),
    "sound": N_("proof of sound"),
    "no_sound": N_("no sound from the speakers"),
    "announcement_fetched": N_("announcement fetched from the centre"),
    "announcement_refused": N_("announcement refused"),
    "announcement_tampered": N_("announcement file altered"),
    "button": N_("button pressed"),
    "command_received": N_("command received"),
    "command_verified": N_("command verified"),
    "command_refused": N_("command refused"),
    "schedule_missed": N_("scheduled broadcast missed"),
    "schedule_skipped": N_("scheduled broadcast skipped"),
    "schedule_refused": N_("scheduled broadcast refused"),
    "selftest": N_("weekly silent test"),
    "selftest_skipped": N_("weekly silent test postponed"),
    "stop_requested": N_("stop requested"),
    "stray_on": N_("relay on unexpectedly"),
}
BROADCAST_SOURCES: Final = {
    "button": N_("button"),
    "schedule": N_("schedule"),
    "centre": N_("district centre"),
    "command": N_("district centre"),
    "cli": N_("gateway command line"),
    "restart": N_("gateway restart"),
    "test": N_("weekly silent test"),
}
# Outcomes of the proof of sound and of the weekly silent test.
BROADCAST_RESULTS: Final = {
    "confirmed": N_("sound confirmed"),
    "passed": N_("passed"),
    "no_sound": N_("no sound from the speakers"),
    "disconnected": N_("audio input disconnected"),
    "not_checked": N_("not checked"),
    "relays_failed": N_("relays did not switch on"),
}


@dataclass(frozen=True, slots=True)
class LoginInfo:
    """What the page needs to know about the viewer's login."""

    logged_in: bool
    csrf: str = ""
    password_set: bool = False


@functools.cache
def environment(lang: str) -> jinja2.Environment:
    """The template environment for ``lang`` (one per language, made once). Jinja2 is imported
    here, on the first page served: a gateway nobody looks at keeps its ~9 MB (issue 20's
    footprint goal)."""
    import jinja2

    return i18n.make_environment(
        translations(lang),
        loader=jinja2.PackageLoader("gateway.web", "templates"),
    )


def _lang(lang: str | None) -> str:
    return lang or get_language()


def _other_languages(lang: str) -> list[dict[str, str]]:
    return [{"code": code, "name": LANGUAGE_NAMES[code]} for code in SUPPORTED if code != lang]


def _render(template: str, lang: str, **context: Any) -> str:
    return (
        environment(lang)
        .get_template(template)
        .render(lang=lang, languages=_other_languages(lang), **context)
    )


# --------------------------------------------------------------------------- the model


class _Words:
    """Formatting for one page: the language, the compound's zone and "now"."""

    def __init__(self, lang: str, tz: str, now: float | None) -> None:
        self.lang = lang
        self.tz = tz
        self.now = now
        self.t = translations(lang)

    def _(self, message: str) -> str:
        return self.t.gettext(message)

    def time(self, wall: Any) -> str:
        return i18n.format_datetime(wall, self.tz, self.lang, now=self.now)

    def age(self, wall: Any) -> str:
        if not isinstance(wall, int | float) or isinstance(wall, bool) or self.now is None:
            return ""
        return i18n.format_age(self.now - wall, self.lang)

    def state(self, code: Any) -> dict[str, str]:
        return {"text": word(code, lang=self.lang), "tone": tone(code)}

    def reason(self, text: Any) -> str:
        return word(text, REASON_WORDS, self.lang) if text else ""

    def number(self, value: Any) -> str:
        return i18n.format_number(value, self.lang)


def _problem(w: _Words, p: Mapping[str, Any]) -> dict[str, Any]:
    what = p.get("what")
    subject = str(p.get("subject") or "")
    if what == "daemon":
        title = (
            w._("The gateway daemon is not running")
            if p.get("state") == "stopped"
            else w._("The gateway daemon has not reported for a while")
        )
    elif what == "clock":
        title = w._("Clock not synchronised: times of taps and rounds cannot be trusted")
    elif what == "reader":
        where = f" ({p['checkpoint']})" if p.get("checkpoint") else ""
        title = w._("Reader %(reader)s %(state)s") % {
            "reader": subject + where,
            "state": word(p.get("state"), lang=w.lang),
        }
    elif what == "device":
        title = w._("%(kind)s %(device)s: %(state)s") % {
            "kind": _first_upper(word(p.get("kind"), DEVICE_KIND_WORDS, w.lang)),
            "device": subject,
            "state": word(p.get("state"), lang=w.lang),
        }
    elif what == "service":
        title = w._("Service %(service)s: %(state)s") % {
            "service": word(subject, SERVICE_WORDS, w.lang),
            "state": word(p.get("state"), lang=w.lang),
        }
    elif what == "link":
        title = w._("No connection to the district centre")
    else:
        title = w._("The journal cannot be read")
    return {
        "title": title,
        "reason": w.reason(p.get("reason")),
        "since": w.time(p.get("since_wall")),
        "tone": "bad" if p.get("state") in ("stopped", "offline", "down", "crashed") else "warn",
    }


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def _patrol_alert(w: _Words, a: Mapping[str, Any], login: LoginInfo) -> dict[str, Any]:
    if a.get("resolved"):
        status = w._("resolved: %(how)s") % {"how": w.reason(a["resolved"])}
    elif a.get("acknowledged"):
        status = w._("acknowledged")
    else:
        status = ""
    done = bool(a.get("resolved") or a.get("acknowledged"))
    return {
        "id": a.get("alert", ""),
        "title": word(a.get("alert_kind"), ALERT_KIND_WORDS, w.lang),
        "checkpoint": a.get("checkpoint", ""),
        "when": w.time(a.get("at_wall")),
        # The engine writes its messages in English; other languages get the facts instead.
        "message": a.get("message", "")
        if w.lang == "en"
        else (w._("round %(round)s") % {"round": a["round"]} if a.get("round") else ""),
        "status": status,
        "done": done,
        "can_ack": login.logged_in and not done,
    }


def _rounds(w: _Words, view: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of the rounds table and notes saying why a planned round may be missing."""
    notes: list[str] = []
    patrol = view.get("patrol_today")
    rows: list[dict[str, Any]] = []
    if patrol is not None:
        if patrol.get("waiting_for"):
            notes.append(
                w._(
                    "No rounds can be planned or judged until the clock is synchronised "
                    "(patrol is waiting for a synchronised clock)."
                )
            )
        for r in patrol.get("rows", [])[:MAX_ROWS]:
            rows.append(
                {
                    "window": r.get("window", ""),
                    "route": r.get("route", ""),
                    "state": w.state(r.get("state")),
                    "done": r.get("done", ""),
                    "started": r.get("started", ""),
                    "guards": ", ".join(str(g) for g in str(r.get("guards", "")).split(",") if g),
                    "note": _round_note(w, str(r.get("note", ""))),
                }
            )
        for sched in patrol.get("idle_schedules", []):
            notes.append(
                w._("Schedule %(schedule)s has no round in this patrol day.") % {"schedule": sched}
            )
        return rows, notes
    # Without the patrol service's table (no schedules, or a daemon that does not publish it):
    # the verdicts journaled today.
    for r in view.get("rounds", [])[:MAX_ROWS]:
        note = "; ".join(x for x in (r.get("missing"), r.get("reasons")) if x)
        rows.append(
            {
                "window": str(r.get("window", "")).replace(" to ", "-"),
                "route": r.get("route", ""),
                "state": w.state(r.get("verdict")),
                "done": "",
                "started": "",
                "guards": r.get("guards", ""),
                "note": w.reason(note) if note else "",
            }
        )
    if not rows and view.get("board_age_s") is not None:
        notes.append(
            w._(
                "The patrol service is not running: no schedule is configured, or the daemon "
                "has not loaded it yet."
            )
        )
    return rows, notes


def _round_note(w: _Words, note: str) -> str:
    """``patrol today``'s English note ("missing a, b") in the page's language."""
    if note.startswith("missing "):
        return w._("missing: %(checkpoints)s") % {"checkpoints": note.removeprefix("missing ")}
    if note.startswith("not judged "):
        return w._("not judged: %(checkpoints)s") % {
            "checkpoints": note.removeprefix("not judged ")
        }
    return w.reason(note)


def _link(w: _Words, link: Any) -> list[dict[str, str]]:
    if not isinstance(link, Mapping):
        return []
    state = link.get("link") or link.get("state")
    rows = [
        (w._("Connection"), w.state(state)["text"]),
        (w._("District centre"), str(link.get("centre") or "")),
        (w._("Events waiting to upload"), w.number(link.get("backlog"))),
        (w._("Last successful upload"), w.time(link.get("last_success"))),
        (w._("Since"), w.time(link.get("since"))),
    ]
    if link.get("link") != "up" and link.get("last_error"):
        rows.append((w._("Last error"), str(link["last_error"])))
    return [{"label": k, "value": v, "tone": tone(state) if i == 0 else ""}
            for i, (k, v) in enumerate(rows) if v]  # fmt: skip


def _broadcast_detail(w: _Words, payload: Mapping[str, Any]) -> str:
    parts = []
    if payload.get("source"):
        parts.append(
            w._("from %(source)s") % {"source": word(payload["source"], BROADCAST_SOURCES, w.lang)}
        )
    if isinstance(payload.get("result"), str) and payload["result"]:
        parts.append(word(payload["result"], BROADCAST_RESULTS, w.lang))
    zones = payload.get("zones")
    if isinstance(payload.get("zone"), int) and not zones:
        zones = [payload["zone"]]
    if isinstance(zones, list) and zones:
        parts.append(w._("zones: %(zones)s") % {"zones": ", ".join(map(str, zones))})
    seconds = payload.get("duration_s", payload.get("seconds"))
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        parts.append(i18n.format_duration(seconds, w.lang))
    for key in ("reason", "cause", "error"):
        if isinstance(payload.get(key), str) and payload[key]:
            parts.append(w.reason(payload[key]))
    return " · ".join(parts)


def dashboard_model(view: Mapping[str, Any], lang: str, login: LoginInfo) -> dict[str, Any]:
    """Everything the dashboard shows, as words in ``lang``."""
    w = _Words(lang, str(view.get("tz") or "UTC"), view.get("now_wall"))
    age = view.get("board_age_s")
    if age is None:
        daemon = {"text": w._("daemon not running"), "tone": "bad"}
    elif age > 60:
        daemon = {
            "text": w._("daemon last reported %(age)s") % {"age": i18n.format_age(age, lang)},
            "tone": "warn",
        }
    else:
        daemon = {"text": w._("daemon running"), "tone": "good"}
    rounds, round_notes = _rounds(w, view)
    sections = view.get("sections") or {}
    journal = view.get("journal") or {}
    return {
        "compound": view.get("compound", ""),
        "gateway": view.get("gateway", ""),
        "now": i18n.format_datetime(view.get("now_wall"), w.tz, lang),
        "daemon": daemon,
        "problems": [_problem(w, p) for p in view.get("problems", [])],
        "alerts": [_patrol_alert(w, a, login) for a in view.get("alerts", [])],
        "rounds": rounds,
        "round_notes": round_notes,
        "taps": [
            {
                "when": w.time(t.get("at_wall")),
                "checkpoint": t.get("checkpoint", ""),
                "guard": t.get("guard", ""),
                "reader": t.get("reader", ""),
                "unsynced": t.get("clock_synced") is False,
                "unverified": t.get("verified") is False,
            }
            for t in view.get("taps", [])
        ],
        "readers": [
            {
                "reader": r.get("reader", ""),
                "checkpoint": r.get("checkpoint", ""),
                "state": w.state(r.get("state")),
                "secure": i18n.format_bool(r.get("sc_active"), lang),
                "reason": w.reason(r.get("reason")),
                "since": w.time(r.get("since_wall")),
            }
            for r in view.get("readers", [])
        ],
        "devices": [
            {
                "device": h.get("device", ""),
                "kind": word(h.get("kind"), DEVICE_KIND_WORDS, lang),
                "state": w.state(h.get("state")),
                "reason": w.reason(h.get("reason")),
                "since": w.time(h.get("since_wall")),
            }
            for h in view.get("health", [])
        ],
        "link": _link(w, sections.get("sync", sections.get("link"))),
        "broadcasts": [
            {
                "when": w.time(b.get("at_wall")),
                "what": word(b.get("kind"), BROADCAST_WORDS, lang),
                "detail": _broadcast_detail(w, b.get("payload") or {}),
            }
            for b in view.get("broadcasts", [])
        ],
        "services": [
            {
                "name": word(s.get("service"), SERVICE_WORDS, lang),
                "state": w.state(s.get("state")),
                "restarts": w.number(s.get("restarts")),
                "error": str(s.get("last_error") or ""),
            }
            for s in view.get("services", [])
            if isinstance(s, Mapping)
        ],
        "journal_error": str(journal.get("error") or ""),
        "journal": [
            {"label": w._("Events recorded"), "value": w.number(journal.get("events"))},
            {"label": w._("Not yet uploaded"), "value": w.number(journal.get("unsynced"))},
            {
                "label": w._("Measurements dropped to save space"),
                "value": w.number(journal.get("dropped")),
            },
        ],
        "login": login,
    }


# --------------------------------------------------------------------------- pages


def render_dashboard(
    view: Mapping[str, Any], *, login: LoginInfo, refresh_s: int, lang: str | None = None
) -> str:
    """The main page: problems and alerts, rounds, taps, readers, devices, link, broadcast."""
    chosen = _lang(lang)
    return _render(
        "dashboard.html",
        chosen,
        page=dashboard_model(view, chosen, login),
        refresh_s=max(0, int(refresh_s)),
    )


def render_login(
    *,
    password_set: bool,
    csrf: str,
    message: str = "",
    problem: str = "",
    lang: str | None = None,
) -> str:
    """The login form, or why there is none (no password set, or its file is unsafe)."""
    return _render(
        "login.html",
        _lang(lang),
        password_set=password_set,
        csrf=csrf,
        message=message,
        problem=problem,
        refresh_s=0,
    )


def render_message(title: str, message: str, *, back: str = "/", lang: str | None = None) -> str:
    """A small page for refusals and errors (``title`` and ``message`` already translated)."""
    return _render(
        "message.html", _lang(lang), title=title, message=message, back=back, refresh_s=0
    )
