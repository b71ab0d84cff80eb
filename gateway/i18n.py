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
