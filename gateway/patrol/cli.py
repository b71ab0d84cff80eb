"""``compound-gw patrol today | explain ROUND | summary``: verdicts read from the journal.

Works while the daemon runs: the engine is replayed from the journal file, read-only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import time
import zoneinfo
from collections.abc import Sequence
from typing import Any

from gateway.config import load_config
from gateway.patrol.report import explain, render_summary, today_rows
from gateway.patrol.service import load_engine


def _config_arg(p: argparse.ArgumentParser) -> None:
    from gateway.cli import _config_arg as shared

    shared(p)


def _today(tz: str) -> str:
    return dt.datetime.now(zoneinfo.ZoneInfo(tz)).date().isoformat()


def format_today(rows: Sequence[dict[str, Any]], day: str | None) -> str:
    """The ``patrol today`` table for people: words for states, in the current language."""
    from gateway.i18n import _, word
    from i18n import format_table

    if not rows:
        return _("No rounds planned for this patrol day.")
    head = _("Patrol day %(day)s") % {"day": day} if day else _("Today's rounds")
    return (
        head
        + "\n"
        + format_table(
            [
                _("Round"),
                _("Route"),
                _("Time"),
                _("State"),
                _("Checkpoints"),
                _("Started"),
                _("Guards"),
                _("Note"),
            ],
            [
                [
                    str(r["round"]),
                    str(r["route"]),
                    str(r["window"]),
                    word(r["state"]),
                    str(r["done"]),
                    str(r["started"]),
                    str(r["guards"]).replace(",", ", "),
                    _note(str(r["note"])),
                ]
                for r in rows
            ],
        )
    )


def _note(note: str) -> str:
    from gateway.i18n import REASON_WORDS, _, word

    if note.startswith("missing "):
        return _("missing: %(checkpoints)s") % {"checkpoints": note.removeprefix("missing ")}
    if note.startswith("not judged "):
        return _("not judged: %(checkpoints)s") % {"checkpoints": note.removeprefix("not judged ")}
    return word(note, REASON_WORDS) if note else ""


def cmd_today(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    engine = load_engine(cfg.patrol, cfg.journal_path, time.time())
    # Without --day: the patrol day in progress, as the daemon (and the status page) count it.
    day = args.day or (engine.day_of(engine.now + 1e-6) if math.isfinite(engine.now) else None)
    rows = today_rows(engine, day)
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True, default=str))
    else:
        print(format_today(rows, day))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    engine = load_engine(cfg.patrol, cfg.journal_path, time.time())
    try:
        lines = explain(engine, args.round)
    except KeyError:
        print(f"error: no round {args.round!r} (see 'compound-gw patrol today')")
        return 1
    print("\n".join(lines))
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    engine = load_engine(cfg.patrol, cfg.journal_path, time.time())
    day = args.day or _today(cfg.patrol.timezone)
    summary = engine.daily_summary(day)
    if args.json:
        payload: Any = summary.payload() if hasattr(summary, "payload") else summary
        print(json.dumps(payload, indent=2, sort_keys=True, default=str))
    else:
        print(render_summary(summary))
    return 0


def add_cli(sub: Any) -> None:
    patrol = sub.add_parser("patrol", help="patrol rounds and verdicts")
    psub = patrol.add_subparsers(dest="patrol_command", required=True, metavar="SUBCOMMAND")
    p = psub.add_parser("today", help="today's rounds and their states")
    _config_arg(p)
    p.add_argument("--day", help="patrol day YYYY-MM-DD (default: the one in progress)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_today)
    p = psub.add_parser("explain", help="why a round got its verdict")
    _config_arg(p)
    p.add_argument("round", help="round id, as 'patrol today' shows it")
    p.set_defaults(handler=cmd_explain)
    p = psub.add_parser("summary", help="the daily summary per route and guard")
    _config_arg(p)
    p.add_argument("--day", help="local date YYYY-MM-DD (default: today)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_summary)
