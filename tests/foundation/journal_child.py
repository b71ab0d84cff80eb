"""Child process for the kill test: appends from many tasks, reports each acked seq on stdout."""

from __future__ import annotations

import asyncio
import os
import sys

from gateway.events import TELEMETRY
from gateway.journal import Journal


async def producer(journal: Journal, n: int, out: int) -> None:
    i = 0
    while True:
        cls = TELEMETRY if i % 5 == 4 else "evidence"
        ev = await journal.append("tap", {"producer": n, "i": i, "pad": "p" * 64}, cls=cls)
        if cls != TELEMETRY:
            # Only evidence is promised durable on ack; telemetry may go with the next fsync.
            os.write(out, f"{ev.seq}\n".encode())
        i += 1


async def main(path: str, producers: int) -> None:
    journal = await Journal.open(path, gateway_id="gw-kill")
    os.write(1, b"ready\n")
    await asyncio.gather(*(producer(journal, n, 1) for n in range(producers)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
