"""``compound-gw``: the gateway's command line.

    compound-gw run --config /etc/compound-gw/gateway.toml
    compound-gw status [--json]
    compound-gw events tail -n 20 [--follow] [--json]
    compound-gw config check gateway.toml
    compound-gw demo [--json]

The config path defaults to $COMPOUND_GW_CONFIG, then /etc/compound-gw/gateway.toml.
Exit codes: 0 ok, 1 failure at run time, 2 bad usage or bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.config import GatewayConfig, load_config
from gateway.errors import ConfigError, GatewayError

DEFAULT_CONFIG = "/etc/compound-gw/gateway.toml"

# Capabilities add their own subcommands: module path -> function add_cli(subparsers).
CLI_EXTENSIONS: tuple[str, ...] = (
    "gateway.checkpoints.cli",
    "gateway.patrol.cli",
    "gateway.broadcast.cli",
    "gateway.health.cli",
    "gateway.web.cli",
    "gateway.sync.cli",
    "gateway.setup.cli",
)

Handler = Callable[[argparse.Namespace], int]


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=os.environ.get("COMPOUND_GW_CONFIG", DEFAULT_CONFIG),
        help="gateway config file (default: $COMPOUND_GW_CONFIG or %(default)s)",
    )


def _load(args: argparse.Namespace) -> GatewayConfig:
    return load_config(args.config)


# --------------------------------------------------------------------------- run


def _bench_clock(args: argparse.Namespace) -> Any:
    """``--sim-clock START@ANCHOR`` (Unix seconds) and ``--sim-rate``: a bench's clock."""
    if not args.sim_clock:
        return None
    from gateway.clock import AcceleratedClock

    try:
        start, _, anchor = args.sim_clock.partition("@")
        return AcceleratedClock(float(start), float(anchor or time.time()), args.sim_rate)
    except ValueError as exc:
        raise ConfigError("--sim-clock", f"{args.sim_clock!r}: {exc}") from exc


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.daemon import run_daemon, setup_logging

    cfg = _load(args)
    setup_logging(cfg.log.level)
    clock = _bench_clock(args)
    if clock is not None:
        import logging

        logging.getLogger("gateway.cli").warning(
            "bench clock: simulated time from %s at %.0fx (never use this in the field)",
            args.sim_clock,
            args.sim_rate,
        )
    return asyncio.run(run_daemon(cfg, clock=clock, config_path=Path(args.config)))


# --------------------------------------------------------------------------- status


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def gather_status(cfg: GatewayConfig) -> dict[str, Any]:
    """Journal counts plus the running daemon's status board, as one mapping."""
    from gateway.journal import read_status

    out: dict[str, Any] = {"gateway": cfg.gateway.id, "compound": cfg.gateway.compound}
    try:
        out["journal"] = read_status(cfg.journal_path)
    except GatewayError as exc:
        out["journal"] = {"error": exc.reason}
    board_path = cfg.path(cfg.gateway.runtime_dir) / "status.json"
    board: dict[str, Any] = {}
    try:
        board = json.loads(board_path.read_text())
    except (OSError, ValueError):
        board = {}
    pid = board.get("daemon", {}).get("pid")
    out["daemon"] = {
        "running": bool(pid) and _pid_alive(int(pid)),
        "pid": pid,
        "status_age_s": round(time.time() - board["daemon"]["updated"], 1)
        if "daemon" in board
        else None,
    }
    for key, value in board.items():
        if key != "daemon":
            out[key] = value
    return out


def _print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    print("  " + "  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print(
            "  "
            + "  ".join(str(r.get(c, "")).ljust(w) for c, w in zip(columns, widths, strict=True))
        )


