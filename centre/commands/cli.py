"""``compound-centre broadcast`` / ``stop`` / ``commands``: queue signed commands, show their fate.

    compound-centre broadcast --compound "Rose Garden" --zones 1,2 --seconds 90 --message fire-drill
    compound-centre broadcast --all --zones 1 --seconds 30 --message test-tone --status Test
    compound-centre stop --compound "Rose Garden"
    compound-centre commands [--gateway G] [--limit N] [--json]
    compound-centre snapshot --gateway gw-rose-01 --camera duty-room [--wait 30]

The commands are signed here (the command key in ``command/`` of the data directory) and queued
in the centre's database; a running ``compound-centre serve`` sends them to each gateway over
its command channel within a fraction of a second, or when it next connects if still valid.

``snapshot`` (look now, issue 17) asks one gateway for a picture from one camera now, then waits
up to ``--wait`` seconds: for the gateway's answer (done with the picture's sha256, or failed /
refused with why), then for the image itself to arrive, and prints where it is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import json
import time
from pathlib import Path
from typing import Any

from centre.announce.library import AnnouncementError, AnnouncementLibrary
from centre.commands.issue import issue, load_command_key, parse_zones, targets
from centre.commands.looknow import FAILED, look_now_result, request_look_now
from centre.commands.store import FINAL, CommandRecord
from centre.database import open_command_store, open_repository
from centre.errors import CentreError
from centre.media import media_path
from centre.pki import CentrePaths
from wire.commands import (
    ANNOUNCEMENT_RE,
    CAMERA_RE,
    DEFAULT_TTL_S,
    STATUSES,
    Action,
    BroadcastStart,
    BroadcastStop,
)

POLL_S = 0.2


def _paths(args: argparse.Namespace) -> CentrePaths:
    paths = CentrePaths(Path(args.data).resolve())
    if not paths.ca_cert.exists():
        raise CentreError(
            f"{paths.root} is not a centre data directory (run `compound-centre init`)"
        )
    return paths


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _queue(args: argparse.Namespace, action: Action) -> int:
    paths = _paths(args)
    key = load_command_key(paths)

    async def run() -> list[CommandRecord]:
        async with (
            await open_repository(paths) as repo,
            await open_command_store(paths) as store,
        ):
            gws = await targets(repo, compound=args.compound, all_gateways=args.all)
            return await issue(
                store,
                gws,
                key,
                action,
                ttl_s=args.ttl,
                now=time.time(),
                issued_by=f"cli:{getpass.getuser()}",
            )

    records = asyncio.run(run())
    if args.json:
        print(json.dumps([_row(r, time.time()) for r in records], indent=2))
        return 0
    for r in records:
        print(
            f"queued {r.command_id} for {r.gateway_id} (seq {r.seq}): {r.action} {r.summary}, "
            f"expires {_iso(r.expires_at)}"
        )
    return 0


def cmd_broadcast(args: argparse.Namespace) -> int:
    if not args.seconds > 0:
        raise CentreError("--seconds must be positive")
    if not ANNOUNCEMENT_RE.fullmatch(args.message):
        raise CentreError(f"--message must match {ANNOUNCEMENT_RE.pattern}")
    # A message in the centre's announcement library goes out with its sha256: the gateway
    # plays exactly those bytes (fetching them if need be) or refuses (docs/announcements.md).
    sha = ""
    try:
        sha = AnnouncementLibrary(_paths(args).root).get(args.message).sha256
    except AnnouncementError as exc:
        if exc.code != "not_found":
            raise CentreError(f"announcement {args.message}: {exc.reason}") from exc
    action = BroadcastStart(
        parse_zones(args.zones), float(args.seconds), args.message, args.status, sha
    )
    return _queue(args, action)


def cmd_stop(args: argparse.Namespace) -> int:
    return _queue(args, BroadcastStop())


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Look now: order a picture, wait for the gateway's answer and the image (``--wait``)."""
    if not CAMERA_RE.fullmatch(args.camera):
        raise CentreError(f"--camera must match {CAMERA_RE.pattern}")
    if args.wait < 0:
        raise CentreError("--wait must be 0 or more seconds")
    paths = _paths(args)
    key = load_command_key(paths)

    async def run() -> dict[str, Any]:
        async with (
            await open_repository(paths) as repo,
            await open_command_store(paths) as store,
        ):
            now = time.time()
            rec = await request_look_now(
                store,
                repo,
                key,
                gateway_id=args.gateway,
                camera=args.camera,
                ttl_s=args.ttl,
                now=now,
                issued_by=f"cli:{getpass.getuser()}",
            )
            out: dict[str, Any] = {"command_id": rec.command_id, "gateway_id": rec.gateway_id}
            out |= {"camera": args.camera, "issued_at": now, "status": rec.status}
            deadline = time.monotonic() + args.wait
            while True:  # the gateway's answer, then the image itself (first in line)
                result = await look_now_result(store, repo, rec.command_id, now=time.time())
                assert result is not None  # issued just above
                out |= {"status": result.status, "reason": result.reason}
                if result.sha256 is not None:
                    out["sha256"] = result.sha256
                    out["file"] = str(paths.root / "media" / media_path(result.sha256))
                if result.stored_at is not None:
                    out["stored_at"] = result.stored_at
                    return out
                if result.stage == FAILED or time.monotonic() >= deadline:
                    return out
                await asyncio.sleep(POLL_S)

    out = asyncio.run(run())
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"queued {out['command_id']} for {out['gateway_id']}: camera.snapshot {args.camera}")
        why = f" — {out['reason']}" if out.get("reason") else ""
        print(f"gateway: {out['status']}{why}")
        if "stored_at" in out:
            took = out["stored_at"] - out["issued_at"]
            print(f"image: {out['file']} (arrived {_iso(out['stored_at'])}, {took:.1f} s)")
        elif "file" in out:
            print(f"image: not here yet; it will be at {out['file']}")
    status = out["status"]
    return 0 if status == "done" and "stored_at" in out else 1 if status in FINAL else 2


