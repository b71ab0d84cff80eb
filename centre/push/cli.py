"""``compound-centre push``: the daily bulletin to the group robots, and what was delivered.

    compound-centre push daily [--date 2026-11-02] [--config push.toml] [--lang zh-CN]
    compound-centre push daily --date 2026-11-02 --retry-failed   # after fixing the cause
    compound-centre push status [--date 2026-11-02] [--json]
    compound-centre push alerts [--config push.toml] [--once]      # the alert scan loop

``push daily`` renders the day's bulletin, owes it to every robot in the config once (parts are
stored before anything is sent) and delivers what is still unsent; running it again, or after
a restart, sends only the parts not yet delivered. The config defaults to ``push.toml`` in the
centre's data directory (docs/push.md). Exit status 1 when a group's push failed for good.

``push alerts`` runs the alert scan (centre/push/scan.py) of the config's ``[alerts]`` table
until SIGTERM; ``--once`` scans once and delivers what is owed, then exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp

from centre.bulletins.cli import data_root, time_zone
from centre.bulletins.model import DEFAULT_TZ
from centre.bulletins.source import build_daily
from centre.bulletins.web import yesterday
from centre.database import database_dsn, open_explanation_store, open_repository
from centre.errors import BadRequest, CentreError
from centre.pki import CentrePaths
from centre.push.alerts import load_alert_config
from centre.push.daily import DEFAULT_LANGUAGE, SUPPORTED
from centre.push.outbox import FILENAME, PushOutbox
from centre.push.robot import PushConfigError, load_robots
from centre.push.scan import AlertScanner, CentreAlertSource
from centre.push.sender import DONE, RobotSender
from centre.push.service import deliver_all, enqueue_daily
from i18n import match

log = logging.getLogger("centre.push")

CONFIG_FILE = "push.toml"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _lang(tag: str) -> str:
    found = match(tag, SUPPORTED)
    if found is None:
        raise BadRequest(f"{tag!r} is not a supported language ({', '.join(SUPPORTED)})")
    return found


def cmd_push_daily(args: argparse.Namespace) -> int:
    root, tz, lang, now = data_root(args), time_zone(args.tz), _lang(args.lang), time.time()
    day = args.date or yesterday(now, tz)
    robots = load_robots(Path(args.config) if args.config else root / CONFIG_FILE)

    async def run() -> list[Any]:
        async with (
            await open_repository(CentrePaths(root)) as repo,
            await open_explanation_store(CentrePaths(root)) as store,
        ):
            try:
                bulletin = await build_daily(repo, store, day, now=now, tz=tz)
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        async with await PushOutbox.open(root / FILENAME) as outbox:
            await enqueue_daily(outbox, bulletin, robots, now=now, lang=lang)
            if args.retry_failed:
                for robot in robots:
                    await outbox.retry_failed(day, robot.group)
            async with aiohttp.ClientSession() as session:
                sender = RobotSender(outbox, session)
                # A stop (systemd's SIGTERM, Ctrl-C) lets the POST under way finish and be
                # recorded, so the next run neither skips nor repeats a part.
                loop = asyncio.get_running_loop()

                def stop() -> None:
                    log.warning("stop requested: finishing the message under way, then stopping")
                    sender.request_stop()

                for sig in STOP_SIGNALS:
                    loop.add_signal_handler(sig, stop)
                try:
                    return await deliver_all(sender, robots, day)
                finally:
                    for sig in STOP_SIGNALS:
                        loop.remove_signal_handler(sig)
                    await sender.close()

    reports = asyncio.run(run())
    for r in reports:
        why = f": {r.reason}" if r.reason else ""
        print(f"{r.group}: {r.outcome}, {r.sent} part(s) sent now{why}")
    return 0 if all(r.outcome == DONE for r in reports) else 1


def cmd_push_status(args: argparse.Namespace) -> int:
    root = data_root(args)

    async def run() -> list[Any]:
        async with await PushOutbox.open(root / FILENAME) as outbox:
            return await outbox.parts(day=args.date)

    parts = asyncio.run(run())
    if args.json:
        for p in parts:
            row = asdict(p)
            row.pop("content")
            print(json.dumps(row, ensure_ascii=False))
        return 0
    for p in parts:
        flag = " (may have been sent twice)" if p.in_doubt else ""
        code = f"errcode {p.errcode} " if p.errcode is not None else ""
        why = f": {code}{p.detail}" if p.state != "sent" and p.detail else ""
        print(f"{p.day} {p.group} part {p.part}/{p.parts}: {p.state}{why}{flag}")
    return 0


def cmd_push_alerts(args: argparse.Namespace) -> int:
    root, tz, lang = data_root(args), time_zone(args.tz), _lang(args.lang)
    if database_dsn(CentrePaths(root)) is not None:
        # The scanner reads centre.db's alerts, events and gateways directly (SQL, read-only):
        # on PostgreSQL it would find none and push nothing. Say so rather than stay silent.
        raise CentreError(
            "push alerts reads the main repository from SQLite (centre.db); with the main "
            "repository on PostgreSQL it is not supported yet (docs/scale.md)"
        )
    config_path = Path(args.config) if args.config else root / CONFIG_FILE
    robots = load_robots(config_path)
    config = load_alert_config(config_path, robots)
    if config is None:
        raise PushConfigError(f"{config_path}: no alert kind is routed to a group ([alerts])")

    async def run() -> int:
        async with (
            await CentreAlertSource.open(CentrePaths(root).database) as source,
            await PushOutbox.open(root / FILENAME) as outbox,
            aiohttp.ClientSession() as session,
        ):
            sender = RobotSender(outbox, session)
            scanner = AlertScanner(source, outbox, sender, robots, config, tz=tz, lang=lang)
            if args.once:
                added = await scanner.scan_once()
                done = [await scanner.deliver_owed(g) for g in config.all_groups]
                await sender.close()
                print(f"{added} alert message(s) newly owed, {sum(done)} delivered now")
                return 0
            loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, scanner.request_stop)
            try:
                await scanner.run()
            finally:
                for sig in STOP_SIGNALS:
                    loop.remove_signal_handler(sig)
            return 0

    return asyncio.run(run())


def add_push_commands(sub: Any) -> None:
    """Register ``push daily`` and ``push status`` on the centre's subparsers."""
    tz_default = os.environ.get("COMPOUND_CENTRE_TZ", DEFAULT_TZ)
    p = sub.add_parser("push", help="send the daily bulletin to WeChat Work group robots")
    psub = p.add_subparsers(dest="push_command", required=True)
    d = psub.add_parser("daily", help="push one day's bulletin to every configured robot")
    d.add_argument("--date", help="patrol day YYYY-MM-DD (default: yesterday)")
    d.add_argument("--config", help=f"robots config (default: DATA/{CONFIG_FILE})")
    d.add_argument("--lang", default=DEFAULT_LANGUAGE, help="zh-CN (default) or en")
    d.add_argument("--tz", default=tz_default, help=f"time zone (default: {tz_default})")
    d.add_argument(
        "--retry-failed", action="store_true", help="send parts that failed for good again"
    )
    d.set_defaults(func=cmd_push_daily)
    s = psub.add_parser("status", help="what was pushed: sent, failed and why")
    s.add_argument("--date", help="only this patrol day")
    s.add_argument("--json", action="store_true", help="JSON lines")
    s.set_defaults(func=cmd_push_status)
    a = psub.add_parser("alerts", help="push the configured alerts to the groups as they happen")
    a.add_argument("--config", help=f"robots and alerts config (default: DATA/{CONFIG_FILE})")
    a.add_argument("--lang", default=DEFAULT_LANGUAGE, help="zh-CN (default) or en")
    a.add_argument("--tz", default=tz_default, help=f"time zone (default: {tz_default})")
    a.add_argument("--once", action="store_true", help="scan once, deliver what is owed, exit")
    a.set_defaults(func=cmd_push_alerts)


__all__ = ["add_push_commands"]
