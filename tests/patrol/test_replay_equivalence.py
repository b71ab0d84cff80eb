"""The engine's speed work changed no result: old engine and new, same journal, same outputs.

``tests/patrol/reference_engine.py`` is the engine as it was before issue 20's speed work. A
varied month (missed rounds, late starts, out-of-order walks, repeats, buffered taps delivered
out of order, wrong guards, reader outages, restarts, an unsynchronised clock, rounds crossing
midnight, fixed-time rounds, two taps per checkpoint) is replayed through both, one event at a
time as the service feeds them and in random batches, and every output, report, tap status and
summary must be equal. Hypothesis adds the property tests' random nights.
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config.schema import parse_section
from gateway.patrol import engine as new
from gateway.patrol.config import PatrolSection
from tests.patrol import reference_engine as old
from tests.patrol.test_properties import FAST, ORIGIN, SECTION, event_logs

CONFIG: dict[str, Any] = {
    "summary_hour": 8,
    "repeat_interval_s": 300,
    "suspicious_repeats": 3,
    "routes": [
        {
            "id": "north",
            "checkpoints": ["n1", "n2", "n3", "n4", "n5"],
            "ordered": True,
            "min_walk_s": 60,
            "max_walk_s": 600,
            "legs": [{"from_checkpoint": "n3", "to_checkpoint": "n4", "max_walk_s": 900}],
        },
        {"id": "south", "checkpoints": ["s1", "s2", "s3"], "ordered": False, "min_walk_s": 30},
        {"id": "gate", "checkpoints": ["n1", "s1"], "max_walk_s": 1200},
    ],
    "shifts": [{"id": "nights", "guards": ["g1", "g2"]}],
    "schedules": [
        {
            "id": "north-day",
            "route": "north",
            "every_hours": 1,
            "start": "08:00",
            "end": "20:00",
            "grace_minutes": 10,
            "expected_minutes": 30,
            "guards": ["g1"],
        },
        {
            "id": "north-night",
            "route": "north",
            "every_hours": 2,
            "start": "22:00",
            "end": "06:00",
            "grace_minutes": 15,
            "expected_minutes": 45,
            "shift": "nights",
        },
        {
            "id": "south-all",
            "route": "south",
            "every_hours": 3,
            "start": "00:00",
            "end": "00:00",
            "grace_minutes": 20,
            "expected_minutes": 60,
            "min_taps": 2,
        },
        {
            "id": "gate-check",
            "route": "gate",
            "times": ["12:30", "23:45"],
            "window_minutes": 60,
            "grace_minutes": 5,
            "expected_minutes": 20,
            "guards": ["g3"],
        },
    ],
}


def month(tz: str, seed: int, days: int = 30) -> tuple[PatrolSection, list[dict[str, Any]]]:
    """A varied month of journal events (``Event.to_dict()`` shape), in journal order."""
    section = parse_section(PatrolSection, CONFIG | {"timezone": tz}, "patrol")
    zone = ZoneInfo(tz)
    rng = random.Random(seed)
    first = datetime(2026, 10, 20, tzinfo=zone)
    script: list[tuple[float, str, dict[str, Any], bool]] = []  # (wall, kind, payload, synced)

    def tap(wall: float, cp: str, guard: str, **extra: Any) -> None:
        payload = {"checkpoint": cp, "guard": guard, "wristband": f"w-{guard}", "reader": cp}
        script.append((wall, "tap", payload | extra, True))

    def walk(start: float, cps: list[str], guard: str, step: tuple[int, int]) -> None:
        t = start
        buffered_from = rng.randrange(len(cps)) if rng.random() < 0.05 else len(cps)
        for i, cp in enumerate(cps):
            if i >= buffered_from:  # a node's offline buffer, delivered with a later event
                tap(t + rng.uniform(400, 4000), cp, guard, tapped_at=t, buffered=True)
            else:
                tap(t, cp, guard)
            if rng.random() < 0.04:
                tap(t + rng.uniform(1, 200), cp, guard)  # a repeat
            t += rng.uniform(*step)

    schedules = {s.id: s for s in section.schedules}
    routes = {r.id: r for r in section.routes}
    guards = {"north-day": "g1", "north-night": "g2", "south-all": "g4", "gate-check": "g3"}
    for d in range(days):
        day = (first + timedelta(days=d)).date()
        for sid, sched in schedules.items():
            for offset in sched.start_offsets_minutes():
                local = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(
                    minutes=offset
                )
                start = local.timestamp()
                roll = rng.random()
                if roll < 0.05:
                    continue  # missed
                cps = list(routes[sched.route].checkpoints)
                if roll < 0.10:
                    cps.pop(rng.randrange(len(cps)))  # a checkpoint skipped
                elif roll < 0.14:
                    rng.shuffle(cps)  # out of order
                if sched.min_taps > 1:
                    cps = [cp for cp in cps for _ in range(sched.min_taps)]
                guard = guards[sid]
                if roll > 0.97:
                    guard = rng.choice(["g9", "unknown", ""])  # not responsible, unknown
                late = rng.uniform(1500, 2400) if rng.random() < 0.08 else rng.uniform(30, 500)
                step = (20, 90) if rng.random() < 0.1 else (70, 700)
                walk(start + late, cps, guard, step)
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
        for k in range(0, 86400, 600):
            script.append((midnight + k + 3, "health.sample", {"cpu_temp": 40}, True))
        if rng.random() < 0.3:  # a reader outage, sometimes reported by an unsynced clock
            when = midnight + rng.uniform(0, 86400)
            cp = rng.choice(["n1", "n2", "n3", "n4", "n5", "s1", "s2", "s3"])
            script.append((when, "reader.state", {"checkpoint": cp, "state": "offline"}, True))
            back = when + rng.uniform(300, 7200)
            synced = rng.random() < 0.8
            script.append((back, "reader.state", {"checkpoint": cp, "state": "online"}, synced))
    script.sort(key=lambda item: item[0])

    events: list[dict[str, Any]] = []
    boot = 1

    def add(kind: str, wall: float, payload: dict[str, Any], synced: bool = True) -> None:
        events.append(
            {
                "seq": len(events) + 1,
                "kind": kind,
                "cls": "evidence",
                "payload": payload,
                "wall_time": wall,
                "mono_time": 0.0,
                "boot_id": f"boot-{boot}",
                "clock_synced": synced,
            }
        )

    add("daemon.started", script[0][0] - 60, {})
    skew = 0.0
    for when, kind, payload, trusted in script:
        wall, synced = when, trusted
        roll = rng.random()
        if roll < 0.0015:  # a restart: stopped cleanly or not, down a while
            if rng.random() < 0.5:
                add("daemon.stopped", wall - 1, {})
            boot += 1
            add("daemon.started", wall, {"last_event_wall": events[-1]["wall_time"]})
        elif roll < 0.0025:  # the clock loses sync for a few events
            skew = rng.uniform(3, 12)
        if skew > 0:
            skew -= 1
            synced = False
            wall -= 86400 * 300  # an unsynchronised clock reads a year and more behind
        if kind == "tap" and "tapped_at" in payload:
            wall = max(wall, events[-1]["wall_time"])  # journal order
        add(kind, wall, payload, synced)
    return section, events


def norm(x: Any) -> Any:
    """Comparable across the two modules' (distinct but same-shaped) classes."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return (type(x).__name__, dataclasses.asdict(x))
    if isinstance(x, list | tuple):
        return [norm(i) for i in x]
    return x


