"""The bulletin commands of ``compound-centre`` (registered by centre/cli.py)::

    compound-centre bulletin daily --date 2026-11-02 [--out DIR]
    compound-centre bulletin monthly --month 2026-10 [--out DIR]
    compound-centre explain --compound "Rose Garden" --round night@2026-11-03T04:00 \\
        --text "guard ill, no relief" [--given-by "chief Wang"] [--by duty-1]
    compound-centre operator add duty-1        # prints the operator's token once

``add_bulletin_commands(sub)`` adds them to the centre's subparsers; they read ``args.data``
(the centre's data directory) like every other command. ``--tz`` (default
``$COMPOUND_CENTRE_TZ`` or Asia/Shanghai) sets the zone for days, months and printed times.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from centre.bulletins.auth import OPERATORS_FILE, add_operator
from centre.bulletins.explanations import FILENAME, SqliteExplanationStore
from centre.bulletins.model import DEFAULT_TZ, parse_month
from centre.bulletins.source import (
    build_daily,
    build_monthly,
    record_explanation,
    write_daily_files,
    write_monthly_files,
)
from centre.bulletins.web import last_month, yesterday
from centre.errors import BadRequest, CentreError
from centre.pki import CentrePaths
from centre.store import SqliteRepository


def _root(args: argparse.Namespace) -> Path:
    root = Path(args.data).resolve()
    if not CentrePaths(root).database.exists():
        raise CentreError(f"{root} has no centre database (run `compound-centre init`)")
    return root


def _tz(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"{name!r} is not an IANA time zone") from None
    return name


async def _with_stores(root: Path, fn: Any) -> Any:
    async with (
        await SqliteRepository.open(CentrePaths(root).database) as repo,
        await SqliteExplanationStore.open(root / FILENAME) as store,
    ):
        return await fn(repo, store)


def cmd_bulletin_daily(args: argparse.Namespace) -> int:
    root, tz, now = _root(args), _tz(args.tz), time.time()
    day = args.date or yesterday(now, tz)

    async def run(repo: SqliteRepository, store: SqliteExplanationStore) -> list[Path]:
        try:
            bulletin = await build_daily(repo, store, day, now=now, tz=tz)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return await asyncio.to_thread(write_daily_files, bulletin, Path(args.out))

    for path in asyncio.run(_with_stores(root, run)):
        print(path)
    return 0


def cmd_bulletin_monthly(args: argparse.Namespace) -> int:
    root, tz, now = _root(args), _tz(args.tz), time.time()
    month = args.month or last_month(now, tz)
    try:
        parse_month(month)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None

    async def run(repo: SqliteRepository, store: SqliteExplanationStore) -> list[Path]:
        bulletin = await build_monthly(repo, store, month, now=now, tz=tz)
        return await asyncio.to_thread(write_monthly_files, bulletin, Path(args.out))

    for path in asyncio.run(_with_stores(root, run)):
        print(path)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    root, tz = _root(args), _tz(args.tz)
    by = args.by or f"cli:{getpass.getuser()}"

    async def run(repo: SqliteRepository, store: SqliteExplanationStore) -> Any:
        return await record_explanation(
            repo,
            store,
            compound=args.compound,
            round_id=args.round,
            text=args.text,
            given_by=args.given_by or "",
            recorded_by=by,
            now=time.time(),
            tz=tz,
        )

    x = asyncio.run(_with_stores(root, run))
    print(f"explanation {x.id} recorded for {x.compound} {x.round_id} by {x.recorded_by}")
    return 0


def cmd_operator_add(args: argparse.Namespace) -> int:
    root = _root(args)
    try:
        token = add_operator(root / OPERATORS_FILE, args.name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    print(f"operator {args.name} added; token (shown once, keep it secret):")
    print(token)
    return 0


def add_bulletin_commands(sub: Any) -> None:
    """Register ``bulletin daily|monthly``, ``explain`` and ``operator add`` on ``sub``."""
    tz_default = os.environ.get("COMPOUND_CENTRE_TZ", DEFAULT_TZ)

    p = sub.add_parser("bulletin", help="write the daily or monthly bulletin (HTML and CSV)")
    bsub = p.add_subparsers(dest="bulletin_command", required=True)
    d = bsub.add_parser("daily", help="the daily patrol bulletin of one patrol day")
    d.add_argument("--date", help="patrol day YYYY-MM-DD (default: yesterday)")
    d.add_argument("--out", default=".", help="directory for the files (default: .)")
    d.add_argument("--tz", default=tz_default, help=f"time zone (default: {tz_default})")
    d.set_defaults(func=cmd_bulletin_daily)
    m = bsub.add_parser("monthly", help="the monthly bulletin per township and compound")
    m.add_argument("--month", help="YYYY-MM (default: last month)")
    m.add_argument("--out", default=".", help="directory for the files (default: .)")
    m.add_argument("--tz", default=tz_default, help=f"time zone (default: {tz_default})")
    m.set_defaults(func=cmd_bulletin_monthly)

    p = sub.add_parser("explain", help="record why a missed round was missed")
    p.add_argument("--compound", required=True)
    p.add_argument("--round", required=True, help="round id, e.g. night@2026-11-03T04:00")
    p.add_argument("--text", required=True)
    p.add_argument("--given-by", help="who gave the explanation (e.g. the unit's chief)")
    p.add_argument("--by", help="operator recording it (default: cli:<login name>)")
    p.add_argument("--tz", default=tz_default, help=f"time zone (default: {tz_default})")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("operator", help="operators who may read bulletins")
    osub = p.add_subparsers(dest="operator_command", required=True)
    o = osub.add_parser("add", help="add an operator and print their bearer token once")
    o.add_argument("name")
    o.set_defaults(func=cmd_operator_add)


__all__ = ["add_bulletin_commands"]
