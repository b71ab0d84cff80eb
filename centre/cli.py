"""``compound-centre``: the district centre's command line (a thin layer over the library).

    compound-centre init --data /var/lib/compound-centre --hostname centre.district.example
    compound-centre serve --data /var/lib/compound-centre --port 8443
    compound-centre token create --compound "Rose Garden" --township "North" --ttl 15m
    compound-centre gateways
    compound-centre revoke gw-rose-01 --reason "box stolen"
    compound-centre events --compound "Rose Garden" --kind tap --since 2026-11-28
    compound-centre verify            # audit: sequence-complete, signatures valid
    compound-centre verify --chain    # ... and the journals' hash chains: where history changed
    compound-centre migrate [--check]  # schema migrations (SQLite, or PostgreSQL: centre.toml)
    compound-centre bulletin daily --date 2026-11-28 [--out DIR]
    compound-centre bulletin monthly --month 2026-11 [--out DIR]
    compound-centre explain --compound "Rose Garden" --round night@2026-11-28T22:00 --text "..."
    compound-centre operator add alice     # prints a bearer token for the bulletin pages
    compound-centre broadcast --compound "Rose Garden" --zones 1,2 --seconds 90 --message drill
    compound-centre commands               # queued, delivered, on, done, expired, refused, failed
    compound-centre users add alice --role officer   # console accounts (docs/console.md)
    compound-centre audit verify           # the console's audit log: hash chain unbroken
    compound-centre push daily --date 2026-11-28   # the bulletin to the WeChat Work groups
    compound-centre push alerts            # chosen alerts to the groups as they happen (push.toml)
    compound-centre announce say "请勿向陌生人转账。" --title 转账提醒   # docs/announcements.md

``--data`` defaults to ``$COMPOUND_CENTRE_DATA`` or ``./centre-data``. The main repository is
``centre.db`` there, or PostgreSQL when ``$COMPOUND_CENTRE_DATABASE`` or ``centre.toml``'s
``[database] dsn`` names one (centre/database.py, docs/scale.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import errno
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from centre.antifraud.tables import WalkTables
from centre.app import DEFAULT_INGEST_QUEUE_WAIT_S
from centre.audit import audit_gateway
from centre.database import describe, migrate, open_repository, schema_versions
from centre.errors import CentreError
from centre.pki import CentrePaths, fingerprint, init_centre, load_ca
from centre.server import WALKS_DIR, running_centre
from centre.store import GatewayRecord
from centre.tokens import hash_token, new_token, parse_ttl

log = logging.getLogger("centre")


def _paths(args: argparse.Namespace) -> CentrePaths:
    return CentrePaths(Path(args.data).resolve())


def _need_init(paths: CentrePaths) -> None:
    if not paths.ca_cert.exists():
        raise CentreError(
            f"{paths.root} is not a centre data directory (run `compound-centre init`)"
        )


def _time_arg(text: str) -> float:
    """ISO date/time (naive = UTC) or Unix seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time or Unix seconds") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- commands ------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    paths = _paths(args)
    hostnames = args.hostname or ["localhost"]
    ips = args.ip or ["127.0.0.1"]
    fp = init_centre(paths, hostnames=hostnames, ips=ips, now=time.time(), name=args.name)

    async def create_db() -> None:
        repo = await open_repository(paths)
        await repo.close()

    asyncio.run(create_db())
    print(f"centre initialised in {paths.root}")
    print(f"server certificate for: {', '.join([*hostnames, *ips])}")
    print(f"CA fingerprint (give it to installers): sha256:{fp}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    paths = _paths(args)
    _need_init(paths)
    problems = WalkTables(paths.root / WALKS_DIR).problems()
    if problems:
        raise CentreError("malformed walking-time tables:\n  " + "\n  ".join(problems))

    async def serve() -> None:
        async with running_centre(
            paths,
            host=args.host,
            port=args.port,
            max_concurrent_ingest=args.max_concurrent_ingest,
            retry_after_s=args.retry_after,
            reuse_port=args.reuse_port,
            ingest_queue_wait_s=args.ingest_queue_wait,
        ) as centre:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            if args.port_file:
                tmp = Path(args.port_file + ".tmp")
                tmp.write_text(f"{centre.port}\n")
                os.replace(tmp, args.port_file)
            print(f"listening on {centre.url}", flush=True)
            await stop.wait()

    try:
        asyncio.run(serve())
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise CentreError(
            f"{args.host}:{args.port} is already in use (another centre still running?); "
            "several serve processes share one port only when every one has --reuse-port "
            "(docs/scale.md)"
        ) from None
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    paths = _paths(args)
    _need_init(paths)
    ttl = parse_ttl(args.ttl)
    token = new_token()
    now = time.time()

    async def store() -> None:
        async with await open_repository(paths) as repo:
            await repo.create_token(hash_token(token), args.compound, args.township, now, now + ttl)

    asyncio.run(store())
    _, ca_cert = load_ca(paths)
    fp = fingerprint(ca_cert)
    if args.json:
        print(
            json.dumps(
                {
                    "token": token,
                    "compound": args.compound,
                    "township": args.township,
                    "expires_at": now + ttl,
                    "ca_fingerprint": fp,
                }
            )
        )
        return 0
    print(f"token:           {token}")
    print(f"compound:        {args.compound}" + (f" ({args.township})" if args.township else ""))
    print(f"expires:         {_iso(now + ttl)} (one use)")
    print(f"CA fingerprint:  sha256:{fp}")
    # No ready-made command line with the token in it: pasted into a shell it would land in
    # `ps` and the shell history. The installer types the token when provision asks for it.
    print(
        "on the gateway:  compound-gw provision --centre https://<centre>:<port> "
        f"--ca-fingerprint sha256:{fp}   (it asks for the token)"
    )
    return 0


def _gateway_row(g: GatewayRecord, now: float) -> dict[str, Any]:
    return {
        "gateway_id": g.gateway_id,
        "compound": g.compound,
        "township": g.township,
        "enrolled_at": g.enrolled_at,
        "last_seen": g.last_seen,
        "watermark": g.watermark,
        "highest": g.highest,
        "events": g.event_count,
        "backlog_estimate": g.backlog_estimate,
        "missing_below_highest": g.highest - g.event_count,
        "revoked_at": g.revoked_at,
    }


def cmd_gateways(args: argparse.Namespace) -> int:
    paths = _paths(args)
    _need_init(paths)

    async def fetch() -> list[tuple[GatewayRecord, Any, tuple[int, int]]]:
        async with await open_repository(paths) as repo:
            return [
                (g, await repo.state(g.gateway_id), await repo.media_backlog(g.gateway_id))
                for g in await repo.gateways()
            ]

    now = time.time()
    rows = asyncio.run(fetch())
    if args.json:
        out = []
        for g, st, (images, image_bytes) in rows:
            row = _gateway_row(g, now)
            row["gaps"] = [list(x) for x in st.gaps]
            row["gaps_truncated"] = st.gaps_truncated
            # Evidence images announced by stored events, not (yet) at the centre (docs/media.md).
            row["images_waiting"] = images
            row["image_bytes_waiting"] = image_bytes
            out.append(row)
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{'gateway':<20} {'compound':<20} {'last seen':<21} {'watermark':>9} {'backlog':>8}"
        f" {'images':>6}  gaps"
    )
    for g, st, (images, _) in rows:
        gaps = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in st.gaps[:4])
        if len(st.gaps) > 4 or st.gaps_truncated:
            gaps += ", ..."
        state = "  REVOKED" if g.revoked_at is not None else ""
        print(
            f"{g.gateway_id:<20} {g.compound[:20]:<20} {_iso(g.last_seen):<21} "
            f"{g.watermark:>9} {g.backlog_estimate:>8} {images:>6}  {gaps or '-'}{state}"
        )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    paths = _paths(args)
    _need_init(paths)

    async def revoke() -> bool:
        async with await open_repository(paths) as repo:
            if await repo.gateway(args.gateway_id) is None:
                raise CentreError(f"no gateway {args.gateway_id!r} is enrolled")
            return await repo.revoke(args.gateway_id, time.time(), args.reason)

    if asyncio.run(revoke()):
        print(f"{args.gateway_id} revoked: its certificate is refused from now on")
    else:
        print(f"{args.gateway_id} was already revoked")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    paths = _paths(args)
    _need_init(paths)

    async def query() -> list[dict[str, Any]]:
        async with await open_repository(paths) as repo:
            return await repo.events(
                compound=args.compound,
                gateway_id=args.gateway,
                kind=args.kind,
                since=args.since,
                until=args.until,
                limit=args.limit,
            )

    for ev in asyncio.run(query()):
        print(json.dumps(ev, sort_keys=True, ensure_ascii=False))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    paths = _paths(args)
    _need_init(paths)

    async def audit() -> int:
        bad = 0
        async with await open_repository(paths) as repo:
            ids = [args.gateway] if args.gateway else [g.gateway_id for g in await repo.gateways()]
            for gid in ids:
                r = await audit_gateway(repo, gid, chain=args.chain)
                status = "ok" if r.ok else "PROBLEM"
                print(
                    f"{gid}: {status}: {r.events} events, highest {r.highest}, "
                    f"{r.batches} batches ({r.bad_batches} bad)"
                )
                for p in r.problems:
                    print(f"  - {p}")
                if args.chain:
                    for line in r.chain:
                        print(f"  chain {gid} {line}")
                    for a in await repo.alerts(gateway_id=gid, kind_prefix="journal."):
                        detail = json.dumps(a.details, ensure_ascii=False, sort_keys=True)
                        print(f"  alert {gid} seq {a.seq}: {a.kind} {detail[:200]}")
                bad += not r.ok
        return 1 if bad else 0

    return asyncio.run(audit())


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring every versioned store up to date (or, with --check, say whether one is behind)."""
    paths = _paths(args)
    _need_init(paths)
    where = describe(paths)
    if args.check:
        pending = 0
        for store, (now, latest) in schema_versions(paths).items():
            state = "up to date" if now >= latest else f"{latest - now} migration(s) pending"
            print(f"{store} ({where}): schema version {now}, this centre's {latest}: {state}")
            pending += now < latest
        return 1 if pending else 0
    for store, (before, after) in migrate(paths).items():
        print(f"{store} ({where}): schema version {before} -> {after}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compound-centre", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=os.environ.get("COMPOUND_CENTRE_DATA", "centre-data"),
        help="the centre's data directory (default: $COMPOUND_CENTRE_DATA)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="create CA, server certificate and command key")
    p.add_argument("--hostname", action="append", help="DNS name on the server cert (repeat)")
    p.add_argument("--ip", action="append", help="IP address on the server cert (repeat)")
    p.add_argument("--name", default="District centre", help="CA display name")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", help="run the HTTPS service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--port-file", help="write the bound port here (useful with --port 0)")
    p.add_argument("--max-concurrent-ingest", type=int, default=8)
    p.add_argument("--retry-after", type=int, default=5, help="seconds sent with 503")
    p.add_argument(
        "--ingest-queue-wait",
        type=float,
        default=DEFAULT_INGEST_QUEUE_WAIT_S,
        help="seconds a batch may wait for an ingest slot before 503 (0: answer 503 at once)",
    )
    p.add_argument(
        "--reuse-port",
        action="store_true",
        help="SO_REUSEPORT: several serve processes on one PostgreSQL share this port "
        "(docs/scale.md)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("token", help="enrollment tokens")
    tsub = p.add_subparsers(dest="token_command", required=True)
    t = tsub.add_parser("create", help="create a one-time enrollment token")
    t.add_argument("--compound", required=True)
    t.add_argument("--township", default="")
    t.add_argument("--ttl", default="15m", help="lifetime, e.g. 15m, 2h (at most 7d)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_token_create)

    p = sub.add_parser("gateways", help="list gateways: last seen, watermark, backlog, gaps")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_gateways)

    p = sub.add_parser("revoke", help="refuse a gateway's certificate from now on")
    p.add_argument("gateway_id")
    p.add_argument("--reason", default="revoked by operator")
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("events", help="query stored events (JSON lines)")
    p.add_argument("--compound")
    p.add_argument("--gateway")
    p.add_argument("--kind")
    p.add_argument("--since", type=_time_arg, help="ISO time (UTC if naive) or Unix seconds")
    p.add_argument("--until", type=_time_arg)
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("verify", help="audit stored events: complete, once, signatures valid")
    p.add_argument("--gateway")
    p.add_argument(
        "--chain",
        action="store_true",
        help="also walk the journal hash chains and list where history was edited or deleted",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "migrate", help="apply pending schema migrations (SQLite or PostgreSQL, see centre.toml)"
    )
    p.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a migration is pending"
    )
    p.set_defaults(func=cmd_migrate)
    from centre.bulletins.cli import add_bulletin_commands

    add_bulletin_commands(sub)
    from centre.commands.cli import add_command_commands

    add_command_commands(sub)
    from centre.web.cli import add_console_commands

    add_console_commands(sub)
    from centre.push.cli import add_push_commands

    add_push_commands(sub)
    from centre.announce.cli import add_announce_commands

    add_announce_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except CentreError as exc:
        print(f"compound-centre: {exc.reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