def cmd_status(args: argparse.Namespace) -> int:
    status = gather_status(_load(args))
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True, default=str))
        return 0
    j = status["journal"]
    d = status["daemon"]
    print(f"gateway {status['gateway']} ({status['compound']})")
    print(f"daemon: {'running, pid ' + str(d['pid']) if d['running'] else 'not running'}")
    if "error" in j:
        print(f"journal: {j['error']}")
    else:
        print(
            f"journal: {j['events']} events, last seq {j['last_seq']}, "
            f"{j['unsynced']} unsynced, {j['bytes_on_disk']} bytes on disk, "
            f"dropped {j['dropped']} (synced {j['dropped_synced']}, "
            f"unsynced {j['dropped_unsynced']})"
        )
    from gateway.sync.uploader import describe_link, read_link_state

    link = read_link_state(status)
    if link is not None:
        print(f"link: {describe_link(link)}")
    services = status.get("services")
    if services:
        print("services:")
        _print_table(services, ("service", "state", "restarts", "last_error"))
    for key in sorted(status):
        if key in {"gateway", "compound", "journal", "daemon", "services", "health_detail", "sync"}:
            continue
        value = status[key]
        if isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{key}:")
            _print_table(value, list(value[0].keys()))
        else:
            print(f"{key}: {json.dumps(value, default=str)}")
    return 0


# --------------------------------------------------------------------------- events


def _format_event(ev: Any, as_json: bool) -> str:
    if as_json:
        return json.dumps(ev.to_dict(), sort_keys=True, ensure_ascii=False)
    ts = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ev.wall_time))
    sync = "" if ev.clock_synced else " (clock unsynced)"
    payload = json.dumps(dict(ev.payload), sort_keys=True, ensure_ascii=False)
    return f"{ev.seq:>8} {ts}{sync} {ev.cls[:4]} {ev.kind} {payload}"


def cmd_events_tail(args: argparse.Namespace) -> int:
    from gateway.journal import read_events

    cfg = _load(args)
    events = read_events(cfg.journal_path, last=args.n)
    last = 0
    for ev in events:
        if args.kind and ev.kind != args.kind:
            continue
        print(_format_event(ev, args.json), flush=True)
    if events:
        last = events[-1].seq
    if not args.follow:
        return 0
    try:
        while True:
            time.sleep(args.interval)
            for ev in read_events(cfg.journal_path, after_seq=last):
                last = ev.seq
                if args.kind and ev.kind != args.kind:
                    continue
                print(_format_event(ev, args.json), flush=True)
    except KeyboardInterrupt:
        return 0


# --------------------------------------------------------------------------- config


def cmd_config_check(args: argparse.Namespace) -> int:
    cfg = load_config(args.path)
    print(f"ok: {args.path} is a valid configuration for gateway {cfg.gateway.id}")
    return 0


# --------------------------------------------------------------------------- demo


def _source_checkout_root() -> Path | None:
    """The repository folder when running from a source checkout (the demo needs its bench)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "hil_tests" / "demo.py").is_file() else None


def cmd_demo(args: argparse.Namespace) -> int:
    root = _source_checkout_root()
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        demo = importlib.import_module("hil_tests.demo")
    except ModuleNotFoundError as exc:
        print(
            f"error: the demo needs the HIL bench (hil_tests/) of a source checkout: {exc}",
            file=sys.stderr,
        )
        return 1
    return int(demo.main(json_output=args.json, keep=args.keep))


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compound-gw", description="Compound Gateway: patrol, broadcast, health and sync."
    )
    parser.add_argument("--version", action="version", version=f"compound-gw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon (systemd runs this)")
    _config_arg(p)
    # HIL benches only: play simulated time (a night of patrols in a minute).
    p.add_argument("--sim-clock", default="", help=argparse.SUPPRESS)
    p.add_argument("--sim-rate", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("status", help="journal, services and devices at a glance")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(handler=cmd_status)

    events = sub.add_parser("events", help="read the journal")
    esub = events.add_subparsers(dest="events_command", required=True, metavar="SUBCOMMAND")
    p = esub.add_parser("tail", help="the newest events")
    _config_arg(p)
    p.add_argument("-n", type=int, default=20, help="how many (default %(default)s)")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--kind", help="only events of this kind")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_events_tail)

    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    p = csub.add_parser("check", help="validate a config file (errors name the key)")
    p.add_argument("path")
    p.set_defaults(handler=cmd_config_check)

    p = sub.add_parser("demo", help="run the daemon on a simulated compound and summarise")
    p.add_argument("--json", action="store_true", help="print one JSON object of counts")
    p.add_argument("--keep", action="store_true", help="keep the temporary compound folder")
    p.set_defaults(handler=cmd_demo)

    for module_name in CLI_EXTENSIONS:
        importlib.import_module(module_name).add_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
