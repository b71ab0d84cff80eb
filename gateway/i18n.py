"""The gateway's words in the reader's language: Simplified Chinese by default, English available.

    from gateway.i18n import _, ngettext
    print(_("Daemon is not running."))
    print(ngettext("%(n)d reader", "%(n)d readers", n) % {"n": n})

Mark every string a person reads with ``_()`` (``ngettext`` for counts, ``N_`` for a string
defined now and translated later, e.g. a table of labels); source strings are English. The
Chinese lives in ``gateway/locale/zh_CN/LC_MESSAGES/*.po`` (one domain file per part: gateway.po,
setup.po, ...); ``python -m i18n check gateway`` lists what is untranslated and a test fails on it.

Which language: ``--lang`` on the command line, else ``COMPOUND_GW_LANG`` in the environment
(tests pin it), else ``[gateway] language`` from the config, else ``zh-CN`` (see
:func:`choose_language`). The choice is held in a context variable: the CLI sets it once at start,
the status page renders with an explicit language per request instead.
"""

from __future__ import annotations

import contextvars
import gettext
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import i18n

SUPPORTED: Final = ("zh-CN", "en")
DEFAULT_LANGUAGE: Final = "zh-CN"
ENV_VAR: Final = "COMPOUND_GW_LANG"
LOCALE_DIR: Final = Path(__file__).parent / "locale"
# Shown to people choosing a language, each in its own language.
LANGUAGE_NAMES: Final = {"zh-CN": "中文", "en": "English"}

CATALOGUES: Final = i18n.Catalogues(LOCALE_DIR, SUPPORTED)
_language: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "compound_gw_language", default=None
)


def supported_language(tag: str) -> str | None:
    """The supported language ``tag`` names (``zh_CN``, ``zh``, ``en-GB``...), or ``None``."""
    return i18n.match(tag, SUPPORTED)


def choose_language(configured: str | None = None, requested: str | None = None) -> str:
    """``requested`` (``--lang``), else ``$COMPOUND_GW_LANG``, else ``configured``, else zh-CN.

    An unsupported value is skipped in favour of the next one: a typo never leaves a person with
    no words at all.
    """
    for candidate in (requested, os.environ.get(ENV_VAR), configured):
        if candidate:
            found = supported_language(candidate)
            if found:
                return found
    return DEFAULT_LANGUAGE


def set_language(lang: str) -> str:
    """Use ``lang`` for ``_()`` in this context from now on; returns the supported tag chosen."""
    found = supported_language(lang)
    if found is None:
        raise ValueError(f"{lang!r} is not a supported language ({', '.join(SUPPORTED)})")
    _language.set(found)
    return found


def get_language() -> str:
    """The language ``_()`` uses now: the one set, else the environment's or the default."""
    return _language.get() or choose_language()


def translations(lang: str | None = None) -> gettext.NullTranslations:
    """The merged catalogue for ``lang`` (default: the current language)."""
    return CATALOGUES.translations(lang or get_language())


def _(message: str) -> str:
    """``message`` in the current language."""
    return translations().gettext(message)


def gettext_(message: str) -> str:
    """Alias of :func:`_` for code that already uses ``_`` for something else."""
    return translations().gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The right plural form of a message for ``n`` in the current language."""
    return translations().ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for translation without translating it yet (tables of labels)."""
    return message


# People-facing formatting in the current language; ``tz`` is the compound's IANA zone.


def fmt_time(wall: Any, tz: str, *, now: float | None = None, seconds: bool = False) -> str:
    return i18n.format_datetime(wall, tz, get_language(), now=now, seconds=seconds)


def fmt_duration(seconds: Any) -> str:
    return i18n.format_duration(seconds, get_language())


def fmt_age(seconds: Any) -> str:
    return i18n.format_age(seconds, get_language())


def fmt_bool(value: Any) -> str:
    return i18n.format_bool(value, get_language())


