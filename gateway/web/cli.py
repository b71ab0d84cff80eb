"""``compound-gw web set-password``: set the status page's login password (there is no default).

    compound-gw web set-password                     # asks twice, without echo
    echo "$PW" | compound-gw web set-password --password-stdin
    compound-gw web clear-password                   # nobody can log in; the page is read-only

The scrypt hash goes to ``web.password_file`` (default ``web-password`` beside the config) as
a 0600 file; run as root, it is handed to the ``compound-gw`` user so the daemon (and nobody
else) can read it. The running daemon picks a new password up at the next login, and sessions
opened with the old one end.

Wiring (the lead): add ``"gateway.web.cli"`` to ``CLI_EXTENSIONS``; ``add_cli`` registers it.
"""

from __future__ import annotations

import argparse
import getpass
import os
import pwd
import sys
from typing import Any

from gateway.config import load_config, write_secret_file
from gateway.errors import ConfigError
from gateway.i18n import _
from gateway.web.app import default_password_path
from gateway.web.auth import check_new_password, hash_password

DAEMON_USER = "compound-gw"
DEFAULT_CONFIG = "/etc/compound-gw/gateway.toml"


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("New status page password: ")
    check_new_password(first)
    if getpass.getpass("Again: ") != first:
        raise ConfigError("web.password", "the two entries differ")
    return first


def _file_owner(owner: str | None) -> pwd.struct_passwd | None:
    """Who must own the file: as root, the daemon's user (it reads the 0600 file); else us.

    Resolved before anything is written, so a wrong ``--owner`` changes nothing.
    """
    if os.geteuid() != 0:
        return None
    name = owner or DAEMON_USER
    try:
        return pwd.getpwnam(name)
    except KeyError:
        if owner:
            raise ConfigError("--owner", f"no user {owner!r} on this system") from None
        return None  # no daemon user (a development box): root keeps it


def cmd_set_password(args: argparse.Namespace) -> int:
    """Hash a new password into the password file (0600)."""
    cfg = load_config(args.config)
    path = default_password_path(cfg)
    owner = _file_owner(args.owner)
    password = _read_password(args)
    line = hash_password(password)  # checks length again for --password-stdin
    write_secret_file(path, (line + "\n").encode("ascii"), hex_text=False)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    who = owner.pw_name if owner else pwd.getpwuid(os.geteuid()).pw_name
    print(f"password set: {path} (0600, owner {who}); older logins have ended")
    return 0


def cmd_clear_password(args: argparse.Namespace) -> int:
    """Remove the password file: nobody can log in, the page stays read-only."""
    cfg = load_config(args.config)
    path = default_password_path(cfg)
    try:
        path.unlink()
    except FileNotFoundError:
        print(f"no password was set ({path} does not exist)")
        return 0
    print(f"password removed: {path}; the status page is read-only")
    return 0


def add_cli(subparsers: Any) -> None:
    """Register ``web set-password`` and ``web clear-password`` on the main parser."""
    web = subparsers.add_parser("web", help=_("the local status page"))
    sub = web.add_subparsers(dest="web_command", required=True, metavar=_("SUBCOMMAND"))
    for name, handler, text in (
        ("set-password", cmd_set_password, _("set the login password (asks twice)")),
        ("clear-password", cmd_clear_password, _("remove the password: nobody can log in")),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--config",
            "-c",
            default=os.environ.get("COMPOUND_GW_CONFIG", DEFAULT_CONFIG),
            help=_("gateway config file (default: $COMPOUND_GW_CONFIG or %(default)s)"),
        )
        if name == "set-password":
            p.add_argument(
                "--password-stdin", action="store_true", help=_("read the password from stdin")
            )
            p.add_argument(
                "--owner",
                help=_("user to own the file when run as root (default %(user)s)")
                % {"user": DAEMON_USER},
            )
        p.set_defaults(handler=handler)
