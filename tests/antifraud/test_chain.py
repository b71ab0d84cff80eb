"""The journal chain verifier (wire/chain.py): what it finds, and that hostile input only ever
raises its documented ChainError."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire.chain import (
    BROKEN_LINK,
    EDITED,
    FORK,
    GENESIS,
    SEGMENT_START,
    ChainError,
    event_hash,
    verify_chain,
    verify_event,
)


def chain(n: int, start_seq: int = 1) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    prev_seq, prev_hash = 0, GENESIS
    for i in range(n):
        seq = start_seq + 2 * i  # telemetry between: the chain skips it
        ev: dict[str, Any] = {
            "seq": seq,
            "kind": "tap",
            "cls": "evidence",
            "payload": {"checkpoint": f"cp-{i}", "wristband": "b1"},
            "wall_time": 1_790_000_000.0 + 60 * i,
            "mono_time": 10.5 + i,
            "boot_id": "boot-1",
            "clock_synced": True,
            "prev_seq": prev_seq,
            "prev_hash": prev_hash,
        }
        ev["hash"] = event_hash(ev)
        out.append(ev)
        prev_seq, prev_hash = seq, ev["hash"]
    return out


def kinds(findings: list[Any]) -> list[tuple[str, int]]:
    return [(f.kind, f.seq) for f in findings]


def test_an_honest_chain_has_no_findings() -> None:
    evs = chain(8)
    assert verify_chain(evs) == []
    assert verify_event(evs[3])[0] == 7


def test_an_edited_body_is_found_at_its_seq() -> None:
    evs = chain(5)
    evs[2]["wall_time"] -= 900
    assert kinds(verify_chain(evs)) == [(EDITED, 5)]
    with pytest.raises(ChainError):
        verify_event(evs[2])


def test_a_rehashed_edit_breaks_the_next_link() -> None:
    evs = chain(5)
    evs[2]["payload"] = {"checkpoint": "elsewhere", "wristband": "b1"}
    evs[2]["hash"] = event_hash(evs[2])
    assert kinds(verify_chain(evs)) == [(BROKEN_LINK, 7)]


def test_two_successors_are_a_fork_and_a_restart_a_segment() -> None:
    evs = chain(3)
    twin = dict(evs[2], seq=6, payload={"checkpoint": "twin"})
    twin["hash"] = event_hash(twin)
    again = chain(1, start_seq=8)
    assert kinds(verify_chain([*evs, twin, *again])) == [
        (FORK, 6),
        (SEGMENT_START, 8),
        (FORK, 8),
    ]


def test_a_deletion_leaves_no_finding_in_a_run_alone() -> None:
    # Judged at the centre, which knows what the gateway declared skipped.
    evs = chain(5)
    assert verify_chain(evs[:2] + evs[3:]) == []


def test_malformed_chain_fields_are_refused() -> None:
    ev = chain(2)[1]
    for bad in (
        {"prev_seq": 5},  # not below seq
        {"prev_seq": True},
        {"prev_hash": "XYZ"},
        {"hash": None},
        {"prev_seq": 0},  # a start must name the genesis hash
    ):
        with pytest.raises(ChainError):
            verify_event({**ev, **bad})
    with pytest.raises(ChainError):
        verify_chain([ev, ev])  # not ascending


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
event_like = st.dictionaries(
    st.sampled_from(["seq", "prev_seq", "prev_hash", "hash", "kind", "payload", "x"]),
    json_values | st.integers(-(2**70), 2**70) | st.just(GENESIS) | st.just("a" * 64),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(event_like | json_values, max_size=5))
def test_hostile_input_raises_only_chain_error(items: list[Any]) -> None:
    try:
        verify_chain(items)
    except ChainError:
        pass
    for item in items:
        for fn in (verify_event, event_hash):
            try:
                fn(item)
            except ChainError:
                pass
