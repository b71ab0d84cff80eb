"""Hypothesis properties of the engine: batching, monotonicity, fairness."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.patrol.engine import (
    COMPLETED,
    INCOMPLETE,
    MISSED,
    PatrolEngine,
    RoundVerdict,
    engine_inputs_from_event,
)
from tests.patrol.helpers import EventLog, after_midnight, at, section

START = at(21, 30)
END = after_midnight(6, 30)
SECTION = section(
    routes=[{"id": "r1", "checkpoints": ["a", "b", "c"], "min_walk_s": 60, "max_walk_s": 1200}],
    schedules=[
        {
            "id": "night",
            "route": "r1",
            "every_hours": 2,
            "start": "22:00",
            "end": "06:00",
            "grace_minutes": 15,
            "expected_minutes": 45,
            "guards": ["g1", "g2"],
        }
    ],
)
ORIGIN = at(21)

step = st.one_of(
    st.tuples(
        st.just("tap"), st.sampled_from("abcx"), st.sampled_from(["g1", "g2", "g9", "unknown"])
    ),
    st.tuples(st.just("buffered"), st.sampled_from("abc"), st.integers(60, 3600)),
    st.tuples(st.just("reader"), st.sampled_from("abc"), st.booleans()),
    st.tuples(st.just("tick"), st.booleans(), st.just(0)),
    st.tuples(st.just("restart"), st.booleans(), st.just(0)),
    # A whole walk of the route, so completed rounds are common enough to test.
    st.tuples(st.just("walk"), st.sampled_from(["g1", "g2"]), st.integers(61, 600)),
    st.tuples(st.just("walk"), st.sampled_from(["g1", "g2"]), st.integers(61, 600)),
)


@st.composite
def event_logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 60))
    # Whole-minute gaps put events exactly on deadlines; zero gaps give same-time events.
    gap = st.one_of(st.integers(1, 1800), st.sampled_from([0, 60, 300, 900]))
    gaps = draw(st.lists(gap, min_size=n, max_size=n))
    steps = draw(st.lists(step, min_size=n, max_size=n))
    log = EventLog()
    log.add("daemon.started", START)
    t = START
    boots = 1
    for gap, (kind, x, y) in zip(gaps, steps, strict=True):
        t += gap
        if t >= END:
            break
        if kind == "tap":
            log.tap(str(x), t, str(y))
        elif kind == "buffered":
            log.tap(str(x), t, "g1", tapped_at=t - int(y))
        elif kind == "walk":
            for cp in "abc":
                log.tap(cp, t, str(x))
                t += int(y)
        elif kind == "reader":
            log.reader(str(x), t, bool(y))
        elif kind == "tick":
            # An unsynchronised clock reads a day behind.
            log.tick(t if x else t - 86400, synced=bool(x))
        else:
            if x:
                log.add("daemon.stopped", t)
            boots += 1
            log.boot_id = f"boot-{boots}"
            log.add("daemon.started", t + 60)
            t += 60
    return log.events


def replay_all(events: list[dict[str, Any]]) -> tuple[PatrolEngine, list[object]]:
    engine = PatrolEngine(SECTION, origin=ORIGIN)
    out: list[object] = list(engine.feed_events(events))
    out += engine.advance(END + 3 * 3600)
    return engine, out


def final_states(engine: PatrolEngine) -> dict[str, str]:
    return {rid: engine.report(rid).state for rid in engine.round_ids()}


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(event_logs(), st.data())
def test_any_batching_gives_identical_outputs(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    _, expected = replay_all(events)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(events)), max_size=8)))
    engine = PatrolEngine(SECTION, origin=ORIGIN)
    got: list[object] = []
    prev = 0
    for cut in [*cuts, len(events)]:
        batch = events[prev:cut]
        inputs = [i for ev in batch for i in engine_inputs_from_event(ev)]
        got += engine.feed(inputs)
        synced = [ev["wall_time"] for ev in batch if ev["clock_synced"]]
        if synced:  # what the service does after a batch: let time pass to the last event
            got += engine.advance(max(synced))
        prev = cut
    got += engine.advance(END + 3 * 3600)
    assert got == expected


@FAST
@given(event_logs(), st.integers(0, 10_000), st.sampled_from("abc"), st.sampled_from(["g1", "g2"]))
def test_adding_a_tap_never_turns_completed_into_missed(
    events: list[dict[str, Any]], where: int, cp: str, guard: str
) -> None:
    engine, _ = replay_all(events)
    before = final_states(engine)
    pos = where % (len(events) + 1)
    # Journal order: the new tap is appended between two existing events.
    lo = max([e["wall_time"] for e in events[:pos] if e["clock_synced"]], default=START)
    hi = min([e["wall_time"] for e in events[pos:] if e["clock_synced"]], default=END)
    wall = (lo + max(lo, hi)) / 2
    boot = events[pos - 1]["boot_id"] if pos else events[0]["boot_id"]
    tap = {
        "seq": 0,
        "kind": "tap",
        "cls": "evidence",
        "wall_time": wall,
        "mono_time": 0.0,
        "boot_id": boot,
        "clock_synced": True,
        "payload": {"checkpoint": cp, "guard": guard, "wristband": "w", "reader": "r"},
    }
    more = [dict(e) for e in events[:pos]] + [tap] + [dict(e) for e in events[pos:]]
    for i, e in enumerate(more, 1):
        e["seq"] = i
    engine2, _ = replay_all(more)
    after = final_states(engine2)
    for rid, state in before.items():
        # Stronger than "never missed": a completed round stays completed. (A round that was
        # unassessable may become missed: a synchronised tap is also evidence that the gateway
        # and its clock were fine at that time, which can shrink a clock span.)
        if state == COMPLETED:
            assert after[rid] == COMPLETED, (rid, engine2.report(rid).reasons)


@FAST
@given(event_logs())
def test_an_offline_reader_never_yields_missed_for_its_checkpoint(
    events: list[dict[str, Any]],
) -> None:
    engine, out = replay_all(events)
    for o in out:
        if not isinstance(o, RoundVerdict):
            continue
        rep = o.report
        readers_down = {
            subject
            for kind, subject, _, _ in engine.outages_in(rep.window_start, rep.window_end)
            if kind == "reader"
        }
        if rep.state == MISSED:
            assert not readers_down & {cp for cp, _ in rep.counts}, rep.round_id
        if rep.state == INCOMPLETE:
            assert not readers_down & set(rep.missing), rep.round_id
