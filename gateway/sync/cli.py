"""``compound-gw provision``: enroll this gateway with the district centre.

    compound-gw provision --centre https://centre:8443 --token cgt-... --ca-fingerprint sha256:...

The lead's CLI registers it: ``add_cli(subparsers)`` adds the subcommand; the handler reads the
gateway config (``--config``) for the gateway id, compound and data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from gateway.errors import GatewayError
from gateway.sync.config import SyncSection
from gateway.sync.provision import provision

DEFAULT_CONFIG = "/etc/compound-gw/gateway.toml"


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "provision", help="enroll with the district centre (key made here, CA pinned)"
    )
    p.add_argument(
        "--config",
        "-c",
        default=os.environ.get("COMPOUND_GW_CONFIG", DEFAULT_CONFIG),
        help="gateway config file (gateway id, compound, data_dir)",
    )
    p.add_argument("--centre", required=True, help="centre URL, https://host:port")
    p.add_argument(
        "--token", required=True, help="one-time token from `compound-centre token create`"
    )
    p.add_argument(
        "--ca-fingerprint",
        help="SHA-256 of the centre's CA certificate, as the centre operator gave it "
        "(strongly recommended; without it the CA is trusted on first use)",
    )
    p.set_defaults(handler=cmd_provision)  # gateway.cli.main calls args.handler(args)


def cmd_provision(args: argparse.Namespace) -> int:
    from gateway.config import load_config

    try:
        cfg = load_config(args.config)
        section = getattr(cfg, "sync", None) or SyncSection()
        result = asyncio.run(
            provision(
                args.centre,
                args.token,
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
