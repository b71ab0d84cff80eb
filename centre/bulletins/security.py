"""The monthly security bulletin (治安月通报): cases, patrol, devices, survey, score, rank.

Theory of operation
-------------------
This joins what the other parts compute for a month, and does no I/O:

* patrol and devices from the monthly bulletin (:func:`centre.bulletins.model.monthly_bulletin`):
  patrol compliance = rounds walked in full (on time or late) among the rounds judged, device
  uptime = working seconds (up or degraded) over all seconds of every device of the compound,
  unknown time counted as not working, in whole seconds;
* cases from the stored import (:mod:`centre.bulletins.case_store`), with the change against
  last month and the same month last year when those were imported;
* satisfaction from the survey's outcomes (:func:`centre.bulletins.survey.rate`);

then scores, ranks and designates with :func:`centre.bulletins.assessment.assess` and renders
one page (``templates/security.html``, Jinja2, Simplified Chinese by default), which
:mod:`centre.bulletins.pdf` prints::

    sb = security_bulletin(monthly, cases=rows, cases_imported=True, survey=rates)
    html = security_html(sb, lang="zh-CN")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

from centre.bulletins.assessment import (
    ADVANCED,
    ZERO_INCIDENT,
    AdvancedRules,
    Assessment,
    Change,
    CompoundInput,
    ScoringRules,
    TownshipAssessment,
    assess,
    one_decimal,
    townships,
)
from centre.bulletins.cases import (
    DEFAULT_CATEGORIES,
    CaseCategory,
    CaseFigures,
    CaseRow,
    figures_by_compound,
)
from centre.bulletins.charts import History
from centre.bulletins.model import MonthlyBulletin, MonthlyCompound, local_text
from centre.bulletins.pages import Words, compliance_view, heatmap_view, uptime_view
from centre.bulletins.survey import SurveyRate
from centre.bulletins.words import N_, environment, translations

# Words for the reasons a designation was (not) given, translated when shown.
RULE_NAMES: Final = {
    "cases_imported": N_("case figures imported"),
    "preventable_cases": N_("preventable cases"),
    "patrol": N_("patrol compliance"),
    "survey": N_("satisfaction"),
    "score": N_("score"),
    "rank": N_("rank"),
}
DESIGNATION_NAMES: Final = {
    ZERO_INCIDENT: N_("zero-incident compound"),
    ADVANCED: N_("advanced compound"),
}
COMPONENT_NAMES: Final = {
    "cases": N_("cases"),
    "patrol": N_("patrol"),
    "devices": N_("devices"),
    "survey": N_("survey"),
}


@dataclass(frozen=True, slots=True)
class CompoundMonth:
    """One compound's row of the security bulletin."""

    assessment: Assessment
    cases: CaseFigures
    change_last_month: Change
    change_last_year: Change
    patrol: Fraction | None
    devices: Fraction | None
    survey: SurveyRate | None


@dataclass(frozen=True, slots=True)
class SecurityBulletin:
    month: str
    timezone: str
    generated_at: float
    cases_imported: bool
    categories: tuple[CaseCategory, ...]
    compounds: tuple[CompoundMonth, ...]  # in rank order
    townships: tuple[TownshipAssessment, ...]  # in rank order
    rules: ScoringRules = field(default_factory=ScoringRules)


def patrol_compliance(c: MonthlyCompound) -> Fraction | None:
    t = c.patrol
    return None if t.assessed == 0 else Fraction(t.completed + t.late, t.assessed)


def device_uptime(c: MonthlyCompound) -> Fraction | None:
    """Working seconds over all seconds of the compound's devices (whole seconds)."""
    period = sum(round(d.period_s) for d in c.devices)
    if period <= 0:
        return None
    return Fraction(sum(round(d.up_s + d.degraded_s) for d in c.devices), period)


_NO_CASES: Final = CaseFigures(by_category={}, preventable=0, total=0)


