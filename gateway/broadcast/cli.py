"""``compound-gw broadcast test --zones 1,2 --seconds 5``: installers click the relays.

Runs the real controller (amplifier warm-up, verified on, verified off) against the configured
boards, prints each step, and exits 0 only if every relay verified on and off. The daemon must
be stopped (it owns the serial ports). The lead registers it: ``add_cli(subparsers)``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from gateway.broadcast.config import BroadcastSection
from gateway.broadcast.controller import Ticket
from gateway.broadcast.plan import StartRequest
from gateway.broadcast.service import build_runtime
from gateway.clock import SystemClock
from gateway.errors import ConfigError
from gateway.events import EVIDENCE, Event
from gateway.i18n import _


class PrintingJournal:
    """Prints each event (the installer's report); stands in when the journal is not used."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.last_seq = 0
        self.clock = SystemClock()

    async def append(self, kind: str, payload: Mapping[str, Any], *, cls: str = EVIDENCE) -> Event:
        self.last_seq += 1
        ev = Event(
            self.last_seq,
            kind,
            cls,
            dict(payload),
            time.time(),
            time.monotonic(),
            self.clock.boot_id,
            self.clock.synced(),
        )
        if self.as_json:
            print(json.dumps(ev.to_dict()), flush=True)
        else:
            print(f"{time.strftime('%H:%M:%S')} {kind:<28} {json.dumps(dict(payload))}", flush=True)
        return ev

    async def read_after(self, seq: int, **_: Any) -> list[Event]:
        return []


def add_cli(subparsers: Any) -> None:
    """Register ``broadcast test`` on the compound-gw parser."""
    p = subparsers.add_parser("broadcast", help=_("public-safety broadcast tools"))
    bsub = p.add_subparsers(dest="broadcast_command", required=True, metavar=_("SUBCOMMAND"))
    t = bsub.add_parser("test", help=_("click the relays of some zones and report"))
    t.add_argument("--config", "-c", default=None, help=_("gateway config file"))
    t.add_argument("--zones", required=True, help=_("comma-separated zone numbers, e.g. 1,2"))
    t.add_argument("--seconds", type=float, default=5.0, help=_("how long the zones stay on"))
    t.add_argument("--json", action="store_true", help=_("one JSON event per line"))
    t.set_defaults(handler=cmd_broadcast_test)


def _section(args: argparse.Namespace) -> BroadcastSection:
    import os

    from gateway.config import load_config

    path = args.config or os.environ.get("COMPOUND_GW_CONFIG", "/etc/compound-gw/gateway.toml")
    cfg = load_config(path)
    section = getattr(cfg, "broadcast", None)
    if section is None:
        raise ConfigError("broadcast", "no [broadcast] section in the config")
    return section


def cmd_broadcast_test(args: argparse.Namespace) -> int:
    section = _section(args)
    return run_test(section, args.zones, args.seconds, as_json=args.json)


def run_test(section: BroadcastSection, zones_text: str, seconds: float, *, as_json: bool) -> int:
    try:
        zones = tuple(int(z) for z in zones_text.split(",") if z.strip())
    except ValueError:
        raise ConfigError("--zones", f"{zones_text!r} is not a list of zone numbers") from None
    return asyncio.run(_run_test(section, zones, seconds, as_json))


async def _run_test(
    section: BroadcastSection, zones: tuple[int, ...], seconds: float, as_json: bool
) -> int:
    journal = PrintingJournal(as_json)
    runtime = build_runtime(section, journal, SystemClock())
    task = asyncio.create_task(runtime.service.run())
    try:
        await asyncio.wait_for(runtime.controller.ready.wait(), 30)
        ticket: Ticket = runtime.controller.submit_start(
            StartRequest(f"test:{int(time.time())}", zones, seconds, "cli", "installer test")
        )
        on = await ticket.wait("on", timeout=section.warmup_s + 30)
        done = await ticket.wait("done", timeout=seconds + 30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    ok = on.get("verified") is True and not on.get("failed_zones") and done.get("verified") is True
    print("RESULT: " + ("PASS: relays verified on and off" if ok else "FAIL"), file=sys.stderr)
    return 0 if ok else 1
