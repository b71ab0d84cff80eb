"""The centre's main repository on SQLite and on PostgreSQL, the same ingest load back to back.

    .venv/bin/python bench/repo_backends.py [--gateways 20] [--batches 10] [--events 500]

Each of ``--gateways`` gateways sends ``--batches`` batches of ``--events`` events (taps with a
realistic body, one batch at a time per gateway, all gateways at once, as the centre's ingest
handler calls the repository); then every batch once more (the resend after a lost ack: all
duplicates). Straight into the repository: no TLS, HTTP or signature check (bench/drain_bench.py
measures the whole path). SQLite runs with ``synchronous=FULL`` as the centre does; PostgreSQL
on a throwaway cluster (tests/pg_cluster.py) with fsync and synchronous_commit on, so both
promise the same durability before the ack. Prints events/s, p50/p99 batch latency and CPU
seconds of this process (the PostgreSQL server's own CPU is not counted) per backend.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._figures import pct
from centre.store import SqlRepository
from wire import Batch


def _events(lo: int, n: int, gw: int) -> list[dict[str, Any]]:
    return [
        {
            "seq": s,
            "kind": "tap",
            "cls": "evidence",
            "payload": {
                "checkpoint": f"cp-{s % 12}",
                "wristband": f"band-{gw}-{s % 40}",
                "verified": True,
                "uid": "04a2b3c4d5e6f7",
            },
            "wall_time": 1_790_000_000.0 + s * 7.5,
            "mono_time": float(s),
            "boot_id": "b" * 16,
            "clock_synced": True,
        }
        for s in range(lo, lo + n)
    ]


async def _load(repo: SqlRepository, gateways: int, batches: int, events: int) -> dict[str, Any]:
    for g in range(gateways):
        await repo.create_token(f"t{g}", f"Compound {g}", "North", 0.0, 1e12)
        await repo.enroll(f"t{g}", f"gw-{g:04d}", None, 1.0,
                          lambda _g, g=g: ("pem", f"fp{g}", "pub", "kid"))  # fmt: skip
    plan = {
        g: [
            Batch.build(
                f"gw-{g:04d}",
                f"b{g}-{b}",
                _events(b * events + 1, events, g),
                head_seq=batches * events,
                created_at=0.0,
            )
            for b in range(batches)
        ]
        for g in range(gateways)
    }
    lat: list[float] = []

    async def gateway(g: int) -> int:
        stored = 0
        for batch in plan[g]:
            t0 = time.perf_counter()
            r = await repo.ingest(batch, envelope=b"{}" * 2000, signature=b"s" * 64,
                                  key_id="kid", now=time.time())  # fmt: skip
            lat.append(time.perf_counter() - t0)
            stored += r.stored
        return stored

    figures: dict[str, Any] = {}
    for phase in ("new", "resent"):
        lat.clear()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        stored = sum(await asyncio.gather(*(gateway(g) for g in range(gateways))))
        wall = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        total = gateways * batches * events
        assert stored == (total if phase == "new" else 0), (phase, stored)
        figures[phase] = {
            "events_per_s": total / wall,
            "p50_ms": pct(lat, 50) * 1000,
            "p99_ms": pct(lat, 99) * 1000,
            "cpu_s_per_10k": cpu / total * 10_000,
        }
    return figures


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gateways", type=int, default=20)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--events", type=int, default=500)
    args = ap.parse_args()
    from centre.pg_store import PostgresRepository
    from centre.store import SqliteRepository
    from tests.pg_cluster import throwaway_cluster

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lite = await SqliteRepository.open(Path(tmp) / "centre.db")
        try:
            results["sqlite"] = await _load(lite, args.gateways, args.batches, args.events)
        finally:
            await lite.close()
    with throwaway_cluster(durable=True) as cluster:
        pg = await PostgresRepository.open(cluster.dsn())
        try:
            results["postgres"] = await _load(pg, args.gateways, args.batches, args.events)
        finally:
            await pg.close()
    total = args.gateways * args.batches * args.events
    print(f"{args.gateways} gateways x {args.batches} batches x {args.events} events = {total}")
    print(f"{'backend':<9} {'phase':<7} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU s/10k (client)':>19}")  # fmt: skip
    for backend, by_phase in results.items():
        for phase, f in by_phase.items():
            print(f"{backend:<9} {phase:<7} {f['events_per_s']:>9.0f} {f['p50_ms']:>8.1f} "
                  f"{f['p99_ms']:>8.1f} {f['cpu_s_per_10k']:>19.2f}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
