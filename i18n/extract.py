"""Which marked strings of a package still lack a translation, and adding them to a catalogue.

    missing_translations(Path("gateway"), "zh_CN")   # [] when every string is translated
    update_catalogue(Path("gateway"), "gateway", "zh_CN")   # appends the missing ones, empty

Babel's extractor reads ``_()``, ``gettext()``, ``ngettext()``, ``N_()`` in ``*.py`` and the
``{% trans %}`` blocks and ``_()`` calls in ``templates/**.html``. A string counts as translated
when some domain of the language holds it, not fuzzy, with every plural form filled in.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from babel.messages.catalog import Catalog

METHOD_MAP = [
    ("**/locale/**", "ignore"),
    ("**.py", "python"),
    ("**/templates/**.html", "jinja2.ext:babel_extract"),
]
OPTIONS_MAP = {"**/templates/**.html": {"trimmed": "false"}}
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "N_": None,
    "pgettext": ((1, "c"), 2),
}


@dataclass(frozen=True, slots=True)
class Missing:
    msgid: str
    where: str
    problem: str


def extracted(package: Path) -> Iterator[tuple[str | tuple[str, ...], str]]:
    """Every marked string under ``package`` with ``path:line`` of its first use."""
    from babel.messages.extract import extract_from_dir

    seen: set[str | tuple[str, ...]] = set()
    for filename, lineno, raw, _comments, _context in extract_from_dir(
        package, METHOD_MAP, OPTIONS_MAP, keywords=KEYWORDS, strip_comment_tags=True
    ):
        message = tuple(m for m in raw if m) if isinstance(raw, tuple) else raw
        if not message or message in seen:
            continue
        seen.add(message)
        yield message, f"{package.name}/{filename}:{lineno}"


def _catalogues(package: Path, lang: str) -> list[Catalog]:
    from babel.messages.pofile import read_po

    folder = package / "locale" / lang / "LC_MESSAGES"
    cats = []
    for po in sorted(folder.glob("*.po")):
        with po.open("rb") as f:
            cats.append(read_po(f, locale=lang, domain=po.stem))
    return cats


def missing_translations(package: Path, lang: str) -> list[Missing]:
    """Strings marked in ``package`` with no usable ``lang`` translation in any of its domains."""
    cats = _catalogues(package, lang)
    out = []
    for msgid, where in extracted(package):
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        entries = [m for c in cats if (m := c.get(key)) is not None]
        if not entries:
            out.append(Missing(key, where, "not in any catalogue"))
            continue
        good = [
            m
            for m in entries
            if not m.fuzzy
            and all(s for s in (m.string if isinstance(m.string, tuple) else (m.string,)))
        ]
        if not good:
            fuzzy = any(m.fuzzy for m in entries)
            out.append(Missing(key, where, "fuzzy" if fuzzy else "empty translation"))
    return out


def update_catalogue(package: Path, domain: str, lang: str) -> list[str]:
    """Add every string missing from all of ``lang``'s domains to ``domain``.po, untranslated."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    folder = package / "locale" / lang / "LC_MESSAGES"
    folder.mkdir(parents=True, exist_ok=True)
    po = folder / f"{domain}.po"
    if po.is_file():
        with po.open("rb") as f:
            catalog = read_po(f, locale=lang, domain=domain)
    else:
        catalog = Catalog(
            locale=lang,
            domain=domain,
            project=f"compound-gateway {package.name}",
            version="",
            copyright_holder="the Compound Gateway developers",
            msgid_bugs_address="",
            last_translator="the Compound Gateway developers",
            language_team=lang,
            fuzzy=False,
        )
    others = [c for c in _catalogues(package, lang) if c.domain != domain]
    catalog.msgid_bugs_address = ""
    catalog.last_translator = "the Compound Gateway developers"
    catalog.language_team = lang
    added = []
    for msgid, where in extracted(package):
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        if catalog.get(key) is not None or any(c.get(key) for c in others):
            continue
        path, _, line = where.rpartition(":")
        catalog.add(msgid, locations=[(path, int(line))])
        added.append(key)
    if added:
        catalog.revision_date = datetime.datetime.now(datetime.UTC)
        with po.open("wb") as f:
            write_po(f, catalog, width=100, omit_header=False, include_lineno=False)
    return added
