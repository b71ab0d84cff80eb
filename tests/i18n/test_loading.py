"""Catalogues: every domain merged, a stale or missing .mo never shows message ids."""

from __future__ import annotations

import os
from pathlib import Path

import jinja2
import pytest

from i18n import Catalogues, compile_catalogues, load_translations, make_environment

HEADER = (
    'msgid ""\nmsgstr ""\n"Language: zh_CN\\n"\n"Plural-Forms: nplurals=1; plural=0;\\n"\n'
    '"Content-Type: text/plain; charset=utf-8\\n"\n\n'
)


def _po(folder: Path, domain: str, pairs: dict[str, str], extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(f'msgid "{k}"\nmsgstr "{v}"\n\n' for k, v in pairs.items())
    path = folder / f"{domain}.po"
    path.write_text(HEADER + body + extra, encoding="utf-8")
    return path


@pytest.fixture
def locale_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "locale" / "zh_CN" / "LC_MESSAGES"
    _po(folder, "gateway", {"Readers": "读卡器"})
    _po(folder, "setup", {"Guards": "保安"}, extra='#, fuzzy\nmsgid "Routes"\nmsgstr "路线?"\n')
    return tmp_path / "locale"


def test_every_domain_is_merged_from_po_without_any_mo(locale_dir: Path) -> None:
    t = load_translations(locale_dir, "zh-CN")
    assert t.gettext("Readers") == "读卡器"
    assert t.gettext("Guards") == "保安"
    assert t.gettext("Routes") == "Routes"  # fuzzy: the English source, never a guess
    assert t.gettext("Unknown") == "Unknown"


@pytest.mark.parametrize("tag", ["zh-CN", "zh_CN", "zh", "zh-Hans", "ZH-cn"])
def test_any_spelling_of_simplified_chinese_finds_the_catalogue(locale_dir: Path, tag: str) -> None:
    assert Catalogues(locale_dir, ("zh-CN", "en")).translations(tag).gettext("Readers") == "读卡器"


def test_english_and_unsupported_languages_get_the_source_strings(locale_dir: Path) -> None:
    cats = Catalogues(locale_dir, ("zh-CN", "en"))
    assert cats.translations("en").gettext("Readers") == "Readers"
    assert cats.translations("fr").gettext("Readers") == "Readers"


def test_a_compiled_mo_is_used_and_a_stale_one_is_ignored(locale_dir: Path) -> None:
    written = compile_catalogues(locale_dir)
    assert sorted(p.name for p in written) == ["gateway.mo", "setup.mo"]
    mo = locale_dir / "zh_CN" / "LC_MESSAGES" / "gateway.mo"
    po = mo.with_suffix(".po")
    assert load_translations(locale_dir, "zh-CN").gettext("Readers") == "读卡器"
    # A translator edits the .po after the build: the old .mo must not win.
    po.write_text(po.read_text(encoding="utf-8").replace("读卡器", "打卡器"), encoding="utf-8")
    old = mo.stat().st_mtime - 60
    os.utime(mo, (old, old))
    assert load_translations(locale_dir, "zh-CN").gettext("Readers") == "打卡器"
    # Only the .mo (the .po removed): still translated.
    compile_catalogues(locale_dir)
    po.unlink()
    assert load_translations(locale_dir, "zh-CN").gettext("Readers") == "打卡器"


def test_templates_autoescape_and_translate(locale_dir: Path) -> None:
    t = load_translations(locale_dir, "zh-CN")
    env = make_environment(
        t,
        loader=jinja2.DictLoader(
            {"p.txt": "{% trans %}Readers{% endtrans %}: {{ name }} {{ _('Guards') }}"}
        ),
    )
    out = env.get_template("p.txt").render(name="<script>x</script>")
    assert out == "读卡器: &lt;script&gt;x&lt;/script&gt; 保安"
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("p.txt").render()
