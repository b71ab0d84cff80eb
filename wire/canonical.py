"""Canonical JSON: the one byte form both ends sign and verify.

Rules: UTF-8; object keys sorted; no insignificant whitespace; no NaN or infinities; only
dict (string keys), list, str, int, float, bool and None. Decoding is strict: invalid UTF-8,
duplicate keys, NaN/Infinity literals, trailing bytes (whitespace included), nesting deeper
than :data:`MAX_DEPTH` and inputs larger than the caller's limit are refused with
:class:`~wire.errors.EncodingError`::

    raw = encode({"b": 1, "a": [1.5, None]})   # b'{"a":[1.5,null],"b":1}'
    assert decode(raw) == {"a": [1.5, None], "b": 1}

Floats are written with Python's shortest round-trip ``repr``, so ``decode(encode(x))`` equals
``x`` and re-encoding gives the same bytes: a verifier may re-encode what it parsed.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

MAX_DEPTH: Final = 32
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024

from wire.errors import EncodingError  # noqa: E402 - constants first, they are the contract


def _check(value: Any, depth: int, path: str) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}", at=path)
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodingError("NaN and infinities have no canonical JSON form", at=path)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(f"object key {key!r} is not a string", at=path)
            _check(item, depth + 1, f"{path}.{key}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, depth + 1, f"{path}[{i}]")
        return
    raise EncodingError(f"{type(value).__name__} has no JSON form", at=path)


def encode(value: Any) -> bytes:
    """The canonical bytes of ``value`` (raises EncodingError for what JSON cannot hold)."""
    _check(value, 0, "$")
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates in a str
        raise EncodingError("string is not valid Unicode (lone surrogate)") from exc


def _refuse_constant(name: str) -> Any:
    raise EncodingError(f"{name} is not allowed in canonical JSON")


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise EncodingError(f"duplicate object key {key!r}")
        out[key] = value
    return out


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs_no_duplicates, parse_constant=_refuse_constant, strict=True
)


def decode(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse strict JSON bytes (see module doc for what is refused)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EncodingError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise EncodingError(f"{len(data)} bytes is above the limit of {max_bytes}")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EncodingError(f"not UTF-8 at byte {exc.start}") from exc
    if text.startswith("\ufeff"):
        raise EncodingError("byte-order mark is not allowed")
    try:
        value, end = _DECODER.raw_decode(text)
    except EncodingError:
        raise
    except json.JSONDecodeError as exc:
        raise EncodingError(f"not JSON: {exc.msg} at char {exc.pos}") from exc
    except RecursionError as exc:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}") from exc
    if end != len(text):
        raise EncodingError(f"{len(text) - end} trailing character(s) after the JSON value")
    try:
        _check(value, 0, "$")
    except RecursionError as exc:  # pragma: no cover - raw_decode recursed first
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}") from exc
    # Lone surrogates decoded from \ud800 escapes would make the value unencodable: refuse now.
    encode(value)
    return value


def is_canonical(data: bytes) -> bool:
    """True when ``data`` is exactly the canonical encoding of what it decodes to."""
    try:
        return encode(decode(data)) == bytes(data)
    except EncodingError:
        return False
