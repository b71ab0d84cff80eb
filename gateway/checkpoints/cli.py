"""``compound-gw readers`` and ``compound-gw reader pair``.

    compound-gw readers [--json]
    compound-gw reader pair --bus north --address 3 [--install-mode] [--timeout 10]

``readers`` prints every configured checkpoint reader with the running daemon's view of it
(online, secure channel, last tap, errors), read from the daemon's status board. ``reader pair``
gives one reader its own secure-channel key: a fresh random SCBK, sent with osdp_KEYSET over a
secure channel opened with the install key (SCBK-D; the reader must be in install mode) or, if
the reader already has a key file, with that key; the key is proven with a fresh handshake and
only then written to the reader's 0600 key file. Stop the daemon first: the bus is opened
exclusively.

Both take the gateway config (``--config``); until the lead wires ``[checkpoints]`` into it,
``--checkpoints-file`` names a TOML file holding the ``[checkpoints]`` table.
Exit codes: 0 ok, 1 failure, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from gateway.checkpoints.config import (
    SCBK_LENGTH,
    CheckpointsSection,
    key_config_key,
    key_path,
    load_section_file,
)
from gateway.config import read_secret_file, write_secret_file
from gateway.errors import ConfigError
from gateway.i18n import _

DEFAULT_CONFIG = "/etc/compound-gw/gateway.toml"
# A status board older than this is from a daemon that is no longer running.
STALE_STATUS_S = 30.0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", "-c",
        default=os.environ.get("COMPOUND_GW_CONFIG", DEFAULT_CONFIG),
        help=_("gateway config file (default: $COMPOUND_GW_CONFIG or %(default)s)"),
    )  # fmt: skip
    p.add_argument(
        "--checkpoints-file",
        default="",
        help=_("TOML file with the [checkpoints] table (when the gateway config has none)"),
    )


def load_section(args: argparse.Namespace) -> tuple[CheckpointsSection, Path, Path | None]:
    """The [checkpoints] section, the folder its relative paths use, and the status file."""
    status = Path(args.status) if getattr(args, "status", "") else None
    if args.checkpoints_file:
        section, base = load_section_file(args.checkpoints_file)
        return section, base, status
    from gateway.config import load_config

    cfg = load_config(args.config)
    wired: CheckpointsSection | None = getattr(cfg, "checkpoints", None)
    if wired is None:
        raise ConfigError("checkpoints", "the gateway config has no [checkpoints] section")
    section = wired
    if status is None:
        runtime = getattr(cfg.gateway, "runtime_dir", None)
        if runtime:
            status = cfg.path(runtime) / "status.json"
    return section, Path(cfg.base_dir), status


# --------------------------------------------------------------------------- readers


def gather_readers(
    section: CheckpointsSection, status_path: Path | None, now: float
) -> dict[str, Any]:
    """Configured readers merged with the daemon's live table (``source`` says which)."""
    live: dict[str, Any] = {}
    source = "config only: the daemon is not running"
    if status_path is not None:
        try:
            board = json.loads(status_path.read_text())
            table = board.get("readers") or {}
            updated = float(table.get("updated", 0))
            if now - updated <= STALE_STATUS_S:
                live = {r["reader"]: r for r in table.get("readers", [])}
                source = "daemon"
            else:
                source = f"stale status ({int(now - updated)} s old): the daemon is not running"
        except (OSError, ValueError, AttributeError, TypeError):
            pass
    rows = []
    for p in section.points:
        rid = f"{p.bus}/{p.address}"
        row = {"checkpoint": p.id, "name": p.name, "reader": rid, "bus": p.bus,
               "address": p.address}  # fmt: skip
        row.update({k: v for k, v in live.get(rid, {}).items() if k not in row})
        rows.append(row)
    return {"source": source, "readers": rows}


def _fmt_time(value: Any, now: float) -> str:
    if not isinstance(value, int | float):
        return "-"
    ago = int(now - value)
    return f"{ago}s ago" if ago < 120 else f"{ago // 60}m ago"


