"""Journal throughput: durable appends/s, one commit per event vs group commit.

    python bench/journal_bench.py [--seconds 2]

Prints, measured in this run on this disk:
  (a) one commit per event (64 producers, group commit switched off: max_group=1)
  (b) group commit with 1, 8 and 64 concurrent producers
  and the ceiling: raw SQLite inserting the same rows in ONE transaction (no durability per row).
Figures are for comparison within the run; an SD card's fsync is far slower than this disk's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.journal import Journal

PAYLOAD = {
    "checkpoint": "north-gate",
    "reader": "bus0/3",
    "wristband": "04a1b2c3d4e5f6",
    "guard": "g-017",
}


async def producers_rate(
    folder: Path, producers: int, seconds: float, max_group: int = 512
) -> tuple[float, float]:
    """Appends/s with ``producers`` tasks appending in a loop; also appends per commit."""
    j = await Journal.open(
        folder / f"p{producers}-{max_group}.db", gateway_id="gw-bench", max_group=max_group
    )
    stop = time.perf_counter() + seconds
    count = 0

    async def one() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await j.append("tap", PAYLOAD)
            count += 1

    c0 = j.commits
    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(producers)))
    elapsed = time.perf_counter() - t0
    commits = j.commits - c0
    await j.close()
    return count / elapsed, count / max(1, commits)


def raw_ceiling(folder: Path, rows: int) -> float:
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, kind TEXT, cls TEXT, payload TEXT, "
        "wall REAL, mono REAL, boot_id TEXT, clock_synced INTEGER, synced INTEGER DEFAULT 0)"
    )
    body = json.dumps(PAYLOAD, sort_keys=True, separators=(",", ":"))
    data = [(i, "tap", "evidence", body, time.time(), 0.0, "boot", 1) for i in range(1, rows + 1)]
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events (seq, kind, cls, payload, wall, mono, boot_id, clock_synced) "
        "VALUES (?,?,?,?,?,?,?,?)",
        data,
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return rows / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="journal-bench-") as tmp:
        folder = Path(tmp)
        print(f"journal bench on {folder} ({args.seconds:.1f} s per figure)")
        seq_rate, _ = await producers_rate(folder, 64, args.seconds, max_group=1)
        print(f"  (a) one commit per event, 64 producers   {seq_rate:>10,.0f} durable appends/s")
        for n in (1, 8, 64):
            rate, per_commit = await producers_rate(folder, n, args.seconds)
            print(
                f"  (b) group commit, {n:>2} producers          {rate:>10,.0f} durable appends/s"
                f"  ({per_commit:,.1f} appends per fsync)"
            )
        ceiling = raw_ceiling(folder, 200_000)
        print(
            f"  ceiling: raw SQLite, one transaction     {ceiling:>10,.0f} rows/s"
            " (not durable per row)"
        )


if __name__ == "__main__":
    asyncio.run(main())
