"""Command latency: operator command at the centre -> relay verified on at the board.

    .venv/bin/python bench/command_latency.py [--runs 30] [--baud 9600] [--poll]
    .venv/bin/python bench/command_latency.py --centres 2 [--runs 40]

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

``--centres 2`` (issue 19, docs/scale.md): the centre on PostgreSQL (a throwaway cluster the
bench starts in a temp folder, fsync on), two centres A and B on the one database and one data
directory (two ``running_centre`` in this Python process, on two ports: one clock times both
ends), the gateway's channel on B. Three rows, interleaved run by run in rotating order:

- one process, woken in process: queued on B's store, ``B.commands.wake()`` (an operator
  console in B's own process; what the default mode measures, on PostgreSQL);
- one process, by NOTIFY: queued on B's store, no in-process wake-up (B wakes on its own
  NOTIFY: the path every other row also pays);
- two processes: queued on A's store (its own connections), B woken by A's NOTIFY.

B's safety-net poll is set to an hour, so no row can be served by a poll. Each row prints
issue -> delivered (the gateway's ``received`` ack: the command journalled at the gateway) and
issue -> relay verified on, and the p99 difference of the two-process row from each one-process
row.
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

from bench._figures import bus_minimum, figures, pct, print_figures  # noqa: E402
from centre.commands.issue import issue  # noqa: E402
from centre.commands.pg_store import PostgresCommandStore  # noqa: E402
from centre.commands.store import SqliteCommandStore  # noqa: E402
from centre.pki import CentrePaths, init_centre  # noqa: E402
from centre.server import running_centre  # noqa: E402
from gateway.commands.channel import CommandChannel  # noqa: E402
from tests.commands.rig import GW, command_rig  # noqa: E402
from tests.sync.conftest import Centre  # noqa: E402
from wire.commands import BroadcastStart  # noqa: E402

JOB_FRAMES = [(8, 8), (8, 6)]  # "coils" profile: FC05 + echo, FC01 read of 8 coils


class TimedChannel(CommandChannel):
    """Stamps the moment each command's relays are verified on (its ``on`` ack), and the moment
    it was received (its ``received`` ack) in ``received``."""

    stamps: dict[str, float]
    received: dict[str, float] = {}

    async def _ack(
        self, command_id: str, stage: str, reason: str = "", code: str = "", digest: str = ""
    ) -> None:
        if stage == "on":
            self.stamps[command_id] = time.perf_counter()
        elif stage == "received":
            self.received[command_id] = time.perf_counter()
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


ROWS = (
    ("one process, woken in process", "in-process"),
    ("one process, by NOTIFY", "notify"),
    ("two processes: issued on A, gateway on B", "two"),
)


async def measure_centres(runs: int, baud: int, folder: Path) -> dict[str, dict[str, Any]]:
    """The three rows of ``--centres 2`` (see the module's text), interleaved."""
    from tests.pg_cluster import throwaway_cluster

    paths = CentrePaths(folder / "centre")
    fp = init_centre(paths, hostnames=["localhost"], ips=["127.0.0.1"], now=time.time(), name="B")
    delivered: dict[str, list[float]] = {key: [] for _, key in ROWS}
    on: dict[str, list[float]] = {key: [] for _, key in ROWS}
    with throwaway_cluster(durable=True) as cluster:
        (paths.root / "centre.toml").write_text(
            f'[database]\ndsn = "{cluster.dsn()}"\n', encoding="utf-8"
        )
        async with running_centre(paths) as b, running_centre(paths) as a:
            assert isinstance(b.commands.store, PostgresCommandStore) and b.commands.notified
            centre = Centre(paths, b, fp)
            TimedChannel.stamps, TimedChannel.received = {}, {}
            async with command_rig(centre, folder, channel_cls=TimedChannel, baud=baud) as rig:
                b.commands.poll_s = 3600.0  # only a wake-up can send: no poll in any row
                b.commands.wake(GW)
                await asyncio.sleep(0.5)
                assert GW in b.commands.connections and GW not in a.commands.connections
                for i in range(runs):
                    for _, key in ROWS[i % 3 :] + ROWS[: i % 3]:
                        store = a.commands.store if key == "two" else b.commands.store
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
                        if key == "in-process":
                            b.commands.wake(GW)
                        while rec.command_id not in TimedChannel.stamps:
                            await asyncio.sleep(0.0005)
                        delivered[key].append(TimedChannel.received[rec.command_id] - t0)
                        on[key].append(TimedChannel.stamps[rec.command_id] - t0)
                        rig.runtime.controller.submit_stop("cli", "bench")
                        while rig.runtime.controller.phase != "idle" or any(rig.board.coils):
                            await asyncio.sleep(0.005)
                        await rig.wait_status(rec.command_id, "done")
    bus_min = bus_minimum(JOB_FRAMES, baud)
    out: dict[str, dict[str, Any]] = {}
    for _, key in ROWS:
        out[key] = {"delivered": figures(delivered[key], 0.0), "on": figures(on[key], bus_min)}
        out[key]["delivered"]["p90"] = pct(delivered[key], 90)
        out[key]["on"]["p90"] = pct(on[key], 90)
    return out


def print_centres(rows: dict[str, dict[str, Any]], runs: int, baud: int) -> None:
    ms = 1000.0
    print(
        f"command latency, centres on one PostgreSQL (fsync on), interleaved, {runs} runs a row, "
        f"mTLS loopback, {baud} baud paced"
    )
    print(f"  {'':42} {'issue -> delivered (ms)':>23}   {'issue -> relay verified on (ms)':>31}")
    print(f"  {'':42} {'p50':>7} {'p90':>7} {'p99':>7}   {'p50':>9} {'p90':>9} {'p99':>9}")
    for title, key in ROWS:
        d, o = rows[key]["delivered"], rows[key]["on"]
        print(
            f"  {title:42} {d['p50'] * ms:7.2f} {d['p90'] * ms:7.2f} {d['p99'] * ms:7.2f}   "
            f"{o['p50'] * ms:9.2f} {o['p90'] * ms:9.2f} {o['p99'] * ms:9.2f}"
        )
    two = rows["two"]
    for title, key in ROWS[:2]:
        dd = (two["delivered"]["p99"] - rows[key]["delivered"]["p99"]) * ms
        do = (two["on"]["p99"] - rows[key]["on"]["p99"]) * ms
        print(f"  two processes - {title}: p99 delivered {dd:+.2f} ms, p99 on {do:+.2f} ms")
    print(f"  bus minimum of the verified-on job: {rows['two']['on']['bus_min'] * ms:.2f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--poll", action="store_true", help="no wake-up: the centre's queue poll")
    ap.add_argument(
        "--centres",
        type=int,
        choices=(1, 2),
        default=1,
        help="2: on PostgreSQL, one process beside two (issued on A, gateway on B)",
    )
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="command-bench-"))
    if args.centres == 2:
        if args.poll:
            ap.error("--poll is the SQLite queue poll; --centres 2 runs on PostgreSQL's NOTIFY")
        try:
            rows = asyncio.run(measure_centres(args.runs, args.baud, folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print_centres(rows, args.runs, args.baud)
        return 0
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
