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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.cliparser import Parser
from gateway.config import GatewayConfig, check_config_file, load_config
from gateway.errors import ConfigError, GatewayError
from gateway.i18n import (
    REASON_WORDS,
    SUPPORTED,
    _,
    choose_language,
    get_language,
    set_language,
    supported_language,
)

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
    "gateway.update.cli",
    "gateway.update.node_cli",
)

Handler = Callable[[argparse.Namespace], int]


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=os.environ.get("COMPOUND_GW_CONFIG", DEFAULT_CONFIG),
        help=_("gateway config file (default: $COMPOUND_GW_CONFIG or %(default)s)"),
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


# Exit status of `status` when the daemon is not running (as LSB init scripts and systemctl).
EXIT_NOT_RUNNING = 3


def render_status(status: Mapping[str, Any], tz: str, now: float) -> str:
    """``compound-gw status`` for people: words and local times in the current language."""
    from gateway.health.cli import format_health_table
    from gateway.i18n import SERVICE_WORDS, fmt_age, fmt_bool, fmt_time, word
    from i18n import format_number, format_table

    def num(value: Any) -> str:
        return format_number(value, get_language())

    lines = [_("Gateway %(id)s (%(compound)s)") % {"id": status["gateway"],
                                                  "compound": status["compound"]}]  # fmt: skip
    d = status["daemon"]
    if d["running"]:
        age = d.get("status_age_s")
        lines.append(
            _("Daemon: running (process %(pid)s, status updated %(age)s)")
            % {"pid": d["pid"], "age": fmt_age(age) if age is not None else _("never")}
        )
    else:
        lines.append(_("Daemon: not running"))
    j = status["journal"]
    if "error" in j:
        lines.append(_("Journal: cannot be read: %(error)s") % {"error": j["error"]})
    else:
        lines.append(
            _(
                "Journal: %(events)s events, newest number %(last)s, %(unsynced)s not yet "
                "uploaded, %(size)s on disk, %(dropped)s measurements dropped to save space"
            )
            % {
                "events": num(j.get("events")),
                "last": num(j.get("last_seq")),
                "unsynced": num(j.get("unsynced")),
                "size": _("%(mb)s MB") % {"mb": num(round((j.get("bytes_on_disk") or 0) / 1e6, 1))},
                "dropped": num(j.get("dropped")),
            }
        )
    link = status.get("sync")
    if isinstance(link, Mapping):
        state = link.get("link") or link.get("state")
        text = _("Link to the district centre: %(state)s, %(backlog)s events waiting") % {
            "state": word(state),
            "backlog": num(link.get("backlog")),
        }
        if link.get("last_success"):
            text += _("; ") + _("last upload %(time)s") % {
                "time": fmt_time(link["last_success"], tz, now=now)
            }
        if link.get("last_error") and link.get("link") != "up":
            text += _("; ") + _("last error: %(error)s") % {"error": link["last_error"]}
        lines.append(text)
    media = status.get("media")
    if isinstance(media, Mapping) and "waiting_images" in media:
        text = _(
            "Evidence images to the centre: %(images)s waiting (%(size)s), %(sent)s sent today"
        ) % {
            "images": num(media.get("waiting_images")),
            "size": _("%(mb)s MB") % {"mb": num(round((media.get("waiting_bytes") or 0) / 1e6, 1))},
            "sent": _("%(mb)s MB")
            % {"mb": num(round((media.get("sent_today_bytes") or 0) / 1e6, 1))},
        }
        if media.get("over_budget"):
            text += _("; ") + _("today's budget is spent, the rest waits for tomorrow")
        lines.append(text)
    patrol = status.get("patrol")
    if isinstance(patrol, Mapping):
        if patrol.get("waiting_for"):
            lines.append(_("Patrol: waiting for a synchronised clock"))
        elif isinstance(patrol.get("rounds"), Mapping):
            counts = _(", ").join(
                f"{word(k)} {num(v)}" for k, v in sorted(patrol["rounds"].items())
            )
            lines.append(_("Patrol today: %(counts)s") % {"counts": counts or _("no rounds")})
    services = status.get("services")
    if isinstance(services, list) and services:
        lines.append(_("Services:"))
        lines.append(
            format_table(
                [_("Service"), _("State"), _("Restarts"), _("Last error")],
                [
                    [
                        word(s.get("service"), SERVICE_WORDS),
                        word(s.get("state")),
                        num(s.get("restarts")),
                        str(s.get("last_error") or ""),
                    ]
                    for s in services
                    if isinstance(s, Mapping)
                ],
            )
        )
    readers = status.get("readers")
    if isinstance(readers, Mapping) and readers.get("readers"):
        lines.append(_("Readers:"))
        lines.append(
            format_table(
                [
                    _("Checkpoint"),
                    _("Reader"),
                    _("State"),
                    _("Encrypted"),
                    _("Since"),
                    _("Reason"),
                ],
                [
                    [
                        str(r.get("checkpoint") or ""),
                        str(r.get("reader") or ""),
                        word("online" if r.get("online") else "offline"),
                        fmt_bool(r.get("sc_active")),
                        fmt_time(r.get("since"), tz, now=now),
                        word(r.get("reason"), REASON_WORDS) if r.get("reason") else "",
                    ]
                    for r in readers["readers"]
                    if isinstance(r, Mapping)
                ],
            )
        )
    health = status.get("health")
    if isinstance(health, list):
        lines.append(_("Devices:"))
        lines.append(format_health_table(health))
    broadcast = status.get("broadcast")
    if isinstance(broadcast, Mapping) and broadcast.get("phase"):
        lines.append(_("Broadcast: %(phase)s") % {"phase": word(broadcast["phase"])})
    web = status.get("web")
    if isinstance(web, Mapping) and web.get("listen"):
        lines.append(_("Status page: http://%(listen)s/") % {"listen": web["listen"]})
    lines.append(_("More detail: compound-gw status --json"))
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _load(args)
    status = gather_status(cfg)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True, default=str))
    else:
        print(render_status(status, cfg.gateway.timezone, time.time()))
    return 0 if status["daemon"]["running"] else EXIT_NOT_RUNNING


