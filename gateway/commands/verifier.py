"""The real :class:`~gateway.broadcast.remote.CommandVerifier`: pinned key, durable sequence.

    verifier = await ChannelVerifier.open(pub, "gw-rose-01", state_path, clock, limits)
    cmd = await verifier.verify(envelope)   # VerifiedCommand, or raises CommandRefused(code=...)

All the rules are :func:`wire.commands.check_command` (pure); this class adds the two things
that need I/O: trusted time (see :mod:`gateway.commands.state`) and committing the new
last-accepted sequence to disk *before* returning, so nothing can move on a command whose
sequence could be accepted again after a crash. One envelope is verified at a time.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.broadcast.remote import VerifiedCommand, digest
from gateway.clock import Clock
from gateway.commands.state import CommandState, load_state, save_state
from gateway.errors import CommandRefused
from wire.commands import (
    BAD_ENCODING,
    Accepted,
    BroadcastStart,
    CameraSnapshot,
    Command,
    Limits,
    check_command,
)


def verified(cmd: Command, envelope: bytes) -> VerifiedCommand:
    """The channel's (and the broadcast layer's) view of an accepted command."""
    start = cmd.action if isinstance(cmd.action, BroadcastStart) else None
    look = cmd.action if isinstance(cmd.action, CameraSnapshot) else None
    return VerifiedCommand(
        command_id=cmd.command_id,
        gateway=cmd.gateway,
        action=cmd.action_name,
        seq=cmd.seq,
        issued_at=cmd.issued_at,
        expires_at=cmd.expires_at,
        key_id=cmd.key_id,
        digest=digest(envelope),
        zones=start.zones if start else (),
        duration_s=start.seconds if start else 0.0,
        announcement=start.announcement if start else "",
        status=start.status if start else "Actual",
        announcement_sha256=start.announcement_sha256 if start else "",
        camera=look.camera if look else "",
    )


class ChannelVerifier:
    """Verifies envelopes for one gateway; ``state`` is the durable last-accepted sequence."""

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        gateway_id: str,
        state_path: Path,
        clock: Clock,
        limits: Limits,
        state: CommandState,
    ) -> None:
        self.public_key = public_key
        self.gateway_id = gateway_id
        self.state_path = state_path
        self.clock = clock
        self.limits = limits
        self.state = state
        self._seen_wall = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        public_key: Ed25519PublicKey,
        gateway_id: str,
        state_path: Path,
        clock: Clock,
        limits: Limits,
    ) -> ChannelVerifier:
        state = await asyncio.to_thread(load_state, state_path)
        return cls(public_key, gateway_id, state_path, clock, limits, state)

    def trusted_now(self) -> float:
        """max(wall clock, centre-signed floor, newest wall seen in this run): never backwards."""
        self._seen_wall = max(self._seen_wall, self.clock.wall())
        return max(self._seen_wall, self.state.floor)

    async def verify(self, envelope: bytes) -> VerifiedCommand:
        """The verified command, or CommandRefused (``code`` in its fields) and only that."""
        async with self._lock:
            try:
                verdict = check_command(
                    envelope,
                    self.public_key,
                    self.gateway_id,
                    self.state.last_seq,
                    self.trusted_now(),
                    self.limits,
                )
            except Exception as exc:  # the trust boundary: whatever the bytes break, refuse
                # wire refuses what it knows; anything else it lets escape (a 5000-digit
                # integer's ValueError, say) is still the envelope's fault, never a crash.
                raise CommandRefused(
                    f"envelope could not be checked: {type(exc).__name__}: {str(exc)[:200]}",
                    code=BAD_ENCODING,
                ) from exc
            if not isinstance(verdict, Accepted):
                fields = {k: v for k, v in verdict.as_dict().items() if k != "reason"}
                raise CommandRefused(verdict.reason, **fields)
            cmd = verdict.command
            new = CommandState(cmd.seq, max(self.state.floor, cmd.issued_at), cmd.command_id)
            await asyncio.to_thread(save_state, self.state_path, new)  # durable first
            self.state = new
            return verified(cmd, envelope)
