"""``compound-gw setup`` and ``compound-gw selftest`` (the lead registers ``add_cli``).

    compound-gw setup [--config PATH] [--answers FILE] [--state FILE] [--restart]
    compound-gw selftest [--config PATH] [--answers FILE] [--tap-timeout S] [--json]

Exit codes: 0 ok, 1 a step or check failed (setup resumes from there next time), 2 bad usage
or configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from gateway.i18n import _

DEFAULT_CONFIG = "/etc/compound-gw/gateway.toml"
DAEMON_USER = "compound-gw"


def key_owner(name: str) -> tuple[int, int] | None:
    """As root, (uid, gid) of the daemon's user, who reads the 0600 keys; else None."""
    import pwd

    from gateway.errors import ConfigError

    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(name or DAEMON_USER)
    except KeyError:
        if name:
            raise ConfigError("--owner", f"no user {name!r} on this system") from None
        return None  # a development box without the daemon's user: root keeps the files
    return entry.pw_uid, entry.pw_gid


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "-c",
        default=os.environ.get("COMPOUND_GW_CONFIG", DEFAULT_CONFIG),
        help=_("gateway config file (default: $COMPOUND_GW_CONFIG or %(default)s)"),
    )


def add_cli(subparsers: Any) -> None:
    """Register ``setup`` and ``selftest`` on the ``compound-gw`` parser."""
    p = subparsers.add_parser("setup", help=_("guided, resumable installation wizard"))
    _config_arg(p)
    p.add_argument("--answers", default="", help=_("answers file (TOML): run without questions"))
    p.add_argument("--state", default="", help=_("state file (default: beside the config)"))
    p.add_argument("--restart", action="store_true", help=_("forget the state and start over"))
    p.add_argument(
        "--data-dir",
        default="/var/lib/compound-gw",
        help=_("at the terminal: the gateway's data folder (journal, keys; default %(default)s)"),
    )
    p.add_argument(
        "--runtime-dir",
        default="/run/compound-gw",
        help=_("at the terminal: the live status folder (default %(default)s)"),
    )
    p.add_argument(
        "--redo",
        default="",
        metavar="STEP",
        help=_("ask a step's questions again and redo it (e.g. guards, route, schedule, relays; "
        "'gateway' for the id and names); the config is written again"),
    )
    p.add_argument(
        "--owner",
        default="",
        help=_("as root: user that must own the keys written (default %(user)s if it exists)")
        % {"user": DAEMON_USER},
    )
    p.set_defaults(handler=cmd_setup)

    s = subparsers.add_parser("selftest", help=_("check everything again; signed report"))
    _config_arg(s)
    s.add_argument("--tap-timeout", type=float, default=120.0, help=_("seconds to wait per tap"))
    s.add_argument("--no-taps", action="store_true", help=_("skip the tap-each-reader check"))
    s.add_argument(
        "--click-seconds", type=float, default=1.0, help=_("each zone stays on this long")
    )
    s.add_argument("--report", default="", help=_("also write the signed report (JSON) here"))
    s.add_argument("--json", action="store_true", help=_("print the signed report as JSON"))
    s.set_defaults(handler=cmd_selftest)


def cmd_setup(args: argparse.Namespace) -> int:
    from gateway.errors import ConfigError
    from gateway.i18n import _
    from gateway.setup.answers import load_answers
    from gateway.setup.interactive import Asker, InputEnded, interactive_answers
    from gateway.setup.state import StateFile
    from gateway.setup.wizard import REDO_ANSWERS, STEPS, Wizard, default_state_path

    config = Path(args.config)
    state_path = Path(args.state) if args.state else default_state_path(config)
    if args.restart:
        state_path.unlink(missing_ok=True)
    owner = key_owner(args.owner)
    state = StateFile.load(state_path)
    if args.redo:
        if args.redo not in (*STEPS, "gateway"):
            raise ConfigError(
                "--redo", f"{args.redo!r} is not a step: {', '.join((*STEPS, 'gateway'))}"
            )
        state.redo(args.redo, REDO_ANSWERS.get(args.redo, ()))
    if args.answers:
        answers = load_answers(args.answers)
        wizard = Wizard(answers, config_path=config, state=state, machine=True, owner=owner)
    else:
        asker = Asker(state.answers(), save=state.save)
        try:
            answers = interactive_answers(
                config, asker, data_dir=args.data_dir, runtime_dir=args.runtime_dir
            )
        except (InputEnded, KeyboardInterrupt):
            print()
            print(_("stopped; every answer so far is kept: run `compound-gw setup` again"))
            return 1
        wizard = Wizard(
            answers, config_path=config, state=state, machine=False, asker=asker, owner=owner
        )
    print(f"setup of {answers.gateway.id} ({answers.gateway.compound}); state in {state_path}")
    sys.stdout.flush()
    return wizard.run()


def cmd_selftest(args: argparse.Namespace) -> int:
    from gateway.setup.selftest import run_selftest

    return run_selftest(
        Path(args.config),
        tap_timeout_s=args.tap_timeout,
        taps=not args.no_taps,
        click_seconds=args.click_seconds,
        report_path=Path(args.report) if args.report else None,
        as_json=args.json,
    )
