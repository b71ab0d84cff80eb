"""Broadcast latency: command accepted -> relay verified on, at 9600 baud on a paced line.

    .venv/bin/python bench/relay_latency.py [--runs 50] [--baud 9600] [--profile waveshare_v2]

Runs the real controller and driver against the simulated board on the bench's line emulator
(paced at the baud rate) and prints p50/p99 beside the bus minimum computed in the same run:
the verified-on job is one write (FC05, 8-byte request, 8-byte echo) and one read-back (FC01,
8 + 6 bytes), each costing its wire time plus 2 x t3.5. No amplifier (its warm-up is a
configured wait, not latency). Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._figures import bus_minimum, figures, print_figures  # noqa: E402
from drivers.relay_modbus import ModbusRelayPort  # noqa: E402
from drivers.relays import BoardSpec  # noqa: E402
from gateway.broadcast.controller import BroadcastController  # noqa: E402
from gateway.broadcast.plan import Layout, Notify, RelayRef, StartRequest  # noqa: E402
from gateway.broadcast.remote import LocalTestSigner, RemoteTrigger  # noqa: E402
from gateway.clock import SystemClock  # noqa: E402
from gateway.events import EVIDENCE, Event  # noqa: E402
from hil_tests.sims.relay_board import RelayBoardSim, SimBoard  # noqa: E402
from tests.broadcast.benchkit import serial_line  # noqa: E402

# Frame sizes (address + function + data + CRC) of the verified-on job, per profile.
JOB_FRAMES = {
    "waveshare_v2": [(8, 8), (8, 6)],  # FC05 flash-on + echo; FC01 read 8 coils
    "coils": [(8, 8), (8, 6)],  # FC05 + echo; FC01
    "holding": [(8, 8), (8, 21)],  # FC06 + echo; FC03 read 8 registers
}


class NullJournal:
    """Counts events (the bench measures the relay path, not SQLite fsync)."""

    last_seq = 0

    async def append(self, kind: str, payload: Any, *, cls: str = EVIDENCE) -> Event:
        self.last_seq += 1
        return Event(self.last_seq, kind, cls, payload, time.time(), time.monotonic(), "b", True)

    async def read_after(self, seq: int, **_: Any) -> list[Event]:
        return []


async def measure(runs: int, baud: int, profile: str) -> dict[str, Any]:
    stamps: dict[str, dict[str, float]] = {}

    async def on_notify(note: Notify, req: StartRequest | None) -> None:
        stamps.setdefault(note.request_id, {})[note.stage] = time.perf_counter()

    sim = SimBoard(1, profile)
    with serial_line(baud) as line:
        async with RelayBoardSim(line.device_path, [sim], baudrate=baud):
            port = ModbusRelayPort(line.host_path, baudrate=baud)
            bank = port.board(BoardSpec("main", 1, profile))
            layout = Layout(zones={1: RelayRef("main", 1)}, amplifier=None, max_duration_s=600)
            clock = SystemClock()
            ctl = BroadcastController(
                layout, {"main": bank}, NullJournal(), clock, on_notify=on_notify
            )
            signer = LocalTestSigner.generate("gw-bench")
            remote = RemoteTrigger(ctl, signer.verifier(clock))
            tasks = [asyncio.create_task(port.run()), asyncio.create_task(ctl.run())]
            try:
                await asyncio.wait_for(ctl.ready.wait(), 10)
                for _ in range(runs):
                    ticket = await remote.handle_envelope(signer.start((1,), 60, now=clock.wall()))
                    assert ticket is not None
                    on = await ticket.wait("on", timeout=10)
                    assert on.get("verified") is True, on
                    ctl.submit_stop("cli", "bench")
                    await ticket.wait("done", timeout=10)
            finally:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    lat = [s["on"] - s["accepted"] for s in stamps.values() if "on" in s and "accepted" in s]
    return figures(lat, bus_minimum(JOB_FRAMES[profile], baud))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--profile", default="waveshare_v2", choices=sorted(JOB_FRAMES))
    args = ap.parse_args()
    r = asyncio.run(measure(args.runs, args.baud, args.profile))
    print_figures(
        f"relay latency, command accepted -> relay verified on ({args.profile}, "
        f"{args.baud} baud paced, {r['runs']} runs)",
        r,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
