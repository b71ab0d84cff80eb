"""The bulletin commands of ``compound-centre`` (registered by centre/cli.py)::

    compound-centre bulletin daily --date 2026-11-02 [--out DIR]
    compound-centre bulletin monthly --month 2026-10 [--out DIR] [--pdf]
    compound-centre bulletin security --month 2026-11 [--out DIR] [--pdf] [--lang en]
    compound-centre cases import --month 2026-11 cases.csv [--by duty-1]
    compound-centre explain-link --compound "Rose Garden" --date 2026-11-02 \\
        --base-url https://centre.example
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

from centre.bulletins import render
from centre.bulletins.auth import OPERATORS_FILE, add_operator
from centre.bulletins.explanations import ExplanationStore
from centre.bulletins.links import ExplanationLinks
from centre.bulletins.model import DEFAULT_TZ, PatrolDigest, parse_day, parse_month
from centre.bulletins.pages import month_days
from centre.bulletins.pdf import first_page_png, html_to_pdf
from centre.bulletins.security import security_bulletin, security_html
from centre.bulletins.source import (
    build_daily,
    build_monthly,
    days_ending,
    fetch_patrol_digest,
    monthly_window,
    patrol_history,
    record_explanation,
    write_daily_files,
    write_files,
    write_monthly_files,
)
from centre.bulletins.web import last_month, yesterday
from centre.database import (
    database_dsn,
    open_case_store,
    open_explanation_store,
    open_repository,
    open_survey_store,
    open_video_patrol_store,
)
from centre.errors import BadRequest, CentreError
from centre.pki import CentrePaths
from centre.store import SqlRepository


def data_root(args: argparse.Namespace) -> Path:
    """The centre's data folder from ``--data``, refused unless it holds a centre database."""
    root = Path(args.data).resolve()
    paths = CentrePaths(root)
    on_postgres = paths.ca_cert.exists() and database_dsn(paths) is not None
    if not paths.database.exists() and not on_postgres:
        raise CentreError(f"{root} has no centre database (run `compound-centre init`)")
    return root


def time_zone(name: str) -> str:
    """``name`` if it is an IANA time zone, else BadRequest."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"{name!r} is not an IANA time zone") from None
    return name


async def _with_stores(root: Path, fn: Any) -> Any:
    async with (
        await open_repository(CentrePaths(root)) as repo,
        await open_explanation_store(CentrePaths(root)) as store,
    ):
        return await fn(repo, store)


async def _build_monthly(
    repo: SqlRepository,
    store: ExplanationStore,
    root: Path,
    month: str,
    now: float,
    tz: str,
    rounds: PatrolDigest | None = None,
) -> Any:
    """The monthly bulletin, with the video patrol's findings when the console has kept any;
    ``rounds``: the month's verdicts when already read (the charts use the same)."""
    from centre.web.store import CONSOLE_DB

    paths = CentrePaths(root)
    if database_dsn(paths) is None and not (root / CONSOLE_DB).exists():
        # No console yet: nothing judged (and no console.db created by a bulletin).
        return await build_monthly(repo, store, month, now=now, tz=tz, patrol=rounds)
    patrol = await open_video_patrol_store(paths)
    try:
        return await build_monthly(
            repo, store, month, now=now, tz=tz, findings=patrol, patrol=rounds
        )
    finally:
        await patrol.close()


async def _month_rounds(repo: SqlRepository, month: str, now: float, tz: str) -> PatrolDigest:
    """The month's verdicts, read once for the bulletin and its charts."""
    since, until = monthly_window(month, now=now, tz=tz)
    return await fetch_patrol_digest(repo, since=since, until=until)


def cmd_bulletin_daily(args: argparse.Namespace) -> int:
    root, tz, now = data_root(args), time_zone(args.tz), time.time()
    day = args.date or yesterday(now, tz)

    async def run(repo: SqlRepository, store: ExplanationStore) -> list[Path]:
        try:
            bulletin = await build_daily(repo, store, day, now=now, tz=tz)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        history = await patrol_history(repo, days_ending(bulletin.day), now=now, tz=tz)
        return await asyncio.to_thread(write_daily_files, bulletin, Path(args.out), history)

    for path in asyncio.run(_with_stores(root, run)):
        print(path)
    return 0


def cmd_bulletin_monthly(args: argparse.Namespace) -> int:
    root, tz, now = data_root(args), time_zone(args.tz), time.time()
    month = args.month or last_month(now, tz)
    try:
        parse_month(month)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None

    async def run(repo: SqlRepository, store: ExplanationStore) -> list[Path]:
        rounds = await _month_rounds(repo, month, now, tz)
        bulletin = await _build_monthly(repo, store, root, month, now, tz, rounds)
        out = Path(args.out)
        history = await patrol_history(repo, month_days(bulletin), now=now, tz=tz, patrol=rounds)
        files = await asyncio.to_thread(write_monthly_files, bulletin, out, history)
        if args.pdf:
            html = render.monthly_html(bulletin, history=history)
            pdf = await html_to_pdf(html, out / f"monthly-{month}.pdf")
            png = await first_page_png(pdf, out / f"monthly-{month}-page1.png")
            files += [pdf, png]
        return files

    for path in asyncio.run(_with_stores(root, run)):
        print(path)
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    root, tz = data_root(args), time_zone(args.tz)
    by = args.by or f"cli:{getpass.getuser()}"

    async def run(repo: SqlRepository, store: ExplanationStore) -> Any:
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


