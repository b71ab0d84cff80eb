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
import re
from collections.abc import Mapping, Sequence
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


# Built once: json.dumps with these arguments would build an encoder on every call.
_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _plain(value: Any, depth: int) -> bool:
    """True when :func:`_check` would pass ``value``: the fast path, no error messages.

    Exact types only (``type(x) is str``), scalars checked inline without a call each, so a
    batch of events costs a fraction of :func:`_check`. Anything else (a subclass, a tuple, a
    bad value) answers False, and the caller runs :func:`_check` for the verdict and the message.
    """
    if depth >= MAX_DEPTH:  # a container this deep: _check decides (and words the refusal)
        return False
    if type(value) is dict:
        items: Any = value.values()
        for key in value:
            if type(key) is not str:
                return False
    elif type(value) is list:
        items = value
    else:
        return _plain_scalar(value)
    for item in items:
        t = type(item)
        if t is str or t is bool or item is None:
            continue
        if t is int:
            if not -_INT_BOUND < item < _INT_BOUND:
                return False
        elif t is float:
            if not math.isfinite(item):
                return False
        elif not _plain(item, depth + 1):
            return False
    return True


def _plain_scalar(value: Any) -> bool:
    t = type(value)
    if t is str or t is bool or value is None:
        return True
    if t is int:
        return bool(-_INT_BOUND < value < _INT_BOUND)
    if t is float:
        return math.isfinite(value)
    return False


def _checked(value: Any, depth: int = 0) -> None:
    """:class:`EncodingError` unless canonical JSON can hold ``value`` (found ``depth`` deep)."""
    if _plain(value, depth):
        return
    try:
        _check(value, depth, "$")
    except RecursionError as exc:  # a self-referencing or absurdly deep value
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}") from exc


def encode(value: Any) -> bytes:
    """The canonical bytes of ``value``; :class:`EncodingError` (only) for what canonical JSON
    cannot hold."""
    try:
        _checked(value)
    except RecursionError as exc:  # a self-referencing value deeper than _plain looks
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}") from exc
    text = _ENCODER.encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates in a str
        raise EncodingError("string is not valid Unicode (lone surrogate)") from exc


def encode_objects(values: Sequence[Mapping[str, Any]]) -> list[str]:
    """``[encode(v).decode("utf-8") for v in values]`` for non-empty objects that share their
    first (smallest) key, in one encoder call: the array's canonical text is the members'
    canonical texts joined by commas, and is cut apart again where ``},{"<first key>":``
    stands. Such a cut can also stand inside a member (an array of objects in a payload), so
    the pieces are used only when there are exactly as many as values, every one starting
    with that key; otherwise each value is encoded on its own. :class:`EncodingError` (only)
    as :func:`encode` raises it."""
    items = [dict(v) for v in values]
    if not items:
        return []
    try:
        first = min(items[0]) if items[0] else None
        shared = type(first) is str and all(item and min(item) == first for item in items)
    except TypeError:  # keys that do not compare (not all str): encode says what is wrong
        shared = False
    if not shared:
        return [encode(item).decode("utf-8") for item in items]
    whole = encode(items).decode("utf-8")  # checks every value, refuses lone surrogates
    head = "{" + _ENCODER.encode(first) + ":"
    parts = whole[1:-1].split("}," + head)
    if len(parts) != len(items):
        return [encode(item).decode("utf-8") for item in items]
    if len(parts) == 1:
        return parts
    return [parts[0] + "}", *(head + p + "}" for p in parts[1:-1]), head + parts[-1]]


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


# A \u escape of a UTF-16 surrogate (or a false alarm, an escaped backslash followed by
# "ud800", which only costs the full check).
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")

_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs_no_duplicates,
    parse_constant=_refuse_constant,
    parse_int=_parse_int,
    strict=True,
)


def decode(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, depth: int = 0) -> Any:
    """Parse strict JSON bytes; :class:`EncodingError` (only) for anything the module doc
    refuses. ``depth``: how deep the value sits in an enclosing document whose nesting limit
    it shares (a part cut out of a larger one)."""
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
        _checked(value, depth)
    except RecursionError as exc:  # pragma: no cover - raw_decode recursed first
        raise EncodingError(f"nesting deeper than {MAX_DEPTH}") from exc
    # Lone surrogates decoded from \ud800 escapes would make the value unencodable: refuse now.
    # Text decoded from UTF-8 holds no surrogate, so only a \uD800-\uDFFF escape can make one;
    # without such an escape (nearly always) the value is encodable as checked above.
    if _SURROGATE_ESCAPE.search(text):
        encode(value)
    return value


def is_canonical(data: bytes) -> bool:
    """True when ``data`` is exactly the canonical encoding of what it decodes to."""
    try:
        return encode(decode(data)) == bytes(data)
    except EncodingError:
        return False