def security_bulletin(
    monthly: MonthlyBulletin,
    *,
    cases: Iterable[CaseRow],
    cases_imported: bool,
    survey: Mapping[str, SurveyRate],
    last_month_cases: Iterable[CaseRow] | None = None,
    last_year_cases: Iterable[CaseRow] | None = None,
    findings: Mapping[str, int] | None = None,
    categories: Sequence[CaseCategory] = DEFAULT_CATEGORIES,
    rules: ScoringRules | None = None,
    advanced: AdvancedRules | None = None,
) -> SecurityBulletin:
    """The month's security bulletin; ``None`` for an earlier month means it was not imported
    (its change is then unknown, never "+N")."""
    rules = rules or ScoringRules()
    figures = figures_by_compound(cases, categories)
    before = None if last_month_cases is None else figures_by_compound(last_month_cases, categories)
    year = None if last_year_cases is None else figures_by_compound(last_year_cases, categories)
    findings = findings or {}
    months = [c for t in monthly.townships for c in t.compounds]
    inputs = []
    for c in months:
        f = figures.get(c.compound, _NO_CASES)
        rate = survey.get(c.compound)
        inputs.append(
            CompoundInput(
                compound=c.compound,
                township=c.township,
                preventable_cases=f.preventable,
                other_cases=f.total - f.preventable,
                patrol=patrol_compliance(c),
                devices=device_uptime(c),
                survey=None if rate is None else rate.satisfaction,
                adverse_findings=findings.get(c.compound, 0),
            )
        )
    result = assess(inputs, rules=rules, advanced=advanced, cases_imported=cases_imported)
    by_name = {c.compound: c for c in months}
    rows = []
    for a in result:
        f = figures.get(a.compound, _NO_CASES)
        c = by_name[a.compound]

        def earlier(other: dict[str, CaseFigures] | None, name: str = a.compound) -> int | None:
            return None if other is None else other.get(name, _NO_CASES).total

        rows.append(
            CompoundMonth(
                assessment=a,
                cases=f,
                change_last_month=Change(f.total, earlier(before)),
                change_last_year=Change(f.total, earlier(year)),
                patrol=patrol_compliance(c),
                devices=device_uptime(c),
                survey=survey.get(a.compound),
            )
        )
    return SecurityBulletin(
        month=monthly.month,
        timezone=monthly.timezone,
        generated_at=monthly.generated_at,
        cases_imported=cases_imported,
        categories=tuple(categories),
        compounds=tuple(rows),
        townships=tuple(townships(result, inputs)),
        rules=rules,
    )


# --------------------------------------------------------------------------- page


def percent(x: Fraction | None, unknown: str) -> str:
    """A share 0..1 as a percentage, rounded half up: ``Fraction(19, 20)`` -> ``95.0%``;
    None -> the word for unknown."""
    return unknown if x is None else f"{one_decimal(x * 100)}%"


def change_text(ch: Change, unknown: str) -> str:
    if ch.delta is None:
        return unknown
    return f"{ch.delta:+d}" if ch.delta else "0"


def security_html(
    b: SecurityBulletin,
    *,
    lang: str = "zh-CN",
    monthly: MonthlyBulletin | None = None,
    history: History | None = None,
) -> str:
    """The bulletin as one self-contained page (print-ready: A4 landscape); with ``monthly``
    it carries the device uptime chart, with ``history`` the patrol charts (inline SVG)."""
    t = translations(lang)
    w = Words(lang, b.timezone)
    unknown = t.gettext(N_("unknown"))
    zh = lang.lower().startswith("zh")
    categories = [(c.id, c.label_zh if zh else c.label_en) for c in b.categories]

    def reasons(a: Assessment) -> list[dict[str, Any]]:
        out = []
        for designation in (ZERO_INCIDENT, ADVANCED):
            failed = [
                f"{t.gettext(RULE_NAMES.get(r.rule, r.rule))} {r.value} ({r.limit})"
                for r in a.reasons[designation]
                if not r.met
            ]
            out.append(
                {
                    "name": t.gettext(DESIGNATION_NAMES[designation]),
                    "given": not failed,
                    "failed": "; ".join(failed),
                }
            )
        return out

    compounds = [
        {
            "rank": m.assessment.rank,
            "compound": m.assessment.compound,
            "township": m.assessment.township,
            "cases": [m.cases.by_category.get(cid, 0) for cid, _ in categories],
            "total": m.cases.total if b.cases_imported else unknown,
            "last_month": change_text(m.change_last_month, unknown),
            "last_year": change_text(m.change_last_year, unknown),
            "patrol": percent(m.patrol, unknown),
            "devices": percent(m.devices, unknown),
            "survey": percent(m.survey.satisfaction if m.survey else None, unknown),
            "score": str(m.assessment.score),
            "missing": "、".join(t.gettext(COMPONENT_NAMES[k]) for k in m.assessment.missing),
            "designations": [t.gettext(DESIGNATION_NAMES[d]) for d in m.assessment.designations],
            "reasons": reasons(m.assessment),
        }
        for m in b.compounds
    ]
    return (
        environment(lang)
        .get_template("security.html")
        .render(
            lang=lang,
            month=b.month,
            generated=local_text(b.generated_at, b.timezone),
            cases_imported=b.cases_imported,
            categories=[label for _, label in categories],
            townships=b.townships,
            compounds=compounds,
            weights=b.rules.weights,
            uptime=None if monthly is None else uptime_view(w, monthly),
            compliance=compliance_view(w, history),
            heat=heatmap_view(w, history),
        )
    )


__all__ = [
    "CompoundMonth",
    "SecurityBulletin",
    "device_uptime",
    "patrol_compliance",
    "security_bulletin",
    "security_html",
]
