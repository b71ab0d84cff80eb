"""Times, durations, ages and yes/no as people say them, in their language and time zone.

    format_datetime(1764900000, "Asia/Shanghai", "zh-CN")               # "2025年12月5日 10:00"
    format_datetime(1764900000, "Asia/Shanghai", "en", now=1764903600)  # "10:00" (same day)
    format_duration(7500, "zh-CN")                                      # "2小时5分钟"
    format_age(180, "zh-CN")                                            # "3分钟前"
    format_bool(True, "en")                                             # "yes"

Never an epoch number or a Python repr: a value that is not a time gives ``""``.
Month names, units and "ago" come from Babel's CLDR data; the few words CLDR lacks come from
this package's own catalogue (``i18n/locale``).
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Literal

from i18n.catalogue import Catalogues
from i18n.lang import to_locale

SUPPORTED: Final = ("zh-CN", "en")
_CATALOGUES: Final = Catalogues(Path(__file__).parent / "locale", SUPPORTED)
JUST_NOW_S: Final = 10.0
# Durations and ages past a century are corrupt data, not something to spell out.
MAX_SPAN_S: Final = 100 * 365.25 * 86400

# Babel date patterns (CLDR syntax) per primary language; anything else gets the English ones.
_PATTERNS: Final = {
    "zh": {"full": "y年M月d日 HH:mm", "year": "M月d日 HH:mm", "day": "HH:mm"},
    "en": {"full": "d MMM y, HH:mm", "year": "d MMM HH:mm", "day": "HH:mm"},
}
_Unit = Literal["day", "hour", "minute", "second"]
_UNITS: Final[tuple[tuple[_Unit, int], ...]] = (
    ("day", 86400),
    ("hour", 3600),
    ("minute", 60),
    ("second", 1),
)


def _babel_locale(lang: str) -> str:
    return to_locale(lang) or "en"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def format_datetime(
    wall: Any,
    tz: str,
    lang: str,
    *,
    now: float | None = None,
    seconds: bool = False,
) -> str:
    """``wall`` (Unix seconds) as a local date and time in ``tz``.

    With ``now``, a time on the same local day shows only the time of day, and one in the same
    year leaves the year out. ``""`` when ``wall`` is not a time.
    """
    from babel.dates import format_datetime as babel_format

    if not _is_number(wall):
        return ""
    zone = zoneinfo.ZoneInfo(tz)
    try:
        when = dt.datetime.fromtimestamp(wall, zone)
    except (OverflowError, OSError, ValueError):
        return ""
    patterns = _PATTERNS.get(_babel_locale(lang).split("_")[0], _PATTERNS["en"])
    which = "full"
    if now is not None and _is_number(now):
        today = dt.datetime.fromtimestamp(now, zone)
        if when.date() == today.date():
            which = "day"
        elif when.year == today.year:
            which = "year"
    pattern = patterns[which] + (":ss" if seconds else "")
    return str(babel_format(when, pattern, locale=_babel_locale(lang)))


def format_duration(seconds: Any, lang: str, *, units: int = 2) -> str:
    """A length of time in its ``units`` largest units: "2小时5分钟", "2 hours 5 minutes"."""
    from babel.dates import format_timedelta

    if not _is_number(seconds) or abs(seconds) > MAX_SPAN_S:
        return ""
    left = round(abs(seconds))
    parts: list[str] = []
    for unit, size in _UNITS:
        count, left = divmod(left, size)
        if count and len(parts) < units:
            parts.append(
                format_timedelta(
                    dt.timedelta(seconds=count * size),
                    granularity=unit,
                    threshold=1,
                    locale=_babel_locale(lang),
                )
            )
        elif parts:
            break  # "2 days 5 seconds" says less than "2 days"
    if not parts:
        parts.append(
            format_timedelta(dt.timedelta(0), granularity="second", locale=_babel_locale(lang))
        )
    joiner = "" if _babel_locale(lang).startswith("zh") else " "
    return joiner.join(parts)


def format_age(seconds: Any, lang: str) -> str:
    """How long ago, from an age in seconds: "刚刚", "3分钟前", "3 minutes ago"."""
    from babel.dates import format_timedelta

    if not _is_number(seconds) or abs(seconds) > MAX_SPAN_S:
        return ""
    if abs(seconds) < JUST_NOW_S:
        return _CATALOGUES.translations(lang).gettext("just now")
    return str(
        format_timedelta(
            dt.timedelta(seconds=-seconds),
            add_direction=True,
            threshold=1,
            locale=_babel_locale(lang),
        )
    )


def format_bool(value: Any, lang: str) -> str:
    """yes / no in ``lang``; ``""`` for a value that is not a boolean."""
    if not isinstance(value, bool):
        return ""
    t = _CATALOGUES.translations(lang)
    return t.gettext("yes") if value else t.gettext("no")


def format_number(value: Any, lang: str, *, digits: int = 3) -> str:
    """A number with the language's separators and at most ``digits`` decimals."""
    from babel.numbers import format_decimal

    if not _is_number(value):
        return ""
    return str(format_decimal(value, format=f"#,##0.{'#' * digits}", locale=_babel_locale(lang)))


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK characters are two wide."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """A plain text table whose columns line up with Chinese in them (two columns a character)."""
    widths = [display_width(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell))

    def line(cells: Sequence[str]) -> str:
        padded = (c + " " * (w - display_width(c)) for c, w in zip(cells, widths, strict=True))
        return (indent + "  ".join(padded)).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])
