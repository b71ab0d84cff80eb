"""Remote trigger: only commands a verifier accepted ever reach the relays.

The command channel (issue 9) owns the real verifier (pinned command key, per-gateway
sequence committed durably, expiry, skew). It plugs in through :class:`CommandVerifier`,
whose only product is a :class:`VerifiedCommand`; :class:`RemoteTrigger` takes nothing else.
Until that lands, :class:`LocalTestSigner` / :class:`LocalCommandVerifier` use the same
envelope (``wire.seal("command", body, key)``) with the same rules, in memory::

    signer = LocalTestSigner.generate(gateway_id="gw-01")
    trigger = RemoteTrigger(controller, signer.verifier(clock))
    ticket = await trigger.handle_envelope(signer.start(zones=(1, 2), duration_s=90, now=t))
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import wire
from gateway.broadcast.audio import AudioPlayer
from gateway.broadcast.controller import BroadcastController, Ticket
from gateway.broadcast.library import AnnouncementCache, AnnouncementUnavailable
from gateway.broadcast.plan import StartRequest
from gateway.clock import Clock
from gateway.errors import CommandRefused

ACTIONS = ("broadcast.start", "broadcast.stop")
STATUSES = ("Actual", "Exercise", "Test")
DEFAULT_TTL_S = 120.0
MAX_SKEW_S = 30.0
MAX_SEQ_JUMP = 1_000_000


@dataclass(frozen=True, slots=True)
class VerifiedCommand:
    """A command whose signature, target, sequence and validity window were checked."""

    command_id: str
    gateway: str
    action: str
    seq: int
    issued_at: float
    expires_at: float
    key_id: str
    digest: str  # SHA-256 of the envelope bytes, hex
    zones: tuple[int, ...] = ()
    duration_s: float = 0.0
    announcement: str = ""
    status: str = "Actual"
    announcement_sha256: str = ""  # a centre announcement: play exactly these bytes
    camera: str = ""  # camera.snapshot (look now): which camera; never reaches the relays

    def describe(self) -> dict[str, Any]:
        return {
            "command_id": self.command_id,
            "action": self.action,
            "seq": self.seq,
            "key_id": self.key_id,
            "digest": self.digest,
            "status": self.status,
        }


class CommandVerifier(Protocol):
    """Checks an envelope; returns the command or raises CommandRefused(reason, **fields)."""

    async def verify(self, envelope: bytes) -> VerifiedCommand: ...


def digest(envelope: bytes) -> str:
    return hashlib.sha256(envelope).hexdigest()


def command_from_body(body: Mapping[str, Any], key_id: str, envelope: bytes) -> VerifiedCommand:
    """Shape checks of a command body (after its signature verified)."""
    try:
        action = body["action"]
        args = body.get("args", {})
        if action not in ACTIONS:
            raise CommandRefused(f"unknown action {action!r}")
        zones = tuple(int(z) for z in args.get("zones", ()))
        status = args.get("status", "Actual")
        if status not in STATUSES:
            raise CommandRefused(f"unknown status {status!r}")
        return VerifiedCommand(
            command_id=str(body["command_id"]),
            gateway=str(body["gateway"]),
            action=action,
            seq=int(body["seq"]),
            issued_at=float(body["issued_at"]),
            expires_at=float(body["expires_at"]),
            key_id=key_id,
            digest=digest(envelope),
            zones=zones,
            duration_s=float(args.get("duration_s", 0.0)),
            announcement=str(args.get("announcement", "")),
            status=status,
            announcement_sha256=str(args.get("announcement_sha256", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CommandRefused("command body is malformed", detail=str(exc)) from exc


class LocalCommandVerifier:
    """Stand-in verifier (in-memory sequence) with the command channel's rules."""

    def __init__(self, public_key: Ed25519PublicKey, gateway_id: str, clock: Clock) -> None:
        self.public_key = public_key
        self.gateway_id = gateway_id
        self.clock = clock
        self.last_seq = 0

    async def verify(self, envelope: bytes) -> VerifiedCommand:
        try:
            body, kid, sig = wire.split_envelope(envelope, wire.COMMAND_TYPE)
            wire.verify(wire.COMMAND_TYPE, body, sig, self.public_key)
        except wire.WireError as exc:
            raise CommandRefused(f"envelope refused: {exc}") from exc
        cmd = command_from_body(body, kid, envelope)
        now = self.clock.wall()
        if cmd.gateway != self.gateway_id:
            raise CommandRefused("addressed to another gateway", gateway=cmd.gateway)
        if cmd.seq <= self.last_seq:
            raise CommandRefused(
                "sequence not above the last accepted", seq=cmd.seq, last=self.last_seq
            )
        if cmd.seq - self.last_seq > MAX_SEQ_JUMP:
            raise CommandRefused("sequence jumps too far", seq=cmd.seq, last=self.last_seq)
        if now < cmd.issued_at - MAX_SKEW_S:
            raise CommandRefused("not yet valid", issued_at=cmd.issued_at, now=now)
        if now > cmd.expires_at:
            raise CommandRefused("expired", expires_at=cmd.expires_at, now=now)
        self.last_seq = cmd.seq
        return cmd


