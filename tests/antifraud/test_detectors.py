"""Impossible travel and buddy taps on crafted patrol data: fraud fires, honest data does not."""

from __future__ import annotations

from typing import Any

import pytest

from centre.antifraud import (
    BuddyRules,
    TapRecord,
    TravelRules,
    detect_buddy_taps,
    detect_impossible_travel,
    tap_records_from_events,
    walking_times_from_routes,
)

T0 = 1_764_540_000.0  # 2025-12-01 06:00 Asia/Shanghai
# A line of checkpoints 100 m apart; the route says nobody walks a leg in under 40 s.
POSITIONS = {"a": (0, 0), "b": (100, 0), "c": (200, 0), "d": (300, 0), "far": (900, 0)}
ROUTES = [{"id": "r", "checkpoints": ["a", "b", "c", "d"], "min_walk_s": 40}]
WALKS = walking_times_from_routes(ROUTES, positions=POSITIONS)


def tap(
    seq: int,
    cp: str,
    at: float,
    band: str = "w1",
    guard: str = "g1",
    *,
    synced: bool = True,
    uncertain: float = 0.0,
) -> TapRecord:
    return TapRecord("gw", seq, cp, band, guard, T0 + at, synced, uncertain)


# --------------------------------------------------------------------------- impossible travel


def test_a_band_at_the_far_end_seconds_later_fires_naming_guard_checkpoints_and_times() -> None:
    taps = [tap(1, "a", 0), tap(2, "b", 60), tap(3, "far", 120)]
    [alert] = detect_impossible_travel(taps, WALKS)
    assert (alert.first.seq, alert.second.seq) == (2, 3)
    assert alert.elapsed_s == 60
    assert alert.min_walk_s == pytest.approx(800 / 3.0)  # 800 m at a run
    d = alert.as_dict()
    assert d["guard"] == "g1"
    assert (d["from_checkpoint"], d["to_checkpoint"]) == ("b", "far")
    assert [t["at"] for t in d["taps"]] == [T0 + 60, T0 + 120]
    assert d["alert_id"] == "impossible_travel/gw/w1/2-3"


def test_a_route_leg_walked_faster_than_its_min_walk_fires() -> None:
    # 100 m in 20 s is a jog (no position alert at 3 m/s), but the route says 40 s at least.
    alerts = detect_impossible_travel([tap(1, "a", 0), tap(2, "b", 20)], WALKS, TravelRules(5))
    assert [(a.first.checkpoint, a.second.checkpoint, a.min_walk_s) for a in alerts] == [
        ("a", "b", 40.0)
    ]


def test_a_clone_interleaved_with_the_real_band_fires_on_every_jump() -> None:
    real = [tap(1, "a", 0), tap(3, "b", 90), tap(5, "c", 180)]
    clone = [tap(2, "far", 30), tap(4, "far", 120)]
    alerts = detect_impossible_travel(real + clone, WALKS)
    assert [(a.first.seq, a.second.seq) for a in alerts] == [(1, 2), (2, 3), (3, 4), (4, 5)]


def test_a_chain_of_hops_each_just_inside_the_tolerance_fires_once_they_add_up() -> None:
    # Each 100 m hop in 35 s passes (40 s leg, 10 s tolerance), and two (80 s in 70 s) do;
    # three need 120 s, not 105 s.
    taps = [tap(1, "a", 0), tap(2, "b", 35), tap(3, "c", 70), tap(4, "d", 105)]
    [alert] = detect_impossible_travel(taps, WALKS, TravelRules(tolerance_s=10))
    assert (alert.first.seq, alert.second.seq, [t.seq for t in alert.via]) == (1, 4, [2, 3])
    assert (alert.elapsed_s, alert.min_walk_s) == (105, 120)
    assert alert.as_dict()["via_checkpoints"] == ["b", "c"]
    assert [t["seq"] for t in alert.as_dict()["taps"]] == [1, 2, 3, 4]
    assert detect_impossible_travel(taps[:3], WALKS, TravelRules(tolerance_s=10)) == []


