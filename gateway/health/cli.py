"""``compound-gw health [--json]``: every device's state, for people and for scripts.

The running daemon publishes the health table on its status board (``<runtime_dir>/status.json``,
section ``health``); that is the live view. With no daemon running, the last ``health.state``
event of each device is read back from the journal instead (``"source": "journal"``).

    compound-gw health            # a table in the configured language, durations in words
    compound-gw health --json     # {"gateway", "source", "worst", "devices": [...]}

Wiring (the lead): add ``"gateway.health.cli"`` to ``CLI_EXTENSIONS``; ``add_cli`` registers
the subcommand, and :func:`format_health_table` renders the same rows inside ``status``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError, GatewayError
from gateway.health.hub import BOARD_SECTION, DETAIL_SECTION
from gateway.health.model import State, severity
from gateway.i18n import _

JOURNAL_SCAN_EVENTS = 20_000
# A board older than this comes from a daemon that died without cleaning up.
BOARD_STALE_S = 60.0


def _worst(devices: Sequence[dict[str, Any]]) -> str:
    states = [State(d["state"]) for d in devices if d.get("state") != "unknown"]
    if not states:
        return State.UNKNOWN.value
    return max(states, key=severity).value


def health_from_board(board_path: Path) -> list[dict[str, Any]] | None:
    """The live rows from the daemon's status board, or None if there is no fresh board."""
    try:
        board = json.loads(board_path.read_text())
    except (OSError, ValueError):
        return None
    rows = board.get(BOARD_SECTION)
    updated = board.get("daemon", {}).get("updated")
    if not isinstance(rows, list):
        return None
    if isinstance(updated, int | float) and time.time() - updated > BOARD_STALE_S:
        return None
    details = board.get(DETAIL_SECTION, {})
    out = []
    for row in rows:
        if isinstance(row, dict):
            r = dict(row)
            if isinstance(details, dict) and r.get("device") in details:
                r["detail"] = details[r["device"]]
            out.append(r)
    return out


def health_from_journal(journal_path: Path) -> list[dict[str, Any]]:
    """The last ``health.state`` of each device, read from the journal file (read-only)."""
    from gateway.journal import read_events

    events = read_events(journal_path, last=JOURNAL_SCAN_EVENTS)
    latest: dict[str, dict[str, Any]] = {}
    now = time.time()
    for ev in events:
        if ev.kind == "health.state":
            p = ev.payload
            latest[str(p.get("device"))] = {
                "device": p.get("device"),
                "kind": p.get("kind"),
                "state": p.get("state"),
                "reason": p.get("reason"),
                "for_s": round(max(0.0, now - ev.wall_time), 1),
                "since_wall": ev.wall_time,
                "seq": ev.seq,
            }
    return sorted(latest.values(), key=lambda r: (str(r["kind"]), str(r["device"])))


def gather_health(cfg: Any) -> dict[str, Any]:
    """{"gateway", "source", "worst", "devices"} for a loaded GatewayConfig."""
    board_path = cfg.path(cfg.gateway.runtime_dir) / "status.json"
    rows = health_from_board(board_path)
    source = "daemon"
    if rows is None:
        source = "journal"
        try:
            rows = health_from_journal(cfg.journal_path)
        except GatewayError as exc:
            return {"gateway": cfg.gateway.id, "source": "none", "error": exc.reason,
                    "worst": "unknown", "devices": []}  # fmt: skip
    return {"gateway": cfg.gateway.id, "source": source, "worst": _worst(rows), "devices": rows}


def format_health_table(devices: Sequence[dict[str, Any]]) -> str:
    """Every device in one table (device, type, state, for how long, reason), in the current
    language; ``status`` shows the same table."""
    from gateway.i18n import DEVICE_KIND_WORDS, REASON_WORDS, _, fmt_duration, word
    from i18n import format_table

    if not devices:
        return "  " + _("(no devices reported)")
    return format_table(
        [_("Device"), _("Type"), _("State"), _("For"), _("Reason")],
        [
            [
                str(d.get("device") or ""),
                word(d.get("kind"), DEVICE_KIND_WORDS),
                word(d.get("state")),
                fmt_duration(d.get("for_s")),
                word(d.get("reason"), REASON_WORDS) if d.get("reason") else "",
            ]
            for d in devices
        ],
    )


def cmd_health(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.i18n import _, word

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(_("config error: %(error)s") % {"error": exc.reason})
        return 2
    report = gather_health(cfg)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
        return 0
    source = {
        "daemon": _("live, from the running daemon"),
        "journal": _("the daemon is not running: last states recorded in the journal"),
    }.get(report["source"], _("nothing could be read"))
    print(
        _("Gateway %(id)s: %(worst)s (%(source)s)")
        % {"id": report["gateway"], "worst": word(report["worst"]), "source": source}
    )
    if "error" in report:
        print(f"  {report['error']}")
    print(format_health_table(report["devices"]))
    return 0


def add_cli(subparsers: Any) -> None:
    """Register ``health`` on the ``compound-gw`` parser."""
    p = subparsers.add_parser(
        "health", help=_("every device's health (cameras, modem, readers...)")
    )
    p.add_argument(
        "--config", "-c",
        default=os.environ.get("COMPOUND_GW_CONFIG", "/etc/compound-gw/gateway.toml"),
        help=_("gateway config file (default: $COMPOUND_GW_CONFIG or %(default)s)"),
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help=_("machine-readable output"))
    p.set_defaults(handler=cmd_health)
