"""``compound-gw patrol today | explain ROUND | summary``: verdicts read from the journal;
``compound-gw patrol routes|schedules ...`` and ``compound-gw guards ...``: the patrol data.

Works while the daemon runs: the engine is replayed from the journal file, read-only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.i18n import _
from gateway.patrol.report import current_rows, explain, render_summary, today_rows
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
    # Without --day: the patrol day in progress and the next day's rounds already open, as the
    # daemon (and the status page) show them.
    if args.day:
        day, rows = args.day, today_rows(engine, args.day)
    else:
        day, rows = current_rows(engine)
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
    patrol = sub.add_parser("patrol", help=_("patrol rounds and verdicts"))
    psub = patrol.add_subparsers(dest="patrol_command", required=True, metavar=_("SUBCOMMAND"))
    p = psub.add_parser("today", help=_("today's rounds and their states"))
    _config_arg(p)
    p.add_argument("--day", help=_("patrol day YYYY-MM-DD (default: the one in progress)"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_today)
    p = psub.add_parser("explain", help=_("why a round got its verdict"))
    _config_arg(p)
    p.add_argument("round", help=_("round id, as 'patrol today' shows it"))
    p.set_defaults(handler=cmd_explain)
    p = psub.add_parser("summary", help=_("the daily summary per route and guard"))
    _config_arg(p)
    p.add_argument("--day", help=_("local date YYYY-MM-DD (default: today)"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_summary)
    add_data_cli(sub, psub)


# --------------------------------------------------------------------------- patrol data
# Guards, routes and schedules live in the patrol data file beside the config
# (gateway.patrol.store); these commands edit it with the config loader's checks and ask a
# running daemon to reload it (SIGHUP), then say whether it took the change.

RELOAD_WAIT_S = 15.0


def _data_context(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(config without the data file, the data, the data file's path)."""
    from pathlib import Path

    from gateway.patrol.store import data_path, load_patrol_data

    base = load_config(args.config, patrol_data=False)
    path = data_path(Path(args.config))
    return base, load_patrol_data(path), path


def _save_and_reload(args: argparse.Namespace, base: Any, data: Any, path: Any) -> int:
    """Validate against the config, write atomically, ask the daemon to reload; exit code."""
    from gateway.i18n import _
    from gateway.patrol.store import save_patrol_data, with_patrol_data

    with_patrol_data(base, data, path)  # ConfigError names the key: nothing is written
    from pathlib import Path

    save_patrol_data(path, data, like=Path(args.config))
    print(_("saved in {path}").format(path=path))
    return _ask_daemon_to_reload(base)


def _daemon_pid(cfg: Any) -> int | None:
    from gateway.setup.checks import running_daemon_pid

    return running_daemon_pid(cfg.path(cfg.gateway.runtime_dir) / "status.json", time.time())


def _ask_daemon_to_reload(cfg: Any) -> int:
    import os
    import signal

    from gateway.i18n import _
    from gateway.patrol.taps import journal_last_seq

    pid = _daemon_pid(cfg)
    if pid is None:
        print(_("the daemon is not running: it reads the change when it starts"))
        return 0
    after = journal_last_seq(cfg.journal_path)
    os.kill(pid, signal.SIGHUP)
    from gateway.journal import read_events

    deadline = time.monotonic() + RELOAD_WAIT_S
    while time.monotonic() < deadline:
        for ev in read_events(cfg.journal_path, after_seq=after, limit=500):
            after = ev.seq
            if ev.kind == "config.reloaded":
                print(_("the daemon reloaded it: in force now"))
                return 0
            if ev.kind == "config.reload_refused":
                reason = ev.payload.get("reason", "") if isinstance(ev.payload, dict) else ""
                print(_("the daemon refused it and keeps the old data: {why}").format(why=reason))
                return 1
        time.sleep(0.2)
    print(_("the daemon did not confirm the reload within {s:.0f} s").format(s=RELOAD_WAIT_S))
    return 1


def cmd_guards_list(args: argparse.Namespace) -> int:
    from gateway.i18n import _

    base, data, path = _data_context(args)
    rows = [(g.guard, g.name, g.wristband, path.name) for g in data.roster]
    rows += [(g.guard, g.name, g.wristband, "gateway.toml") for g in base.checkpoints.roster]
    if not rows:
        print(_("no guard is enrolled: add one with `compound-gw guards add`"))
        return 0
    print(_("{n} guards").format(n=len(rows)))
    for guard, name, band, where in sorted(rows):
        print(f"  {guard:<12} {name:<16} {band}  ({where})")
    return 0


