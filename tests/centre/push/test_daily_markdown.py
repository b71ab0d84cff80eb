"""The daily bulletin as robot markdown: Chinese by default, English available, every untrusted
name inert, every compound that must explain listed with its link."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from centre.push.daily import daily_markdown, md_link, md_text
from centre.push.plan import MARKDOWN_LIMIT, split_markdown
from i18n.extract import missing_translations
from tests.centre.push.conftest import bulletin

ROOT = Path(__file__).resolve().parents[3]
# What the robot's markdown acts on: links, bold, code, headings at a line start, HTML tags.
MARKUP = re.compile(r"\[|\]|\(|\)|\*|`|<|>|^#", re.MULTILINE)


def test_every_word_of_the_push_has_a_zh_cn_translation() -> None:
    missing = missing_translations(ROOT / "centre" / "push", "zh_CN")
    assert not missing, [f"{m.where}: {m.msgid!r} ({m.problem})" for m in missing]


def test_chinese_by_default_english_on_request() -> None:
    b = bulletin(3, must_explain=1)
    zh, en = daily_markdown(b), daily_markdown(b, "en")
    assert zh.startswith("## 2025-12-04 巡逻日报")
    assert "需说明的小区（1）" in zh and "漏巡 1 轮" in zh and "计划 4，按时完成 3" in zh
    assert "2025年12月5日" in zh  # issued, as a person reads a date
    assert en.startswith("## Patrol bulletin for 2025-12-04")
    assert "Must explain (1)" in en and "1 missed round" in en
    assert "1764900000" not in zh + en  # no raw epoch numbers


def test_each_compound_that_must_explain_gets_its_link() -> None:
    b = bulletin(5, must_explain=2)
    links = {}

    def link_for(compound: str, day: str) -> str:
        links[compound] = day
        return f"https://centre.example/explain/{compound[-3:]}?day={day}&sig=ab)cd"

    text = daily_markdown(b, link_for=link_for)
    assert links == {"Compound 000 花园小区": b.day, "Compound 001 花园小区": b.day}
    found = re.findall(r"\[填写说明\]\(([^)\s]+)\)", text)
    assert len(found) == 2  # the ")" inside the URL was encoded: the link is not cut short
    assert all(u.endswith("sig=ab%29cd") for u in found)
    assert md_link("javascript:alert(1)") is None and md_link("") is None


def test_explained_rounds_are_quoted_and_not_asked_again() -> None:
    from centre.bulletins.model import Explanation

    b = bulletin(2, must_explain=1)
    x = Explanation(
        1, b.missed[0].compound, b.missed[0].round_id, "guard ill\n# no relief", "", "op", 0
    )
    b = replace(b, missed=(replace(b.missed[0], explanations=(x,)),))
    text = daily_markdown(b)
    assert "需说明的小区（0）" in text and "### 已说明" in text
    assert "> guard ill \uff03 no relief" in text  # a full-width #: no heading


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=80
)


@settings(max_examples=200, deadline=None)
@given(name=names, township=names, explanation=names)
def test_untrusted_names_cannot_forge_markup(name: str, township: str, explanation: str) -> None:
    from centre.bulletins.model import Explanation

    b = bulletin(2, must_explain=2)
    x = Explanation(1, name, "r", explanation, "", "op", 0)
    rows = (replace(b.rows[0], compound=name, township=township), b.rows[1])
    missed = (
        replace(b.missed[0], compound=name, township=township, explanations=(x,)),
        b.missed[1],
    )
    b = replace(b, rows=rows, missed=missed)
    for piece in (md_text(name), md_text(township), md_text(explanation, 200)):
        assert "\n" not in piece and not MARKUP.search(piece)
    text = daily_markdown(b)
    assert text.count("\n## ") == 0 and text.startswith("## ")
    for part in split_markdown(text):
        assert len(part.encode()) <= MARKDOWN_LIMIT
