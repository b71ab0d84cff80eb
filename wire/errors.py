"""The wire's own error tree (``wire`` imports nothing else of ours, so it cannot use
``gateway.errors``; the gateway wraps these into ``SyncError``, the centre into 4xx replies)::

    try:
        body = decode(raw)
    except WireError as exc:
        log.warning("refused: %s %s", exc.reason, exc.fields)
"""

from __future__ import annotations

from typing import Any


class WireError(Exception):
    """Root of all the wire refuses: ``reason`` is one readable line, ``fields`` say where."""

    code = "wire_error"

    def __init__(self, reason: str, **fields: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, used verbatim in the centre's 4xx bodies."""
        return {"error": self.code, "reason": self.reason, **self.fields}


class EncodingError(WireError):
    """Bytes are not canonical-able JSON: bad UTF-8, duplicate keys, NaN, trailing bytes, ..."""

    code = "bad_encoding"


class EnvelopeError(WireError):
    """Well-formed JSON that is not a valid envelope (missing field, wrong type, bad range)."""

    code = "bad_envelope"


class SignatureError(WireError):
    """A signature is missing, malformed, made by another key, or does not match the bytes."""

    code = "bad_signature"