def cmd_guards_remove(args: argparse.Namespace) -> int:
    import dataclasses

    from gateway.i18n import _

    base, data, path = _data_context(args)
    if data.guard(args.guard) is None:
        if any(g.guard == args.guard for g in base.checkpoints.roster):
            print(_("{id} is in the gateway config itself: remove it there").format(id=args.guard))
        else:
            print(_("no guard {id} (see `compound-gw guards list`)").format(id=args.guard))
        return 1
    data = dataclasses.replace(data, roster=tuple(g for g in data.roster if g.guard != args.guard))
    print(_("removed guard {id}").format(id=args.guard))
    return _save_and_reload(args, base, data, path)


def _wristband_from_a_tap(base: Any, timeout: float, known: set[str]) -> str | None:
    """The wristband of the next tap: from the daemon's journal when it runs and holds the
    readers (it journals a tap it does not know as unknown_wristband), else from the readers
    directly. The prompt is printed once we are listening, never before."""
    import asyncio

    from gateway.i18n import _
    from gateway.patrol.taps import ReaderTaps, journal_last_seq, next_unknown_wristband

    if _daemon_pid(base) is not None:
        after = journal_last_seq(base.journal_path)
        print(_("tap the new wristband on any reader ({s:.0f} s) ...").format(s=timeout))
        sys.stdout.flush()
        got = next_unknown_wristband(base.journal_path, after, timeout, known)
        return got[0].wristband if got is not None else None
    from drivers.osdp_bus import BusSpec, ReaderSpec
    from gateway.checkpoints.config import load_reader_key

    section = base.checkpoints
    specs = [
        BusSpec(
            b.name,
            b.port,
            b.baud,
            tuple(
                ReaderSpec(p.address, load_reader_key(section, p, Path(base.base_dir)))
                for p in section.points
                if p.bus == b.name
            ),
        )
        for b in section.buses
    ]

    async def one() -> str | None:
        async with ReaderTaps(specs) as taps:
            await taps.wait_online(min(30.0, timeout))
            taps.drain()
            print(
                _("the readers are open: tap the new wristband on any reader ({s:.0f} s) ...")
                .format(s=timeout)
            )  # fmt: skip
            sys.stdout.flush()
            tap = await taps.next_tap(timeout)
            if tap is not None:
                await taps.feedback(tap, ok=tap.wristband not in known)
            return tap.wristband if tap is not None else None

    return asyncio.run(one())


def cmd_guards_add(args: argparse.Namespace) -> int:
    import dataclasses

    from gateway.checkpoints.config import GuardConfig
    from gateway.i18n import _
    from gateway.setup.interactive import (
        AnswerError,
        Asker,
        parse_guard_id,
        parse_required_text,
    )

    base, data, path = _data_context(args)
    taken = {g.guard for g in data.roster} | {g.guard for g in base.checkpoints.roster}

    def new_id(text: str) -> str:
        gid = parse_guard_id(text)
        if gid in taken:
            raise AnswerError(_("{id} is already enrolled: type another number").format(id=gid))
        return gid

    asker = Asker({})
    try:
        gid = new_id(args.guard) if args.guard else None
        name = parse_required_text(args.name) if args.name else None
    except AnswerError as exc:
        print(f"error: {exc.advice}")
        return 2
    if not base.checkpoints.points:
        print(_("no reader is configured: run `compound-gw setup` first"))
        return 1
    known = {g.wristband for g in (*data.roster, *base.checkpoints.roster)}
    band = _wristband_from_a_tap(base, args.timeout, known)
    if band is None:
        print(_("no new wristband was tapped: nothing changed"))
        return 1
    owner = next((g for g in (*data.roster, *base.checkpoints.roster) if g.wristband == band), None)
    if owner is not None:
        print(_("this wristband is already guard {id}").format(id=owner.guard))
        return 1
    print(_("wristband read"))
    if gid is None:
        gid = asker.value("", _("guard number (e.g. g-017)"), new_id, remember=False)
    if name is None:
        name = asker.value("", _("guard name"), parse_required_text, remember=False)
    data = dataclasses.replace(
        data, roster=(*data.roster, GuardConfig(wristband=band, guard=gid, name=name))
    )
    print(_("enrolled guard {id} ({name})").format(id=gid, name=name))
    return _save_and_reload(args, base, data, path)


def cmd_routes_list(args: argparse.Namespace) -> int:
    from gateway.i18n import _

    base, data, path = _data_context(args)
    rows = [(r, path.name) for r in data.routes] + [(r, "gateway.toml") for r in base.patrol.routes]
    if not rows:
        print(_("no route: add one with `compound-gw patrol routes add`"))
    for r, where in rows:
        print(f"  {r.id:<12} {' > '.join(r.checkpoints)}  ({where})")
    return 0