def state(engine: Any) -> dict[str, Any]:
    rids = engine.round_ids()
    days = sorted({engine.report(rid).day for rid in rids})
    return {
        "now": engine.now,
        "unplaced": engine.unplaced_taps,
        "rounds": rids,
        "reports": [norm(engine.report(rid)) for rid in rids],
        "history": [norm(engine.round_history(rid)) for rid in rids],
        "taps": [norm(engine.round_taps(rid)) for rid in rids],
        "days": [(d, engine.summary_time(d), norm(engine.daily_summary(d))) for d in days],
        "outages": engine.outages_in(-1e12, 1e12),
    }


def one_by_one(mod: Any, section: PatrolSection, events: list[dict[str, Any]]) -> Any:
    engine = mod.PatrolEngine(section)
    out = []
    for ev in events:
        out.append(norm(engine.feed_events((ev,))))
    out.append(norm(engine.advance(events[-1]["wall_time"] + 3 * 86400)))
    return out, state(engine)


def batched(
    mod: Any, section: PatrolSection, events: list[dict[str, Any]], seed: int, **kw: Any
) -> Any:
    rng = random.Random(seed)
    engine = mod.PatrolEngine(section, **kw)
    out = []
    i = 0
    while i < len(events):
        batch = events[i : i + rng.choice([1, 2, 7, 50, 400])]
        i += len(batch)
        if rng.random() < 0.5:
            inputs = [x for ev in batch for x in mod.engine_inputs_from_event(ev)]
            out.append(norm(engine.feed(inputs)))
        else:
            out.append(norm(engine.feed_events(batch)))
        synced = [ev["wall_time"] for ev in batch if ev["clock_synced"]]
        if synced and rng.random() < 0.5:
            out.append(norm(engine.advance(max(synced) + rng.choice([0, 1, 600]))))
        if rng.random() < 0.15:  # what the service does to bound memory
            out.append(engine.forget_before(engine.now - 2 * 86400))
        if rng.random() < 0.02 and engine.round_ids():
            rid = rng.choice(engine.round_ids())
            out.append((norm(engine.report(rid)), norm(engine.round_taps(rid))))
    out.append(norm(engine.advance(events[-1]["wall_time"] + 3 * 86400)))
    return out, state(engine)