class LocalTestSigner:
    """Signs command envelopes like the centre will (tests, bench, installer drills)."""

    def __init__(self, private_key: Ed25519PrivateKey, gateway_id: str) -> None:
        self.private_key = private_key
        self.gateway_id = gateway_id
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)

    @classmethod
    def generate(cls, gateway_id: str) -> LocalTestSigner:
        return cls(Ed25519PrivateKey.generate(), gateway_id)

    def verifier(self, clock: Clock) -> LocalCommandVerifier:
        return LocalCommandVerifier(self.private_key.public_key(), self.gateway_id, clock)

    def envelope(
        self,
        action: str,
        args: Mapping[str, Any],
        *,
        now: float,
        ttl_s: float = DEFAULT_TTL_S,
        seq: int | None = None,
        gateway: str | None = None,
    ) -> bytes:
        body = {
            "command_id": f"c{next(self._ids)}",
            "gateway": gateway or self.gateway_id,
            "action": action,
            "args": dict(args),
            "seq": next(self._seq) if seq is None else seq,
            "issued_at": now,
            "expires_at": now + ttl_s,
        }
        return wire.seal(wire.COMMAND_TYPE, body, self.private_key)

    def start(
        self,
        zones: tuple[int, ...],
        duration_s: float,
        *,
        now: float,
        announcement: str = "",
        **kw: Any,
    ) -> bytes:
        args = {
            "zones": list(zones),
            "duration_s": duration_s,
            "announcement": announcement,
            "status": "Actual",
        }
        return self.envelope("broadcast.start", args, now=now, **kw)

    def stop(self, *, now: float, **kw: Any) -> bytes:
        return self.envelope("broadcast.stop", {}, now=now, **kw)


class RemoteTrigger:
    """Feeds verified remote commands to the controller; records receipt and refusals."""

    def __init__(
        self,
        controller: BroadcastController,
        verifier: CommandVerifier,
        *,
        cache: AnnouncementCache | None = None,
        audio: AudioPlayer | None = None,
    ) -> None:
        self.controller = controller
        self.verifier = verifier
        self.cache = cache
        self.audio = audio

    async def prepare(self, cmd: VerifiedCommand) -> None:
        """Before a start naming a centre announcement runs: have its exact bytes (fetched
        and hash-verified) and a player for them, or raise CommandRefused(code=...) with why.
        Raises nothing else."""
        if cmd.action != "broadcast.start" or not cmd.announcement_sha256:
            return
        detail = {"announcement": cmd.announcement, "sha256": cmd.announcement_sha256}
        try:
            if self.audio is None or self.cache is None:
                raise AnnouncementUnavailable(
                    "no audio player on this gateway ([broadcast.audio] enabled = false)"
                )
            path = await self.cache.ensure(cmd.announcement, cmd.announcement_sha256)
        except AnnouncementUnavailable as exc:
            await self.controller.record(
                "broadcast.announcement_refused",
                {"command_id": cmd.command_id, **detail, "code": exc.code, "reason": exc.reason},
            )
            raise CommandRefused(exc.reason, code=exc.code) from exc
        except Exception as exc:  # a fault of ours must still be a refusal, never a crash
            raise CommandRefused(
                f"announcement could not be prepared: {type(exc).__name__}",
                code="announcement_unavailable",
            ) from exc
        self.audio.prepare(f"cmd:{cmd.command_id}", path, cmd.announcement_sha256)

    async def handle_envelope(self, envelope: bytes) -> Ticket | None:
        """Verify and run one envelope; None when refused (the refusal is journaled)."""
        await self.controller.record(
            "broadcast.command_received", {"digest": digest(envelope), "bytes": len(envelope)}
        )
        try:
            cmd = await self.verifier.verify(envelope)
            await self.prepare(cmd)  # a centre announcement: at hand and verified, or refused
        except CommandRefused as exc:
            await self.controller.record(
                "broadcast.command_refused",
                {
                    "digest": digest(envelope),
                    "reason": exc.reason,
                    **{k: v for k, v in exc.fields.items() if isinstance(v, str | int | float)},
                },
            )
            return None
        return await self.execute(cmd)

    async def execute(self, cmd: VerifiedCommand) -> Ticket | None:
        """Run a command the verifier produced (the only type accepted)."""
        if not isinstance(cmd, VerifiedCommand):
            raise TypeError("only a VerifiedCommand from a CommandVerifier is accepted")
        if cmd.action not in ACTIONS:  # e.g. camera.snapshot: never the relays' business
            raise CommandRefused(f"{cmd.action} is not a broadcast command", code="unknown_action")
        await self.controller.record("broadcast.command_verified", cmd.describe())
        if cmd.action == "broadcast.stop":
            self.controller.submit_stop("remote", f"command {cmd.command_id}")
            return None
        return self.controller.submit_start(
            StartRequest(
                request_id=f"cmd:{cmd.command_id}",
                zones=cmd.zones,
                duration_s=cmd.duration_s,
                source="remote",
                reason=f"centre command {cmd.command_id} (seq {cmd.seq})",
                announcement=cmd.announcement,
                status=cmd.status,
            )
        )
