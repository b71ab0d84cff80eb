"""Ed25519 signatures over canonical bytes, with domain separation by envelope type.

A signed envelope is the canonical JSON object::

    {"type": "batch", "body": {...}, "key_id": "a1b2...", "sig": "<base64 of 64 bytes>"}

The signature covers ``encode({"type": type, "body": body})`` - the type is inside the signed
bytes so a batch signature can never be replayed as a command (issue 9 uses the same helpers
with ``type="command"`` and the centre's command key). ``key_id`` names the key
(:func:`key_id`: first 16 hex digits of the SHA-256 of the raw public key); it is a hint for
key rotation, never a substitute for checking the signature against the expected key::

    raw = seal("batch", body, private_key)
    body = open_sealed(raw, "batch", public_key)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wire.canonical import DEFAULT_MAX_BYTES, decode, encode
from wire.envelopes import brief
from wire.errors import EncodingError, EnvelopeError, SignatureError

SIGNATURE_BYTES: Final = 64
ENVELOPE_KEYS: Final = frozenset({"type", "body", "key_id", "sig"})


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short stable name of a public key: 16 hex digits of SHA-256 over its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def signed_bytes(envelope_type: str, body: Mapping[str, Any]) -> bytes:
    """The exact bytes a signature covers."""
    return encode({"type": envelope_type, "body": dict(body)})


def sign(
    envelope_type: str, body: Mapping[str, Any], private_key: Ed25519PrivateKey
) -> dict[str, Any]:
    """The signed envelope as a dict (encode it with :func:`wire.canonical.encode`)."""
    sig = private_key.sign(signed_bytes(envelope_type, body))
    return {
        "type": envelope_type,
        "body": dict(body),
        "key_id": key_id(private_key.public_key()),
        "sig": base64.b64encode(sig).decode("ascii"),
    }


def seal(envelope_type: str, body: Mapping[str, Any], private_key: Ed25519PrivateKey) -> bytes:
    """Sign and encode in one step: the canonical bytes to send.

    The same bytes as ``encode(sign(envelope_type, body, private_key))``, with the body encoded
    once instead of twice: a canonical object is its sorted members joined, and both the signed
    bytes (``body``, ``type``) and the envelope (``body``, ``key_id``, ``sig``, ``type``) start
    with the body (tests/wire/test_envelopes.py holds the two forms equal)."""
    body_raw = encode(dict(body))
    type_raw = encode(envelope_type)
    sig = private_key.sign(b'{"body":' + body_raw + b',"type":' + type_raw + b"}")
    return b"".join(
        (
            b'{"body":',
            body_raw,
            b',"key_id":',
            encode(key_id(private_key.public_key())),
            b',"sig":',
            encode(base64.b64encode(sig).decode("ascii")),
            b',"type":',
            type_raw,
            b"}",
        )
    )


def split_envelope(
    data: bytes, envelope_type: str, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[dict[str, Any], str, bytes]:
    """Decode an envelope without checking the signature: (body, key_id, signature bytes).

    For a receiver that must first learn *who* signed (by key_id or its TLS peer) before it can
    pick the key. Always follow with :func:`verify`. Raises :class:`~wire.errors.WireError`
    (``EncodingError``, ``EnvelopeError`` or ``SignatureError``) and nothing else.
    """
    env = decode(data, max_bytes=max_bytes)
    if not isinstance(env, dict):
        raise EnvelopeError("envelope is not a JSON object")
    keys = set(env)
    if keys != ENVELOPE_KEYS:
        missing = sorted(ENVELOPE_KEYS - keys)
        extra = sorted(keys - ENVELOPE_KEYS)
        raise EnvelopeError("envelope fields are wrong", missing=missing, unexpected=extra)
    if env["type"] != envelope_type:
        raise EnvelopeError(f"expected a {envelope_type!r} envelope, got {brief(env['type'])}")
    body, kid, sig_text = env["body"], env["key_id"], env["sig"]
    if not isinstance(body, dict):
        raise EnvelopeError("envelope body is not a JSON object")
    if not isinstance(kid, str) or not kid:
        raise EnvelopeError("key_id must be a non-empty string")
    if not isinstance(sig_text, str):
        raise SignatureError("sig must be a base64 string")
    try:
        sig = base64.b64decode(sig_text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise SignatureError("sig is not valid base64") from exc
    if base64.b64encode(sig).decode("ascii") != sig_text:
        # Unused trailing bits would let one signature have several spellings.
        raise SignatureError("sig is not canonical base64")
    if len(sig) != SIGNATURE_BYTES:
        raise SignatureError(f"signature is {len(sig)} bytes, expected {SIGNATURE_BYTES}")
    return body, kid, sig


# The tail of a canonical envelope (keys sorted: body, key_id, sig, type): key ids are hex,
# signatures canonical base64 of 64 bytes, types plain words - nothing canonical encoding
# would escape. Anything else takes the general path.
_SEALED_TAIL: Final = re.compile(
    rb',"key_id":"([0-9a-f]{1,64})","sig":"([A-Za-z0-9+/]{86}==)","type":"([a-z_]{1,40})"\}\Z'
)
_SEALED_HEAD: Final = b'{"body":'


def split_sealed(
    data: bytes, envelope_type: str, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[dict[str, Any], str, bytes, bytes]:
    """:func:`split_envelope` plus the bytes the signature is to be checked over:
    (body, key_id, signature, signed bytes); verify with :func:`verify_signed`.

    For an envelope laid out as :func:`seal` writes it (nearly every one), the signed bytes are
    cut from ``data`` around the body's own bytes, and the body is decoded from exactly those
    bytes - so what the signature covers is what the caller gets, without encoding the body
    again. Any other layout takes :func:`split_envelope` and :func:`signed_bytes`. Raises what
    :func:`split_envelope` raises.
    """
    if type(data) is bytes and len(data) <= max_bytes and data.startswith(_SEALED_HEAD):
        tail = _SEALED_TAIL.search(data, max(0, len(data) - 300))
        if tail is not None and tail.group(3).decode("ascii") == envelope_type:
            body_raw = data[len(_SEALED_HEAD) : tail.start()]
            sig = base64.b64decode(tail.group(2))
            try:
                body = decode(body_raw, max_bytes=max_bytes, depth=1)  # inside the envelope
            except EncodingError:
                body = None
            if (
                isinstance(body, dict)
                and len(sig) == SIGNATURE_BYTES
                and base64.b64encode(sig) == tail.group(2)
            ):
                signed = b"".join((_SEALED_HEAD, body_raw, b',"type":"', tail.group(3), b'"}'))
                return body, tail.group(1).decode("ascii"), sig, signed
    body, kid, sig = split_envelope(data, envelope_type, max_bytes=max_bytes)
    return body, kid, sig, signed_bytes(envelope_type, body)


def verify_signed(
    envelope_type: str,
    body: Mapping[str, Any],
    signature: bytes,
    signed: bytes,
    public_key: Ed25519PublicKey,
) -> None:
    """:func:`verify` for what :func:`split_sealed` returned: the signature over ``signed``,
    or else (a signer that signed the canonical form but sent other body bytes) over the
    canonical encoding of ``body``, exactly as :func:`verify` judges it."""
    try:
        public_key.verify(signature, signed)
    except InvalidSignature:
        verify(envelope_type, body, signature, public_key)


def check_key_id(kid: str, public_key: Ed25519PublicKey) -> None:
    """Refuse an envelope naming another key than the one we verify with (the key id is not
    under the signature, so it is checked on its own: a relabelled envelope is refused)."""
    expected = key_id(public_key)
    if kid != expected:
        raise SignatureError("envelope names another key", key_id=kid[:32], expected=expected)


def verify(
    envelope_type: str, body: Mapping[str, Any], signature: bytes, public_key: Ed25519PublicKey
) -> None:
    """Raise SignatureError unless ``signature`` is ``public_key``'s over the body."""
    try:
        public_key.verify(signature, signed_bytes(envelope_type, body))
    except InvalidSignature as exc:
        raise SignatureError(
            "signature does not verify with the expected key", key_id=key_id(public_key)
        ) from exc


def open_sealed(
    data: bytes,
    envelope_type: str,
    public_key: Ed25519PublicKey,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> dict[str, Any]:
    """Decode, check the type, verify the signature; return the body."""
    body, kid, sig = split_envelope(data, envelope_type, max_bytes=max_bytes)
    check_key_id(kid, public_key)
    verify(envelope_type, body, sig, public_key)
    return body


def load_public_key_pem(pem: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo), or SignatureError."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SignatureError("not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"expected an Ed25519 key, got {type(key).__name__}")
    return key


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    """PEM (SubjectPublicKeyInfo) of an Ed25519 public key."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