def format_readers(report: dict[str, Any], now: float) -> str:
    cols = ("checkpoint", "reader", "online", "sc", "last tap", "errors", "reason")
    rows = []
    for r in report["readers"]:
        online = r.get("online")
        errors = sum(
            int(r.get(k, 0) or 0)
            for k in ("offline_transitions", "refusals", "not_recorded", "feedback_failures",
                      "feedback_lost", "unknown_replies")
        )
        rows.append(
            (
                r["checkpoint"],
                r["reader"],
                "?" if online is None else ("yes" if online else "NO"),
                "?" if r.get("sc_active") is None else ("yes" if r["sc_active"] else "no"),
                _fmt_time(r.get("last_tap"), now),
                "-" if online is None else str(errors),
                str(r.get("reason", "")),
            )
        )
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c)
              for i, c in enumerate(cols)]  # fmt: skip
    lines = [f"readers ({report['source']})"]
    lines.append("  " + "  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in rows:
        lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


def cmd_readers(args: argparse.Namespace) -> int:
    try:
        section, _base, status = load_section(args)
    except ConfigError as exc:
        print(f"config error: {exc.reason}")
        return 2
    now = time.time()
    report = gather_readers(section, status, now)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        print(format_readers(report, now))
    return 0


# --------------------------------------------------------------------------- reader pair


def cmd_reader_pair(args: argparse.Namespace) -> int:
    from drivers.osdp_bus import pair_reader

    try:
        section, base, _status = load_section(args)
    except ConfigError as exc:
        print(f"config error: {exc.reason}")
        return 2
    bus = section.bus(args.bus)
    if bus is None:
        print(f"no bus named {args.bus!r} (configured: {', '.join(b.name for b in section.buses)})")
        return 2
    point = section.point_at(args.bus, args.address)
    if point is None:
        print(f"no checkpoint at {args.bus}/{args.address}: add it to [checkpoints] first")
        return 2
    path = key_path(point, base)
    current: bytes | None = None
    if path.exists() and not args.install_mode:
        try:
            current = read_secret_file(path, key_config_key(section, point), length=SCBK_LENGTH)
        except ConfigError as exc:
            print(f"config error: {exc.reason}")
            return 2
    new_key = secrets.token_bytes(SCBK_LENGTH)
    # Keep the new key on disk before the reader has it: losing it would lock the reader out.
    pending = path.with_name(path.name + ".pending")
    write_secret_file(pending, new_key)
    how = "rotating its current key" if current else "using the install key (SCBK-D)"
    print(f"pairing {point.id} at {bus.name}/{point.address} on {bus.port}, {how} ...")
    try:
        result = pair_reader(
            bus.port, bus.baud, point.address, new_key, current_scbk=current, timeout=args.timeout
        )
    except Exception as exc:  # serial errors: port busy (daemon running), missing adapter
        pending.unlink(missing_ok=True)
        print(f"cannot open {bus.port}: {exc} (is the daemon running? stop it first)")
        return 1
    if not result.ok:
        pending.unlink(missing_ok=True)
        print(result.message)
        return 1
    os.replace(pending, path)
    print(f"{result.message}; key written to {path} (mode 0600)")
    return 0


# --------------------------------------------------------------------------- registration


def add_cli(subparsers: Any) -> None:
    """Register ``readers`` and ``reader pair`` on the ``compound-gw`` parser."""
    p = subparsers.add_parser("readers", help=_("checkpoint readers: online, secure channel, taps"))
    _common(p)
    p.add_argument("--status", default="", help=_("status JSON to read (default: the daemon's)"))
    p.add_argument("--json", action="store_true", help=_("machine-readable output"))
    p.set_defaults(handler=cmd_readers)

    reader = subparsers.add_parser("reader", help=_("checkpoint reader maintenance"))
    sub = reader.add_subparsers(dest="reader_command", required=True)
    pair = sub.add_parser("pair", help=_("give a reader its own secure-channel key (osdp_KEYSET)"))
    _common(pair)
    pair.add_argument("--bus", required=True, help=_("bus name from [checkpoints]"))
    pair.add_argument("--address", required=True, type=int, help=_("the reader's OSDP address"))
    pair.add_argument(
        "--install-mode",
        action="store_true",
        help=_("the reader is in install mode: use SCBK-D even if a key file exists"),
    )
    pair.add_argument(
        "--timeout", type=float, default=15.0, help=_("seconds to wait for the reader")
    )
    pair.set_defaults(handler=cmd_reader_pair)

    from gateway.checkpoints.bands_cli import add_cli as add_bands_cli

    add_bands_cli(subparsers)
