"""The daily and monthly bulletin pages (and the sign-in and index pages) from Jinja2 templates.

Theory of operation
-------------------
Python turns a bulletin into plain view data (translated words, numbers formatted, times in the
district's zone, chart geometry from :mod:`centre.bulletins.charts`); the templates
``templates/bulletin_*.html`` and ``templates/_charts.html`` hold every tag, autoescaped. Words
come from the ``bulletins`` catalogue (``locale/zh_CN/LC_MESSAGES/bulletins.po``): Simplified
Chinese by default, English with ``lang="en"``. Internal values (a compound's status, a device
kind or state, the centre's own fault reasons) are shown through :data:`STATUS_NAMES`,
:data:`KIND_NAMES`, :data:`STATE_NAMES`, :data:`REASON_NAMES`; text a gateway sent (a reason, a
device name) is shown as sent, escaped.

    html = daily_html(bulletin, lang="zh-CN", history=history)   # history: optional charts
    html = monthly_html(bulletin, lang="en")

Unknown is a word, never a number: a share with nothing to divide by, a device whose whole
period is unknown, a day with no judged round.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from centre.bulletins import charts
from centre.bulletins.charts import History
from centre.bulletins.integrity import BUDDY_TAP, IMPOSSIBLE_TRAVEL, CompoundIntegrity, TapMark
from centre.bulletins.model import (
    CAMERA,
    DOWN,
    LINK,
    READER,
    RELAY,
    STATUS_AWAITING,
    STATUS_EXPLAIN,
    STATUS_EXPLAINED,
    STATUS_NO_DATA,
    STATUS_OK,
    UNKNOWN,
    DailyBulletin,
    DeviceUptime,
    Fault,
    KindUptime,
    MonthlyBulletin,
    PatrolTally,
    local_text,
)
from centre.bulletins.words import LANGUAGE_NAMES, N_, SUPPORTED, environment, translations

PREFIX: Final = "/bulletins"
STATUS_NAMES: Final = {
    STATUS_OK: N_("patrolled"),
    STATUS_EXPLAIN: N_("must explain"),
    STATUS_EXPLAINED: N_("explained"),
    STATUS_NO_DATA: N_("no data"),
    STATUS_AWAITING: N_("verdicts awaited"),
}
STATUS_CLASS: Final = {
    STATUS_EXPLAIN: "bad",
    STATUS_EXPLAINED: "ok",
    STATUS_NO_DATA: "warn",
    STATUS_OK: "ok",
    STATUS_AWAITING: "warn",
}
KIND_NAMES: Final = {
    READER: N_("reader"),
    CAMERA: N_("camera"),
    RELAY: N_("relay board"),
    LINK: N_("centre link"),
    "gateway": N_("gateway"),
}
STATE_NAMES: Final = {
    "up": N_("up"),
    "degraded": N_("degraded"),
    DOWN: N_("down"),
    UNKNOWN: N_("unknown"),
}
REASON_NAMES: Final = {
    "gateway stopped": N_("gateway stopped"),
    "no upload since": N_("no upload since"),
    "never uploaded": N_("never uploaded"),
}
DEVICE_NAMES: Final = {"centre link": N_("centre link")}


class Words:
    """Translation and formatting for one language."""

    def __init__(self, lang: str, tz: str) -> None:
        self.lang = lang
        self.tz = tz
        self.t = translations(lang)
        self.unknown = self.t.gettext(N_("unknown"))

    def __call__(self, msgid: str, **kw: Any) -> str:
        text = self.t.gettext(msgid)
        return text % kw if kw else text

    def name(self, table: Mapping[str, str], value: str) -> str:
        return self.t.gettext(table[value]) if value in table else value

    def pct(self, x: float | None) -> str:
        return self.unknown if x is None else f"{x * 100:.1f}%"

    def time(self, t: float | None) -> str:
        return local_text(t, self.tz) if t is not None else self.unknown

    def local(self, iso: str) -> str:
        """A gateway's local ISO time in the district's zone: ``2026-11-03 04:00``."""
        try:
            t = datetime.fromisoformat(iso)
        except ValueError:
            return iso
        if t.tzinfo is not None:
            t = t.astimezone(ZoneInfo(self.tz))
        return t.strftime("%Y-%m-%d %H:%M")

    def window(self, start: str, end: str) -> str:
        a, b = self.local(start), self.local(end)
        if len(a) == len(b) == 16 and a[:11] == b[:11]:
            return f"{a}-{b[11:]}"
        return f"{a} - {b}"


ALERT_NAMES: Final = {
    IMPOSSIBLE_TRAVEL: N_("impossible travel"),
    BUDDY_TAP: N_("buddy tapping"),
}


def _duration(w: Words, seconds: float | None) -> str:
    if seconds is None:
        return w.unknown
    if seconds < 120:
        return w(N_("%(n)s s"), n=f"{seconds:.0f}")
    return w(N_("%(n)s min"), n=f"{seconds / 60:.1f}")


def _tap_view(w: Words, t: TapMark) -> dict[str, Any]:
    return {
        "time": w.time(t.at),
        "checkpoint": t.checkpoint or w.unknown,
        "guard": t.guard or w.unknown,
        "wristband": t.wristband or w.unknown,
        "snapshots": [s[:12] for s in t.snapshots],
    }


def integrity_view(w: Words, items: tuple[CompoundIntegrity, ...]) -> list[dict[str, Any]]:
    """Per compound: counts, the unverified taps and the alerts with their evidence."""
    out = []
    for c in items:
        alerts = []
        for a in c.alerts:
            if a.kind == IMPOSSIBLE_TRAVEL:
                what = w(
                    N_("band %(band)s (%(guard)s) from %(route)s in %(elapsed)s; walking "
                       "needs at least %(walk)s"),
                    band="、".join(a.wristbands) or w.unknown,
                    guard="、".join(a.guards) or w.unknown,
                    route=" → ".join(a.checkpoints) or w.unknown,
                    elapsed=_duration(w, a.elapsed_s),
                    walk=_duration(w, a.min_walk_s),
                )  # fmt: skip
            else:
                what = w(
                    N_("bands %(bands)s (%(guards)s) tapped together at %(checkpoints)s"),
                    bands="、".join(a.wristbands) or w.unknown,
                    guards="、".join(a.guards) or w.unknown,
                    checkpoints="、".join(a.checkpoints) or w.unknown,
                )  # fmt: skip
            alerts.append(
                {
                    "kind": a.kind,
                    "name": w.name(ALERT_NAMES, a.kind),
                    "time": w.time(a.at),
                    "what": what,
                    "taps": [_tap_view(w, t) for t in a.taps],
                }
            )
        out.append(
            {
                "compound": c.compound,
                "township": c.township or w(N_("(no township)")),
                "taps": c.taps,
                "unverified": c.unverified_count,
                "unverified_bands": c.unverified_bands,
                "travel": c.travel_alerts,
                "buddy": c.buddy_alerts,
                "unverified_taps": [_tap_view(w, t) for t in c.unverified],
                "alerts": alerts,
            }
        )
    return out


def _url(base: str, page: str, lang: str, **query: str) -> str:
    return f"{base}/{page}?" + urlencode(query | {"lang": lang})


def _common(
    w: Words, base: str, page: str, query: Mapping[str, str], generated: float
) -> dict[str, Any]:
    other = next(code for code in SUPPORTED if code != w.lang)
    return {
        "lang": w.lang,
        "timezone": w.tz,
        "generated": w.time(generated),
        "other_language": other,
        "other_language_name": LANGUAGE_NAMES[other],
        "other_language_url": _url(base, page, other, **query),
        "index_url": f"{base}?" + urlencode({"lang": w.lang}),
    }


# --------------------------------------------------------------------------- charts


def compliance_view(w: Words, history: History | None) -> dict[str, Any] | None:
    if history is None or not history.days:
        return None
    series = charts.compliance_series(history.units, history.verdicts, history.days, history.counts)
    chart = charts.compliance_chart(series, history.days)
    return {
        "chart": chart,
        "first": history.days[0],
        "last": history.days[-1],
        "panels": [
            {
                "township": p.township or w(N_("(no township)")),
                "mean": w.pct(p.mean),
                "bars": [
                    {
                        "bar": b,
                        "label": w.pct(b.value),
                        "axis": b.day[8:] if i % 5 == 0 or i == len(p.bars) - 1 else "",
                    }
                    for i, b in enumerate(p.bars)
                ],
            }
            for p in chart.panels
        ],
    }


def heatmap_view(w: Words, history: History | None) -> dict[str, Any] | None:
    if history is None or not history.days:
        return None
    counts = charts.missed_by_hour(history.units, history.verdicts, history.days, w.tz)
    hm = charts.heatmap(counts)
    return {
        "map": hm,
        "first": history.days[0],
        "last": history.days[-1],
        "rows": [{"row": r, "township": r.township or w(N_("(no township)"))} for r in hm.rows],
    }


def uptime_view(w: Words, b: MonthlyBulletin) -> dict[str, Any]:
    chart = charts.uptime_chart(b)
    return {
        "chart": chart,
        "rows": [
            {
                "row": r,
                "working": w.unknown if r.all_unknown else w.pct(r.working),
                "down": w.unknown if r.all_unknown else w.pct(r.down),
                "unknown": w.pct(r.unknown) if r.unknown is not None else w.unknown,
            }
            for r in chart.rows
        ],
    }


# --------------------------------------------------------------------------- daily


def daily_html(
    b: DailyBulletin,
    *,
    lang: str = "zh-CN",
    history: History | None = None,
    base: str = PREFIX,
) -> str:
    """The daily patrol bulletin page (see the module doc)."""
    w = Words(lang, b.timezone)
    t = b.total
    day = date.fromisoformat(b.day)
    cards = [
        ("planned", t.planned, w(N_("planned"))),
        ("completed", t.completed, w(N_("completed"))),
        ("late", t.late, w(N_("late"))),
        ("incomplete", t.incomplete, w(N_("incomplete"))),
        ("missed", t.missed, w(N_("missed"))),
        ("unassessable", t.unassessable, w(N_("unassessable"))),
        ("awaiting", t.awaiting, w(N_("awaited"))),
        ("checkpoints", w.pct(t.checkpoint_completion), w(N_("checkpoints"))),
    ]
    missed = [
        {
            "compound": m.compound,
            "township": m.township or w(N_("(no township)")),
            "round": m.round_id,
            "route": m.route or w(N_("(no route)")),
            "window": w.window(m.local_start, m.local_end),
            "responsible": "、".join(m.responsible) or w(N_("(none named)")),
            "reasons": "; ".join(m.reasons),
            "explanations": [
                {
                    "when": w.time(x.recorded_at),
                    "recorded_by": x.recorded_by,
                    "given_by": x.given_by,
                    "text": x.text,
                }
                for x in m.explanations
            ],
        }
        for m in b.missed
    ]
    rows = [
        {
            "compound": r.compound,
            "township": r.township or w(N_("(no township)")),
            "t": r.tally,
            "checkpoints": w.pct(r.tally.checkpoint_completion),
            "status": w.name(STATUS_NAMES, r.status),
            "status_class": STATUS_CLASS.get(r.status, "warn"),
        }
        for r in b.rows
    ]
    query = {"date": b.day}
    return (
        environment(lang)
        .get_template("bulletin_daily.html")
        .render(
            **_common(w, base, "daily", query, b.generated_at),
            day=b.day,
            cards=cards,
            missed=missed,
            must_explain=len(b.must_explain),
            judged=t.assessed,
            rows=rows,
            prev_url=_url(base, "daily", lang, date=(day - timedelta(days=1)).isoformat()),
            next_url=_url(base, "daily", lang, date=(day + timedelta(days=1)).isoformat()),
            monthly_url=_url(base, "monthly", lang, month=b.day[:7]),
            month=b.day[:7],
            csv_url=f"{base}/daily?" + urlencode({"date": b.day, "format": "csv"}),
            missed_csv_url=f"{base}/daily?"
            + urlencode({"date": b.day, "format": "csv", "table": "missed"}),
            integrity=integrity_view(w, b.integrity),
            integrity_csv_url=f"{base}/daily?"
            + urlencode({"date": b.day, "format": "csv", "table": "integrity"}),
            compliance=compliance_view(w, history),
            heat=heatmap_view(w, history),
        )
    )


# --------------------------------------------------------------------------- monthly


def _uptime_cell(w: Words, u: KindUptime) -> dict[str, str]:
    if not u.devices:
        return {"text": "—", "note": "", "cls": ""}
    if u.uptime is None or (u.unknown is not None and u.unknown >= 1.0):
        return {"text": w.unknown, "note": "", "cls": "warn"}
    note = w(N_("%(share)s unknown"), share=w.pct(u.unknown)) if u.unknown_s > 0 else ""
    return {"text": w.pct(u.uptime), "note": note, "cls": ""}


def _summary(
    w: Words, name: str, t: PatrolTally, kinds: dict[str, KindUptime], run: int, faults: int
) -> dict[str, Any]:
    return {
        "name": name,
        "planned": t.planned,
        "compliance": w.pct(t.compliance),
        "on_time": w.pct(t.on_time),
        "missed": t.missed,
        "missed_explained": t.missed_explained,
        "checkpoints": w.pct(t.checkpoint_completion),
        "uptime": [_uptime_cell(w, kinds[k]) for k in (READER, CAMERA, RELAY, LINK)],
        "broadcasts": run,
        "faults": faults,
    }


def _fault(w: Words, f: Fault) -> dict[str, str]:
    return {
        "compound": f.compound,
        "kind": w.name(KIND_NAMES, f.kind),
        "device": w.name(DEVICE_NAMES, f.device) if f.kind != "gateway" else f.device,
        "state": w.name(STATE_NAMES, f.state),
        "cls": "bad" if f.state == DOWN else "warn",
        "since": w.time(f.since),
        "reason": w.name(REASON_NAMES, f.reason),
    }


def _device(w: Words, d: DeviceUptime) -> dict[str, str]:
    name = w.name(DEVICE_NAMES, d.device) + (f" ({d.label})" if d.label else "")
    p = d.period_s
    all_unknown = p <= 0 or d.unknown_s >= p

    def share(x: float) -> str:
        return w.unknown if p <= 0 else w.pct(x / p)

    return {
        "compound": d.compound,
        "kind": w.name(KIND_NAMES, d.kind),
        "device": name,
        "up": w.unknown if all_unknown else share(d.up_s),
        "degraded": w.unknown if all_unknown else share(d.degraded_s),
        "down": w.unknown if all_unknown else share(d.down_s),
        "unknown": share(d.unknown_s),
        "at_end": w.name(STATE_NAMES, d.state_at_end),
    }


def month_days(b: MonthlyBulletin) -> list[str]:
    """The month's days up to the period's end (today included for a month under way)."""
    zone = ZoneInfo(b.timezone)
    first = datetime.fromtimestamp(b.period_start, zone).date()
    last = datetime.fromtimestamp(max(b.period_start, b.period_end - 1), zone).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def monthly_html(
    b: MonthlyBulletin,
    *,
    lang: str = "zh-CN",
    history: History | None = None,
    base: str = PREFIX,
) -> str:
    """The monthly bulletin page: townships, their compounds, open faults, every device."""
    w = Words(lang, b.timezone)
    no_town = w(N_("(no township)"))
    townships = [
        {
            "summary": _summary(
                w, t.township or no_town, t.patrol, t.uptime_by_kind, t.broadcasts.run, t.faults
            ),
            "compounds": [
                _summary(w, c.compound, c.patrol, c.uptime_by_kind, c.broadcasts.run, len(c.faults))
                for c in t.compounds
            ],
            "faults": [_fault(w, f) for c in t.compounds for f in c.faults],
            "devices": [_device(w, d) for c in t.compounds for d in c.devices],
        }
        for t in b.townships
    ]
    year, mon = (int(x) for x in b.month.split("-"))
    prev = f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}"
    nxt = f"{year + 1:04d}-01" if mon == 12 else f"{year:04d}-{mon + 1:02d}"
    days = month_days(b)
    return (
        environment(lang)
        .get_template("bulletin_monthly.html")
        .render(
            **_common(w, base, "monthly", {"month": b.month}, b.generated_at),
            month=b.month,
            start=w.time(b.period_start),
            until=w.time(b.period_end),
            partial=b.partial,
            townships=townships,
            prev_url=_url(base, "monthly", lang, month=prev),
            next_url=_url(base, "monthly", lang, month=nxt),
            daily_url=_url(base, "daily", lang, date=days[-1]),
            last_day=days[-1],
            csv_url=f"{base}/monthly?" + urlencode({"month": b.month, "format": "csv"}),
            integrity=integrity_view(w, b.integrity),
            video_patrol=b.video_patrol,
            integrity_csv_url=f"{base}/monthly?"
            + urlencode({"month": b.month, "format": "csv", "table": "integrity"}),
            compliance=compliance_view(w, history),
            heat=heatmap_view(w, history),
            uptime=uptime_view(w, b),
        )
    )


# --------------------------------------------------------------------------- index, sign-in


def index_html(
    *,
    lang: str,
    who: str,
    day: str,
    month: str,
    base: str = PREFIX,
    tz: str = "Asia/Shanghai",
    survey_month: str | None = None,
) -> str:
    w = Words(lang, tz)
    other = next(code for code in SUPPORTED if code != lang)
    return (
        environment(lang)
        .get_template("bulletin_index.html")
        .render(
            lang=lang,
            who=who,
            day=day,
            month=month,
            daily_url=_url(base, "daily", lang, date=day),
            monthly_url=_url(base, "monthly", lang, month=month),
            daily_csv_url=f"{base}/daily?" + urlencode({"date": day, "format": "csv"}),
            monthly_csv_url=f"{base}/monthly?" + urlencode({"month": month, "format": "csv"}),
            logout_url=f"{base}/logout",
            survey_url=None
            if survey_month is None
            else _url(base, "survey", lang, month=survey_month),
            survey_month=survey_month,
            other_language=other,
            other_language_name=LANGUAGE_NAMES[other],
            other_language_url=f"{base}?" + urlencode({"lang": other}),
            unknown=w.unknown,
        )
    )


LOGIN_MESSAGES: Final = {
    "": "",
    "sign_in": N_("Please sign in to read the bulletins."),
    "bad_token": N_("That token is not valid."),
}


def login_html(*, lang: str, message: str = "", base: str = PREFIX) -> str:
    t = translations(lang)
    other = next(code for code in SUPPORTED if code != lang)
    text = LOGIN_MESSAGES.get(message, "")
    return (
        environment(lang)
        .get_template("bulletin_login.html")
        .render(
            lang=lang,
            message=t.gettext(text) if text else "",
            bad=message == "bad_token",
            action=f"{base}/login",
            other_language=other,
            other_language_name=LANGUAGE_NAMES[other],
            other_language_url=f"{base}/login?" + urlencode({"lang": other}),
        )
    )


__all__ = [
    "PREFIX",
    "History",
    "Words",
    "compliance_view",
    "daily_html",
    "heatmap_view",
    "index_html",
    "login_html",
    "month_days",
    "monthly_html",
    "uptime_view",
]
