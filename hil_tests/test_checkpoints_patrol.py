"""Acceptance: 16 simulated OSDP readers on 2 paced RS-485 buses at 9600 baud, a scripted
patrol, the tap service running as its own process.

Every accepted visit is in the journal as a tap, every visit ends confirmed (green for a known
wristband, amber for an unknown one, never green for it), green only after a durable append, and
feedback is lost only to a reader's drop-out. A guard who sees nothing, or a known wristband
sees anything but green, taps again, as guards are told to: how often that happened is printed.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hil_tests.sims.osdp_reader import (
    AMBER,
    GREEN,
    ReaderBench,
    ServiceProcess,
    journal_events,
)

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]

GUARDS = {f"{0x04A1B2C30000 + i:012x}": f"g-{i:03d}" for i in range(40)}
UNKNOWN = [f"{0x0DEAD0000000 + i:012x}" for i in range(20)]
FEEDBACK_TIMEOUT_S = 10.0
DEDUPE_S = 2.0
# A guard who sees nothing (or, with a known wristband, anything but green) taps again (what
# the product tells guards to do). On a busy machine
# the simulated readers (16 libosdp PDs in this test's process) can answer late enough for
# libosdp to drop them; a tap made while its reader is out is then delivered late (no LED, by
# design) or lost inside the reader. Every visit must still end confirmed, within this many taps.
MAX_ATTEMPTS = 6
# Idle, the 500-tap patrol takes about a minute; a loaded CI machine can make it many times
# that. The walkers stop at this deadline so the test fails saying so, inside its own timeout
# (pytest-timeout's thread method would end the whole run).
PATROL_DEADLINE_S = 720.0


def run_patrol(bench: ReaderBench, total: int, seed: int) -> list[dict[str, object]]:
    """Visits spread over every reader in parallel (one walker per reader); returns one entry
    per visit with every tap the guard made there and what the reader showed after each."""
    rng = random.Random(seed)
    readers = sorted(bench.readers)
    plan: dict[tuple[str, int], list[tuple[str, bool]]] = {r: [] for r in readers}
    for i in range(total):
        reader = readers[i % len(readers)]
        unknown = rng.random() < 0.1
        band = rng.choice(UNKNOWN) if unknown else rng.choice(list(GUARDS))
        plan[reader].append((band, not unknown))
    results: list[dict[str, object]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + PATROL_DEADLINE_S

    def walker(reader: tuple[str, int]) -> None:
        sim = bench.reader(*reader)
        last_used: dict[str, float] = {}
        for band, known in plan[reader]:
            if time.monotonic() > deadline:
                return  # the test then fails on the count of visits, not on a kill
            # A guard re-tapping the same reader inside the window is a repeat, not a tap:
            # the script waits the window out so every scripted visit is a distinct one.
            wait = last_used.get(band, -1e9) + DEDUPE_S + 0.2 - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            attempts: list[tuple[float, int | None]] = []
            while len(attempts) < MAX_ATTEMPTS:
                t = sim.tap(band)
                led = sim.wait_led(None, after=t, timeout=FEEDBACK_TIMEOUT_S)
                attempts.append((t, None if led is None else led.color))
                # A guard whose own wristband shows anything but green taps again too: right
                # after a reader's drop-out it may still show the feedback for a read it held
                # (shown up to 10 s late, by design), which was someone else's tap.
                if led is not None and (led.color == GREEN or not known):
                    break
            last_used[band] = time.monotonic()
            with lock:
                results.append(
                    {"reader": reader, "band": band, "known": known, "t": attempts[0][0],
                     "attempts": attempts, "color": attempts[-1][1]}
                )  # fmt: skip
            time.sleep(rng.uniform(0.0, 0.05))

    threads = [threading.Thread(target=walker, args=(r,)) for r in readers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results


def check_patrol(
    bench: ReaderBench, journal: Path, results: list[dict[str, object]], board: dict[str, Any]
) -> int:
    """Checks the patrol; returns how many taps were made again because nothing showed."""
    accepted = [r for r in results if r["known"]]
    refused = [r for r in results if not r["known"]]
    unconfirmed = [r for r in results if r["color"] is None]
    # A reader that is out of contact cannot light its LED: a visit may end unconfirmed only
    # at a reader the gateway reported offline, and only with its tap kept as evidence (a
    # tap, or a tap.delivered_late once the reader was back). Such drop-outs of the simulated
    # readers (16 libosdp PDs in this process) are rare, and capped here.
    offline = {
        e.payload["reader"]
        for e in journal_events(journal, "reader.state")
        if e.payload["state"] != "online"
    }
    kept = {
        (e.payload["checkpoint"], e.payload["wristband"])
        for kind in ("tap", "tap.delivered_late")
        for e in journal_events(journal, kind)
    }
    for r in unconfirmed:
        reader = "{}/{}".format(*r["reader"])  # type: ignore[str-format]
        assert reader in offline, (
            f"visit at {reader} got no feedback in {MAX_ATTEMPTS} taps, reader never offline"
        )
        key = (bench.checkpoint_id(*r["reader"]), r["band"])  # type: ignore[misc]
        assert not r["known"] or key in kept, f"visit at {reader} unconfirmed and not journaled"
    assert len(unconfirmed) <= max(1, len(results) // 100), (
        f"{len(unconfirmed)} visits got no feedback in {MAX_ATTEMPTS} taps: "
        f"{[(r['reader'], r['band']) for r in unconfirmed][:10]}"
    )
    every_accepted = list(accepted)
    results = [r for r in results if r["color"] is not None]
    accepted = [r for r in results if r["known"]]
    refused = [r for r in results if not r["known"]]
    assert all(r["color"] == GREEN for r in accepted), "an accepted visit did not end green"
    assert all(r["color"] == AMBER for r in refused), "an unknown wristband did not end amber"
    retaps = sum(len(r["attempts"]) - 1 for r in results)  # type: ignore[arg-type]

    confirmed = {(bench.checkpoint_id(*r["reader"]), r["band"]) for r in accepted}  # type: ignore[misc]
    scripted = {(bench.checkpoint_id(*r["reader"]), r["band"]) for r in every_accepted}  # type: ignore[misc]
    attempts = Counter()
    for r in every_accepted:
        attempts[(bench.checkpoint_id(*r["reader"]), r["band"])] += len(r["attempts"])  # type: ignore[arg-type,misc]
    taps = journal_events(journal, "tap")
    late = journal_events(journal, "tap.delivered_late")
    got = Counter((e.payload["checkpoint"], e.payload["wristband"]) for e in taps)
    # Every confirmed visit is a tap in the journal; nothing nobody tapped is; a visit is
    # journaled as a tap at most once per tap the guard made there.
    assert confirmed <= set(got) <= scripted, "journal taps differ from the scripted visits"
    assert all(n <= attempts[k] for k, n in got.items()), "more taps journaled than made"
    assert {(e.payload["checkpoint"], e.payload["wristband"]) for e in late} <= scripted
    assert all(e.payload["guard"] == GUARDS[e.payload["wristband"]] for e in taps)
    unknown_events = journal_events(journal, "unknown_wristband")
    assert {e.payload["wristband"] for e in unknown_events} <= set(UNKNOWN)
    assert len(unknown_events) >= len(refused)

    # Green only for durable taps: at each reader the greens shown cannot outnumber the taps
    # (and repeats) journaled there; and never a green for an unknown wristband.
    repeats = Counter(e.payload["checkpoint"] for e in journal_events(journal, "tap.repeat"))
    for key, sim in bench.readers.items():
        cp = bench.checkpoint_id(*key)
        journaled = sum(n for (c, _b), n in got.items() if c == cp) + repeats[cp]
        mine = [r for r in accepted if r["reader"] == key]
        assert len(mine) <= sim.green_count() <= journaled, f"reader {key}: greens vs taps"
    for r in refused:
        sim = bench.reader(*r["reader"])  # type: ignore[misc]
        nxt = min(
            (o["t"] for o in results if o["reader"] == r["reader"] and o["t"] > r["t"]),  # type: ignore[operator]
            default=float("inf"),
        )
        greens = [c for c in sim.leds_since(r["t"], GREEN) if c.mono_time < nxt]  # type: ignore[arg-type]
        assert not greens, "a refused tap was followed by a green LED"

    # Feedback is lost only to a reader's drop-out, never while the reader stays up.
    for row in board["readers"]:
        assert row["feedback_lost"] <= row["offline_transitions"], (
            f"reader {row['reader']} lost feedback without dropping out: {row}"
        )
    return retaps


def _patrol(tmp_path: Path, total: int) -> int:
    """Run the patrol and check it; returns how many visits were scripted."""
    with ReaderBench(
        tmp_path, {"a": 8, "b": 8}, baud=9600, roster=GUARDS, dedupe_window_s=DEDUPE_S
    ) as bench:
        journal = tmp_path / "journal.db"
        proc = ServiceProcess(bench.config_path, journal).start()
        try:
            ids = [f"{b}/{a}" for b, a in bench.readers]
            assert proc.wait_online(ids, 90), f"readers not online: {proc.readers_status()}"
            started = time.monotonic()
            results = run_patrol(bench, total, seed=total)
            elapsed = time.monotonic() - started
            time.sleep(1.5)  # one more status publish
            board = json.loads(proc.status.read_text())["readers"]
        finally:
            assert proc.stop() == 0, proc.log_path.read_text()[-3000:]
        assert len(results) == total, (
            f"only {len(results)} of {total} visits made within {PATROL_DEADLINE_S:.0f} s"
        )
        retaps = check_patrol(bench, journal, results, board)
        print(f"patrol of {total} visits on 16 readers at 9600 baud: {elapsed:.1f} s, "
              f"{retaps} taps made again because nothing (or not green) showed")  # fmt: skip
        return len(results)


# Back in the default run: it failed 2 idle runs of 2 on a light a reader showed late or twice
# after a drop-out (an unknown wristband saw a stale green sent again once its reader was back;
# a late answer dropped neighbours). A light that went out is no longer sent again, and late
# answers are kept from libosdp (hil_tests/test_checkpoints_late_reply.py). Issue 4's
# acceptance, at full size.
@pytest.mark.timeout(PATROL_DEADLINE_S + 180)
def test_patrol_500_taps_16_readers_two_buses_9600(tmp_path: Path) -> None:
    assert _patrol(tmp_path, 500) == 500
