"""Hypothesis properties: honest walks never fire, input order is irrelevant, alerts are sound."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from centre.antifraud import (
    BuddyRules,
    TapRecord,
    TravelRules,
    co_taps,
    detect_buddy_taps,
    detect_impossible_travel,
    walking_times_from_routes,
)
from centre.antifraud.detectors import TIME_RESOLUTION_S

T0 = 1_764_540_000.0
HONEST_TOP_SPEED_M_S = 2.0  # a brisk walk; the table allows a run (3 m/s)
CPS = [f"cp{i}" for i in range(8)]

coordinate = st.floats(0, 400, allow_nan=False)
layouts = st.lists(st.tuples(coordinate, coordinate), min_size=len(CPS), max_size=len(CPS)).map(
    lambda xy: dict(zip(CPS, xy, strict=True))
)


@st.composite
def sites(draw: st.DrawFn) -> tuple[dict[str, tuple[float, float]], list[dict[str, Any]]]:
    """Positions and routes whose min_walk_s an installer measured honestly: never more than
    the quickest honest walk between two of the route's checkpoints."""
    positions = draw(layouts)
    routes = []
    for i in range(draw(st.integers(0, 3))):
        cps = draw(st.lists(st.sampled_from(CPS), min_size=1, max_size=6, unique=True))
        closest = min(
            (math.dist(positions[a], positions[b]) for a in cps for b in cps if a != b),
            default=0.0,
        )
        honest_floor = closest / HONEST_TOP_SPEED_M_S
        route: dict[str, Any] = {"id": f"r{i}", "checkpoints": cps}
        route["min_walk_s"] = draw(st.floats(0, 1)) * honest_floor
        routes.append(route)
    return positions, routes


@st.composite
def honest_taps(draw: st.DrawFn, positions: dict[str, tuple[float, float]]) -> list[TapRecord]:
    """Guards walking from checkpoint to checkpoint at 0.5-2 m/s, each with their own band."""
    taps: list[TapRecord] = []
    seq = 0
    for g in range(draw(st.integers(1, 3))):
        t = T0 + draw(st.floats(0, 3600))
        here = draw(st.sampled_from(CPS))
        for _ in range(draw(st.integers(1, 15))):
            there = draw(st.sampled_from(CPS))
            speed = draw(st.floats(0.5, HONEST_TOP_SPEED_M_S))
            detour = draw(st.floats(1.0, 1.5))
            t += math.dist(positions[here], positions[there]) * detour / speed
            t += draw(st.floats(0, 120))  # lingering
            seq += 1
            taps.append(TapRecord("gw", seq, there, f"w{g}", f"g{g}", t))
            here = there
    return taps


@settings(max_examples=200, deadline=None)
@given(data=st.data(), site=sites(), tolerance=st.floats(0, 30))
def test_honest_walks_at_realistic_speeds_never_fire(
    data: st.DataObject, site: tuple[dict[str, tuple[float, float]], list[dict[str, Any]]],
    tolerance: float,
) -> None:  # fmt: skip
    positions, routes = site
    taps = data.draw(honest_taps(positions))
    walks = walking_times_from_routes(routes, positions=positions)
    assert detect_impossible_travel(taps, walks, TravelRules(tolerance)) == []


any_taps = st.lists(
    st.builds(
        TapRecord,
        gateway=st.sampled_from(["gw", "gw2"]),
        seq=st.integers(1, 40),
        checkpoint=st.sampled_from(CPS[:4]),
        wristband=st.sampled_from(["w1", "w2", "w3"]),
        guard=st.sampled_from(["g1", "g2", "unknown"]),
        at=st.integers(0, 600).map(lambda s: T0 + s),
        clock_synced=st.booleans(),
        time_uncertain_s=st.sampled_from([0.0, 5.0]),
    ),
    max_size=40,
    # (gateway, seq) names one journal event: the centre stores each once (a unique key), so
    # two different records under one name never reach the detectors (hypothesis found that
    # such a pair made the result depend on which came first).
    unique_by=lambda t: (t.gateway, t.seq),
)


