"""Command latency: operator command at the centre -> relay verified on at the board.

    .venv/bin/python bench/command_latency.py [--runs 30] [--baud 9600] [--poll]

The whole path, all real, on loopback: the centre signs and queues the command (its SQLite,
synchronous=FULL) → the command channel (WebSocket over mTLS) → the gateway journals the
receipt, verifies (pinned key, fsynced sequence), journals the acceptance → broadcast
controller → Modbus RTU on the bench's line emulator paced at the baud rate → simulated board,
read back. Timed from just before the operator's command is signed to the moment the gateway
holds the relay verified on (the ``on`` acknowledgement leaving for the centre).

By default the centre is woken at once (an operator console in the centre's process);
``--poll`` leaves it to the channel's queue poll (``centre.commands.channel.POLL_S``), which is
what a ``compound-centre broadcast`` typed in another process gets. The bus minimum of the
verified-on job (one FC05 write + echo, one FC01 read-back, wire time + 2 x t3.5 each) is
computed in the same run. Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._figures import bus_minimum, figures, print_figures  # noqa: E402
from centre.commands.issue import issue  # noqa: E402
from centre.commands.store import SqliteCommandStore  # noqa: E402
from centre.pki import CentrePaths, init_centre  # noqa: E402
from centre.server import running_centre  # noqa: E402
from gateway.commands.channel import CommandChannel  # noqa: E402
from tests.commands.rig import GW, command_rig  # noqa: E402
from tests.sync.conftest import Centre  # noqa: E402
from wire.commands import BroadcastStart  # noqa: E402

JOB_FRAMES = [(8, 8), (8, 6)]  # "coils" profile: FC05 + echo, FC01 read of 8 coils


class TimedChannel(CommandChannel):
    """Stamps the moment each command's relays are verified on (its ``on`` ack)."""

    stamps: dict[str, float]

    async def _ack(
        self, command_id: str, stage: str, reason: str = "", code: str = "", digest: str = ""
    ) -> None:
        if stage == "on":
            self.stamps[command_id] = time.perf_counter()
        await super()._ack(command_id, stage, reason, code, digest)


async def measure(runs: int, baud: int, poll: bool, folder: Path) -> dict[str, Any]:
    paths = CentrePaths(folder / "centre")
    fp = init_centre(paths, hostnames=["localhost"], ips=["127.0.0.1"], now=time.time(), name="B")
    lat: list[float] = []
    async with running_centre(paths) as running:
        centre = Centre(paths, running, fp)
        TimedChannel.stamps = {}
        async with command_rig(centre, folder, channel_cls=TimedChannel, baud=baud) as rig:
            store = running.commands.store
            assert isinstance(store, SqliteCommandStore)
            for _ in range(runs):
                t0 = time.perf_counter()
                (rec,) = await issue(
                    store,
                    [GW],
                    rig.key,
                    BroadcastStart((1,), 60, "bench", "Test"),
                    ttl_s=120,
                    now=time.time(),
                    issued_by="bench",
                )
                if not poll:
                    running.commands.wake()
                while rec.command_id not in TimedChannel.stamps:
                    await asyncio.sleep(0.0005)
                lat.append(TimedChannel.stamps[rec.command_id] - t0)
                rig.runtime.controller.submit_stop("cli", "bench")
                while rig.runtime.controller.phase != "idle" or any(rig.board.coils):
                    await asyncio.sleep(0.005)
                await rig.wait_status(rec.command_id, "done")
    return figures(lat, bus_minimum(JOB_FRAMES, baud))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--poll", action="store_true", help="no wake-up: the centre's queue poll")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="command-bench-"))
    try:
        r = asyncio.run(measure(args.runs, args.baud, args.poll, folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    how = "queue poll" if args.poll else "woken at once"
    print_figures(
        f"command latency, operator command -> relay verified on (centre {how}, mTLS loopback, "
        f"{args.baud} baud paced, {r['runs']} runs)",
        r,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
