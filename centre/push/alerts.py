"""Alerts for the group robots, as pure rules: which kinds go to which groups, and their text.

Theory of operation
-------------------
Besides the daily bulletin, a group can be told of three kinds of alert at once, each only when
the push config routes it (``[alerts.<kind>]`` with ``groups``; nothing is pushed otherwise):

``actual_broadcast``
    an Actual broadcast was ordered (one message per order, naming every compound it went to);
``tamper``
    the centre's alert store recorded a journal-chain or anti-fraud alert, or a gateway reported
    its cabinet's tamper switch open (``tamper.open``);
``gateway_down``
    a gateway has not been in touch for more than ``hours`` (2 by default): one message per
    outage, and with ``recovery = true`` (the default) one short follow-up when it is back.

:class:`~centre.push.scan.AlertScanner` finds them; this module says what a person reads: a
short Chinese markdown message (English available) naming the compound (never a gateway id),
the local time, and a link to the console page when ``console_url`` is set. Every name comes
from the registry and is hostile: it goes through :func:`~centre.push.daily.md_text`.

    config = load_alert_config(Path("push.toml"), robots)     # None: alerts are off
    text = alert_markdown(alert, "zh-CN", tz="Asia/Shanghai", console_url=config.console_url)
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import i18n
from centre.push.daily import CATALOGUES, DEFAULT_LANGUAGE, N_, md_link, md_text
from centre.push.robot import PushConfigError, Robot

ACTUAL_BROADCAST: Final = "actual_broadcast"
TAMPER: Final = "tamper"
GATEWAY_DOWN: Final = "gateway_down"
GATEWAY_UP: Final = "gateway_up"  # the follow-up of a gateway_down; routed with it
KINDS: Final = (ACTUAL_BROADCAST, TAMPER, GATEWAY_DOWN)

DEFAULT_DOWN_HOURS: Final = 2.0
MAX_DOWN_HOURS: Final = 24.0 * 30
DEFAULT_SCAN_S: Final = 60.0
MIN_SCAN_S: Final = 5.0
MAX_SCAN_S: Final = 3600.0
MAX_PLACES_LISTED: Final = 20  # compounds named in one broadcast message; the rest counted

# What each recorded alert was, as people say it (codes from centre/store.py, the antifraud
# detectors and the gateway's tamper switch event).
TAMPER_WORDS: Final = {
    "journal.edited": N_("journal records were altered"),
    "journal.broken_link": N_("the journal's hash chain is broken"),
    "journal.deleted": N_("journal records were deleted"),
    "journal.fork": N_("the journal was forked"),
    "journal.rewritten": N_("the journal was rewritten"),
    "journal.segment_start": N_("the journal's chain started again"),
    "journal.head_mismatch": N_("the gateway's signed journal head differs from the centre's copy"),
    "journal.head_rewound": N_("the gateway's journal went back to an older state"),
    "journal.audit_report": N_("the gateway's own journal check reported a problem"),
    "impossible_travel": N_("two taps too far apart to walk in the time (suspected proxy tap)"),
    "buddy_tap": N_("several wristbands tapped together (suspected proxy tap)"),
    "tamper.open": N_("the cabinet's tamper switch was opened"),
}
OTHER_TAMPER: Final = N_("an integrity alert was recorded")


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Which groups get which kind of alert, and how (see the module doc)."""

    routes: Mapping[str, tuple[str, ...]]
    down_hours: float = DEFAULT_DOWN_HOURS
    recovery: bool = True
    console_url: str | None = None
    scan_s: float = DEFAULT_SCAN_S

    def groups(self, kind: str) -> tuple[str, ...]:
        """The groups ``kind`` goes to (a recovery goes where the outage went)."""
        if kind == GATEWAY_UP:
            return self.routes.get(GATEWAY_DOWN, ()) if self.recovery else ()
        return self.routes.get(kind, ())

    @property
    def all_groups(self) -> tuple[str, ...]:
        return tuple(sorted({g for groups in self.routes.values() for g in groups}))


