"""Catalogue upkeep from the command line (English source strings, gettext catalogues).

    python -m i18n check gateway            # list source strings with no zh_CN translation
    python -m i18n update gateway --domain gateway   # add them, untranslated, to gateway.po
    python -m i18n compile gateway/locale   # .po -> .mo (make bootstrap, install, wheel build)

Strings are found by Babel's extractor: ``_()``, ``gettext()``, ``ngettext()``, ``N_()`` in
Python and ``{% trans %}`` / ``_()`` in ``templates/*.html``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from i18n.catalogue import compile_catalogues
from i18n.extract import missing_translations, update_catalogue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m i18n", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile every .po under the locale folders to .mo")
    c.add_argument("locale_dirs", nargs="+", type=Path)
    k = sub.add_parser("check", help="list extracted strings without a translation")
    k.add_argument("package", type=Path)
    k.add_argument("--lang", default="zh_CN")
    u = sub.add_parser("update", help="add missing strings to one domain's .po, untranslated")
    u.add_argument("package", type=Path)
    u.add_argument("--domain", required=True)
    u.add_argument("--lang", default="zh_CN")
    args = parser.parse_args(argv)
    if args.command == "compile":
        for folder in args.locale_dirs:
            for mo in compile_catalogues(folder):
                print(f"compiled {mo}")
        return 0
    if args.command == "check":
        missing = missing_translations(args.package, args.lang)
        for m in missing:
            print(f"{m.where}: {m.msgid!r}: {m.problem}")
        return 1 if missing else 0
    added = update_catalogue(args.package, args.domain, args.lang)
    for msgid in added:
        print(f"added {msgid!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
