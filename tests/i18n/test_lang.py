"""Language tags and Accept-Language negotiation."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from i18n import match, negotiate, normalise, to_locale

SUPPORTED = ("zh-CN", "en")


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("zh-CN", "zh-CN"),
        ("zh_CN", "zh-CN"),
        ("zh_CN.UTF-8", "zh-CN"),
        ("zh", "zh-CN"),
        ("zh-Hans", "zh-CN"),
        ("EN", "en"),
        ("en-gb", "en-GB"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("", ""),
        ("<script>", ""),
        ("en--", ""),
    ],
)
def test_normalise(raw: str, want: str) -> None:
    assert normalise(raw) == want


def test_match_prefers_exact_then_primary_language() -> None:
    assert match("en-GB", SUPPORTED) == "en"
    assert match("zh-TW", SUPPORTED) == "zh-CN"
    assert match("fr", SUPPORTED) is None
    assert to_locale("zh-CN") == "zh_CN"


@pytest.mark.parametrize(
    ("header", "want"),
    [
        ("en-GB,en;q=0.9", "en"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("fr;q=1, en;q=0.5, zh;q=0.4", "en"),
        ("en;q=0.2, zh;q=0.9", "zh-CN"),
        ("de, *;q=0.5", "zh-CN"),
        ("en;q=0", "zh-CN"),
        ("en;q=abc", "zh-CN"),
        (None, "zh-CN"),
        ("", "zh-CN"),
    ],
)
def test_negotiate(header: str | None, want: str) -> None:
    assert negotiate(header, SUPPORTED, default="zh-CN") == want


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_negotiate_never_raises_and_answers_a_supported_language(header: str) -> None:
    assert negotiate(header, SUPPORTED, default="zh-CN") in SUPPORTED
