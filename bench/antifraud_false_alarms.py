"""Anti-fraud detectors on a month of honest patrols: false alarms (target 0) and fraud caught.

    .venv/bin/python bench/antifraud_false_alarms.py [--days 30] [--compounds 3] [--fraud 20]

For each simulated compound (``tests/antifraud/simulate.py``: eleven checkpoints on a site
plan, three routes, four guards in two shifts, reader latency, node-buffered taps, hours of
unsynchronised clock, a weekly round the night shift walks together), the month of honest taps
goes through both detectors as the centre would run them; every alert there is a false alarm.
Then ``--fraud`` cloned bands (someone walking another route with a copy of a guard's band while
the guard walks) and ``--fraud`` carried bands (a guard tapping an off-duty colleague's band
after their own at each checkpoint) are injected, and the cases caught are counted.

Also run over the patrol engine's own month (``bench/patrol_bench.py``'s journal: 5 routes of
10 checkpoints, hourly rounds), with its routes' ``min_walk_s`` as the only table.

Figures beside them: the closest any honest walk came to its bound (seconds of margin), how
many alerts stricter settings would raise on the same honest month (so the zero is not from
data too easy to judge), what the pair rule hides (the night shift's joint rounds), and how
long reading the events and running the detectors took.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.patrol_bench import build as patrol_bench_month  # noqa: E402
from centre.antifraud import (  # noqa: E402
    BuddyRules,
    TapRecord,
    TravelRules,
    WalkingTimes,
    detect_buddy_taps,
    detect_impossible_travel,
    tap_records_from_events,
    walking_times_from_routes,
)
from gateway.config.schema import dump_section  # noqa: E402
from tests.antifraud.simulate import (  # noqa: E402
    ALLOWED_PAIRS,
    GATEWAY,
    POSITIONS,
    ROUTES,
    honest_month,
    inject_buddies,
    inject_clones,
    judge,
)


def closest_margin(taps: list[TapRecord], walks: WalkingTimes, rules: TravelRules) -> float:
    """Seconds the honest walk nearest to firing had to spare, over single jumps and chains
    (elapsed + slack - the sum of the legs' bounds; negative would be an alert)."""
    by_band: dict[str, list[TapRecord]] = {}
    for t in sorted(taps, key=TapRecord.sort_key):
        if t.clock_synced:
            by_band.setdefault(t.wristband, []).append(t)
    margin = float("inf")
    for band_taps in by_band.values():
        legs = 0.0
        best = -band_taps[0].at + band_taps[0].time_uncertain_s  # min of S_i - t_i + u_i
        for a, b in itertools.pairwise(band_taps):
            need = walks.minimum(a.checkpoint, b.checkpoint) or 0.0
            legs += need
            if need > 0:  # a tap again at the same checkpoint has nothing to spare against
                chain = rules.tolerance_s + best - (legs - b.at - b.time_uncertain_s)
                margin = min(margin, chain)
            best = min(best, legs - b.at + b.time_uncertain_s)
    return margin


def run_compound(seed: int, days: int, fraud: int) -> dict[str, Any]:
    events = honest_month(seed, days)
    taps = tap_records_from_events(GATEWAY, events)
    walks = walking_times_from_routes(ROUTES, positions=POSITIONS)
    t = time.perf_counter()
    honest = judge(events)
    elapsed = time.perf_counter() - t
    joint = judge(events, allowed_pairs=frozenset())
    # How near the honest month is to the thresholds: slower assumed top speeds, and buddy
    # alerts at a single co-tapped checkpoint (guards meeting at the gate or the hub).
    slow = {
        speed: len(
            detect_impossible_travel(
                taps, walking_times_from_routes(ROUTES, positions=POSITIONS, top_speed_m_s=speed)
            )
        )
        for speed in (1.2, 1.0)
    }
    meetings = len(
        detect_buddy_taps(taps, BuddyRules(min_checkpoints=1, allowed_guard_pairs=ALLOWED_PAIRS))
    )
    rng = random.Random(seed)
    clones = inject_clones(events, rng, fraud)
    buddies = inject_buddies(events, rng, fraud)
    with_fraud = judge(events)
    return {
        "taps": len(taps),
        "false_alarms": len(honest.false_alarms),
        "margin": closest_margin(taps, walks, TravelRules()),
        "joint_rounds": len(joint.buddies),
        "slow": slow,
        "meetings": meetings,
        "clones": (len(with_fraud.caught & set(clones)), len(clones)),
        "buddies": (len(with_fraud.caught & set(buddies)), len(buddies)),
        "fraud_false_alarms": len(with_fraud.false_alarms),
        "seconds": elapsed,
    }


def run_patrol_bench_month(days: int) -> dict[str, Any]:
    section, events = patrol_bench_month(days, 50)
    routes = dump_section(section)["routes"]
    walks = walking_times_from_routes(routes)
    taps = tap_records_from_events("bench", events)
    t = time.perf_counter()
    alerts = len(detect_impossible_travel(taps, walks)) + len(detect_buddy_taps(taps))
    return {
        "taps": len(taps),
        "false_alarms": alerts,
        "margin": closest_margin(taps, walks, TravelRules()),
        "seconds": time.perf_counter() - t,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--compounds", type=int, default=3)
    ap.add_argument("--fraud", type=int, default=20, help="cases of each kind per compound")
    args = ap.parse_args()
    total_false = 0
    caught = injected = 0
    for seed in range(1, args.compounds + 1):
        r = run_compound(seed, args.days, args.fraud)
        total_false += r["false_alarms"] + r["fraud_false_alarms"]
        caught += r["clones"][0] + r["buddies"][0]
        injected += r["clones"][1] + r["buddies"][1]
        print(
            f"compound {seed}: {r['taps']} honest taps over {args.days} days: "
            f"false alarms {r['false_alarms']}; nearest honest walk to firing had "
            f"{r['margin']:.1f} s to spare; joint rounds the pair rule allows {r['joint_rounds']}; "
            f"detectors {r['seconds'] * 1000:.0f} ms"
        )
        print(
            f"  near the thresholds: a top speed of 1.2 m/s would give {r['slow'][1.2]} "
            f"alerts, 1.0 m/s {r['slow'][1.0]}; buddy alerts from one co-tapped checkpoint "
            f"would give {r['meetings']}"
        )
        print(
            f"  injected: cloned bands caught {r['clones'][0]}/{r['clones'][1]}, carried bands "
            f"caught {r['buddies'][0]}/{r['buddies'][1]}, false alarms beside them "
            f"{r['fraud_false_alarms']}"
        )
    p = run_patrol_bench_month(args.days)
    total_false += p["false_alarms"]
    print(
        f"patrol_bench month: {p['taps']} taps, false alarms {p['false_alarms']}; nearest "
        f"honest walk to firing had {p['margin']:.1f} s to spare; "
        f"detectors {p['seconds'] * 1000:.0f} ms"
    )
    print(f"false alarms: {total_false} (target 0)")
    print(f"fraud detected: {caught}/{injected}")


if __name__ == "__main__":
    main()
