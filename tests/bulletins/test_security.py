"""The monthly security bulletin from raw month data (a case CSV, survey outcomes, patrol tallies,
device seconds): the same five compounds and two townships as the hand computation in
tests/programme/test_assessment.py, so every score, rank and designation is known in advance."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from centre.bulletins.assessment import ADVANCED, ZERO_INCIDENT
from centre.bulletins.cases import CaseRow, parse_cases_csv
from centre.bulletins.model import (
    Broadcasts,
    DeviceUptime,
    MonthlyBulletin,
    MonthlyCompound,
    MonthlyTownship,
    PatrolTally,
)
from centre.bulletins.pdf import html_to_pdf
from centre.bulletins.security import security_bulletin, security_html
from centre.bulletins.survey import NOT_REACHED, REACHED_SATISFIED, REACHED_UNSATISFIED, rate
from tests.bulletins.test_pdf import needs_poppler, poppler
from tests.chromium import ARTIFACTS, needs_chromium

A, B, C, D, E = "玫瑰园", "荷花苑", "竹林小区", "桂花苑", "梅园"
T1, T2 = "城关镇", "南山镇"


def device(compound: str, up: float, down: float = 0.0, unknown: float = 0.0) -> DeviceUptime:
    return DeviceUptime(compound, "gw", "reader", "bus0:1", "north-gate", up, 0.0, down, unknown,
                        "up", None, "")  # fmt: skip


def compound(
    name: str, township: str, tally: PatrolTally, devices: tuple[DeviceUptime, ...]
) -> MonthlyCompound:
    return MonthlyCompound(name, township, tally, devices, Broadcasts(), ())


# Patrol: a 19 of 20 walked (one late counts, one missed does not); b all 20; c 3 of 4 (an
# incomplete round is judged, not walked); d 1 of 2; e all 10.
# Devices: a 99 %, b and e 100 %, c none (unknown), d 90 % (unknown time is not working).
MONTHLY = MonthlyBulletin(
    month="2026-11",
    timezone="Asia/Shanghai",
    generated_at=1_796_140_800.0,  # 2026-12-01 00:00 local
    period_start=1_793_462_400.0,
    period_end=1_796_054_400.0,
    townships=(
        MonthlyTownship(T2, (
            compound(C, T2, PatrolTally(planned=4, completed=3, incomplete=1), ()),
            compound(D, T2, PatrolTally(planned=2, completed=1, missed=1),
                     (device(D, 90_000, unknown=10_000),)),
            compound(E, T2, PatrolTally(planned=10, completed=10), (device(E, 100_000),)),
        )),
        MonthlyTownship(T1, (
            compound(A, T1, PatrolTally(planned=20, completed=18, late=1, missed=1),
                     (device(A, 99_000, down=1_000),)),
            compound(B, T1, PatrolTally(planned=20, completed=20), (device(B, 100_000),)),
        )),
    ),
)  # fmt: skip

CASES_CSV = (
    "小区,日期,类别,数量\n"
    f"{A},2026-11-03,其他案件,1\n"
    f"{B},2026-11-10,入室盗窃,1\n"
    f"{D},2026-11-12,盗窃电动车,1\n"
    f"{D},2026-11-20,电信网络诈骗,1\n"
    f"{D},2026-11-21,other,1\n"
)
LAST_MONTH = [CaseRow(D, "2026-10-02", "burglary", 1), CaseRow(A, "2026-10-09", "fraud", 2)]
SURVEY = {
    A: rate([REACHED_SATISFIED] * 18 + [REACHED_UNSATISFIED] * 2 + [NOT_REACHED] * 3),
    B: rate([REACHED_SATISFIED] * 20),
    C: rate([REACHED_SATISFIED] * 15 + [REACHED_UNSATISFIED] * 5),
    D: rate([NOT_REACHED] * 20),  # nobody reached: unknown, never 0 %
    E: rate([REACHED_SATISFIED] * 20),
}
FINDINGS = {C: 1, D: 6}


def bulletin(imported: bool = True):  # type: ignore[no-untyped-def]
    rows = parse_cases_csv(CASES_CSV.encode(), month="2026-11", compounds={A, B, C, D, E})
    return security_bulletin(
        MONTHLY,
        cases=rows if imported else [],
        cases_imported=imported,
        survey=SURVEY,
        last_month_cases=LAST_MONTH,
        last_year_cases=None,
        findings=FINDINGS,
    )


def test_scores_ranks_and_designations_from_raw_month_data_match_the_hand_computation() -> None:
    sb = bulletin()
    got = [(m.assessment.compound, m.assessment.score, m.assessment.rank) for m in sb.compounds]
    assert got == [
        (E, Decimal("100.0"), 1),
        (A, Decimal("94.4"), 2),
        (B, Decimal("90.0"), 3),
        (C, Decimal("84.1"), 4),
        (D, Decimal("42.5"), 5),
    ]
    by = {m.assessment.compound: m for m in sb.compounds}
    assert {k: m.assessment.designations for k, m in by.items()} == {
        E: (ZERO_INCIDENT, ADVANCED),
        A: (ZERO_INCIDENT, ADVANCED),
        B: (),
        C: (ZERO_INCIDENT,),
        D: (),
    }
    assert (by[A].patrol, by[A].devices) == (Fraction(19, 20), Fraction(99, 100))
    assert (by[C].patrol, by[C].devices) == (Fraction(3, 4), None)
    assert by[D].devices == Fraction(9, 10) and by[D].survey is not None
    assert by[D].survey.satisfaction is None
    assert (by[D].cases.preventable, by[D].cases.total) == (2, 3)
    assert (by[D].change_last_month.delta, by[D].change_last_year.delta) == (2, None)
    assert by[A].change_last_month.delta == -1
    assert [(t.township, t.mean_score, t.preventable_cases, t.zero_incident, t.advanced, t.rank)
            for t in sb.townships] == [
        (T1, Decimal("92.2"), 1, 1, 1, 1),
        (T2, Decimal("75.5"), 2, 2, 1, 2),
    ]  # fmt: skip


def cells(html: str, attr: str, name: str) -> list[str]:
    row = re.search(rf'<tr data-{attr}="{re.escape(name)}">(.*?)</tr>', html, re.S)
    assert row, name
    return [
        re.sub(r"<[^>]+>", " ", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)
    ]


def test_the_page_in_chinese_shows_exactly_these_figures() -> None:
    html = security_html(bulletin())
    assert '<html lang="zh-CN">' in html and "2026-11 治安月通报" in html
    # rank, compound, township, 8 categories, total, vs last month, vs last year, patrol,
    # devices, satisfaction, score, designation
    assert cells(html, "compound", A) == [
        "2", A, T1, "0", "0", "0", "0", "0", "0", "0", "1", "1", "-1", "未知",
        "95.0%", "99.0%", "90.0%", "94.4", "零发案小区、先进小区",
    ]  # fmt: skip
    assert cells(html, "compound", D) == [
        "5", D, T2, "0", "0", "1", "0", "0", "1", "0", "1", "3", "+2", "未知",
        "50.0%", "90.0%", "未知", "42.5  未计入：回访", "",
    ]  # fmt: skip
    assert cells(html, "compound", C)[14:17] == ["75.0%", "未知", "75.0%"]
    assert cells(html, "township", T1) == ["1", T1, "2", "92.2", "1", "1", "1"]
    assert cells(html, "township", T2) == ["2", T2, "3", "75.5", "2", "2", "1"]
    # Why b is not advanced, in words.
    why_b = re.search(rf'<div class="why" data-compound="{B}">(.*?)</div>', html, re.S)
    assert why_b and "先进小区: 否，可防性案件 1 (≤ 0); 名次 3 (≤ 2)" in why_b[1]
    assert "零发案小区: 否，可防性案件 1 (0)" in why_b[1]


def test_without_case_figures_nobody_is_zero_incident_and_the_page_says_why() -> None:
    sb = bulletin(imported=False)
    assert all(ZERO_INCIDENT not in m.assessment.designations for m in sb.compounds)
    html = security_html(sb)
    assert 'id="no-cases"' in html and "本月案件数据尚未导入" in html
    assert security_html(sb, lang="en").count("Security bulletin 2026-11") == 2


def test_hostile_names_stay_text() -> None:
    evil = '<script>alert(1)</script>&"'
    monthly = MonthlyBulletin("2026-11", "Asia/Shanghai", 0.0, 0.0, 1.0, (
        MonthlyTownship(evil, (compound(evil, evil, PatrolTally(), ()),)),
    ))  # fmt: skip
    html = security_html(security_bulletin(monthly, cases=[], cases_imported=False, survey={}))
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#34;" in html


tallies = st.builds(
    PatrolTally,
    completed=st.integers(0, 5),
    late=st.integers(0, 3),
    incomplete=st.integers(0, 3),
    missed=st.integers(0, 3),
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([T1, T2, "x"]), tallies, st.integers(0, 3), st.integers(0, 2)),
        min_size=1,
        max_size=12,
    ),
    st.booleans(),
)
def test_ranking_is_a_permutation_and_a_preventable_case_is_never_zero_incident(
    spec: list[tuple[str, PatrolTally, int, int]], imported: bool
) -> None:
    names = [f"c{i}" for i in range(len(spec))]
    groups: dict[str, list[MonthlyCompound]] = {}
    rows = []
    for name, (town, tally, preventable, other) in zip(names, spec, strict=True):
        groups.setdefault(town, []).append(compound(name, town, tally, ()))
        rows += [CaseRow(name, "2026-11-02", "burglary", 1)] * preventable
        rows += [CaseRow(name, "2026-11-03", "other", 1)] * other
    monthly = MonthlyBulletin("2026-11", "Asia/Shanghai", 0.0, 0.0, 1.0, tuple(
        MonthlyTownship(t, tuple(cs)) for t, cs in groups.items()
    ))  # fmt: skip
    sb = security_bulletin(monthly, cases=rows, cases_imported=imported, survey={})
    assert sorted(m.assessment.rank for m in sb.compounds) == list(range(1, len(spec) + 1))
    assert sorted(m.assessment.compound for m in sb.compounds) == sorted(names)
    html = security_html(sb)
    for m in sb.compounds:
        if m.cases.preventable or not imported:
            assert ZERO_INCIDENT not in m.assessment.designations
            assert "零发案小区" not in cells(html, "compound", m.assessment.compound)[-1]


@needs_chromium
@needs_poppler
async def test_security_bulletin_pdf_in_chinese() -> None:
    pdf = ARTIFACTS / "security-bulletin-2026-11.pdf"
    pdf.unlink(missing_ok=True)
    await html_to_pdf(security_html(bulletin()), pdf)
    text = poppler("pdftotext", "-layout", str(pdf), "-")
    for words in ("治安月通报", "零发案小区", "先进小区", A, D, T1, "94.4", "42.5"):
        assert words in text, words
    size = poppler("pdfinfo", str(pdf))
    assert "841.92 x 594.96" in size or "842 x 595" in size, size  # A4 landscape