def test_an_honest_walk_does_not_fire() -> None:
    taps = [tap(1, "a", 0), tap(2, "b", 75), tap(3, "c", 150), tap(4, "d", 230), tap(5, "a", 500)]
    assert detect_impossible_travel(taps, WALKS) == []


def test_the_tolerance_and_each_taps_uncertainty_excuse_a_near_miss() -> None:
    taps = [tap(1, "a", 0), tap(2, "b", 35)]  # 5 s under the 40 s leg
    assert detect_impossible_travel(taps, WALKS, TravelRules(tolerance_s=10)) == []
    assert len(detect_impossible_travel(taps, WALKS, TravelRules(tolerance_s=2))) == 1
    uncertain = [tap(1, "a", 0), tap(2, "b", 35, uncertain=4)]
    assert detect_impossible_travel(uncertain, WALKS, TravelRules(tolerance_s=2)) == []


def test_taps_with_an_unsynchronised_clock_are_not_judged() -> None:
    taps = [tap(1, "a", 0), tap(2, "far", 5, synced=False)]
    assert detect_impossible_travel(taps, WALKS) == []


def test_pairs_the_table_does_not_bound_are_not_judged() -> None:
    taps = [tap(1, "a", 0), tap(2, "elsewhere", 1)]
    assert detect_impossible_travel(taps, WALKS) == []


def test_two_bands_are_never_compared_and_gateways_are_apart() -> None:
    taps = [tap(1, "a", 0, band="w1"), tap(2, "far", 5, band="w2")]
    assert detect_impossible_travel(taps, WALKS) == []
    other = TapRecord("gw-2", 2, "far", "w1", "g1", T0 + 5)
    assert detect_impossible_travel([tap(1, "a", 0), other], WALKS) == []
    # A table per gateway: a gateway without one is not judged.
    assert detect_impossible_travel([tap(1, "a", 0), tap(2, "far", 5)], {"gw-2": WALKS}) == []
    assert len(detect_impossible_travel([tap(1, "a", 0), tap(2, "far", 5)], {"gw": WALKS})) == 1


def test_the_same_tap_uploaded_twice_is_one_tap() -> None:
    taps = [tap(1, "a", 0), tap(2, "far", 5)]
    assert detect_impossible_travel(taps + taps, WALKS) == detect_impossible_travel(taps, WALKS)


# --------------------------------------------------------------------------- buddy taps


def carried_round(start: float, seq: int, gap: float = 2.0) -> list[TapRecord]:
    """Guard g1 taps its own band and then g2's at each checkpoint, ``gap`` seconds apart."""
    out = []
    for i, cp in enumerate(["a", "b", "c", "d"]):
        t = start + i * 90
        out.append(tap(seq + 2 * i, cp, t, "w1", "g1"))
        out.append(tap(seq + 2 * i + 1, cp, t + gap, "w2", "g2"))
    return out


def test_two_bands_tapped_together_at_every_checkpoint_fire_once_per_round() -> None:
    taps = carried_round(0, 1) + carried_round(3600, 101)
    alerts = detect_buddy_taps(taps)
    assert len(alerts) == 2
    first = alerts[0]
    assert first.wristbands == ("w1", "w2")
    assert first.guards == ("g1", "g2")
    assert first.checkpoints == ("a", "b", "c", "d")
    assert (first.start, first.end) == (T0, T0 + 272)
    d = first.as_dict()
    assert [[x["seq"], y["seq"]] for x, y in d["taps"]] == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert d["alert_id"] == "buddy_tap/gw/w1+w2/1"


def test_guards_meeting_at_one_checkpoint_do_not_fire() -> None:
    taps = [tap(1, "a", 0, "w1", "g1"), tap(2, "a", 2, "w2", "g2")]
    taps += [tap(3, "b", 90, "w1", "g1"), tap(4, "c", 400, "w2", "g2")]
    assert detect_buddy_taps(taps) == []


