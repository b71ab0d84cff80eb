"""Patrol engine throughput: a month of taps for 50 checkpoints, replayed from journal events.

    .venv/bin/python bench/patrol_bench.py [--days 30] [--checkpoints 50] [--repeat 3]
        [--outages 1] [--reference [COMMIT]]

Builds the journal a gateway would hold after a month (taps on 5 routes of 10 checkpoints,
hourly rounds around the clock, a health sample every 5 minutes, some reader outages, a few
guards skipping checkpoints), then times a full replay through ``engine_inputs_from_event`` and
``PatrolEngine.feed``. Beside it, the same run's baseline: the raw cost of iterating the same
event dicts and sorting the tap list by time (what any replay must at least do).

``--reference`` also times the engine as it was before issue 20's speed work (the frozen copy
the equivalence tests use, ``tests/patrol/reference_engine.py``), or with ``--reference COMMIT``
``gateway/patrol/engine.py`` as it was at that git commit, interleaved with the current
one, so both figures come from the same run, and checks (untimed) that both give the same
outputs and round reports for this journal, and what each engine holds in memory after it.
``--outages N``: reader drop-outs per day (a flaky site has many; each is a span every verdict
must look through).
"""

from __future__ import annotations

import argparse
import gc
import random
import subprocess
import sys
import time
import tracemalloc
import types
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.config.schema import parse_section
from gateway.patrol.config import PatrolSection
from gateway.patrol.engine import PatrolEngine

TZ = ZoneInfo("Asia/Shanghai")


