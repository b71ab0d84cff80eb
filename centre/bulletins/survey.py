"""The monthly resident phone survey, pure: who to call, how numbers are shown, the rates.

Theory of operation
-------------------
Each month the centre draws a random sample of residents per compound (20 by default) from
the imported contact list. The draw is reproducible from its seed, which the store keeps beside
the sample, so an auditor can re-draw and compare; the seed itself comes from the operating
system's random source at the moment of the draw (the caller's job), never from the month.
Phone numbers are shown masked (``138****5678``); revealing one is an audited action at the
store. The satisfaction rate is satisfied residents among residents reached; a compound where
nobody was reached has no rate (unknown), never 0 %.

    sample = draw_sample(residents, per_compound=20, seed=seed)
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

DEFAULT_PER_COMPOUND: Final = 20

REACHED_SATISFIED: Final = "satisfied"
REACHED_UNSATISFIED: Final = "unsatisfied"
NOT_REACHED: Final = "not_reached"
OUTCOMES: Final = (REACHED_SATISFIED, REACHED_UNSATISFIED, NOT_REACHED)


@dataclass(frozen=True, slots=True)
class Resident:
    id: str  # stable within the imported list (its row key)
    compound: str
    phone: str


@dataclass(frozen=True, slots=True)
class SurveyRate:
    sampled: int
    reached: int
    satisfied: int

    @property
    def satisfaction(self) -> Fraction | None:
        return None if self.reached == 0 else Fraction(self.satisfied, self.reached)


def mask_phone(phone: str) -> str:
    """A number as a clerk sees it before revealing: first three and last four digits."""
    digits = "".join(ch for ch in phone if ch.isascii() and ch.isdigit())
    if len(digits) <= 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def draw_sample(
    residents: Iterable[Resident], *, per_compound: int = DEFAULT_PER_COMPOUND, seed: int
) -> dict[str, list[Resident]]:
    """Up to ``per_compound`` residents per compound, uniformly at random, reproducible by seed."""
    if per_compound < 1:
        raise ValueError("per_compound must be at least 1")
    by_compound: dict[str, list[Resident]] = {}
    for r in residents:
        by_compound.setdefault(r.compound, []).append(r)
    rng = random.Random(seed)
    out: dict[str, list[Resident]] = {}
    for compound in sorted(by_compound):
        pool = sorted(by_compound[compound], key=lambda r: r.id)
        out[compound] = rng.sample(pool, min(per_compound, len(pool)))
    return out


def rate(outcomes: Sequence[str | None]) -> SurveyRate:
    """Tally one compound's outcomes; ``None`` is a resident not called yet."""
    bad = [o for o in outcomes if o is not None and o not in OUTCOMES]
    if bad:
        raise ValueError(f"unknown survey outcomes {sorted(set(bad))}")
    reached = sum(o in (REACHED_SATISFIED, REACHED_UNSATISFIED) for o in outcomes)
    satisfied = sum(o == REACHED_SATISFIED for o in outcomes)
    return SurveyRate(sampled=len(outcomes), reached=reached, satisfied=satisfied)