def cmd_routes_show(args: argparse.Namespace) -> int:
    from gateway.i18n import _

    base, data, _path = _data_context(args)
    route = next((r for r in (*data.routes, *base.patrol.routes) if r.id == args.id), None)
    if route is None:
        print(_("no route {id} (see `compound-gw patrol routes list`)").format(id=args.id))
        return 1
    print(_("route {id} {name}").format(id=route.id, name=route.name))
    print(_("  order: {o}").format(o=_("fixed") if route.ordered else _("any")))
    for i, cp in enumerate(route.checkpoints, 1):
        print(f"  {i}. {cp}")
    for leg in route.legs:
        print(
            _("  {a} -> {b}: at least {lo} s, at most {hi} s").format(
                a=leg.from_checkpoint, b=leg.to_checkpoint, lo=leg.min_walk_s, hi=leg.max_walk_s
            )
        )
    return 0


def cmd_routes_add(args: argparse.Namespace) -> int:
    import dataclasses

    from gateway.config.schema import parse_section
    from gateway.i18n import _
    from gateway.patrol.config import RouteSection

    base, data, path = _data_context(args)
    raw: dict[str, Any] = {
        "id": args.id,
        "checkpoints": [c.strip() for c in args.checkpoints.split(",") if c.strip()],
        "name": args.name,
        "ordered": not args.any_order,
    }
    if args.min_walk is not None:
        raw["min_walk_s"] = args.min_walk
    if args.max_walk is not None:
        raw["max_walk_s"] = args.max_walk
    route = parse_section(RouteSection, raw, "route")
    routes = (*(r for r in data.routes if r.id != route.id), route)
    print(_("route {id}: {cps}").format(id=route.id, cps=" > ".join(route.checkpoints)))
    return _save_and_reload(args, base, dataclasses.replace(data, routes=routes), path)


def cmd_routes_remove(args: argparse.Namespace) -> int:
    import dataclasses

    from gateway.i18n import _

    base, data, path = _data_context(args)
    if not any(r.id == args.id for r in data.routes):
        print(_("no route {id} in {file}").format(id=args.id, file=path.name))
        return 1
    data = dataclasses.replace(data, routes=tuple(r for r in data.routes if r.id != args.id))
    return _save_and_reload(args, base, data, path)


def cmd_schedules_list(args: argparse.Namespace) -> int:
    from gateway.i18n import _

    base, data, path = _data_context(args)
    rows = [(s, path.name) for s in data.schedules] + [
        (s, "gateway.toml") for s in base.patrol.schedules
    ]
    if not rows:
        print(
            _("no schedule: no round is planned. Add one with `compound-gw patrol schedules add`")
        )
    for s, where in rows:
        when = (
            ", ".join(s.times)
            if s.times
            else _("every {h} h from {a} to {b}").format(h=s.every_hours, a=s.start, b=s.end)
        )
        print(f"  {s.id:<16} {s.route:<12} {when}  ({where})")
    return 0


def cmd_schedules_show(args: argparse.Namespace) -> int:
    from gateway.i18n import _
    from gateway.setup.wizard import preview_rounds

    base, data, _path = _data_context(args)
    sched = next((s for s in (*data.schedules, *base.patrol.schedules) if s.id == args.id), None)
    if sched is None:
        print(_("no schedule {id} (see `compound-gw patrol schedules list`)").format(id=args.id))
        return 1
    print(_("schedule {id}: route {route}").format(id=sched.id, route=sched.route))
    print(_("rounds tomorrow:"))
    for line in preview_rounds(sched, base.patrol.timezone, time.time()):
        print(f"  {line}")
    return 0


def cmd_schedules_add(args: argparse.Namespace) -> int:
    import dataclasses

    from gateway.config.schema import parse_section
    from gateway.i18n import _
    from gateway.patrol.config import ScheduleSection
    from gateway.setup.wizard import preview_rounds

    base, data, path = _data_context(args)
    raw: dict[str, Any] = {"id": args.id, "route": args.route}
    if args.times:
        raw["times"] = [t.strip() for t in args.times.split(",") if t.strip()]
        raw["window_minutes"] = args.window or 60.0
    else:
        raw.update(every_hours=args.every or 2.0, start=args.start, end=args.end)
        if args.window:
            raw["window_minutes"] = args.window
    if args.grace is not None:
        raw["grace_minutes"] = args.grace
    sched = parse_section(ScheduleSection, raw, "schedule")
    schedules = (*(s for s in data.schedules if s.id != sched.id), sched)
    print(_("rounds tomorrow:"))
    for line in preview_rounds(sched, base.patrol.timezone, time.time()):
        print(f"  {line}")
    return _save_and_reload(args, base, dataclasses.replace(data, schedules=schedules), path)


