"""Signed remote commands (centre → gateway): the envelope, signing, and the pure verification.

Theory of operation
-------------------
The centre's **command key** (Ed25519, kept apart from the CA and TLS keys) signs every
command with :func:`wire.signing.seal` and ``type = "command"``, so a batch signature can
never pass as a command. The body is::

    {"v": 1, "command_id": "cmd-…", "gateway": "gw-rose-01", "seq": 17,
     "issued_at": 1795881600.0, "expires_at": 1795881720.0, "key_id": "<16 hex>",
     "action": "broadcast.start",
     "args": {"zones": [1, 2], "seconds": 90, "announcement": "fire-drill",
              "status": "Exercise"}}

Actions (:data:`ACTIONS`): ``broadcast.start`` (above), ``broadcast.stop`` (``args`` ``{}``) and
``camera.snapshot`` (``args`` exactly ``{"camera": "<name>"}``, a name as the gateway's config
spells it: look now, a picture from that camera at once; it moves no relay).

``seq`` is per gateway and strictly increasing (the centre adds one per command it queues for
that gateway); ``key_id`` is repeated *inside* the signed body so a relabelled envelope is
refused. :func:`check_command` is the gateway's whole decision, pure: bytes, the pinned key,
its own id, the last accepted seq, a trusted "now" and the limits in; an
:class:`Accepted` or a :class:`Refused` (with a stable ``code``) out. The caller commits
``accepted.command.seq`` durably *before* anything moves::

    raw = seal_command(body_for_start(...), command_private_key)                    # centre
    verdict = check_command(raw, pinned_pub, "gw-rose-01", last_seq, now, LIMITS)   # gateway
    if isinstance(verdict, Refused): record(verdict.code, verdict.reason)

Checks run in this order, the first failure wins: size → strict canonical JSON (duplicate keys,
trailing bytes, non-canonical spellings) → envelope shape and type → key id (TLS, device or
any other key than the pinned command key) → signature → body shape → action and its
arguments → addressed gateway → sequence (replayed, lower, too big a jump) → validity window
(not yet valid, expired, lifetime above the cap) → zone range and duration cap.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wire.canonical import decode, encode
from wire.envelopes import COMMAND_TYPE, GATEWAY_ID_RE, MAX_SEQ, WIRE_VERSION, brief, finite_float
from wire.errors import EncodingError, EnvelopeError, SignatureError
from wire.signing import ENVELOPE_KEYS, SIGNATURE_BYTES, key_id, seal, verify

DEFAULT_TTL_S: Final = 120.0
MAX_COMMAND_BYTES: Final = 16 * 1024
COMMAND_ID_RE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
# Empty (relays only) or an id that starts with a letter or digit: never "." or "..", which
# would name a folder (the centre's library keeps each announcement in a folder of its id).
ANNOUNCEMENT_RE: Final = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,79})?")
SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
# A camera's name as the gateway's config spells it (gateway/health/config.py NAME_PATTERN;
# tests/commands/test_look_now.py checks the two stay the same).
CAMERA_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
SNAPSHOT_KEYS: Final = frozenset({"camera"})
START_KEYS: Final = frozenset({"zones", "seconds", "announcement", "status"})
START_OPTIONAL: Final = frozenset({"announcement_sha256"})  # absent in older commands
STATUSES: Final = ("Actual", "Exercise", "Test")  # CAP-style message status
BODY_KEYS: Final = frozenset(
    {"v", "command_id", "gateway", "seq", "issued_at", "expires_at", "key_id", "action", "args"}
)

# Refusal codes (stable: they are journaled, reported to the centre and shown to operators).
BAD_ENCODING: Final = "bad_encoding"
BAD_ENVELOPE: Final = "bad_envelope"
WRONG_KEY: Final = "wrong_key"
BAD_SIGNATURE: Final = "bad_signature"
UNKNOWN_ACTION: Final = "unknown_action"
BAD_ARGS: Final = "bad_args"
WRONG_GATEWAY: Final = "wrong_gateway"
REPLAYED: Final = "replayed"
STALE_SEQUENCE: Final = "stale_sequence"
SEQUENCE_JUMP: Final = "sequence_jump"
NOT_YET_VALID: Final = "not_yet_valid"
EXPIRED: Final = "expired"
TTL_TOO_LONG: Final = "ttl_too_long"
ZONE_OUT_OF_RANGE: Final = "zone_out_of_range"
DURATION_ABOVE_CAP: Final = "duration_above_cap"


@dataclass(frozen=True, slots=True)
class Limits:
    """What a gateway accepts beyond a valid signature (its own config feeds these)."""

    max_skew_s: float = 30.0  # a command may arrive this much before its issued_at
    max_seq_jump: int = 10_000  # far above any real backlog of queued commands
    max_ttl_s: float = 3600.0  # a command valid for longer is refused outright
    zones: frozenset[int] | None = None  # None: any zone number 1..999 (the broadcast layer checks)
    max_seconds: float = 6000.0
    max_bytes: int = MAX_COMMAND_BYTES


# -- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BroadcastStart:
    zones: tuple[int, ...]
    seconds: float
    announcement: str = ""
    status: str = "Actual"
    # A centre library announcement: the gateway plays exactly the bytes with this hash
    # (fetching them first if it lacks them) or refuses. Empty: a locally configured clip.
    announcement_sha256: str = ""

    name = "broadcast.start"

    def to_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {
            "zones": list(self.zones),
            "seconds": self.seconds,
            "announcement": self.announcement,
            "status": self.status,
        }
        if self.announcement_sha256:  # optional: a command without it is byte-for-byte as before
            args["announcement_sha256"] = self.announcement_sha256
        return args


@dataclass(frozen=True, slots=True)
class BroadcastStop:
    name = "broadcast.stop"

    def to_args(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, slots=True)
class CameraSnapshot:
    """Look now: take a picture from ``camera`` at once, store and journal it with the command
    id as its ``request``, and upload it first in line. It moves no relay."""

    camera: str

    name = "camera.snapshot"

    def to_args(self) -> dict[str, Any]:
        return {"camera": self.camera}


Action = BroadcastStart | BroadcastStop | CameraSnapshot


def _exact(args: Any, keys: frozenset[str], where: str) -> Mapping[str, Any]:
    if not isinstance(args, Mapping):
        raise EnvelopeError(f"{where} must be an object", field=where)
    if set(args) != keys:
        raise EnvelopeError(
            f"{where} fields are wrong",
            field=where,
            missing=sorted(keys - set(args)),
            unexpected=sorted(set(args) - keys),
        )
    return args


def _parse_start(args: Any) -> BroadcastStart:
    keys = START_KEYS | (START_OPTIONAL & set(args)) if isinstance(args, Mapping) else START_KEYS
    a = _exact(args, keys, "args")
    zones = a["zones"]
    if not isinstance(zones, list) or not 1 <= len(zones) <= 64:
        raise EnvelopeError("args.zones must be a list of 1..64 zone numbers", field="args.zones")
    for z in zones:
        if isinstance(z, bool) or not isinstance(z, int):
            raise EnvelopeError("args.zones must hold integers", field="args.zones")
    if len(set(zones)) != len(zones):
        raise EnvelopeError("args.zones lists a zone twice", field="args.zones")
    seconds = a["seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise EnvelopeError("args.seconds must be a positive number", field="args.seconds")
    ann = a["announcement"]
    if not isinstance(ann, str) or not ANNOUNCEMENT_RE.fullmatch(ann):
        raise EnvelopeError(
            f"args.announcement must match {ANNOUNCEMENT_RE.pattern}", field="args.announcement"
        )
    if a["status"] not in STATUSES:
        raise EnvelopeError(f"args.status must be one of {STATUSES}", field="args.status")
    sha = a.get("announcement_sha256", "")
    if "announcement_sha256" in a and (
        not isinstance(sha, str) or not SHA256_RE.fullmatch(sha) or not ann
    ):
        raise EnvelopeError(
            "args.announcement_sha256 must be 64 lowercase hex digits, with an announcement",
            field="args.announcement_sha256",
        )
    return BroadcastStart(
        tuple(zones), finite_float(seconds, "args.seconds"), ann, str(a["status"]), sha
    )


def _parse_stop(args: Any) -> BroadcastStop:
    _exact(args, frozenset(), "args")
    return BroadcastStop()


def _parse_snapshot(args: Any) -> CameraSnapshot:
    """``{"camera": "<name>"}`` exactly; anything else is an EnvelopeError (``bad_args``)."""
    a = _exact(args, SNAPSHOT_KEYS, "args")
    camera = a["camera"]
    if not isinstance(camera, str) or not CAMERA_RE.fullmatch(camera):
        raise EnvelopeError(f"args.camera must match {CAMERA_RE.pattern}", field="args.camera")
    return CameraSnapshot(camera)


# New actions register a parser here (and a handler on the gateway); anything else is refused.
ACTIONS: Final[Mapping[str, Callable[[Any], Action]]] = {
    BroadcastStart.name: _parse_start,
    BroadcastStop.name: _parse_stop,
    CameraSnapshot.name: _parse_snapshot,
}


# -- the envelope body --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """One command body, shape-checked (signature and policy are :func:`check_command`'s)."""

    command_id: str
    gateway: str
    seq: int
    issued_at: float
    expires_at: float
    key_id: str
    action: Action = field(default_factory=BroadcastStop)

    @property
    def action_name(self) -> str:
        return self.action.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": WIRE_VERSION,
            "command_id": self.command_id,
            "gateway": self.gateway,
            "seq": self.seq,
            "issued_at": self.issued_at,
            "expires_at": self.expires_at,
            "key_id": self.key_id,
            "action": self.action.name,
            "args": self.action.to_args(),
        }

    @classmethod
    def from_dict(cls, d: Any) -> Command:
        """Strict: exact keys, types and ranges. Raises :class:`~wire.errors.EnvelopeError` and
        nothing else (an unknown action: its subclass :class:`UnknownAction`)."""
        if not isinstance(d, Mapping):
            raise EnvelopeError("command body is not an object")
        extra, missing = set(d) - BODY_KEYS, BODY_KEYS - set(d)
        if extra or missing:
            raise EnvelopeError(
                "command body fields are wrong", missing=sorted(missing), unexpected=sorted(extra)
            )
        if d["v"] != WIRE_VERSION:
            raise EnvelopeError(
                f"command.v={brief(d['v'])}: only version {WIRE_VERSION} is understood"
            )
        for name, pattern in (
            ("command_id", COMMAND_ID_RE),
            ("gateway", GATEWAY_ID_RE),
            ("key_id", re.compile(r"[0-9a-f]{16}")),
        ):
            if not isinstance(d[name], str) or not pattern.fullmatch(d[name]):
                raise EnvelopeError(f"command.{name} is malformed", field=f"command.{name}")
        seq = d["seq"]
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
            raise EnvelopeError(f"command.seq must be an integer 1..{MAX_SEQ}", field="command.seq")
        times = []
        for name in ("issued_at", "expires_at"):
            t = d[name]
            if isinstance(t, bool) or not isinstance(t, int | float) or t < 0:
                raise EnvelopeError(f"command.{name} must be a number", field=f"command.{name}")
            times.append(finite_float(t, f"command.{name}"))
        if times[1] <= times[0]:
            raise EnvelopeError("command.expires_at must be after issued_at")
        action = d["action"]
        if not isinstance(action, str):
            raise EnvelopeError("command.action must be a string", field="command.action")
        parser = ACTIONS.get(action)
        if parser is None:
            raise UnknownAction(f"unknown action {action[:60]!r}", action=action[:60])
        return cls(
            d["command_id"], d["gateway"], seq, times[0], times[1], d["key_id"], parser(d["args"])
        )


