"""Issuing commands: sign with the centre's command key and queue one per target gateway.

    key = load_command_key(paths)
    records = await issue(store, repo, key, BroadcastStart((1, 2), 90, "fire-drill", "Exercise"),
                          compound="Rose Garden", ttl_s=120, now=time.time(), issued_by="cli")

Each gateway gets its own command (its own id and its own next sequence number) so a command
for one compound can never be replayed at another. The envelope is signed inside the queue's
transaction, once the sequence is known, and never changes afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre.commands.store import CommandRecord, CommandRepository, NewCommand
from centre.errors import CentreError
from centre.pki import CentrePaths
from centre.store import Repository
from wire.commands import Action, BroadcastStart, CameraSnapshot, build_command, seal_command

MAX_TTL_S = 3600.0  # the gateways refuse longer-lived commands (wire.commands.Limits.max_ttl_s)


def load_command_key(paths: CentrePaths) -> Ed25519PrivateKey:
    """The command signing key (``command/command-key.pem``), never the CA or TLS key."""
    try:
        key = serialization.load_pem_private_key(paths.command_key.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise CentreError(f"cannot read the command key {paths.command_key}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise CentreError(f"{paths.command_key} is not an Ed25519 key")
    return key


def parse_zones(text: str) -> tuple[int, ...]:
    """``"1,2"`` → ``(1, 2)``."""
    try:
        zones = tuple(int(z) for z in text.split(",") if z.strip())
    except ValueError as exc:
        raise CentreError(f"--zones {text!r}: expected numbers separated by commas") from exc
    if not zones or any(z < 1 for z in zones) or len(set(zones)) != len(zones):
        raise CentreError(f"--zones {text!r}: give distinct zone numbers, 1 or more")
    return zones


def summarise(action: Action) -> str:
    if isinstance(action, BroadcastStart):
        zones = ",".join(str(z) for z in action.zones)
        ann = f" {action.announcement}" if action.announcement else ""
        return f"zones {zones} {action.seconds:g}s{ann} [{action.status}]"
    if isinstance(action, CameraSnapshot):
        return f"camera {action.camera}"
    return ""


async def targets(
    repo: Repository, *, compound: str | None = None, all_gateways: bool = False
) -> list[str]:
    """Enrolled, unrevoked gateways of ``compound`` (or all of them)."""
    if not all_gateways and not compound:
        raise CentreError("name a --compound or say --all")
    ids = [
        g.gateway_id
        for g in await repo.gateways()
        if g.revoked_at is None and (all_gateways or g.compound == compound)
    ]
    if not ids:
        where = "any compound" if all_gateways else f"compound {compound!r}"
        raise CentreError(f"no enrolled, unrevoked gateway in {where}")
    return ids


async def issue(
    store: CommandRepository,
    gateway_ids: Sequence[str],
    key: Ed25519PrivateKey,
    action: Action,
    *,
    ttl_s: float,
    now: float,
    issued_by: str,
) -> list[CommandRecord]:
    """Queue ``action`` for each gateway; returns the stored records."""
    if not 1 <= ttl_s <= MAX_TTL_S:
        raise CentreError(f"--ttl must be 1..{MAX_TTL_S:g} seconds")
    out = []
    for gw in gateway_ids:

        def build(seq: int, gw: str = gw) -> NewCommand:
            cmd = build_command(
                command_id=f"cmd-{uuid.uuid4().hex[:16]}",
                gateway=gw,
                seq=seq,
                action=action,
                issued_at=now,
                public_key=key.public_key(),
                ttl_s=ttl_s,
            )
            return NewCommand(
                cmd.command_id,
                action.name,
                summarise(action),
                cmd.issued_at,
                cmd.expires_at,
                seal_command(cmd, key),
            )

        out.append(await store.enqueue(gw, build, now=now, issued_by=issued_by))
    return out