def _earlier_months(month: str) -> tuple[str, str]:
    year, mon = parse_month(month)
    before = f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}"
    return before, f"{year - 1:04d}-{mon:02d}"


def cmd_bulletin_security(args: argparse.Namespace) -> int:
    root, tz, now = data_root(args), time_zone(args.tz), time.time()
    month = args.month or last_month(now, tz)
    try:
        before, last_year = _earlier_months(month)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None

    async def run(repo: SqlRepository, store: ExplanationStore) -> list[Path]:
        rounds = await _month_rounds(repo, month, now, tz)
        monthly = await _build_monthly(repo, store, root, month, now, tz, rounds)
        async with await open_case_store(CentrePaths(root)) as cases:

            async def rows(m: str) -> list[Any] | None:
                return await cases.rows(m) if await cases.imported(m) else None

            current, previous, year_ago = (
                await rows(month),
                await rows(before),
                await rows(last_year),
            )
        # Satisfaction from the month's survey calls; none made: unknown, left out (named).
        async with await open_survey_store(CentrePaths(root)) as survey_store:
            rates = await survey_store.rates(month)
        sb = security_bulletin(
            monthly,
            cases=current or [],
            cases_imported=current is not None,
            survey=rates,
            last_month_cases=previous,
            last_year_cases=year_ago,
        )
        out = Path(args.out)
        history = await patrol_history(repo, month_days(monthly), now=now, tz=tz, patrol=rounds)
        html = security_html(sb, lang=args.lang, monthly=monthly, history=history)
        files = await asyncio.to_thread(write_files, out, {f"security-{month}.html": html})
        if args.pdf:
            pdf = await html_to_pdf(html, out / f"security-{month}.pdf")
            files += [pdf, await first_page_png(pdf, out / f"security-{month}-page1.png")]
        return files

    for path in asyncio.run(_with_stores(root, run)):
        print(path)
    return 0


def cmd_cases_import(args: argparse.Namespace) -> int:
    root = data_root(args)
    by = args.by or f"cli:{getpass.getuser()}"
    raw = Path(args.file).read_bytes()

    async def run(repo: SqlRepository, store: ExplanationStore) -> Any:
        compounds = {r.compound for r in await repo.gateways()}
        async with await open_case_store(CentrePaths(root)) as cases:
            return await cases.import_csv(
                raw, month=args.month, compounds=compounds, imported_by=by, now=time.time()
            )

    imp = asyncio.run(_with_stores(root, run))
    replaced = (
        f"; replaces version {imp.replaced_version} ({imp.replaced_total} cases,"
        f" {imp.replaced_preventable} preventable)"
        if imp.replaced_version
        else ""
    )
    print(
        f"cases of {imp.month} imported as version {imp.version}: {imp.rows} rows,"
        f" {imp.total} cases, {imp.preventable} preventable{replaced}"
    )
    return 0


def cmd_explain_link(args: argparse.Namespace) -> int:
    root = data_root(args)
    try:
        day = parse_day(args.date)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    links = ExplanationLinks.load_or_create(root)
    print(links.url(args.base_url, args.compound, day, now=time.time()))
    return 0


def cmd_operator_add(args: argparse.Namespace) -> int:
    root = data_root(args)
    try:
        token = add_operator(root / OPERATORS_FILE, args.name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    print(f"operator {args.name} added; token (shown once, keep it secret):")
    print(token)
    return 0


def add_bulletin_commands(sub: Any) -> None:
    """Register ``bulletin daily|monthly``, ``cases import``, ``explain``, ``explain-link`` and
    ``operator add`` on ``sub``."""
    tz_default = os.environ.get("COMPOUND_CENTRE_TZ", DEFAULT_TZ)

    p = sub.add_parser("bulletin", help="write the daily, monthly or security bulletin")
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
    m.add_argument(
        "--pdf", action="store_true", help="also a print-ready PDF and its first page as PNG"
    )
    m.set_defaults(func=cmd_bulletin_monthly)

    y = bsub.add_parser("security", help="the monthly security bulletin: cases, score, rank")
    y.add_argument("--month", help="YYYY-MM (default: last month)")
    y.add_argument("--out", default=".", help="directory for the files (default: .)")
    y.add_argument("--tz", default=tz_default, help=f"time zone (default: {tz_default})")
    y.add_argument("--lang", default="zh-CN", choices=("zh-CN", "en"), help="default: zh-CN")
    y.add_argument(
        "--pdf", action="store_true", help="also a print-ready PDF and its first page as PNG"
    )
    y.set_defaults(func=cmd_bulletin_security)

    p = sub.add_parser("cases", help="the month's reported cases per compound")
    csub = p.add_subparsers(dest="cases_command", required=True)
    c = csub.add_parser("import", help="import a month's case CSV (replaces the month's figures)")
    c.add_argument("--month", required=True, help="YYYY-MM")
    c.add_argument("file", help="CSV: compound,date,category,count (or 小区,日期,类别,数量)")
    c.add_argument("--by", help="operator importing it (default: cli:<login name>)")
    c.set_defaults(func=cmd_cases_import)

    p = sub.add_parser("explain-link", help="print a compound's explanation link for a day")
    p.add_argument("--compound", required=True)
    p.add_argument("--date", required=True, help="patrol day YYYY-MM-DD")
    p.add_argument("--base-url", required=True, help="the centre's address as phones reach it")
    p.set_defaults(func=cmd_explain_link)

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