@dataclass(frozen=True, slots=True)
class Place:
    township: str
    compound: str  # "" when the gateway is not (or no longer) in the registry


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert found by the scan; ``key`` names it for good (the outbox's message key)."""

    key: str
    kind: str
    places: tuple[Place, ...]
    at: float  # when it happened (ordered, recorded, last contact, back)
    what: str = ""  # tamper: the recorded alert's code; broadcast: who ordered it
    hours: float = 0.0  # gateway_down: the threshold; gateway_up: how long it was down
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """The compounds it is about, for the console's push page."""
        names = [p.compound or "?" for p in self.places[:MAX_PLACES_LISTED]]
        more = len(self.places) - len(names)
        return "、".join(names) + (f" +{more}" if more > 0 else "")


def _where(place: Place, t: Any) -> str:
    if not place.compound:
        return str(t.gettext("a gateway not in the registry"))
    name = f"**{md_text(place.compound)}**"
    if not place.township:
        return name
    return str(
        t.gettext("%(compound)s (%(township)s)")
        % {"compound": name, "township": md_text(place.township)}
    )


def console_link(console_url: str | None, alert: Alert) -> str | None:
    """The console page for ``alert`` (the broadcast page, or its compound's page)."""
    if not console_url:
        return None
    base = console_url.rstrip("/") + "/console"
    if alert.kind == ACTUAL_BROADCAST:
        return md_link(base + "/broadcast")
    if len(alert.places) == 1 and alert.places[0].compound:
        p = alert.places[0]
        return md_link(
            base + "/compound?" + urlencode({"township": p.township, "name": p.compound})
        )
    return md_link(base + "/board")


def _hours(value: float) -> str:
    return f"{round(value, 1):g}"


def alert_markdown(
    alert: Alert,
    lang: str = DEFAULT_LANGUAGE,
    *,
    tz: str,
    console_url: str | None = None,
) -> str:
    """The alert as one robot markdown message in ``lang``, times local to ``tz``."""
    t = CATALOGUES.translations(lang)
    when = i18n.format_datetime(alert.at, tz, lang)
    lines: list[str] = []
    if alert.kind == ACTUAL_BROADCAST:
        lines.append('## <font color="warning">' + t.gettext("Actual broadcast") + "</font>")
        lines.append(
            t.ngettext(
                "An Actual broadcast was ordered for %(n)d compound:",
                "An Actual broadcast was ordered for %(n)d compounds:",
                len(alert.places),
            )
            % {"n": len(alert.places)}
        )
        lines += ["- " + _where(p, t) for p in alert.places[:MAX_PLACES_LISTED]]
        more = len(alert.places) - MAX_PLACES_LISTED
        if more > 0:
            lines.append(t.gettext("- and %(n)d more") % {"n": more})
        lines.append(t.gettext("Ordered at %(when)s") % {"when": when})
        if alert.what:
            lines.append(t.gettext("Ordered by %(who)s") % {"who": md_text(alert.what)})
    elif alert.kind == TAMPER:
        what = t.gettext(TAMPER_WORDS.get(alert.what, OTHER_TAMPER))
        lines.append('## <font color="warning">' + t.gettext("Tamper alert") + "</font>")
        where = _where(alert.places[0], t) if alert.places else ""
        lines.append(t.gettext("%(who)s: %(what)s") % {"who": where, "what": what})
        lines.append(t.gettext("At %(when)s") % {"when": when})
    elif alert.kind == GATEWAY_DOWN:
        lines.append('## <font color="warning">' + t.gettext("Gateway offline") + "</font>")
        where = _where(alert.places[0], t) if alert.places else ""
        lines.append(
            t.gettext("%(where)s: the gateway has not been in touch for more than %(hours)s hours")
            % {"where": where, "hours": _hours(alert.hours)}
        )
        lines.append(t.gettext("Last in touch at %(when)s") % {"when": when})
    elif alert.kind == GATEWAY_UP:
        lines.append('## <font color="info">' + t.gettext("Gateway back") + "</font>")
        where = _where(alert.places[0], t) if alert.places else ""
        lines.append(
            t.gettext("%(where)s: the gateway is in touch again, after about %(hours)s hours")
            % {"where": where, "hours": _hours(alert.hours)}
        )
        lines.append(t.gettext("Back at %(when)s") % {"when": when})
    else:
        raise ValueError(f"unknown alert kind {alert.kind!r}")
    link = console_link(console_url, alert)
    if link:
        lines.append(f"[{t.gettext('open in the console')}]({link})")
    return "\n".join(lines)


# -- the config ------------------------------------------------------------------------------

_TOP_KEYS: Final = frozenset({"console_url", "scan_seconds", *KINDS})
_KIND_KEYS: Final = {
    ACTUAL_BROADCAST: frozenset({"groups"}),
    TAMPER: frozenset({"groups"}),
    GATEWAY_DOWN: frozenset({"groups", "hours", "recovery"}),
}


def _number(value: object, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PushConfigError(f"{where}: a number is required")
    if not (math.isfinite(value) and lo <= value <= hi):
        raise PushConfigError(f"{where}: must be between {lo:g} and {hi:g}")
    return float(value)


def parse_alert_config(data: object, groups: Sequence[str], where: str = "alerts") -> AlertConfig:
    """The ``[alerts]`` table of a push config, checked against the configured ``groups``;
    :class:`~centre.push.robot.PushConfigError` naming the key for anything else::

        [alerts]
        console_url = "https://centre.example.org"   # links in the messages (optional)
        scan_seconds = 60                              # how often the scan looks
        [alerts.actual_broadcast]
        groups = ["district leaders"]
        [alerts.tamper]
        groups = ["district leaders", "community police"]
        [alerts.gateway_down]
        groups = ["district leaders"]
        hours = 2          # more than this without contact (default 2)
        recovery = true    # a short follow-up when the gateway is back (default true)
    """
    if not isinstance(data, dict):
        raise PushConfigError(f"{where}: must be a table")
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise PushConfigError(f"{where}.{unknown[0]}: not a setting (one of {sorted(_TOP_KEYS)})")
    console_url = data.get("console_url")
    if console_url is not None:
        parts = urlsplit(console_url) if isinstance(console_url, str) else None
        if (
            parts is None
            or parts.scheme not in ("https", "http")
            or not parts.netloc
            or parts.query
            or parts.fragment
            or md_link(console_url) is None
            or any(not ch.isprintable() or ch.isspace() for ch in console_url)
        ):
            raise PushConfigError(f"{where}.console_url: an http(s) address is required")
    scan_s = _number(
        data.get("scan_seconds", DEFAULT_SCAN_S), f"{where}.scan_seconds", MIN_SCAN_S, MAX_SCAN_S
    )
    known = set(groups)
    routes: dict[str, tuple[str, ...]] = {}
    down_hours, recovery = DEFAULT_DOWN_HOURS, True
    for kind in KINDS:
        if kind not in data:
            continue
        here = f"{where}.{kind}"
        table = data[kind]
        if not isinstance(table, dict):
            raise PushConfigError(f"{here}: must be a table")
        extra = sorted(str(k) for k in table if k not in _KIND_KEYS[kind])
        if extra:
            raise PushConfigError(f"{here}.{extra[0]}: not a setting of {kind}")
        names = table.get("groups")
        if not isinstance(names, list) or not names:
            raise PushConfigError(f"{here}.groups: a list of group names is required")
        chosen: list[str] = []
        for i, name in enumerate(names):
            if not isinstance(name, str) or name.strip() not in known:
                raise PushConfigError(
                    f"{here}.groups[{i}]: not the group of a configured [[robot]]"
                )
            if name.strip() in chosen:
                raise PushConfigError(f"{here}.groups[{i}]: named twice")
            chosen.append(name.strip())
        routes[kind] = tuple(chosen)
        if kind == GATEWAY_DOWN:
            down_hours = _number(
                table.get("hours", DEFAULT_DOWN_HOURS), f"{here}.hours", 1 / 60, MAX_DOWN_HOURS
            )
            rec = table.get("recovery", True)
            if not isinstance(rec, bool):
                raise PushConfigError(f"{here}.recovery: true or false")
            recovery = rec
    return AlertConfig(routes, down_hours, recovery, console_url, scan_s)


def load_alert_config(config: Path, robots: Sequence[Robot]) -> AlertConfig | None:
    """The alerts the push config routes, or None when it has no ``[alerts]`` table or routes
    no kind (alerts are off)."""
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PushConfigError(f"{config}: {exc}") from None
    if "alerts" not in data:
        return None
    parsed = parse_alert_config(data["alerts"], [r.group for r in robots], f"{config}: alerts")
    return parsed if parsed.routes else None


__all__ = [
    "ACTUAL_BROADCAST",
    "GATEWAY_DOWN",
    "GATEWAY_UP",
    "KINDS",
    "TAMPER",
    "Alert",
    "AlertConfig",
    "Place",
    "alert_markdown",
    "console_link",
    "load_alert_config",
    "parse_alert_config",
]