def cmd_schedules_remove(args: argparse.Namespace) -> int:
    import dataclasses

    from gateway.i18n import _

    base, data, path = _data_context(args)
    if not any(s.id == args.id for s in data.schedules):
        print(_("no schedule {id} in {file}").format(id=args.id, file=path.name))
        return 1
    data = dataclasses.replace(data, schedules=tuple(s for s in data.schedules if s.id != args.id))
    return _save_and_reload(args, base, data, path)


def add_data_cli(sub: Any, psub: Any) -> None:
    """``compound-gw guards ...`` and ``compound-gw patrol routes|schedules ...``."""
    guards = sub.add_parser("guards", help=_("enrolled guards: add by tapping, remove, list"))
    gsub = guards.add_subparsers(dest="guards_command", required=True, metavar=_("SUBCOMMAND"))
    p = gsub.add_parser("list", help=_("enrolled guards and their wristbands"))
    _config_arg(p)
    p.set_defaults(handler=cmd_guards_list)
    p = gsub.add_parser("add", help=_("enrol a guard: tap the new wristband on any reader"))
    _config_arg(p)
    p.add_argument("--guard", default="", help=_("guard number (asked when not given)"))
    p.add_argument("--name", default="", help=_("guard name (asked when not given)"))
    p.add_argument("--timeout", type=float, default=120.0, help=_("seconds to wait for the tap"))
    p.set_defaults(handler=cmd_guards_add)
    p = gsub.add_parser("remove", help=_("remove a guard (the wristband becomes unknown)"))
    _config_arg(p)
    p.add_argument("guard", help=_("guard number"))
    p.set_defaults(handler=cmd_guards_remove)

    routes = psub.add_parser("routes", help=_("patrol routes: list, show, add, remove"))
    rsub = routes.add_subparsers(dest="routes_command", required=True, metavar=_("SUBCOMMAND"))
    p = rsub.add_parser("list", help=_("every route"))
    _config_arg(p)
    p.set_defaults(handler=cmd_routes_list)
    p = rsub.add_parser("show", help=_("one route: checkpoints in order, walking limits"))
    _config_arg(p)
    p.add_argument("id")
    p.set_defaults(handler=cmd_routes_show)
    p = rsub.add_parser("add", help=_("add (or replace) a route"))
    _config_arg(p)
    p.add_argument("id")
    p.add_argument("--checkpoints", required=True, help=_("checkpoint ids in walking order, a,b,c"))
    p.add_argument("--name", default="", help=_("name shown in reports"))
    p.add_argument(
        "--any-order", action="store_true", help=_("checkpoints may be walked in any order")
    )
    p.add_argument("--min-walk", type=float, default=None, help=_("fastest plausible leg (s)"))
    p.add_argument("--max-walk", type=float, default=None, help=_("slowest leg before overdue (s)"))
    p.set_defaults(handler=cmd_routes_add)
    p = rsub.add_parser("remove", help=_("remove a route (refused while a schedule uses it)"))
    _config_arg(p)
    p.add_argument("id")
    p.set_defaults(handler=cmd_routes_remove)

    scheds = psub.add_parser("schedules", help=_("patrol schedules: list, show, add, remove"))
    ssub = scheds.add_subparsers(dest="schedules_command", required=True, metavar=_("SUBCOMMAND"))
    p = ssub.add_parser("list", help=_("every schedule"))
    _config_arg(p)
    p.set_defaults(handler=cmd_schedules_list)
    p = ssub.add_parser("show", help=_("one schedule with tomorrow's rounds"))
    _config_arg(p)
    p.add_argument("id")
    p.set_defaults(handler=cmd_schedules_show)
    p = ssub.add_parser("add", help=_("add (or replace) a schedule; shows tomorrow's rounds"))
    _config_arg(p)
    p.add_argument("id")
    p.add_argument("--route", required=True, help=_("route id"))
    p.add_argument("--every", type=float, default=None, help=_("a round every this many hours"))
    p.add_argument("--start", default="22:00", help=_("first round (HH:MM, with --every)"))
    p.add_argument("--end", default="06:00", help=_("end of the period (HH:MM, with --every)"))
    p.add_argument("--times", default="", help=_("fixed start times instead: 08:00,14:00"))
    p.add_argument("--window", type=float, default=None, help=_("minutes a round may take"))
    p.add_argument("--grace", type=float, default=None, help=_("minutes before a round is late"))
    p.set_defaults(handler=cmd_schedules_add)
    p = ssub.add_parser("remove", help=_("remove a schedule"))
    _config_arg(p)
    p.add_argument("id")
    p.set_defaults(handler=cmd_schedules_remove)
