"""What the journal's hash chain costs: hashing per event, the open-time audit, bytes per row.

    python bench/journal_chain.py [--rows 20000]

Prints, measured in this run on this machine:
  (a) the chain's CPU per evidence event (building the canonical body and its sha256), against
      the canonical encoding alone
  (b) open, and the open-time audit (in the background) over ``--rows`` evidence rows
  (c) the chain columns' bytes per evidence row on disk (prev_seq, prev_hash, hash)
Figures are for comparison within the run; a Pi 4 with an SD card is several times slower.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.clock import ManualClock
from gateway.journal import Journal, _chained, encode_payload

PAYLOAD = {"checkpoint": "north-gate", "reader": "bus0/3", "wristband": "04a1b2c3d4e5f6"}


def per_event_us(n: int = 20000) -> tuple[float, float]:
    row = (1, "tap", "evidence", encode_payload(PAYLOAD), 1.79e9, 12.5, "boot", 1)
    head = (0, "0" * 64)
    t0 = time.perf_counter()
    for _ in range(n):
        encode_payload(PAYLOAD)
    enc = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for i in range(n):
        _, head = _chained((i + 1, *row[1:]), head)
    chain = (time.perf_counter() - t0) / n * 1e6
    return enc, chain


async def audit_s(folder: Path, rows: int) -> tuple[float, float, int]:
    path = folder / "audit.db"
    j = await Journal.open(path, gateway_id="gw-bench", clock=ManualClock(), max_group=512)
    for start in range(0, rows, 512):
        await asyncio.gather(*(j.append("tap", PAYLOAD) for _ in range(min(512, rows - start))))
    await j.close()
    t0 = time.perf_counter()
    j = await Journal.open(path, gateway_id="gw-bench", clock=ManualClock())
    opened = time.perf_counter() - t0
    assert await j.audited() == []
    took = time.perf_counter() - t0
    size = 0
    assert j._reader is not None
    size = j._reader.execute(
        "SELECT sum(length(prev_hash) + length(hash) + 8) FROM events WHERE hash IS NOT NULL"
    ).fetchone()[0]
    await j.close()
    return opened, took, size // rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000, help="evidence rows for the audit")
    args = parser.parse_args()
    enc, chain = per_event_us()
    print(
        f"(a) canonical payload encoding {enc:.1f} us/event;"
        f" chain (body + sha256) {chain:.1f} us/event"
    )
    with tempfile.TemporaryDirectory() as tmp:
        opened, took, per_row = asyncio.run(audit_s(Path(tmp), args.rows))
    print(
        f"(b) open {opened:.2f} s (the audit runs behind it); audit over {args.rows}"
        f" evidence rows done after {took:.2f} s"
    )
    print(f"(c) chain columns: ~{per_row} bytes per evidence row")


if __name__ == "__main__":
    main()
