"""Loading and compiling gettext catalogues, one folder of domains per language.

    t = load_translations(Path("gateway/locale"), "zh-CN")   # merges zh_CN/LC_MESSAGES/*.{mo,po}
    compile_catalogues(Path("gateway/locale"))               # writes a .mo beside every .po

A ``.mo`` is used when it is at least as new as its ``.po``; otherwise (a fresh checkout, or a
translator's edit not compiled yet) the ``.po`` is compiled in memory with Babel, so nobody ever
sees a message id because a build step was skipped. Fuzzy entries are never used: a guess a
translator has not confirmed falls back to the English source.
"""

from __future__ import annotations

import gettext
import io
import threading
from collections.abc import Sequence
from pathlib import Path

from i18n.lang import match, to_locale


def _po_to_mo_bytes(po: Path, locale: str) -> bytes:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as f:
        catalog = read_po(f, locale=locale, domain=po.stem)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    return buf.getvalue()


def _load_domain(folder: Path, domain: str, locale: str) -> gettext.GNUTranslations:
    mo, po = folder / f"{domain}.mo", folder / f"{domain}.po"
    if mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as f:
            return gettext.GNUTranslations(f)
    return gettext.GNUTranslations(io.BytesIO(_po_to_mo_bytes(po, locale)))


def _folder_for(locale_dir: Path, lang: str) -> Path | None:
    locale = to_locale(lang)
    for name in (locale, locale.split("_")[0]):
        folder = locale_dir / name / "LC_MESSAGES"
        if name and folder.is_dir():
            return folder
    return None


def load_translations(locale_dir: Path, lang: str) -> gettext.NullTranslations:
    """Every domain of ``lang`` under ``locale_dir`` merged (sorted by domain name; the first
    domain holding a message wins). No catalogue: the source strings (English) unchanged."""
    folder = _folder_for(locale_dir, lang)
    if folder is None:
        return gettext.NullTranslations()
    domains = sorted({p.stem for p in folder.glob("*.po")} | {p.stem for p in folder.glob("*.mo")})
    merged: gettext.NullTranslations | None = None
    for domain in domains:
        t = _load_domain(folder, domain, folder.parent.name)
        if merged is None:
            merged = t
        else:
            merged.add_fallback(t)
    return merged or gettext.NullTranslations()


def compile_catalogues(locale_dir: Path) -> list[Path]:
    """Compile every ``<lang>/LC_MESSAGES/*.po`` under ``locale_dir`` to a ``.mo`` beside it."""
    written = []
    for po in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        data = _po_to_mo_bytes(po, po.parent.parent.name)
        tmp = mo.with_suffix(".mo.tmp")
        tmp.write_bytes(data)
        tmp.replace(mo)
        written.append(mo)
    return written


class Catalogues:
    """The translations of one package, loaded once per language and kept.

    cats = Catalogues(Path(__file__).parent / "locale", supported=("zh-CN", "en"))
    cats.translations("zh_CN").gettext("Readers")
    """

    def __init__(self, locale_dir: Path, supported: Sequence[str]) -> None:
        self.locale_dir = locale_dir
        self.supported = tuple(supported)
        self._cache: dict[str, gettext.NullTranslations] = {}
        self._lock = threading.Lock()

    def translations(self, lang: str) -> gettext.NullTranslations:
        """The merged catalogue for ``lang`` (a supported language; others get the source)."""
        chosen = match(lang, self.supported) or ""
        with self._lock:
            if chosen not in self._cache:
                self._cache[chosen] = (
                    load_translations(self.locale_dir, chosen)
                    if chosen
                    else gettext.NullTranslations()
                )
            return self._cache[chosen]