@settings(max_examples=200, deadline=None)
@given(taps=any_taps, data=st.data(), layout=layouts)
def test_order_and_duplicates_of_the_input_never_change_the_alerts(
    taps: list[TapRecord], data: st.DataObject, layout: dict[str, tuple[float, float]]
) -> None:
    walks = walking_times_from_routes(
        [{"id": "r", "checkpoints": CPS[:3], "min_walk_s": 60}], positions=layout
    )
    rules = BuddyRules(min_checkpoints=2, episode_gap_s=120)
    twice = data.draw(st.lists(st.sampled_from(taps))) if taps else []
    shuffled = data.draw(st.permutations(taps + twice))
    assert detect_impossible_travel(shuffled, walks) == detect_impossible_travel(taps, walks)
    assert detect_buddy_taps(shuffled, rules) == detect_buddy_taps(taps, rules)


@settings(max_examples=200, deadline=None)
@given(
    taps=any_taps,
    window=st.floats(0, 20),
    min_checkpoints=st.integers(1, 4),
    gap=st.floats(1, 600),
)
def test_every_buddy_alert_is_sound(
    taps: list[TapRecord], window: float, min_checkpoints: int, gap: float
) -> None:
    allowed = frozenset({frozenset({"g1", "g2"})})
    rules = BuddyRules(window, min_checkpoints, gap, allowed)
    for alert in detect_buddy_taps(taps, rules):
        assert len(alert.checkpoints) >= min_checkpoints
        assert alert.wristbands[0] < alert.wristbands[1]
        assert "unknown" in alert.guards or frozenset(alert.guards) not in allowed
        for c in alert.co_taps:
            assert c.a.gateway == c.b.gateway == alert.gateway
            assert c.a.checkpoint == c.b.checkpoint
            assert {c.a.wristband, c.b.wristband} == set(alert.wristbands)
            assert 0 <= c.b.at - c.a.at <= window
            assert c.a.clock_synced and c.b.clock_synced
        for x, y in zip(alert.co_taps, alert.co_taps[1:], strict=False):
            assert 0 <= y.a.at - x.a.at <= gap


@settings(max_examples=200, deadline=None)
@given(
    cps=st.lists(st.sampled_from(CPS), min_size=3, max_size=8, unique=True),
    gaps=st.lists(st.floats(0, 5), min_size=8, max_size=8),
    walk=st.floats(30, 600),
    noise=any_taps,
)
def test_one_guard_tapping_two_bands_through_a_round_always_fires(
    cps: list[str], gaps: list[float], walk: float, noise: list[TapRecord]
) -> None:
    carried = []
    for i, cp in enumerate(cps):
        at = T0 + 10_000 + i * walk
        carried.append(TapRecord("gw", 1000 + 2 * i, cp, "own", "g7", at))
        carried.append(TapRecord("gw", 1001 + 2 * i, cp, "lent", "g8", at + gaps[i]))
    alerts = detect_buddy_taps(noise + carried, BuddyRules(window_s=5, min_checkpoints=3))
    mine = [a for a in alerts if a.wristbands == ("lent", "own")]
    assert len(mine) == 1
    assert set(mine[0].checkpoints) == set(cps)
    assert len(co_taps(carried, 5)) == len(cps)


@settings(max_examples=200, deadline=None)
@given(layout=layouts, a=st.sampled_from(CPS), b=st.sampled_from(CPS), tol=st.floats(0, 30),
       fraction=st.floats(0, 0.99))  # fmt: skip
def test_a_band_faster_than_the_table_allows_always_fires(
    layout: dict[str, tuple[float, float]], a: str, b: str, tol: float, fraction: float
) -> None:
    walks = walking_times_from_routes([], positions=layout)
    need = walks.minimum(a, b)
    assert need is not None
    elapsed = (need - tol) * fraction
    # Too fast by more than the detector's time resolution (a millisecond): a smaller margin
    # is no evidence (checkpoints 2 mm apart, both taps in the same millisecond).
    assume(a != b and need - tol - elapsed > 1.01 * TIME_RESOLUTION_S)
    taps = [TapRecord("gw", 1, a, "w", "g", T0), TapRecord("gw", 2, b, "w", "g", T0 + elapsed)]
    [alert] = detect_impossible_travel(taps, walks, TravelRules(tol))
    assert (alert.first.checkpoint, alert.second.checkpoint) == (a, b)