def _row(r: CommandRecord, now: float) -> dict[str, Any]:
    return {
        "command_id": r.command_id,
        "gateway_id": r.gateway_id,
        "seq": r.seq,
        "action": r.action,
        "summary": r.summary,
        "status": r.shown_status(now),
        "reason": r.reason,
        "issued_at": r.issued_at,
        "expires_at": r.expires_at,
        "delivered_at": r.delivered_at,
        "received_at": r.received_at,
        "on_at": r.on_at,
        "finished_at": r.finished_at,
        "issued_by": r.issued_by,
    }


def cmd_commands(args: argparse.Namespace) -> int:
    paths = _paths(args)

    async def fetch() -> tuple[list[CommandRecord], dict[str, str]]:
        async with await open_command_store(paths) as store:
            recs = await store.commands(gateway_id=args.gateway, limit=args.limit)
            sound: dict[str, str] = {}  # the fourth step: proof of sound, from the acks
            for gw in sorted({r.gateway_id for r in recs}):
                for cid, stage, reason in await store.acks(gw):
                    if stage == "sound":
                        sound[cid] = reason.partition(":")[0]
            return recs, sound

    now = time.time()
    recs, sound = asyncio.run(fetch())
    rows = [_row(r, now) | {"sound": sound.get(r.command_id, "")} for r in recs]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'command':<22} {'gateway':<18} {'seq':>5} {'issued':<21} {'status':<9} what / why")
    for r in rows:
        what = f"{r['action']} {r['summary']}".strip()
        why = f" — {r['reason']}" if r["reason"] else ""
        why += f" [sound: {r['sound']}]" if r["sound"] else ""
        print(
            f"{r['command_id']:<22} {r['gateway_id'][:18]:<18} {r['seq']:>5} "
            f"{_iso(r['issued_at']):<21} {r['status']:<9} {what}{why}"
        )
    return 0


def _targets(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--compound", help="every gateway of this compound")
    g.add_argument("--all", action="store_true", help="every enrolled, unrevoked gateway")
    p.add_argument(
        "--ttl",
        type=float,
        default=DEFAULT_TTL_S,
        help=f"seconds the command stays valid (default {DEFAULT_TTL_S:g})",
    )
    p.add_argument("--json", action="store_true")


def add_command_commands(sub: Any) -> None:
    """Register ``broadcast``, ``stop``, ``snapshot`` and ``commands`` on the centre CLI."""
    p = sub.add_parser("broadcast", help="order a broadcast at a compound (signed command)")
    _targets(p)
    p.add_argument("--zones", required=True, help="zone numbers, e.g. 1,2")
    p.add_argument("--seconds", type=float, required=True, help="how long the zones stay on")
    p.add_argument("--message", required=True, help="announcement id (the clip the gateway plays)")
    p.add_argument("--status", choices=STATUSES, default="Actual", help="CAP-style status")
    p.set_defaults(func=cmd_broadcast)

    p = sub.add_parser("stop", help="order a running broadcast to stop (signed command)")
    _targets(p)
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("snapshot", help="look now: a picture from a gateway's camera (signed)")
    p.add_argument("--gateway", required=True, help="gateway id, e.g. gw-rose-01")
    p.add_argument("--camera", required=True, help="camera name in that gateway's config")
    p.add_argument(
        "--ttl",
        type=float,
        default=DEFAULT_TTL_S,
        help=f"seconds the command stays valid (default {DEFAULT_TTL_S:g})",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="seconds to wait for the answer and the image (0: queue and return)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser("commands", help="commands and their status (queued ... done, expired)")
    p.add_argument("--gateway")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_commands)
