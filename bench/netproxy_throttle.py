"""Fault proxy throttle: achieved rate beside the configured limit and an unthrottled baseline.

    .venv/bin/python bench/netproxy_throttle.py [--kbytes 200]

Sends bytes through hil_tests/netproxy.FaultProxy to a loopback sink, once in ``pass`` mode
(the baseline, measured in the same run) and once per bandwidth limit in ``throttle`` mode,
and prints the achieved rate as a share of the limit. Figures, not pass/fail: the HIL test
asserts only that a throttled transfer is never faster than the limit and does not stall.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hil_tests.netproxy import FaultProxy  # noqa: E402


async def _transfer(nbytes: int, bandwidth_bps: int | None) -> float:
    received = 0
    done = asyncio.Event()
    ended = asyncio.Event()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        try:
            while chunk := await reader.read(65536):
                received += len(chunk)
                if received >= nbytes:
                    done.set()
        except ConnectionError:
            pass
        finally:
            writer.close()
            ended.set()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with FaultProxy(listen=("127.0.0.1", 0), target=("127.0.0.1", port)) as proxy:
            if bandwidth_bps is not None:
                proxy.set_mode("throttle", bandwidth_bps=bandwidth_bps)
            _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            start = time.monotonic()
            writer.write(os.urandom(nbytes))
            await writer.drain()
            await asyncio.wait_for(done.wait(), 120)
            elapsed = time.monotonic() - start
            writer.close()
            await writer.wait_closed()
            await asyncio.wait_for(ended.wait(), 30)  # the proxy's connection ends cleanly
            return elapsed
    finally:
        server.close()
        await server.wait_closed()


async def main(kbytes: int) -> None:
    n = kbytes * 1000
    base = await _transfer(n, None)
    print(f"{kbytes} kB through the fault proxy")
    print(f"  baseline, pass mode: {base * 1e3:8.1f} ms = {n * 8 / base / 1e6:8.1f} Mbit/s")
    for limit in (800_000, 4_000_000):
        t = await _transfer(n, limit)
        rate = n * 8 / t
        print(
            f"  throttle {limit / 1e3:6.0f} kbit/s: {t:6.3f} s = {rate / 1e3:7.0f} kbit/s"
            f" ({rate / limit * 100:5.1f} % of the limit; ideal {n * 8 / limit:.3f} s)"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kbytes", type=int, default=200)
    asyncio.run(main(ap.parse_args().kbytes))
