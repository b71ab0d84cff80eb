"""The programme's monthly assessment: scores, ranks and designations, pure.

Theory of operation
-------------------
Each compound gets a score out of 100 from up to four components, each itself out of 100:

* **cases**: 100, less ``preventable_deduction`` per preventable case and ``other_deduction``
  per other case, never below 0;
* **patrol**: round compliance (rounds walked in full among those that could be judged) x 100;
* **devices**: device uptime (working time over the month, unknown time not counted) x 100;
* **survey**: residents satisfied among residents reached x 100.

The score is the weighted mean of the components that are *known*, so a compound is never
punished for a figure the centre does not have (no survey calls made yet), and the missing
component is listed beside the score. Adverse video-patrol findings (a guard not on post, ...)
then take ``finding_deduction`` points each off the score, at most ``finding_cap`` in all.
Every figure is computed with exact fractions and rounded half up to one decimal only at the
end, so a hand-computed fixture matches to the digit.

Ranks are a permutation of 1..n: higher score first, then fewer preventable cases, then
higher patrol compliance, then the compound id (so equal records still get a stable order).

Designations: **zero-incident** when the month's case figures were imported and the compound
had no preventable case (and, if the district asks, a minimum patrol compliance); **advanced**
when every rule of :class:`AdvancedRules` holds. Each compound carries the reasons for both,
met or not, so the bulletin can say why.

Nothing here does I/O or reads a clock.

    result = assess(inputs, rules=ScoringRules(), advanced=AdvancedRules(), cases_imported=True)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Final

CASES: Final = "cases"
PATROL: Final = "patrol"
DEVICES: Final = "devices"
SURVEY: Final = "survey"
COMPONENTS: Final = (CASES, PATROL, DEVICES, SURVEY)

ZERO_INCIDENT: Final = "zero_incident"
ADVANCED: Final = "advanced"


class RulesError(ValueError):
    """Scoring or designation rules that cannot be applied (a config error at the centre)."""


@dataclass(frozen=True, slots=True)
class ScoringRules:
    """The district's weighted formula; defaults as documented in docs/bulletins.md."""

    weights: Mapping[str, int] = field(
        default_factory=lambda: {CASES: 40, PATROL: 30, DEVICES: 10, SURVEY: 20}
    )
    preventable_deduction: int = 25
    other_deduction: int = 5
    finding_deduction: int = 2
    finding_cap: int = 10

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(COMPONENTS)
        if unknown:
            raise RulesError(f"unknown score components {sorted(unknown)}")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise RulesError("weights must be non-negative and add up to more than 0")
        for name in (
            "preventable_deduction",
            "other_deduction",
            "finding_deduction",
            "finding_cap",
        ):
            if getattr(self, name) < 0:
                raise RulesError(f"{name} must not be negative")


@dataclass(frozen=True, slots=True)
class AdvancedRules:
    """What an "advanced compound" needs; ``None`` switches a rule off."""

    min_score: Decimal | None = Decimal("90")
    max_preventable: int | None = 0
    min_patrol: Fraction | None = Fraction(95, 100)
    min_satisfaction: Fraction | None = Fraction(90, 100)
    top_share: Fraction | None = Fraction(30, 100)  # rank within the best 30 %
    zero_incident_min_patrol: Fraction | None = None  # an extra rule for zero-incident


@dataclass(frozen=True, slots=True)
class CompoundInput:
    """One compound's month, as the other bulletin models computed it."""

    compound: str
    township: str
    preventable_cases: int = 0
    other_cases: int = 0
    patrol: Fraction | None = None  # compliance 0..1, None when no round could be judged
    devices: Fraction | None = None  # uptime 0..1, None when unknown
    survey: Fraction | None = None  # satisfied / reached, None when nobody was reached
    adverse_findings: int = 0


@dataclass(frozen=True, slots=True)
class Reason:
    """One rule checked for a designation: ``rule`` names it, ``value`` and ``limit`` show why."""

    rule: str
    met: bool
    value: str
    limit: str