def test_co_taps_further_apart_than_the_window_or_the_episode_gap_do_not_fire() -> None:
    slow = carried_round(0, 1, gap=8.0)
    assert detect_buddy_taps(slow, BuddyRules(window_s=5)) == []
    # One co-tap an hour at a different checkpoint is three meetings, not one round.
    spread = [
        t
        for i, cp in enumerate("abc")
        for t in (tap(10 * i, cp, i * 3600, "w1", "g1"), tap(10 * i + 1, cp, i * 3600 + 1, "w2"))
    ]
    assert detect_buddy_taps(spread, BuddyRules(episode_gap_s=1800)) == []
    assert len(detect_buddy_taps(spread, BuddyRules(episode_gap_s=7200))) == 1


def test_a_pair_allowed_to_patrol_together_does_not_fire_but_an_unknown_band_does() -> None:
    rules = BuddyRules(allowed_guard_pairs=frozenset({frozenset({"g1", "g2"})}))
    assert detect_buddy_taps(carried_round(0, 1), rules) == []
    unknown = [
        TapRecord(t.gateway, t.seq, t.checkpoint, t.wristband, "unknown", t.at)
        if t.wristband == "w2"
        else t
        for t in carried_round(0, 1)
    ]
    assert len(detect_buddy_taps(unknown, rules)) == 1


def test_the_same_band_tapped_twice_is_not_a_buddy() -> None:
    taps = [tap(i, cp, 90 * i + d, "w1") for i, cp in enumerate("abcd") for d in (0, 2)]
    taps = [TapRecord(t.gateway, k, *_rest(t)) for k, t in enumerate(taps)]
    assert detect_buddy_taps(taps) == []


def _rest(t: TapRecord) -> tuple[Any, ...]:
    return (t.checkpoint, t.wristband, t.guard, t.at)


# --------------------------------------------------------------------------- from stored events


def ev(seq: int, kind: str, wall: float, synced: bool = True, **payload: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": kind,
        "wall_time": T0 + wall,
        "clock_synced": synced,
        "payload": payload,
    }


def test_events_become_tap_records_with_node_times_and_snapshot_hashes() -> None:
    events = [
        ev(1, "tap", 0, checkpoint="a", wristband="w1", guard="g1"),
        ev(2, "camera.snapshot", 1, camera="c1", trigger_seq=1, sha256="ab" * 32),
        ev(3, "tap", 600, checkpoint="b", wristband="w1", tapped_at=T0 + 100, buffered=True),
        ev(4, "tap", 700, checkpoint="c", wristband="w1", time_uncertain_s=12.5),
        ev(5, "tap", 710, synced=False, checkpoint="d", wristband="w1", guard="g1"),
        ev(6, "health.sample", 720, cpu_temp=40),
    ]
    recs = tap_records_from_events("gw", events)
    assert [(r.seq, r.checkpoint, r.at - T0) for r in recs] == [
        (1, "a", 0),
        (3, "b", 100),
        (4, "c", 700),
        (5, "d", 710),
    ]
    assert recs[0].snapshots == ("ab" * 32,)
    assert recs[1].time_uncertain_s > 0  # a node's clock
    assert recs[2].time_uncertain_s == 12.5
    assert recs[2].guard == "unknown"
    assert not recs[3].clock_synced


def _tap_event(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"seq": 1, "kind": "tap", "wall_time": T0}
    base["payload"] = {"checkpoint": "a", "wristband": "w", **over.pop("payload", {})}
    return {**base, **over}


@pytest.mark.parametrize(
    "bad",
    [
        _tap_event(seq="1"),
        _tap_event(seq=True),
        _tap_event(wall_time=None),
        _tap_event(wall_time=float("nan")),
        _tap_event(payload={"checkpoint": ""}),
        _tap_event(payload={"wristband": 7}),
        {**_tap_event(), "payload": ["a", "w"]},
        _tap_event(payload={"tapped_at": float("inf")}),
    ],
)
def test_a_malformed_event_is_no_record_and_no_crash(bad: dict[str, Any]) -> None:
    recs = tap_records_from_events("gw", [bad])
    tapped_at_ignored = [r for r in recs if r.at == T0]
    assert recs == tapped_at_ignored
    assert len(recs) <= 1
    if isinstance(bad["payload"], dict) and bad["payload"].get("tapped_at") is not None:
        assert len(recs) == 1  # an unusable tapped_at falls back to the journal time
    else:
        assert recs == []