class UnknownAction(EnvelopeError):
    """A well-formed command naming an action this gateway does not know."""

    code = UNKNOWN_ACTION


def build_command(
    *,
    command_id: str,
    gateway: str,
    seq: int,
    action: Action,
    issued_at: float,
    public_key: Ed25519PublicKey,
    ttl_s: float = DEFAULT_TTL_S,
) -> Command:
    """A checked command body (the centre's side)::

    cmd = build_command(command_id="cmd-1", gateway="gw-rose-01", seq=18,
                        action=BroadcastStart((1, 2), 90, "fire-drill", "Exercise"),
                        issued_at=time.time(), public_key=command_key.public_key())
    """
    body = Command(
        command_id, gateway, seq, issued_at, issued_at + ttl_s, key_id(public_key), action
    ).to_dict()
    return Command.from_dict(body)


def seal_command(command: Command, private_key: Ed25519PrivateKey) -> bytes:
    """The signed canonical envelope bytes to send (body key id must name ``private_key``)."""
    if command.key_id != key_id(private_key.public_key()):
        raise SignatureError("command body names another key than the signing key")
    return seal(COMMAND_TYPE, command.to_dict(), private_key)


# -- verification (pure) ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accepted:
    """Every check passed. Commit ``command.seq`` durably before acting on it."""

    command: Command


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a command was refused; ``command_id``/``seq`` are set once the signature verified
    (before that nothing in the body can be believed, so nothing of it is repeated)."""

    code: str
    reason: str
    command_id: str = ""
    seq: int = 0
    fields: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "reason": self.reason}
        if self.command_id:
            out["command_id"] = self.command_id
            out["seq"] = self.seq
        for k, v in self.fields.items():
            if isinstance(v, str | int | float | bool) and k not in out:
                out[k] = v
        return out


Verdict = Accepted | Refused


def _signature(text: Any) -> bytes:
    if not isinstance(text, str):
        raise SignatureError("sig must be a base64 string")
    try:
        sig = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SignatureError("sig is not valid base64") from exc
    if base64.b64encode(sig).decode("ascii") != text or len(sig) != SIGNATURE_BYTES:
        raise SignatureError("sig is not a canonical 64-byte signature")
    return sig


def check_command(
    data: bytes,
    public_key: Ed25519PublicKey,
    gateway_id: str,
    last_seq: int,
    now: float,
    limits: Limits = Limits(),  # frozen: safe to share
) -> Verdict:
    """The gateway's verdict on one envelope (see the module doc for the order of checks).

    ``now`` must be *trusted* time (never going backwards: the caller's floor); ``last_seq`` is
    the last accepted (durably committed) sequence, 0 before the first command. Never raises
    for any ``data``: every fault of the bytes is a :class:`Refused` with its code.
    """
    # 1. bytes: bounded, strict, and exactly canonical (one spelling per signed content)
    if len(data) > limits.max_bytes:
        return Refused(BAD_ENCODING, f"envelope is {len(data)} bytes, above {limits.max_bytes}")
    try:
        env = decode(data, max_bytes=limits.max_bytes)
        canonical = encode(env) == bytes(data)
    except EncodingError as exc:
        return Refused(BAD_ENCODING, exc.reason)
    if not canonical:
        return Refused(BAD_ENCODING, "envelope is not in canonical encoding")
    # 2. envelope shape, type, key, signature
    if not isinstance(env, dict) or set(env) != ENVELOPE_KEYS:
        return Refused(BAD_ENVELOPE, "envelope fields are wrong")
    if env["type"] != COMMAND_TYPE:
        return Refused(BAD_ENVELOPE, f"expected a {COMMAND_TYPE!r} envelope")
    expected_kid = key_id(public_key)
    if env["key_id"] != expected_kid:
        return Refused(
            WRONG_KEY,
            "signed by another key than the pinned command key",
            fields={"key_id": str(env["key_id"])[:32], "expected": expected_kid},
        )
    body = env["body"]
    if not isinstance(body, dict):
        return Refused(BAD_ENVELOPE, "envelope body is not an object")
    try:
        verify(COMMAND_TYPE, body, _signature(env["sig"]), public_key)
    except SignatureError as exc:
        return Refused(BAD_SIGNATURE, exc.reason)
    # 3. body: the signature holds, so the body is the centre's words from here on
    try:
        cmd = Command.from_dict(body)
    except UnknownAction as exc:
        return Refused(UNKNOWN_ACTION, exc.reason, str(body.get("command_id", ""))[:80])
    except EnvelopeError as exc:
        code = BAD_ARGS if str(exc.fields.get("field", "")).startswith("args") else BAD_ENVELOPE
        return Refused(code, exc.reason, str(body.get("command_id", ""))[:80])

    def refuse(code: str, reason: str, **fields: Any) -> Refused:
        return Refused(code, reason, cmd.command_id, cmd.seq, fields)

    if cmd.key_id != expected_kid:
        return refuse(WRONG_KEY, "body names another key than the envelope")
    if cmd.gateway != gateway_id:
        return refuse(
            WRONG_GATEWAY,
            f"addressed to {cmd.gateway}, not {gateway_id}",
            gateway=cmd.gateway,
        )
    # 4. sequence: strictly above the last accepted, by a bounded step
    if cmd.seq == last_seq:
        return refuse(REPLAYED, f"seq {cmd.seq} was already accepted")
    if cmd.seq < last_seq:
        return refuse(STALE_SEQUENCE, f"seq {cmd.seq} is below the last accepted {last_seq}")
    if cmd.seq - last_seq > limits.max_seq_jump:
        return refuse(
            SEQUENCE_JUMP, f"seq {cmd.seq} jumps more than {limits.max_seq_jump} above {last_seq}"
        )
    # 5. validity window, on trusted time
    if cmd.expires_at - cmd.issued_at > limits.max_ttl_s:
        return refuse(TTL_TOO_LONG, f"valid for more than {limits.max_ttl_s:g} s")
    if now < cmd.issued_at - limits.max_skew_s:
        return refuse(
            NOT_YET_VALID,
            f"issued {cmd.issued_at - now:.1f} s ahead (skew allowed {limits.max_skew_s:g} s)",
        )
    if now > cmd.expires_at:
        return refuse(EXPIRED, f"expired {now - cmd.expires_at:.1f} s ago")
    # 6. what the action asks for
    if isinstance(cmd.action, BroadcastStart):
        known = limits.zones
        outside = sorted(
            z
            for z in cmd.action.zones
            if (z not in known if known is not None else not 1 <= z <= 999)
        )
        if outside:
            return refuse(ZONE_OUT_OF_RANGE, f"zone(s) {outside} do not exist here")
        if cmd.action.seconds > limits.max_seconds:
            return refuse(
                DURATION_ABOVE_CAP,
                f"{cmd.action.seconds:g} s is above the maximum {limits.max_seconds:g} s",
            )
    return Accepted(cmd)


def peek_identity(data: bytes, max_bytes: int = MAX_COMMAND_BYTES) -> tuple[str, int]:
    """(command_id, seq) as the envelope *claims* them, for acknowledging a refusal to the centre
    so it can match its queue; ("", 0) when unreadable (it never raises). Never use it to
    decide anything."""
    try:
        env = decode(data, max_bytes=max_bytes)
        body = env["body"]
        cid, seq = body.get("command_id", ""), body.get("seq", 0)
    except (EncodingError, KeyError, TypeError, AttributeError):
        return "", 0
    cid = cid if isinstance(cid, str) and COMMAND_ID_RE.fullmatch(cid) else ""
    seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else 0
    return cid, seq