@dataclass(frozen=True, slots=True)
class Assessment:
    compound: str
    township: str
    components: Mapping[str, Decimal | None]  # each out of 100, one decimal; None: unknown
    missing: tuple[str, ...]
    deduction: Decimal
    score: Decimal
    rank: int
    designations: tuple[str, ...]
    reasons: Mapping[str, tuple[Reason, ...]]


@dataclass(frozen=True, slots=True)
class TownshipAssessment:
    township: str
    compounds: int
    mean_score: Decimal
    preventable_cases: int
    zero_incident: int
    advanced: int
    rank: int


def one_decimal(x: Fraction) -> Decimal:
    """Round half up to one decimal, exactly."""
    return (Decimal(x.numerator) / Decimal(x.denominator)).quantize(
        Decimal("0.1"), rounding=ROUND_HALF_UP
    )


def _pct(x: Fraction | None) -> str:
    return "—" if x is None else f"{one_decimal(x * 100)}%"


def _components(
    c: CompoundInput, rules: ScoringRules, cases_imported: bool
) -> dict[str, Fraction | None]:
    cases: Fraction | None = None
    if cases_imported:
        lost = (
            rules.preventable_deduction * c.preventable_cases
            + rules.other_deduction * c.other_cases
        )
        cases = Fraction(max(0, 100 - lost))
    return {
        CASES: cases,
        PATROL: None if c.patrol is None else c.patrol * 100,
        DEVICES: None if c.devices is None else c.devices * 100,
        SURVEY: None if c.survey is None else c.survey * 100,
    }


def raw_score(
    c: CompoundInput, rules: ScoringRules, *, cases_imported: bool
) -> tuple[Fraction, dict[str, Fraction | None], Fraction]:
    """(score, components, deduction) before rounding."""
    comps = _components(c, rules, cases_imported)
    known = {k: v for k, v in comps.items() if v is not None and rules.weights.get(k, 0) > 0}
    weight = sum(rules.weights[k] for k in known)
    base = (
        Fraction(0)
        if weight == 0
        else sum((rules.weights[k] * v for k, v in known.items()), Fraction(0)) / weight
    )
    deduction = Fraction(min(rules.finding_cap, rules.finding_deduction * c.adverse_findings))
    return max(Fraction(0), min(Fraction(100), base - deduction)), comps, deduction


def _order_key(c: CompoundInput, score: Fraction) -> tuple[Fraction, int, Fraction, str]:
    patrol = c.patrol if c.patrol is not None else Fraction(-1)
    return (-score, c.preventable_cases, -patrol, c.compound)


def assess(
    inputs: Sequence[CompoundInput],
    *,
    rules: ScoringRules | None = None,
    advanced: AdvancedRules | None = None,
    cases_imported: bool,
) -> list[Assessment]:
    """Score, rank and designate every compound; the list is in rank order."""
    rules = rules or ScoringRules()
    advanced = advanced or AdvancedRules()
    names = [c.compound for c in inputs]
    if len(set(names)) != len(names):
        raise RulesError("a compound appears twice in the assessment")
    scored = [(c, *raw_score(c, rules, cases_imported=cases_imported)) for c in inputs]
    scored.sort(key=lambda s: _order_key(s[0], s[1]))
    n = len(scored)
    out: list[Assessment] = []
    for rank, (c, score, comps, deduction) in enumerate(scored, start=1):
        rounded = one_decimal(score)
        zero = _zero_incident(c, advanced, cases_imported)
        adv = _advanced(c, rounded, rank, n, advanced, cases_imported)
        designations = tuple(
            d
            for d, reasons in ((ZERO_INCIDENT, zero), (ADVANCED, adv))
            if all(r.met for r in reasons)
        )
        out.append(
            Assessment(
                compound=c.compound,
                township=c.township,
                components={k: None if v is None else one_decimal(v) for k, v in comps.items()},
                missing=tuple(
                    k for k in COMPONENTS if comps[k] is None and rules.weights.get(k, 0)
                ),
                deduction=one_decimal(deduction),
                score=rounded,
                rank=rank,
                designations=designations,
                reasons={ZERO_INCIDENT: zero, ADVANCED: adv},
            )
        )
    return out