def build(
    days: int, checkpoints: int, hourly: bool = True, seed: int = 6, outages: int = 1
) -> tuple[PatrolSection, list[dict[str, Any]]]:
    rng = random.Random(seed)
    per_route = 10
    n_routes = max(1, checkpoints // per_route)
    routes = [
        {
            "id": f"r{r}",
            "checkpoints": [f"cp{r}-{i}" for i in range(per_route)],
            "min_walk_s": 30,
            "max_walk_s": 900,
        }
        for r in range(n_routes)
    ]
    schedules = [
        {
            "id": f"s{r}",
            "route": f"r{r}",
            "every_hours": 1 if hourly else 2,
            "start": "00:00" if hourly else "22:00",
            "end": "00:00" if hourly else "06:00",
            "grace_minutes": 10,
            "expected_minutes": 40,
            "guards": [f"g{r}"],
        }
        for r in range(n_routes)
    ]
    section = parse_section(PatrolSection, {"routes": routes, "schedules": schedules}, "patrol")
    t0 = datetime(2026, 11, 1, tzinfo=TZ).timestamp()
    raw: list[tuple[float, str, dict[str, Any]]] = []
    starts = (
        [t0 + h * 3600 for h in range(days * 24)]
        if hourly
        else [t0 + d * 86400 + h * 3600 for d in range(days) for h in (22, 24, 26, 28)]
    )
    for start in starts:
        for r in range(n_routes):
            if rng.random() < 0.03:
                continue  # a missed round
            t = start + rng.uniform(60, 900)
            skip = rng.randrange(per_route) if rng.random() < 0.05 else -1
            for i in range(per_route):
                if i != skip:
                    raw.append(
                        (
                            t,
                            "tap",
                            {
                                "checkpoint": f"cp{r}-{i}",
                                "guard": f"g{r}",
                                "wristband": f"w{r}",
                                "reader": f"rd{r}-{i}",
                            },
                        )
                    )
                t += rng.uniform(60, 200)
    for k in range(days * 24 * 12):
        raw.append((t0 + k * 300 + 7, "health.sample", {"cpu_temp": 40}))
    for _ in range(days * outages):
        when = t0 + rng.uniform(0, days * 86400)
        cp = f"cp{rng.randrange(n_routes)}-{rng.randrange(per_route)}"
        raw.append((when, "reader.state", {"reader": "x", "checkpoint": cp, "state": "offline"}))
        raw.append(
            (when + 3600, "reader.state", {"reader": "x", "checkpoint": cp, "state": "online"})
        )
    raw.sort(key=lambda item: item[0])
    events = [
        {
            "seq": i,
            "kind": kind,
            "cls": "evidence",
            "payload": payload,
            "wall_time": wall,
            "mono_time": 0.0,
            "boot_id": "boot",
            "clock_synced": True,
        }
        for i, (wall, kind, payload) in enumerate(raw, 1)
    ]
    return section, events


def baseline(events: list[dict[str, Any]]) -> float:
    t = time.perf_counter()
    taps = [
        (ev["wall_time"], ev["seq"], ev["payload"]["checkpoint"])
        for ev in events
        if ev["kind"] == "tap"
    ]
    taps.sort()
    return time.perf_counter() - t


def replay(
    section: PatrolSection, events: list[dict[str, Any]], engine_class: Any = PatrolEngine
) -> tuple[float, int, PatrolEngine]:
    t = time.perf_counter()
    engine = engine_class(section)
    n_out = 0
    for ev in events:  # one event at a time, as the live service sees them
        n_out += len(engine.feed_events((ev,)))
    n_out += len(engine.advance(events[-1]["wall_time"] + 3 * 86400))
    return time.perf_counter() - t, n_out, engine


def outputs(section: PatrolSection, events: list[dict[str, Any]], engine_class: Any) -> list[str]:
    """Everything a replay says (outputs, then every round's report), as comparable text."""
    engine = engine_class(section)
    out = [repr(o) for ev in events for o in engine.feed_events((ev,))]
    out += [repr(o) for o in engine.advance(events[-1]["wall_time"] + 3 * 86400)]
    return out + [repr(engine.report(rid)) for rid in engine.round_ids()]


def engine_at(commit: str) -> Any:
    """``gateway/patrol/engine.py`` as it was at ``commit``, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{commit}:gateway/patrol/engine.py"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    module = types.ModuleType(f"engine_at_{commit}")
    module.__file__ = f"{commit}:gateway/patrol/engine.py"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def kept(section: PatrolSection, events: list[dict[str, Any]], engine_class: Any) -> float:
    """MB the engine holds once the month is replayed (tracemalloc; untimed)."""
    gc.collect()
    tracemalloc.start()
    engine = replay(section, events, engine_class)[2]
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del engine
    return size / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--checkpoints", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--outages", type=int, default=1, help="reader drop-outs per day")
    ap.add_argument(
        "--reference",
        nargs="?",
        const="frozen",
        metavar="COMMIT",
        help="also time the pre-issue-20 engine, or the engine at a git commit",
    )
    args = ap.parse_args()
    for hourly in (True, False):
        run(args, hourly)


def run(args: argparse.Namespace, hourly: bool) -> None:
    section, events = build(args.days, args.checkpoints, hourly, outages=args.outages)
    n_taps = sum(1 for ev in events if ev["kind"] == "tap")
    reference: Any = None
    if args.reference == "frozen":
        from tests.patrol import reference_engine

        reference = reference_engine.PatrolEngine
    elif args.reference:
        reference = engine_at(args.reference).PatrolEngine
    bases: list[float] = []
    runs: list[tuple[float, int]] = []
    ref_runs: list[tuple[float, int]] = []
    engine: Any = None
    for _ in range(args.repeat):  # interleaved, so load on the machine hits all alike
        bases.append(baseline(events))
        # Only the times are kept: engines kept alive from earlier runs would make the garbage
        # collector's full passes in later runs longer (and more so after the bigger engine).
        t, n, replayed = replay(section, events)
        runs.append((t, n))
        engine = engine or replayed
        del replayed
        if reference is not None:
            ref_runs.append(replay(section, events, reference)[:2])
    base = min(bases)
    best, n_out = min(runs)
    verdicts: dict[str, int] = {}
    for rid in engine.round_ids():
        state = engine.report(rid).state
        verdicts[state] = verdicts.get(state, 0) + 1
    print()
    print("hourly rounds around the clock" if hourly else "rounds every 2 h, 22:00-06:00")
    print(
        f"journal: {len(events)} events ({n_taps} taps) over {args.days} days, "
        f"{args.checkpoints} checkpoints, {len(engine.round_ids())} rounds"
    )
    print(
        f"engine replay:  {best * 1000:8.1f} ms  {len(events) / best:10.0f} events/s  "
        f"{n_taps / best:10.0f} taps/s  ({n_out} outputs)"
    )
    print(
        f"baseline (iterate + sort the taps): {base * 1000:8.1f} ms  "
        f"{len(events) / base:10.0f} events/s"
    )
    print(f"engine / baseline: {best / base:.1f}x  (goal: at most 10x)")
    if ref_runs:
        ref_best, ref_out = min(ref_runs)
        label = "before issue 20" if args.reference == "frozen" else f"at {args.reference}"
        print(
            f"reference engine ({label}): {ref_best * 1000:8.1f} ms  "
            f"({ref_out} outputs), reference / baseline: {ref_best / base:.1f}x, "
            f"speed-up {ref_best / best:.2f}x"
        )
    print("verdicts:", ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())))
    if reference is not None:  # untimed: the same outputs and reports, on this very journal
        same = outputs(section, events, PatrolEngine) == outputs(section, events, reference)
        print("outputs and reports identical to the reference engine:", "yes" if same else "NO")
        if not same:
            raise SystemExit(1)
        print(
            f"engine memory after the replay: {kept(section, events, PatrolEngine):.1f} MB, "
            f"reference {kept(section, events, reference):.1f} MB"
        )


if __name__ == "__main__":
    main()
