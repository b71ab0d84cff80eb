"""``compound-gw nodes update``: a signed firmware image to one checkpoint node over its bus.

    compound-gw nodes update BUNDLE --bus north --address 3 --hardware node-rp2040 \\
        [--installed-release 4] [--trusted-key /etc/compound-gw/update-key.pub] [--timeout 900]

The bundle is verified as ``update verify`` does (signature, expiry, hardware, rollback against
``--installed-release``) and must hold one ``node.img``; a refusal is printed and recorded in the
update outbox the daemon journals (``update.refused`` with the node). Then the bus's port is
opened exclusively (stop the daemon first, as for ``reader pair``), the node is brought up in
Secure Channel with its key and the image is sent by osdp_FILETRANSFER (:mod:`gateway.update.node`
verifies, :mod:`drivers.osdp_filetx` sends). The node switches to it at its next start and falls
back by itself if the new firmware does not come up in Secure Channel (docs/checkpoint-node.md).
Exit codes: 0 sent; 1 refused or not sent; 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from gateway.i18n import N_, _

DEFAULT_TRUSTED_KEY = "/etc/compound-gw/update-key.pub"

SEND_WORDS = {
    "refused": N_("the node refused the image; it stays on its current firmware"),
    "stalled": N_("the node did not take the transfer"),
    "timeout": N_("the transfer did not finish in time"),
    "no_secure_channel": N_("the node did not come up in the secure channel"),
}


def _record_refusal(args: argparse.Namespace, exc: Any, node: str) -> None:
    from gateway.config import load_config
    from gateway.errors import ConfigError
    from gateway.update.outbox import OUTBOX_NAME, Outbox

    try:
        cfg = load_config(args.config)
    except (ConfigError, OSError):  # no readable gateway config: the refusal is only printed
        return
    payload = {"code": exc.code, "reason": exc.reason, "bundle": Path(args.bundle).name}
    payload.update({k: v for k, v in exc.fields.items() if k != "code"})
    payload["node"] = node
    Outbox(cfg.data_dir / OUTBOX_NAME).record("update.refused", payload)


def cmd_nodes_update(args: argparse.Namespace) -> int:
    from serial import SerialException

    from drivers.osdp_filetx import update_node_on_port
    from gateway.checkpoints.cli import load_section
    from gateway.checkpoints.config import load_reader_key
    from gateway.errors import ConfigError
    from gateway.update.bundle import UpdateRefused, load_public_key
    from gateway.update.cli import REFUSAL_WORDS
    from gateway.update.node import load_node_image

    try:
        section, base, _status = load_section(args)
        public_key = load_public_key(Path(args.trusted_key))
    except ConfigError as exc:
        print(_("Configuration problem: %(reason)s") % {"reason": exc.reason}, file=sys.stderr)
        return 2
    except (OSError, ValueError):
        print(_("The pinned update key cannot be read."), file=sys.stderr)
        return 2
    bus = section.bus(args.bus)
    point = section.point_at(args.bus, args.address) if bus is not None else None
    if bus is None or point is None:
        print(_("No checkpoint at %(bus)s/%(address)d in the configuration.")
              % {"bus": args.bus, "address": args.address}, file=sys.stderr)  # fmt: skip
        return 2
    node = f"{bus.name}/{point.address}"
    try:
        image = load_node_image(
            Path(args.bundle),
            public_key,
            now=time.time(),
            hardware=args.hardware,
            installed_release=args.installed_release,
        )
    except UpdateRefused as exc:
        _record_refusal(args, exc, node)
        words = REFUSAL_WORDS.get(exc.code)
        print(_("Update refused: %(why)s.") % {"why": _(words) if words else exc.code},
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        scbk = load_reader_key(section, point, base)
    except ConfigError as exc:
        print(_("Configuration problem: %(reason)s") % {"reason": exc.reason}, file=sys.stderr)
        return 2
    try:
        result = update_node_on_port(
            bus.port,
            bus.baud,
            point.address,
            scbk,
            image.release,
            image.image,
            image.sha256,
            timeout=args.timeout,
        )
    except (OSError, SerialException):  # port busy (daemon running), no adapter
        print(_("Cannot open %(port)s: is the daemon running? Stop it first.")
              % {"port": bus.port}, file=sys.stderr)  # fmt: skip
        return 1
    if not result.ok:
        why = SEND_WORDS.get(result.reason, result.reason)
        print(_("Firmware not sent to %(node)s: %(why)s.") % {"node": node, "why": _(why)},
              file=sys.stderr)  # fmt: skip
        return 1
    print(
        _(
            "Firmware %(version)s sent to %(node)s in %(seconds)d seconds; the node switches "
            "to it at its next start."
        )
        % {"version": image.version, "node": node, "seconds": round(result.seconds)}
    )
    return 0


def add_cli(subparsers: Any) -> None:
    """Register ``nodes update`` on the ``compound-gw`` parser."""
    from gateway.checkpoints.cli import _common

    p = subparsers.add_parser("nodes", help=_("checkpoint node firmware"))
    sub = p.add_subparsers(dest="nodes_command", required=True)
    u = sub.add_parser(
        "update", help=_("send a signed firmware image to one checkpoint node over its bus")
    )
    _common(u)
    u.add_argument("bundle", help=_("node update bundle folder"))
    u.add_argument("--bus", required=True, help=_("bus name from [checkpoints]"))
    u.add_argument("--address", required=True, type=int, help=_("the reader's OSDP address"))
    u.add_argument("--hardware", required=True, help=_("the node's board, as named in the bundle"))
    u.add_argument(
        "--installed-release",
        type=int,
        default=0,
        help=_("release the node runs now; a bundle not newer is refused"),
    )
    u.add_argument(
        "--trusted-key",
        default=DEFAULT_TRUSTED_KEY,
        help=_("pinned update public key, 64 hex digits (default %(default)s)"),
    )
    u.add_argument("--timeout", type=float, default=900.0, help=_("seconds the transfer may take"))
    u.set_defaults(handler=cmd_nodes_update)
