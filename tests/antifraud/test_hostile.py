"""Stored events and walking tables are data from gateways and operators: whatever they hold,
the detectors either judge it or leave it out, and the table refuses it with one error."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from centre.antifraud import (
    TapRecord,
    WalkingTableError,
    detect_buddy_taps,
    detect_impossible_travel,
    tap_records_from_events,
    walking_times_from_routes,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(10**400), 10**400),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["a", "b", "w1", "tap", "camera.snapshot"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
huge_numbers = st.sampled_from([10**400, -(10**400), 1e308, -1e308, float("inf"), float("nan")])
# Mostly well-formed, so hostile values reach every line past the first check.
numbers = st.integers(0, 100) | st.floats(1.7e9, 1.8e9) | huge_numbers | json_values
names = st.sampled_from(["a", "b", "w1", "w2"]) | json_values
payloads = st.fixed_dictionaries(
    {"checkpoint": names, "wristband": names},
    optional={
        "guard": names,
        "tapped_at": numbers,
        "buffered": st.booleans() | json_values,
        "time_uncertain_s": numbers,
        "trigger_seq": numbers,
        "sha256": names,
    },
)
events = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["tap", "camera.snapshot", "reader.state"]) | json_values,
        "seq": numbers,
        "wall_time": numbers,
    },
    optional={"clock_synced": st.booleans() | json_values, "payload": payloads | json_values},
)


@settings(max_examples=300, deadline=None)
@given(st.lists(events | json_values, max_size=20))
def test_any_stored_events_give_well_typed_records_and_never_raise(evs: list[Any]) -> None:
    records = tap_records_from_events("gw", evs)
    for r in records:
        assert isinstance(r, TapRecord)
        assert isinstance(r.seq, int) and not isinstance(r.seq, bool)
        assert r.checkpoint and r.wristband and r.guard
        assert math.isfinite(r.at)
        assert r.time_uncertain_s >= 0
    walks = walking_times_from_routes([{"checkpoints": ["a", "b"], "min_walk_s": 60}])
    detect_impossible_travel(records, walks)
    detect_buddy_taps(records)


@settings(max_examples=300, deadline=None)
@given(
    routes=st.lists(
        st.fixed_dictionaries(
            {"checkpoints": st.lists(names, max_size=4) | json_values},
            optional={"min_walk_s": numbers, "legs": json_values},
        )
        | json_values,
        max_size=3,
    )
    | json_values,
    positions=st.none()
    | st.dictionaries(st.sampled_from("ab") | st.text(), st.lists(numbers, max_size=3))
    | json_values,
    speed=st.floats(0.1, 20) | json_values,
)
def test_any_table_is_built_or_refused_with_the_one_error(
    routes: Any, positions: Any, speed: Any
) -> None:
    try:
        walks = walking_times_from_routes(routes, positions=positions, top_speed_m_s=speed)
    except WalkingTableError as err:
        assert err.key
        return
    assert walks.minimum("a", "b") is None or walks.minimum("a", "b") >= 0