# --------------------------------------------------------------------------- events


def _format_event(ev: Any, as_json: bool, tz: str = "UTC") -> str:
    if as_json:
        return json.dumps(ev.to_dict(), sort_keys=True, ensure_ascii=False)
    from gateway.i18n import fmt_time

    # The compound's local time (not the machine's zone), with the date: a tail spans days.
    ts = fmt_time(ev.wall_time, tz, seconds=True)
    sync = " (" + _("clock not synchronised") + ")" if not ev.clock_synced else ""
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
        print(_format_event(ev, args.json, cfg.gateway.timezone), flush=True)
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
                print(_format_event(ev, args.json, cfg.gateway.timezone), flush=True)
    except KeyboardInterrupt:
        return 0


# --------------------------------------------------------------------------- config


def cmd_config_check(args: argparse.Namespace) -> int:
    # Key files too: a config that `run` would refuse must not be called valid here.
    cfg = check_config_file(args.path)
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
    parser = Parser(
        prog="compound-gw", description=_("Compound Gateway: patrol, broadcast, health and sync.")
    )
    parser.add_argument(
        "--version", action="version", version=f"compound-gw {__version__}",
        help=_("show the version and exit"),
    )  # fmt: skip
    parser.add_argument(
        "--lang",
        default=None,
        help=_(
            "language of the output: zh-CN (default) or en "
            "(default: $COMPOUND_GW_LANG, then [gateway] language)"
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar=_("COMMAND"))

    p = sub.add_parser("run", help=_("run the daemon (systemd runs this)"))
    _config_arg(p)
    # HIL benches only: play simulated time (a night of patrols in a minute).
    p.add_argument("--sim-clock", default="", help=argparse.SUPPRESS)
    p.add_argument("--sim-rate", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("status", help=_("journal, services and devices at a glance"))
    _config_arg(p)
    p.add_argument("--json", action="store_true", help=_("one JSON object"))
    p.set_defaults(handler=cmd_status)

    events = sub.add_parser("events", help=_("read the journal"))
    esub = events.add_subparsers(dest="events_command", required=True, metavar=_("SUBCOMMAND"))
    p = esub.add_parser("tail", help=_("the newest events"))
    _config_arg(p)
    p.add_argument("-n", type=int, default=20, help=_("how many (default %(default)s)"))
    p.add_argument("--follow", "-f", action="store_true", help=_("keep printing new events"))
    p.add_argument("--json", action="store_true", help=_("one JSON object per line"))
    p.add_argument("--kind", help=_("only events of this kind"))
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_events_tail)

    config = sub.add_parser("config", help=_("configuration tools"))
    csub = config.add_subparsers(dest="config_command", required=True, metavar=_("SUBCOMMAND"))
    p = csub.add_parser("check", help=_("validate a config file (errors name the key)"))
    p.add_argument("path")
    p.set_defaults(handler=cmd_config_check)

    p = sub.add_parser("demo", help=_("run the daemon on a simulated compound and summarise"))
    p.add_argument("--json", action="store_true", help=_("print one JSON object of counts"))
    p.add_argument(
        "--keep",
        action="store_true",
        help=_("keep the temporary compound folder and the demo centre up until Ctrl-C"),
    )
    p.set_defaults(handler=cmd_demo)

    for module_name in CLI_EXTENSIONS:
        importlib.import_module(module_name).add_cli(sub)
    return parser


def _configured_language(args: argparse.Namespace) -> str | None:
    """``[gateway] language`` of the command's config file, if it has one and it loads."""
    path = getattr(args, "config", None)
    if not isinstance(path, str) or not path:
        return None
    try:
        return load_config(path).gateway.language
    except Exception:  # any failure: the command itself reports it, in words
        return None


def _requested_language(argv: Sequence[str] | None) -> str | None:
    """``--lang`` from the command line, read before the parser exists (its help is in it)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--lang", default=None)
    known, _rest = pre.parse_known_args(argv)
    lang: str | None = known.lang
    return lang


def main(argv: Sequence[str] | None = None) -> int:
    # Help and argparse's errors are worded while the parser is built and used: choose the
    # language from --lang and the environment first (the config's comes after parsing).
    set_language(choose_language(requested=_requested_language(argv)))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.lang is not None and supported_language(args.lang) is None:
        parser.error(f"--lang: {args.lang!r} is not one of {', '.join(SUPPORTED)}")
    set_language(choose_language(configured=_configured_language(args), requested=args.lang))
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(_("config error: %(error)s") % {"error": exc}, file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(_("error: %(reason)s") % {"reason": exc.reason}, file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
