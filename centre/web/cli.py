"""``compound-centre users ...`` and ``compound-centre audit verify``: accounts from a shell.

    compound-centre users add alice --role officer
    compound-centre users add zhou --role compound_manager --township North --compound "Rose Garden"
    compound-centre users disable alice
    compound-centre users reset alice          # asks for the new password
    compound-centre users list
    compound-centre audit verify               # exit 1 if the chain is broken

Passwords are read from a no-echo prompt (typed twice) or, when stdin is not a terminal, from
its first line; never from the command line, where ``ps`` and shell history would keep them.
Each command appends one audit record, attributed to ``cli:<login name of the shell user>``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from centre.database import open_console_store
from centre.pki import CentrePaths
from centre.web.audit import verify
from centre.web.console import Console
from centre.web.errors import ConsoleError
from centre.web.permissions import Role

T = TypeVar("T")
_CLIENT = "local"


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in the environment or the password database
        return f"cli:uid{os.getuid()}"


def _run(args: argparse.Namespace, fn: Callable[[Console], Awaitable[T]]) -> T:
    root = Path(args.data).resolve()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)

    async def go() -> T:
        async with await open_console_store(CentrePaths(root)) as store:
            return await fn(Console(store))

    return asyncio.run(go())


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        if getpass.getpass("Same again: ") != first:
            raise ConsoleError("password_mismatch", "the two passwords differ; nothing changed")
        return first
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def cmd_users_add(args: argparse.Namespace) -> int:
    password = _read_password()
    user = _run(
        args,
        lambda c: c.add_user(
            _actor(),
            args.name,
            password,
            Role(args.role),
            township=args.township,
            compound=args.compound,
            client=_CLIENT,
        ),
    )
    print(f"added {user.name} ({user.role.value})")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    ended = _run(args, lambda c: c.disable_user(_actor(), args.name, client=_CLIENT))
    print(f"disabled {args.name}; ended {ended} session(s)")
    return 0


def cmd_users_reset(args: argparse.Namespace) -> int:
    password = _read_password()
    _run(args, lambda c: c.reset_password(_actor(), args.name, password, client=_CLIENT))
    print(f"new password set for {args.name}; its sessions ended")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    users = _run(args, lambda c: c.list_users(_actor(), client=_CLIENT))
    for u in users:
        scope = " / ".join(s for s in (u.township, u.compound) if s) or "district"
        state = "disabled" if u.disabled else "active"
        print(f"{u.name}\t{u.role.value}\t{scope}\t{state}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    async def check(console: Console) -> Any:
        report = verify(await console.store.audit_records())
        outcome = "ok" if report.ok else f"broken:{len(report.problems)}"
        await console.record(_actor(), "audit.verify", "audit", outcome, _CLIENT)
        return report

    report = _run(args, check)
    for problem in report.problems:
        print(f"  - {problem}")
    status = "ok" if report.ok else "BROKEN"
    print(f"audit log {status}: {report.records} records, head {report.head}")
    return 0 if report.ok else 1


def add_console_commands(sub: Any) -> None:
    """Register ``users`` and ``audit`` on the centre's subcommand parser."""
    p = sub.add_parser("users", help="console accounts: add, disable, reset, list")
    usub = p.add_subparsers(dest="users_command", required=True)
    u = usub.add_parser("add", help="add an account (password from a prompt or stdin)")
    u.add_argument("name")
    u.add_argument("--role", required=True, choices=[r.value for r in Role])
    u.add_argument("--township", help="township viewer and compound manager: their township")
    u.add_argument("--compound", help="compound manager: their compound")
    u.set_defaults(func=cmd_users_add)
    u = usub.add_parser("disable", help="disable an account and end its sessions")
    u.add_argument("name")
    u.set_defaults(func=cmd_users_disable)
    u = usub.add_parser("reset", help="set a new password (prompt or stdin), end sessions")
    u.add_argument("name")
    u.set_defaults(func=cmd_users_reset)
    u = usub.add_parser("list", help="list accounts")
    u.set_defaults(func=cmd_users_list)

    p = sub.add_parser("audit", help="the console's audit log")
    asub = p.add_subparsers(dest="audit_command", required=True)
    a = asub.add_parser("verify", help="check the audit log's hash chain; exit 1 if broken")
    a.set_defaults(func=cmd_audit_verify)
