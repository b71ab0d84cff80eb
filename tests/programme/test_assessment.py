"""The monthly assessment against a month computed by hand (docs/bulletins.md, "Assessment")."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction as F

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from centre.bulletins.assessment import (
    ADVANCED,
    DEVICES,
    SURVEY,
    ZERO_INCIDENT,
    AdvancedRules,
    Change,
    CompoundInput,
    RulesError,
    ScoringRules,
    assess,
    townships,
)

# Five compounds in two townships. The figures in the comments are the hand computation with
# the default weights 40/30/10/20, 25 points per preventable case, 5 per other case, 2 per
# adverse video finding (at most 10).
MONTH = [
    # cases 95, patrol 95, devices 99, survey 90: (3800+2850+990+1800)/100 = 94.4
    CompoundInput("a", "t1", 0, 1, F(19, 20), F(99, 100), F(18, 20), 0),
    # cases 75, 100, 100, 100: 9000/100 = 90.0
    CompoundInput("b", "t1", 1, 0, F(1), F(1), F(1), 0),
    # cases 100, patrol 75, devices unknown, survey 75: 7750/90 = 86.11.. less 2 = 84.1
    CompoundInput("c", "t2", 0, 0, F(3, 4), None, F(15, 20), 1),
    # cases 45, patrol 50, devices 90, survey unknown: 4200/80 = 52.5 less 10 (cap) = 42.5
    CompoundInput("d", "t2", 2, 1, F(1, 2), F(9, 10), None, 6),
    # everything 100
    CompoundInput("e", "t2", 0, 0, F(1), F(1), F(1), 0),
]


def test_scores_ranks_and_designations_match_the_hand_computation() -> None:
    result = assess(MONTH, cases_imported=True)
    assert [(a.compound, a.score, a.rank) for a in result] == [
        ("e", Decimal("100.0"), 1),
        ("a", Decimal("94.4"), 2),
        ("b", Decimal("90.0"), 3),
        ("c", Decimal("84.1"), 4),
        ("d", Decimal("42.5"), 5),
    ]
    by = {a.compound: a for a in result}
    assert {k: a.designations for k, a in by.items()} == {
        "e": (ZERO_INCIDENT, ADVANCED),
        "a": (ZERO_INCIDENT, ADVANCED),  # an "other" case does not spoil zero-incident
        "b": (),  # 90.0 reaches the score rule, but one preventable case
        "c": (ZERO_INCIDENT,),
        "d": (),
    }
    assert by["c"].missing == (DEVICES,)
    assert by["c"].components["devices"] is None
    assert by["c"].components["patrol"] == Decimal("75.0")
    assert by["c"].deduction == Decimal("2.0")
    assert by["d"].missing == (SURVEY,)
    assert by["d"].deduction == Decimal("10.0")
    assert by["a"].components["cases"] == Decimal("95.0")
    # Why b is not advanced: exactly the rule that failed.
    failed = [r.rule for r in by["b"].reasons[ADVANCED] if not r.met]
    assert failed == ["preventable_cases", "rank"]
    # The rank rule: the best 30 % of 5 compounds is the first 2.
    rank_rule = next(r for r in by["c"].reasons[ADVANCED] if r.rule == "rank")
    assert (rank_rule.met, rank_rule.value, rank_rule.limit) == (False, "4", "≤ 2")


def test_townships_mean_scores_cases_and_designations() -> None:
    result = assess(MONTH, cases_imported=True)
    rows = townships(result, MONTH)
    # t1: (94.4 + 90.0) / 2 = 92.2; t2: (84.1 + 42.5 + 100.0) / 3 = 75.53.. = 75.5
    assert [
        (t.township, t.mean_score, t.preventable_cases, t.zero_incident, t.advanced, t.rank)
        for t in rows
    ] == [
        ("t1", Decimal("92.2"), 1, 1, 1, 1),
        ("t2", Decimal("75.5"), 2, 2, 1, 2),
    ]


def test_without_case_figures_nobody_is_zero_incident_and_cases_do_not_count() -> None:
    result = assess(MONTH, cases_imported=False)
    by = {a.compound: a for a in result}
    assert all(ZERO_INCIDENT not in a.designations for a in result)
    assert all("cases" in a.missing for a in result)
    # b without its case component: (3000 + 1000 + 2000) / 60 = 100.0
    assert by["b"].score == Decimal("100.0")


def test_ties_are_broken_by_cases_then_patrol_then_name() -> None:
    same = dict(devices=None, survey=None)
    tied = [
        CompoundInput("z", "t", 0, 0, F(1), **same),
        CompoundInput("y", "t", 0, 0, F(1), **same),
    ]
    assert [a.compound for a in assess(tied, cases_imported=False)] == ["y", "z"]
    # With cases imported, one preventable case costs z score and rank.
    tied2 = [
        CompoundInput("z", "t", 0, 0, F(1), **same),
        CompoundInput("y", "t", 1, 0, F(1), **same),
    ]
    assert [a.compound for a in assess(tied2, cases_imported=True)] == ["z", "y"]


def test_rules_are_checked() -> None:
    with pytest.raises(RulesError):
        ScoringRules(weights={"cases": 10, "luck": 5})
    with pytest.raises(RulesError):
        ScoringRules(weights={"cases": 0})
    with pytest.raises(RulesError):
        assess([MONTH[0], MONTH[0]], cases_imported=True)


def test_extra_zero_incident_rule_is_explained() -> None:
    rules = AdvancedRules(zero_incident_min_patrol=F(9, 10))
    by = {a.compound: a for a in assess(MONTH, advanced=rules, cases_imported=True)}
    assert ZERO_INCIDENT not in by["c"].designations  # patrol 75 % < 90 %
    assert [r.rule for r in by["c"].reasons[ZERO_INCIDENT] if not r.met] == ["patrol"]


def test_change_against_an_earlier_month() -> None:
    assert (Change(3, 1).delta, Change(3, 1).ratio) == (2, F(2))
    assert (Change(0, 0).delta, Change(0, 0).ratio) == (0, None)
    assert (Change(2, None).delta, Change(2, None).ratio) == (None, None)


fractions = st.one_of(st.none(), st.fractions(min_value=0, max_value=1, max_denominator=50))
compound_inputs = st.lists(
    st.builds(
        CompoundInput,
        compound=st.text("abcdefgh", min_size=1, max_size=4),
        township=st.sampled_from(["t1", "t2", "t3"]),
        preventable_cases=st.integers(0, 6),
        other_cases=st.integers(0, 6),
        patrol=fractions,
        devices=fractions,
        survey=fractions,
        adverse_findings=st.integers(0, 8),
    ),
    max_size=25,
    unique_by=lambda c: c.compound,
)


@settings(max_examples=200, deadline=None)
@given(compound_inputs, st.booleans())
def test_ranking_is_a_permutation_and_zero_incident_needs_no_preventable_case(
    inputs: list[CompoundInput], imported: bool
) -> None:
    result = assess(inputs, cases_imported=imported)
    assert sorted(a.rank for a in result) == list(range(1, len(inputs) + 1))
    assert sorted(a.compound for a in result) == sorted(c.compound for c in inputs)
    cases = {c.compound: c.preventable_cases for c in inputs}
    for a in result:
        assert Decimal(0) <= a.score <= Decimal(100)
        if cases[a.compound] > 0 or not imported:
            assert ZERO_INCIDENT not in a.designations
    scores = [a.score for a in result]
    assert scores == sorted(scores, reverse=True)


@settings(max_examples=150, deadline=None)
@given(compound_inputs.filter(bool), st.integers(1, 3))
def test_one_more_preventable_case_never_raises_a_score(
    inputs: list[CompoundInput], more: int
) -> None:
    first = inputs[0]
    worse = CompoundInput(
        first.compound,
        first.township,
        first.preventable_cases + more,
        first.other_cases,
        first.patrol,
        first.devices,
        first.survey,
        first.adverse_findings,
    )
    before = next(a for a in assess(inputs, cases_imported=True) if a.compound == first.compound)
    after = next(
        a for a in assess([worse, *inputs[1:]], cases_imported=True) if a.compound == first.compound
    )
    assert after.score <= before.score
    assert after.rank >= before.rank
