"""A broadcast controller in its own process, for the kill-mid-broadcast HIL test.

    python -m tests.broadcast.runner SECTION_JSON JOURNAL [--start 1,2:30]

Prints ``READY`` once the start-up force-off is done and ``ON`` once a started broadcast is
verified on; runs until SIGTERM (clean stop, relays off) or SIGKILL (nothing at all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from gateway.broadcast.config import BroadcastSection
from gateway.broadcast.plan import StartRequest
from gateway.broadcast.service import build_runtime
from gateway.clock import SystemClock
from gateway.config.schema import parse_section
from gateway.journal import Journal


async def main(args: argparse.Namespace) -> None:
    section = parse_section(BroadcastSection, json.loads(args.section), "broadcast")
    journal = await Journal.open(args.journal, gateway_id="gw-test", clock=SystemClock())
    runtime = build_runtime(section, journal, SystemClock())
    task = asyncio.create_task(runtime.service.run())
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await asyncio.wait_for(runtime.controller.ready.wait(), 10)
        print("READY", flush=True)
        if args.start:
            zones, seconds = args.start.split(":")
            ticket = runtime.controller.submit_start(
                StartRequest(
                    "kill-test",
                    tuple(int(z) for z in zones.split(",")),
                    float(seconds),
                    "cli",
                    "kill test",
                )
            )
            await ticket.wait("on", timeout=10)
            print("ON", flush=True)
        await task
    except asyncio.CancelledError:
        pass
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("section")
    p.add_argument("journal")
    p.add_argument("--start", default="")
    asyncio.run(main(p.parse_args()))
    sys.exit(0)
