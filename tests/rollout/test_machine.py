"""The rollout state machine, pure: stages only move forward, duplicates change nothing, events
of another release are ignored, and a rollout halts at N+1 rollbacks, not at N."""

from __future__ import annotations

from typing import Any

import pytest

from centre.rollout import machine as m


def ev(kind: str, release: int = 7, t: float = 1000.0, **payload: Any) -> dict[str, Any]:
    return {"kind": kind, "wall_time": t, "payload": {"release": release, **payload}}


def test_stages_move_forward_and_ignore_other_releases_and_duplicates() -> None:
    events = [ev("update.downloaded"), ev("update.downloaded"), ev("update.rolled_back", 6)]
    assert m.stage_of(m.OFFERED, 7, events) == (m.DOWNLOADED, None)
    events.append(ev("update.installed", t=2000.0))
    assert m.stage_of(m.OFFERED, 7, events) == (m.INSTALLED, 2000.0)
    # any order: an installed event delivered before the downloaded one is still "installed"
    assert m.stage_of(m.OFFERED, 7, list(reversed(events)))[0] == m.INSTALLED
    # an upload long enough after installing makes it healthy, a sooner one does not
    assert m.stage_of(m.OFFERED, 7, events, last_upload=2100.0, healthy_after_s=600)[0] == (
        m.INSTALLED
    )
    assert m.stage_of(m.OFFERED, 7, events, last_upload=2600.0, healthy_after_s=600)[0] == (
        m.HEALTHY
    )
    # never backwards: an old "downloaded" duplicate after healthy changes nothing
    assert m.stage_of(m.HEALTHY, 7, [ev("update.downloaded")])[0] == m.HEALTHY


def test_rolled_back_refused_and_failed_are_final() -> None:
    assert m.stage_of(m.INSTALLED, 7, [ev("update.rolled_back")])[0] == m.ROLLED_BACK
    assert m.stage_of(m.OFFERED, 7, [ev("update.failed")])[0] == m.ROLLED_BACK
    assert m.stage_of(m.OFFERED, 7, [ev("update.refused", code="bad_signature")])[0] == m.REFUSED
    assert m.stage_of(m.ROLLED_BACK, 7, [ev("update.installed")])[0] == m.ROLLED_BACK
    # once installed, a repeated offer refused as "not newer" does not undo the install
    installed = [ev("update.installed"), ev("update.refused", code="rollback")]
    assert m.stage_of(m.OFFERED, 7, installed)[0] == m.INSTALLED


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "update.installed"},
        {"kind": "update.installed", "payload": "x"},
        {"kind": "update.installed", "payload": {"release": "7"}},
        {"kind": "update.installed", "payload": {"release": True}},
        {"kind": 5, "payload": {"release": 7}},
    ],
)
def test_malformed_events_are_ignored(bad: dict[str, Any]) -> None:
    assert m.stage_of(m.OFFERED, 7, [bad]) == (m.OFFERED, None)


def test_halts_at_n_plus_one_rollbacks() -> None:
    for n in (0, 1, 3):
        stages = [m.HEALTHY] * 5 + [m.ROLLED_BACK] * n
        assert not m.should_halt(stages, n)
        assert m.should_halt([*stages, m.ROLLED_BACK], n)
    assert not m.should_halt([m.REFUSED] * 10, 0)  # a refusal is not a rollback


def test_percent_choice_is_stable_sized_and_differs_between_rollouts() -> None:
    gws = [f"gw-{i:03d}" for i in range(117)]
    a = m.choose("r-1", gws, 10)
    assert len(a) == 12 and a == m.choose("r-1", list(reversed(gws)), 10)
    assert set(a) <= set(gws)
    assert m.choose("r-2", gws, 10) != a
    assert m.choose("r-1", gws, 100) == sorted(gws)
    assert len(m.choose("r-1", gws[:3], 1)) == 1
    assert m.choose("r-1", [], 50) == []
    with pytest.raises(ValueError):
        m.choose("r-1", gws, 0)
