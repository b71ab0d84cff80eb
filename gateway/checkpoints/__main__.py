"""Run the checkpoint service on its own, with its own journal (bench and HIL use).

    python -m gateway.checkpoints --config checkpoints.toml --journal /tmp/j.db \
        --gateway-id gw-bench --status /tmp/readers.json

The daemon runs the same service under its supervisor once the lead registers
``gateway.checkpoints.service.daemon_factory``; this runner exists so the bench can SIGKILL
exactly the tap path. SIGTERM/SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from gateway.checkpoints.config import load_band_master_key, load_section_file
from gateway.checkpoints.service import CheckpointService, make_buses
from gateway.clock import SystemClock
from gateway.errors import ConfigError
from gateway.journal import Journal


class FileBoard:
    """A status board that writes its sections to one JSON file (atomically)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.sections: dict[str, Any] = {}

    def publish(self, section: str, value: Any) -> None:
        self.sections[section] = value
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.sections, sort_keys=True, default=str))
        os.replace(tmp, self.path)


async def run(args: argparse.Namespace) -> int:
    section, base_dir = load_section_file(args.config)
    band_key = load_band_master_key(section, base_dir)
    journal = await Journal.open(args.journal, gateway_id=args.gateway_id, clock=SystemClock())
    board = FileBoard(Path(args.status) if args.status else None)
    service = CheckpointService(
        section, journal, SystemClock(), board, buses=make_buses(section, base_dir),
        band_master_key=band_key,
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(service.run())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopper):
            t.cancel()
        results = await asyncio.gather(task, stopper, return_exceptions=True)
        await journal.close()
    failure = results[0]
    if isinstance(failure, Exception) and not isinstance(failure, asyncio.CancelledError):
        raise failure
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.checkpoints", description=__doc__)
    parser.add_argument("--config", required=True, help="TOML file with a [checkpoints] table")
    parser.add_argument("--journal", required=True, help="journal database path")
    parser.add_argument("--gateway-id", default="gw-bench")
    parser.add_argument("--status", default="", help="write the reader table to this JSON file")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        return asyncio.run(run(args))
    except ConfigError as exc:
        print(f"config error: {exc.reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
