"""Translations and human formatting shared by the gateway and the centre. Imports nothing of ours.

    from i18n import Catalogues, negotiate, make_environment, format_datetime
    cats = Catalogues(Path(__file__).parent / "locale", supported=("zh-CN", "en"))
    t = cats.translations("zh-CN")               # every domain in locale/zh_CN/LC_MESSAGES merged
    t.gettext("Alerts")                          # -> "警报"
    negotiate("en-GB,en;q=0.9", ("zh-CN", "en"), default="zh-CN")   # -> "en"
    env = make_environment(t, loader=PackageLoader("gateway.web"))   # autoescape on, {% trans %}
    format_datetime(1764900000, "Asia/Shanghai", "zh-CN")           # -> "2025年12月5日 10:00"

A package that wants translations keeps ``<pkg>/locale/<ll_CC>/LC_MESSAGES/<domain>.po`` (English
source strings; English needs no catalogue). Every ``.po``/``.mo`` in that folder is merged, so
each part of a package may own its own domain file. ``.mo`` files are compiled at install
(``python -m i18n compile DIR``); a missing or stale ``.mo`` is compiled from its ``.po`` in
memory, so a fresh checkout never shows message ids.
"""

from __future__ import annotations

from i18n.catalogue import Catalogues, compile_catalogues, load_translations
from i18n.format import (
    display_width,
    format_age,
    format_bool,
    format_datetime,
    format_duration,
    format_number,
    format_table,
)
from i18n.lang import match, negotiate, normalise, to_locale
from i18n.templates import make_environment

__all__ = [
    "Catalogues",
    "compile_catalogues",
    "display_width",
    "format_age",
    "format_bool",
    "format_datetime",
    "format_duration",
    "format_number",
    "format_table",
    "load_translations",
    "make_environment",
    "match",
    "negotiate",
    "normalise",
    "to_locale",
]
