"""The survey's sample and masks, and what a WeChat Work robot accepts (parts and pacing)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from centre.bulletins.survey import (
    NOT_REACHED,
    REACHED_SATISFIED,
    REACHED_UNSATISFIED,
    Resident,
    draw_sample,
    mask_phone,
    rate,
)
from centre.push.plan import MARKDOWN_LIMIT, Pacer, SplitError, split_markdown


def test_masked_numbers_show_only_the_ends() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("+86 138-1234-5678") == "861******5678"
    assert mask_phone("12345") == "*****"


def test_sample_is_reproducible_bounded_and_per_compound() -> None:
    people = [Resident(f"r{i}", "a" if i % 3 else "b", f"1380000{i:04d}") for i in range(90)]
    one = draw_sample(people, per_compound=20, seed=42)
    assert one == draw_sample(list(reversed(people)), per_compound=20, seed=42)
    assert {k: len(v) for k, v in one.items()} == {"a": 20, "b": 20}
    assert all(r.compound == k for k, v in one.items() for r in v)
    assert len({r.id for r in one["a"]}) == 20
    assert one != draw_sample(people, per_compound=20, seed=43)
    small = draw_sample(people[:4], per_compound=20, seed=1)
    assert sum(len(v) for v in small.values()) == 4


def test_rate_is_unknown_when_nobody_was_reached() -> None:
    r = rate([REACHED_SATISFIED, REACHED_UNSATISFIED, NOT_REACHED, None, REACHED_SATISFIED])
    assert (r.sampled, r.reached, r.satisfied, r.satisfaction) == (5, 3, 2, Fraction(2, 3))
    assert rate([NOT_REACHED, None]).satisfaction is None
    with pytest.raises(ValueError, match="unknown survey outcomes"):
        rate(["maybe"])


lines = st.lists(
    st.text(st.sampled_from("ab 治安巡逻小区\t|-*#"), max_size=900), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(lines)
def test_parts_fit_are_numbered_and_lose_nothing(parts_of: list[str]) -> None:
    text = "\n".join(parts_of)
    parts = split_markdown(text, limit=MARKDOWN_LIMIT)
    assert all(len(p.encode("utf-8")) <= MARKDOWN_LIMIT for p in parts)
    if len(parts) == 1:
        assert parts == [text]
        return
    n = len(parts)
    bodies = []
    for i, p in enumerate(parts, start=1):
        head, _, body = p.partition("\n")
        assert head == f"({i}/{n})"
        bodies.append(body)
    assert "".join(bodies).replace("\n", "") == text.replace("\n", "")


def test_a_bulletin_of_three_messages_splits_at_lines() -> None:
    line = "| 玫瑰园 | 已巡逻 | 12/12 |"
    text = "\n".join([line] * 400)  # about 12 KB of UTF-8
    parts = split_markdown(text)
    assert len(parts) == 4
    assert all(p.split("\n", 1)[1].split("\n")[0] == line for p in parts)


def test_too_many_parts_is_refused() -> None:
    with pytest.raises(SplitError):
        split_markdown("x" * 500_000)


@given(st.lists(st.floats(0, 600, allow_nan=False), max_size=60))
@settings(max_examples=150, deadline=None)
def test_pacing_keeps_any_minute_within_twenty(arrivals: list[float]) -> None:
    pacer = Pacer()
    sent: list[float] = []
    for want in sorted(arrivals):
        at = want + pacer.delay(sent, want)
        assert pacer.delay(sent, at) == 0.0
        sent.append(at)
    for t in sent:
        assert sum(t <= s < t + 60.0 for s in sent) <= 20


def test_twenty_five_in_a_minute_are_paced() -> None:
    pacer = Pacer()
    sent: list[float] = []
    for _ in range(25):
        now = sent[-1] if sent else 0.0
        sent.append(now + pacer.delay(sent, now))
    assert sent[:20] == [0.0] * 20
    assert sent[20:] == [60.0] * 5
