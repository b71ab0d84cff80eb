"""``compound-gw provision``: enroll this gateway with the district centre.

    compound-gw provision --centre https://centre:8443 --ca-fingerprint sha256:...   # asks
    compound-gw provision --centre ... --ca-fingerprint ... --token-file /root/token   # 0600 file
    printf '%s\n' "$TOKEN" | compound-gw provision --centre ... --ca-fingerprint ...  # stdin

The one-time token never travels in argv (it would show in ``ps`` and shell history): it is
asked without echo on a terminal, read from stdin otherwise, or from a 0600 ``--token-file``.
The old ``--token VALUE`` still works, with a warning, for scripts not yet changed.

The lead's CLI registers it: ``add_cli(subparsers)`` adds the subcommand; the handler reads the
gateway config (``--config``) for the gateway id, compound and data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import stat
import sys
from pathlib import Path
from typing import TextIO

from gateway.errors import GatewayError, SyncError
from gateway.i18n import _
from gateway.sync.config import SyncSection
from gateway.sync.provision import provision

DEFAULT_CONFIG = "/etc/compound-gw/gateway.toml"


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "provision", help=_("enroll with the district centre (key made here, CA pinned)")
    )
    p.add_argument(
        "--config",
        "-c",
        default=os.environ.get("COMPOUND_GW_CONFIG", DEFAULT_CONFIG),
        help=_("gateway config file (gateway id, compound, data_dir)"),
    )
    p.add_argument("--centre", required=True, help=_("centre URL, https://host:port"))
    p.add_argument(
        "--token-file",
        default="",
        help=_(
            "file (mode 0600) holding the one-time token from `compound-centre token create`; "
            "without it the token is asked (no echo) or read from stdin"
        ),
    )
    # Deprecated: a token in argv lands in `ps` and shell history. Hidden, warned about.
    p.add_argument("--token", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--ca-fingerprint",
        help=_(
            "SHA-256 of the centre's CA certificate, as the centre operator gave it "
            "(strongly recommended; without it the CA is trusted on first use)"
        ),
    )
    p.set_defaults(handler=cmd_provision)  # gateway.cli.main calls args.handler(args)


MAX_TOKEN_BYTES = 4096


def read_token_file(path: Path) -> str:
    """The token in a file only its owner can read (0600/0400); SyncError otherwise."""
    try:
        st = path.stat()
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SyncError(
                _("token file {path} has mode {mode}; make it 0600 (chmod 600 {path})").format(
                    path=path, mode=f"{stat.S_IMODE(st.st_mode):04o}"
                )
            )
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_TOKEN_BYTES)
    except OSError as exc:
        raise SyncError(
            _("cannot read token file {path}: {error}").format(path=path, error=exc.strerror)
        ) from exc
    except UnicodeDecodeError as exc:
        raise SyncError(_("token file {path} is not text").format(path=path)) from exc
    return text.strip()


def read_token(args: argparse.Namespace, stdin: TextIO | None = None) -> str:
    """The enrollment token from --token-file, the deprecated --token, a no-echo prompt (on a
    terminal) or the first line of stdin. SyncError when there is none."""
    stdin = stdin if stdin is not None else sys.stdin
    if args.token_file:
        token = read_token_file(Path(args.token_file))
    elif args.token is not None:
        print(
            _(
                "warning: --token puts the token in `ps` and shell history; use --token-file "
                "or type it when asked (this form will go away)"
            ),
            file=sys.stderr,
        )
        token = args.token.strip()
    elif stdin.isatty():
        token = getpass.getpass(_("enrollment token: ")).strip()
    else:
        token = stdin.readline(MAX_TOKEN_BYTES).strip()
    if not token:
        raise SyncError(
            _("no enrollment token given (type it when asked, pipe it, or --token-file)")
        )
    return token


def cmd_provision(args: argparse.Namespace) -> int:
    from gateway.config import load_config

    try:
        token = read_token(args)
        cfg = load_config(args.config)
        section = getattr(cfg, "sync", None) or SyncSection()
        result = asyncio.run(
            provision(
                args.centre,
                token,
                data_dir=Path(cfg.data_dir),
                gateway_id=cfg.gateway.id,
                compound=cfg.gateway.compound,
                ca_fingerprint=args.ca_fingerprint,
                section=section,
            )
        )
    except GatewayError as exc:
        detail = " ".join(f"{k}={v}" for k, v in exc.fields.items())
        print(
            f"provision failed: {exc.reason}" + (f" ({detail})" if detail else ""), file=sys.stderr
        )
        return 1
    print(f"provisioned {result.gateway_id} for {result.compound!r} at {result.centre_url}")
    print(f"certificate: {result.cert_path}; key id {result.key_id}")
    if result.trusted_on_first_use:
        print(
            f"WARNING: no --ca-fingerprint given; trusted CA sha256:{result.ca_fingerprint} "
            "on first use - compare it with the centre operator's value now"
        )
    return 0
