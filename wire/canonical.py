"""Canonical JSON: the one byte form both ends sign and verify.

Rules: UTF-8; object keys sorted; no insignificant whitespace; no NaN or infinities; only
dict (string keys), list, str, int, float, bool and None; integers of at most
:data:`MAX_INT_DIGITS` decimal digits. Decoding is strict: invalid UTF-8, duplicate keys,
NaN/Infinity literals, numbers too large for a finite float, integers longer than
:data:`MAX_INT_DIGITS` digits, trailing bytes (whitespace included), nesting deeper than
:data:`MAX_DEPTH` and inputs larger than the caller's limit are refused.

:func:`decode` and :func:`encode` raise :class:`~wire.errors.EncodingError` and nothing else,
whatever the input (the hostile-input property tests in ``tests/hostile`` hold them to it)::

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
# Far above any real value (seqs, times, counts, 128-bit ids) and far below Python's own
# 4300-digit conversion limit, whose ValueError would otherwise escape; any integer this long
# also converts to a finite float (< 1e100 < 1.8e308), so float fields never overflow.
MAX_INT_DIGITS: Final = 100
_INT_BOUND: Final = 10**MAX_INT_DIGITS

from wire.errors import EncodingError  # noqa: E402 - constants first, they are the contract


def _check(value: Any, depth: int, path: str) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}", at=path)
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not -_INT_BOUND < value < _INT_BOUND:
            raise EncodingError(f"integer longer than {MAX_INT_DIGITS} digits", at=path)
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
    """The canonical bytes of ``value``; :class:`EncodingError` (only) for what canonical JSON
    cannot hold."""
    try:
        _check(value, 0, "$")
    except RecursionError as exc:  # a self-referencing or absurdly deep value
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}") from exc
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates in a str
        raise EncodingError("string is not valid Unicode (lone surrogate)") from exc


def _refuse_constant(name: str) -> Any:
    raise EncodingError(f"{name} is not allowed in canonical JSON")


def _parse_int(literal: str) -> int:
    # The scanner hands over ASCII digits only (an optional '-' first); refuse by length before
    # int() so a 100 MB literal costs nothing and Python's digit-limit ValueError never fires.
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise EncodingError(f"integer literal longer than {MAX_INT_DIGITS} digits")
    return int(literal)


def _pairs_no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise EncodingError(f"duplicate object key {key!r}")
        out[key] = value
    return out


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs_no_duplicates,
    parse_constant=_refuse_constant,
    parse_int=_parse_int,
    strict=True,
)


def decode(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse strict JSON bytes; :class:`EncodingError` (only) for anything the module doc
    refuses."""
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
    except (ValueError, OverflowError) as exc:  # belt and braces: no stdlib error escapes
        raise EncodingError(f"not JSON: {str(exc)[:100]}") from exc
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