# Words for the codes the gateway journals and publishes. Screens show these, never the codes:
# a person reads "离线", not "offline", and "未完成", not "incomplete". A code missing here is
# shown with its underscores turned into spaces (see :func:`word`), and tests/web fails the page
# if a snake_case name reaches it.
STATE_WORDS: Final = {
    "ok": N_("OK"),
    "online": N_("online"),
    "offline": N_("offline"),
    "up": N_("connected"),
    "down": N_("down"),
    "degraded": N_("degraded"),
    "unknown": N_("unknown"),
    "running": N_("running"),
    "starting": N_("starting"),
    "backoff": N_("restarting soon"),
    "crashed": N_("crashed"),
    "stopped": N_("stopped"),
    "failed": N_("failed"),
    "open": N_("open"),
    "closed": N_("closed"),
    "waiting": N_("waiting"),
    "connecting": N_("connecting"),
    "connected": N_("connected"),
    "not provisioned": N_("not set up"),
    "planned": N_("not started yet"),
    "started": N_("in progress"),
    "completed": N_("completed"),
    "late_completed": N_("completed late"),
    "late": N_("late"),
    "incomplete": N_("incomplete"),
    "missed": N_("missed"),
    "unassessable": N_("cannot be judged"),
    "pending": N_("pending"),
    "idle": N_("idle"),
    "on": N_("on"),
    "off": N_("off"),
}
# The colour a state is drawn in: good, warn or bad (others: neutral).
STATE_TONES: Final = {
    **dict.fromkeys(("ok", "online", "up", "running", "connected", "completed", "open"), "good"),
    **dict.fromkeys(
        (
            "degraded",
            "unknown",
            "starting",
            "backoff",
            "waiting",
            "connecting",
            "late_completed",
            "late",
            "unassessable",
            "not provisioned",
        ),
        "warn",
    ),
    **dict.fromkeys(
        ("offline", "down", "crashed", "stopped", "failed", "incomplete", "missed"), "bad"
    ),
}
DEVICE_KIND_WORDS: Final = {
    "camera": N_("camera"),
    "modem": N_("mobile modem"),
    "gateway": N_("gateway"),
    "reader": N_("checkpoint reader"),
    "relay_board": N_("relay board"),
    "gpio": N_("sensor input"),
    "tamper": N_("tamper switch"),
    "power": N_("power supply"),
}
ALERT_KIND_WORDS: Final = {
    "not_started": N_("Round not started"),
    "checkpoint_overdue": N_("Checkpoint overdue"),
    "incomplete": N_("Round incomplete"),
    "suspicious": N_("Suspicious taps"),
    "missed_checkpoint": N_("Checkpoint missed"),
    "reader_offline": N_("Reader offline"),
}
SERVICE_WORDS: Final = {
    "patrol": N_("patrol rounds"),
    "checkpoints": N_("checkpoint readers"),
    "broadcast": N_("broadcast"),
    "health": N_("device health"),
    "sync": N_("upload to the centre"),
    "uploader": N_("upload to the centre"),
    "media-uplink": N_("evidence images to the centre"),
    "commands": N_("centre commands"),
    "web": N_("status page"),
    "status-board": N_("status board"),
    "watchdog": N_("watchdog"),
    "update-events": N_("software updates"),
}
# Reasons and notes the gateway itself writes, so they can be shown translated.
REASON_WORDS: Final = {
    "a broadcast is under way": N_("a broadcast is under way"),
    "a broadcast started": N_("a broadcast started"),
    "the day ended before the test ran": N_("the day ended before the test ran"),
    "clock not synchronised": N_("clock not synchronised"),
    "no reply": N_("no reply"),
    "weak signal": N_("weak signal"),
    "reader back online": N_("reader back online"),
    "late start": N_("late start"),
    "resolved": N_("resolved"),
    "connection refused": N_("connection refused"),
    "timed out": N_("timed out"),
    "timeout": N_("timed out"),
    "not provisioned": N_("not set up"),
}


def word(code: Any, table: Mapping[str, str] = STATE_WORDS, lang: str | None = None) -> str:
    """The words for ``code`` from ``table`` in ``lang`` (default: current); a code not in the
    table comes back with underscores as spaces, never as an identifier."""
    text = "" if code is None else str(code)
    if text in table:
        return translations(lang).gettext(table[text])
    return text.replace("_", " ")


def tone(state: Any) -> str:
    """``good``, ``warn``, ``bad`` or ``""`` for a state code (the badge's colour)."""
    return STATE_TONES.get(str(state), "")
