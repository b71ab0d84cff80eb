"""The daemon's factory for broadcast *and* the command channel, sharing one runtime.

    services = broadcast_and_commands(cfg, journal, clock, board)

The command channel must drive the same :class:`~gateway.broadcast.controller.BroadcastController`
as the schedule and the button (one owner of the relays, one arbitration of sources), so it
cannot build its own: this factory builds the broadcast runtime once and adds the channel on
top. No channel without broadcast (nothing to command) or with ``commands.enabled = false`` or
``sync.enabled = false``; an unprovisioned gateway runs it waiting for provisioning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gateway.broadcast.service import runtime_from_config
from gateway.clock import Clock
from gateway.commands.channel import CommandChannel
from gateway.commands.config import CommandsSection
from gateway.errors import CommandRefused
from gateway.journal import Journal
from gateway.sync.config import SyncSection
from wire.commands import Limits

log = logging.getLogger("gateway.commands")


def limits_for(section: CommandsSection, broadcast: Any) -> Limits:
    """The command limits: the channel's own, plus the zones and duration cap of this site."""
    layout = broadcast.layout()
    return Limits(
        max_skew_s=section.max_skew_s,
        max_seq_jump=section.max_seq_jump,
        max_ttl_s=section.max_ttl_s,
        zones=frozenset(layout.zones),
        max_seconds=layout.max_duration_s,
    )


class PendingVerifier:
    """Refuses everything until the channel has loaded the pinned key and the state file."""

    state = None

    async def verify(self, envelope: bytes) -> Any:
        raise CommandRefused("command channel not ready", code="not_ready")


def broadcast_and_commands(
    cfg: Any, journal: Journal, clock: Clock, board: Any = None
) -> list[Any]:
    """Factory for ``gateway.daemon.capability_factories`` (replaces the broadcast one)."""
    runtime = runtime_from_config(cfg, journal, clock, board)
    if runtime is None:
        return []
    services: list[Any] = list(runtime.services)
    section = getattr(cfg, "commands", None) or CommandsSection()
    sync = getattr(cfg, "sync", None) or SyncSection()
    if not section.enabled or not sync.enabled:
        log.info("command channel disabled in the config")
        return services
    data_dir = Path(cfg.data_dir)
    state = Path(section.state_file)
    channel = CommandChannel(
        journal,
        clock,
        sync,
        section,
        data_dir=data_dir,
        trigger=runtime.remote(PendingVerifier()),
        publish=getattr(board, "publish", None),
    )
    channel.configure_verifier(
        gateway_id=cfg.gateway.id,
        state_path=state if state.is_absolute() else data_dir / state,
        limits=limits_for(section, cfg.broadcast),
    )
    services.append(channel)
    return services
