"""Operator-facing words of the announcement library (gettext, Simplified Chinese first)."""

from __future__ import annotations

import gettext
import os
from pathlib import Path
from typing import Final

import i18n

SUPPORTED: Final = ("zh-CN", "en")
DEFAULT_LANGUAGE: Final = "zh-CN"
CATALOGUES: Final = i18n.Catalogues(Path(__file__).parent / "locale", SUPPORTED)


def N_(message: str) -> str:
    """Mark ``message`` for translation; it is translated where it is shown."""
    return message


def translations(lang: str | None = None) -> gettext.NullTranslations:
    """The operator's language: ``lang``, else $COMPOUND_CENTRE_LANG, else Chinese."""
    return CATALOGUES.translations(
        lang or os.environ.get("COMPOUND_CENTRE_LANG") or DEFAULT_LANGUAGE
    )


# Reasons shown to operators, by error code (the English reason stays in logs and JSON).
REASONS: Final = {
    "bad_id": N_("The id may only use letters, digits, '.', '_' and '-' (at most 80)."),
    "bad_title": N_("The title must have 1 to 120 characters."),
    "bad_language": N_("This language is not supported here."),
    "exists": N_("An announcement with this id already exists."),
    "not_found": N_("There is no such announcement."),
    "damaged": N_("This announcement's files are damaged."),
    "bad_media": N_("This file cannot be used as an announcement: %(reason)s"),
}
