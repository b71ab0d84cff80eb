"""Properties: uptime against a second-by-second oracle; verdict selection against resends."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from centre.bulletins.model import (
    DOWN,
    STATES,
    UNKNOWN,
    StateChange,
    device_uptime,
    latest_verdicts,
)
from tests.bulletins.helpers import at_gateway, event, verdict

changes = st.lists(st.tuples(st.integers(-20, 120), st.sampled_from(STATES)), max_size=12).map(
    lambda cs: sorted(cs, key=lambda c: c[0])
)
spans = st.lists(st.tuples(st.integers(-10, 110), st.integers(1, 30)), max_size=3)


def oracle(
    timeline: list[tuple[int, str]],
    start: int,
    end: int,
    horizon: int,
    down: list[tuple[int, int]],
    down_state: str,
) -> dict[str, int]:
    """Walk the period one second at a time (written independently of the code under test)."""
    out = dict.fromkeys(STATES, 0)
    for t in range(start, end):
        if t >= horizon:
            state = UNKNOWN
        elif any(lo <= t < hi for lo, hi in down):
            state = down_state
        else:
            state = UNKNOWN
            for at, s in timeline:  # sorted; the last change at or before t wins
                if at <= t:
                    state = s
        out[state] += 1
    return out


@settings(max_examples=200, deadline=None)
@given(
    changes,
    st.integers(0, 40),
    st.integers(0, 100),
    st.integers(0, 130),
    spans,
    st.sampled_from([UNKNOWN, DOWN]),
)
def test_uptime_matches_a_second_by_second_walk(
    timeline: list[tuple[int, str]],
    start: int,
    length: int,
    horizon: int,
    raw_spans: list[tuple[int, int]],
    down_state: str,
) -> None:
    end = start + length
    # Down spans as gateway_down_spans gives them: sorted, merged, disjoint.
    merged: list[tuple[int, int]] = []
    for lo, width in sorted(raw_spans):
        hi = lo + width
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    tl = [StateChange(float(at), i, "reader", "r", s) for i, (at, s) in enumerate(timeline)]
    totals, *_ = device_uptime(
        tl,
        start=float(start),
        end=float(end),
        horizon=float(horizon),
        down_spans=[(float(a), float(b)) for a, b in merged],
        down_state=down_state,
    )
    expected = oracle(timeline, start, end, horizon, merged, down_state)
    assert {k: round(v, 6) for k, v in totals.items()} == {k: float(v) for k, v in expected.items()}
    assert sum(totals.values()) == length


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["g1", "g2"]), st.sampled_from(["r@2026-11-02T22:00",
                  "r@2026-11-03T00:00"]), st.integers(1, 5),
                  st.sampled_from(["completed", "missed", "incomplete"])),
        min_size=1, max_size=15,
    ),
    st.randoms(use_true_random=False),
)  # fmt: skip
def test_latest_verdict_is_the_highest_revision_whatever_the_order(
    items: list[tuple[str, str, int, str]], rnd: random.Random
) -> None:
    evs = []
    best: dict[tuple[str, str], int] = {}
    for seq, (gw, rid, rev, state) in enumerate(items, start=1):
        # A revision is journaled once per gateway and round: keep the first of each.
        if any(e["gateway_id"] == gw and e["payload"]["round"] == rid and
               e["payload"]["revision"] == rev for e in evs):  # fmt: skip
            continue
        evs.append(at_gateway(event(seq, "patrol.round",
                                    verdict(rid, "2026-11-02", state, revision=rev), seq),
                              gw, "C", "T"))  # fmt: skip
        best[(gw, rid)] = max(best.get((gw, rid), 0), rev)
    resent = evs + rnd.sample(evs, k=len(evs) // 2)
    rnd.shuffle(resent)
    got = latest_verdicts(resent)
    assert {k: v.revision for k, v in got.items()} == best
    for (gw, rid), v in got.items():
        (want,) = [
            e["payload"]["verdict"]
            for e in evs
            if e["gateway_id"] == gw
            and e["payload"]["round"] == rid
            and e["payload"]["revision"] == best[(gw, rid)]
        ]
        assert v.verdict == want