MONTHS = [("Asia/Shanghai", 1), ("Asia/Shanghai", 2), ("Europe/Berlin", 3)]


@pytest.mark.parametrize(("tz", "seed"), MONTHS)
def test_a_month_replayed_event_by_event_matches_the_reference(tz: str, seed: int) -> None:
    section, events = month(tz, seed)
    kinds = {ev["kind"] for ev in events}
    assert {"tap", "reader.state", "daemon.started", "daemon.stopped"} <= kinds
    assert any(not ev["clock_synced"] for ev in events)
    assert any("tapped_at" in ev["payload"] for ev in events)
    want_out, want_state = one_by_one(old, section, events)
    got_out, got_state = one_by_one(new, section, events)
    verdicts = {r[1]["state"] for r in want_state["reports"]}
    assert {"completed", "late_completed", "incomplete", "missed", "unassessable"} <= verdicts
    assert got_state == want_state
    assert got_out == want_out
    assert not new._NO_IDS  # the rounds' shared empty set was never added to


@pytest.mark.parametrize(("tz", "seed"), MONTHS[:2])
def test_a_month_replayed_in_random_batches_matches_the_reference(tz: str, seed: int) -> None:
    section, events = month(tz, seed, days=12)
    for kw in ({}, {"origin": events[0]["wall_time"] + 86400}):
        assert batched(new, section, events, seed, **kw) == batched(
            old, section, events, seed, **kw
        )


@FAST
@given(event_logs())
def test_random_nights_match_the_reference(events: list[dict[str, Any]]) -> None:
    def run(mod: Any) -> Any:
        engine = mod.PatrolEngine(SECTION, origin=ORIGIN)
        out = [norm(engine.feed_events((ev,))) for ev in events]
        out.append(norm(engine.advance(ORIGIN + 86400)))
        return out, state(engine)

    assert run(new) == run(old)


spans = st.lists(
    st.tuples(
        st.sampled_from(["reader", "gateway", "clock"]),
        st.sampled_from([-math.inf, 0.0, 50.0, 100.0, 400.0]) | st.floats(0, 1000),
        st.none() | st.floats(0, 500),  # length; None: still open
        st.booleans(),  # closed later
    ),
    max_size=60,
)


@FAST
@given(spans, st.floats(-100, 1100), st.floats(0, 600), st.integers(0, 1000))
def test_the_span_index_finds_what_a_scan_finds(
    items: list[tuple[str, float, float | None, bool]], lo: float, width: float, forget: int
) -> None:
    index = new._Spans()
    made = []
    for kind, start, length, close_later in items:
        span = new._Span(kind, "cp", start, None if length is None else start + length)
        index.add(span)
        made.append((span, close_later))
    for span, close_later in made:
        if span.end is None and close_later:
            index.close(span, max(span.start, 0.0) + 77.0)
    if forget % 3 == 0:
        index = new._Spans(s for s in index.all if s.end is None or s.end >= forget)
    hi = lo + width
    want = [s for s in index.all if s.overlaps(lo, hi)]
    assert index.overlapping(lo, hi) == want
    assert [id(s) for s in index.overlapping(lo, hi)] == [id(s) for s in want]


tap_fields = st.tuples(
    st.integers(), st.text(), st.text(), st.text(), st.floats(), st.floats(), st.booleans(),
    st.booleans(), st.text(),
)  # fmt: skip


@FAST
@given(tap_fields)
def test_the_fast_tap_constructor_makes_the_same_tap(fields: tuple[Any, ...]) -> None:
    made, want = new._make_tap(*fields), new.Tap(*fields)
    assert type(made) is new.Tap
    assert dataclasses.astuple(made) == dataclasses.astuple(want)
    assert repr(made) == repr(want)
    if not any(isinstance(f, float) and math.isnan(f) for f in fields):
        assert made == want and hash(made) == hash(want)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.at = 0.0  # type: ignore[misc]
