"""The bulletins' catalogue and Jinja2 environments (one per language), shared by every page.

    env = environment("zh-CN")                      # templates/*.html, autoescaped
    t = translations("en"); t.gettext(N_("unknown"))

Simplified Chinese by default; ``locale/zh_CN/LC_MESSAGES/bulletins.po`` holds the words
(English is the source language). :func:`language` picks a request's language: ``?lang=`` first,
then the browser's ``Accept-Language``, then Chinese.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import jinja2

import i18n

SUPPORTED: Final = ("zh-CN", "en")
DEFAULT_LANGUAGE: Final = "zh-CN"
LANGUAGE_NAMES: Final = {"zh-CN": "中文", "en": "English"}
CATALOGUES: Final = i18n.Catalogues(Path(__file__).parent / "locale", SUPPORTED)


def N_(message: str) -> str:
    """Mark a string for the catalogue; it is translated where it is shown."""
    return message


@functools.cache
def environment(lang: str) -> jinja2.Environment:
    return i18n.make_environment(
        CATALOGUES.translations(lang),
        loader=jinja2.PackageLoader("centre.bulletins", "templates"),
    )


def translations(lang: str) -> gettext.NullTranslations:
    return CATALOGUES.translations(lang)


def language(query: Mapping[str, str], accept_language: str | None) -> str:
    asked = i18n.match(query.get("lang", ""), SUPPORTED)
    return asked or i18n.negotiate(accept_language, SUPPORTED, DEFAULT_LANGUAGE)


__all__ = [
    "CATALOGUES",
    "DEFAULT_LANGUAGE",
    "LANGUAGE_NAMES",
    "N_",
    "SUPPORTED",
    "environment",
    "language",
    "translations",
]
