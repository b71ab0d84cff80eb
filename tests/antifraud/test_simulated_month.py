"""Acceptance (issue 21): a month of honest simulated patrols raises no alert; injected fraud
(cloned bands walking beside the real one, guards carrying an absent colleague's band) does."""

from __future__ import annotations

import random

import pytest

from tests.antifraud.simulate import (
    INJECTED,
    NIGHT,
    WRISTBANDS,
    honest_month,
    inject_buddies,
    inject_clones,
    judge,
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_month_of_honest_patrols_raises_no_alert(seed: int) -> None:
    events = honest_month(seed, days=30)
    assert len(events) > 5000  # about 300 taps a day: the month really was walked
    verdict = judge(events)
    assert [a.as_dict() for a in verdict.false_alarms] == []


def test_the_night_shifts_walk_together_would_fire_if_the_pair_were_not_allowed() -> None:
    """The honest data does hold what a detector must look at: without the site's allowed pair,
    the Saturday rounds the night shift walks together are reported, and nothing else."""
    verdict = judge(honest_month(1, days=30), allowed_pairs=frozenset())
    assert 4 <= len(verdict.buddies) <= 5  # one a Saturday
    for alert in verdict.buddies:
        assert set(alert.guards) == set(NIGHT)
        assert set(alert.wristbands) == {WRISTBANDS[g] for g in NIGHT}
    assert verdict.travel == ()


@pytest.mark.parametrize("seed", [1, 2])
def test_every_injected_clone_and_carried_band_is_caught_and_nothing_else(seed: int) -> None:
    events = honest_month(seed, days=30)
    rng = random.Random(seed)
    clones = inject_clones(events, rng, 15)
    buddies = inject_buddies(events, rng, 15)
    verdict = judge(events)
    assert verdict.false_alarms == ()
    assert verdict.caught == set(clones) | set(buddies)
    case_of = {e["seq"]: e["payload"][INJECTED] for e in events if INJECTED in e["payload"]}
    by_buddy_alerts = {
        case_of[t.seq]
        for alert in verdict.buddies
        for c in alert.co_taps
        for t in (c.a, c.b)
        if t.seq in case_of
    }
    assert set(buddies) <= by_buddy_alerts  # a carried band is reported as a buddy tap
    assert all(a.first.seq in case_of or a.second.seq in case_of for a in verdict.travel)