def _zero_incident(c: CompoundInput, a: AdvancedRules, cases_imported: bool) -> tuple[Reason, ...]:
    reasons = [
        Reason("cases_imported", cases_imported, "yes" if cases_imported else "no", "yes"),
        Reason(
            "preventable_cases",
            cases_imported and c.preventable_cases == 0,
            str(c.preventable_cases) if cases_imported else "—",
            "0",
        ),
    ]
    if a.zero_incident_min_patrol is not None:
        ok = c.patrol is not None and c.patrol >= a.zero_incident_min_patrol
        reasons.append(
            Reason("patrol", ok, _pct(c.patrol), f"≥ {_pct(a.zero_incident_min_patrol)}")
        )
    return tuple(reasons)


def _advanced(
    c: CompoundInput, score: Decimal, rank: int, n: int, a: AdvancedRules, cases_imported: bool
) -> tuple[Reason, ...]:
    reasons: list[Reason] = []
    if a.min_score is not None:
        reasons.append(Reason("score", score >= a.min_score, str(score), f"≥ {a.min_score}"))
    if a.max_preventable is not None:
        ok = cases_imported and c.preventable_cases <= a.max_preventable
        reasons.append(
            Reason(
                "preventable_cases",
                ok,
                str(c.preventable_cases) if cases_imported else "—",
                f"≤ {a.max_preventable}",
            )
        )
    if a.min_patrol is not None:
        ok = c.patrol is not None and c.patrol >= a.min_patrol
        reasons.append(Reason("patrol", ok, _pct(c.patrol), f"≥ {_pct(a.min_patrol)}"))
    if a.min_satisfaction is not None:
        ok = c.survey is not None and c.survey >= a.min_satisfaction
        reasons.append(Reason("survey", ok, _pct(c.survey), f"≥ {_pct(a.min_satisfaction)}"))
    if a.top_share is not None:
        limit = max(1, math.ceil(a.top_share * n))
        reasons.append(Reason("rank", rank <= limit, str(rank), f"≤ {limit}"))
    return tuple(reasons)


def townships(
    assessed: Iterable[Assessment], inputs: Iterable[CompoundInput]
) -> list[TownshipAssessment]:
    """Per township: mean score, cases and designations; ranked by mean score, then name."""
    cases = {c.compound: c.preventable_cases for c in inputs}
    groups: dict[str, list[Assessment]] = {}
    for a in assessed:
        groups.setdefault(a.township, []).append(a)
    rows = []
    for township, members in groups.items():
        mean = sum((Fraction(a.score) for a in members), Fraction(0)) / len(members)
        rows.append((township, members, mean))
    rows.sort(key=lambda r: (-r[2], r[0]))
    return [
        TownshipAssessment(
            township=t,
            compounds=len(m),
            mean_score=one_decimal(mean),
            preventable_cases=sum(cases.get(a.compound, 0) for a in m),
            zero_incident=sum(ZERO_INCIDENT in a.designations for a in m),
            advanced=sum(ADVANCED in a.designations for a in m),
            rank=i,
        )
        for i, (t, m, mean) in enumerate(rows, start=1)
    ]


@dataclass(frozen=True, slots=True)
class Change:
    """A figure against an earlier one; ``previous`` None when that month was never imported."""

    current: int
    previous: int | None

    @property
    def delta(self) -> int | None:
        return None if self.previous is None else self.current - self.previous

    @property
    def ratio(self) -> Fraction | None:
        """Relative change; None when there is nothing to compare with (or it was 0)."""
        if self.previous is None or self.previous == 0:
            return None
        return Fraction(self.current - self.previous, self.previous)
