"""Every string a person reads has a Simplified Chinese translation, and the checker can fail."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from i18n.extract import missing_translations, update_catalogue

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "package",
    ["gateway", "i18n", "centre/push", "centre/bulletins", "centre/web", "centre/announce"],
)
def test_every_marked_string_is_translated_to_zh_cn(package: str) -> None:
    missing = missing_translations(ROOT / package, "zh_CN")
    assert not missing, (
        f"{len(missing)} untranslated string(s); add them with "
        f"`python -m i18n update {package} --domain <your domain>` and translate:\n"
        + "\n".join(f"  {m.where}: {m.msgid!r} ({m.problem})" for m in missing)
    )


HEADER = (
    'msgid ""\nmsgstr ""\n"Language: zh_CN\\n"\n"Plural-Forms: nplurals=1; plural=0;\\n"\n'
    '"Content-Type: text/plain; charset=utf-8\\n"\n\n'
)


def _package(tmp_path: Path, po_body: str) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "templates").mkdir(parents=True)
    (pkg / "mod.py").write_text(
        textwrap.dedent(
            """
            from gateway.i18n import _, ngettext
            A = _("Readers")
            B = ngettext("%(n)d tap", "%(n)d taps", 3)
            """
        )
    )
    (pkg / "templates" / "page.html").write_text("<h1>{% trans %}Alerts{% endtrans %}</h1>")
    folder = pkg / "locale" / "zh_CN" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "one.po").write_text(HEADER + po_body, encoding="utf-8")
    return pkg


def test_checker_finds_missing_empty_and_fuzzy_entries_in_python_and_templates(
    tmp_path: Path,
) -> None:
    pkg = _package(
        tmp_path,
        '#, fuzzy\nmsgid "Readers"\nmsgstr "读卡器"\n\n'
        'msgid "%(n)d tap"\nmsgid_plural "%(n)d taps"\nmsgstr[0] ""\n',
    )
    problems = {m.msgid: m.problem for m in missing_translations(pkg, "zh_CN")}
    assert problems == {
        "Readers": "fuzzy",
        "%(n)d tap": "empty translation",
        "Alerts": "not in any catalogue",
    }


def test_a_string_in_any_domain_counts_and_update_adds_only_what_is_missing(
    tmp_path: Path,
) -> None:
    pkg = _package(tmp_path, 'msgid "Readers"\nmsgstr "读卡器"\n')
    added = update_catalogue(pkg, "two", "zh_CN")
    assert sorted(added) == ["%(n)d tap", "Alerts"]
    # Added untranslated: still missing until someone translates them.
    assert {m.msgid for m in missing_translations(pkg, "zh_CN")} == {"%(n)d tap", "Alerts"}
    two = pkg / "locale" / "zh_CN" / "LC_MESSAGES" / "two.po"
    text = two.read_text(encoding="utf-8")
    text = text.replace('msgid "Alerts"\nmsgstr ""', 'msgid "Alerts"\nmsgstr "警报"')
    text = text.replace('msgstr[0] ""', 'msgstr[0] "%(n)d 次打卡"')
    two.write_text(text, encoding="utf-8")
    assert missing_translations(pkg, "zh_CN") == []
    assert update_catalogue(pkg, "two", "zh_CN") == []
