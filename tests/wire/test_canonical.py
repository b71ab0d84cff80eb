"""Canonical JSON: round trips (hypothesis), determinism, and hostile input refused clearly."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wire import EncodingError, decode, encode, is_canonical

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=("Cs",)), max_size=8), children, max_size=5
        )
    ),
    max_leaves=30,
)


@given(json_values)
def test_round_trip_is_exact_and_stable(value: Any) -> None:
    raw = encode(value)
    back = decode(raw)
    assert back == value or (isinstance(value, float) and math.isclose(back, value))
    assert encode(back) == raw  # re-encoding what was parsed gives the same bytes
    assert is_canonical(raw)


@given(st.dictionaries(st.text(max_size=5), st.integers(), min_size=2, max_size=6))
def test_key_order_does_not_matter(d: dict[str, int]) -> None:
    reversed_d = dict(reversed(list(d.items())))
    assert encode(d) == encode(reversed_d)


def test_golden_bytes() -> None:
    assert encode({"b": 1, "a": [1.5, None, True], "é": "ü"}) == (
        '{"a":[1.5,null,true],"b":1,"é":"ü"}'.encode()
    )


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"a":1,"a":2}', "duplicate object key 'a'"),
        (b'{"a":1} ', "trailing"),
        (b'{"a":1}{}', "trailing"),
        (b'{"a":NaN}', "NaN"),
        (b"[Infinity]", "Infinity"),
        (b'{"a":"\xff"}', "not UTF-8"),
        (b"\xef\xbb\xbf{}", "byte-order mark"),
        (b' {"a":1}', "not JSON"),
        (b"", "not JSON"),
        (b'{"a":"\\ud800"}', "lone surrogate"),
        (b"[" * 100 + b"]" * 100, "nesting"),
        (b'{"a":1e999}', "NaN and infinities"),
    ],
)
def test_hostile_input_is_refused_with_a_reason(raw: bytes, fragment: str) -> None:
    with pytest.raises(EncodingError) as info:
        decode(raw)
    assert fragment in info.value.reason


def test_size_limit() -> None:
    with pytest.raises(EncodingError, match="above the limit"):
        decode(b'"' + b"x" * 100 + b'"', max_bytes=50)


@pytest.mark.parametrize(
    "value", [float("nan"), {"a": float("inf")}, {1: "x"}, {"a": {1, 2}}, b"x"]
)
def test_unencodable_values(value: Any) -> None:
    with pytest.raises(EncodingError):
        encode(value)


def test_not_canonical_detected() -> None:
    assert not is_canonical(json.dumps({"b": 1, "a": 2}).encode())
    assert is_canonical(b'{"a":2,"b":1}')


# The fast path (wire.canonical._plain) must never pass what the full check refuses: values near
# every limit - depth, integer digits, non-finite floats, non-string keys, subclasses, tuples.
hostile_leaves = (
    json_values
    | st.sampled_from([math.nan, math.inf, -math.inf, 10**100, -(10**100), 10**100 - 1])
    | st.sampled_from([(1, 2), {1: "x"}, {None: 1}, b"x", {1.5}, object()])
)


def _nested(depth: int, leaf: Any, *, as_dict: bool) -> Any:
    for _ in range(depth):
        leaf = {"k": leaf} if as_dict else [leaf]
    return leaf


@given(
    st.recursive(
        hostile_leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=4), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_fast_path_agrees_with_the_full_check(value: Any) -> None:
    from wire import canonical

    try:
        canonical._check(value, 0, "$")
        full_ok = True
    except (EncodingError, RecursionError):
        full_ok = False
    assert canonical._plain(value, 0) <= full_ok  # fast may decline; it may never pass more
    if full_ok:
        assert (
            encode(value)
            == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        )


@pytest.mark.parametrize("depth", [30, 31, 32, 33, 34])
@pytest.mark.parametrize("leaf", [1, [], {}])
@pytest.mark.parametrize("as_dict", [False, True])
def test_depth_limit_is_the_same_on_both_paths(depth: int, leaf: Any, as_dict: bool) -> None:
    from wire import canonical

    value = _nested(depth, leaf, as_dict=as_dict)
    try:
        canonical._check(value, 0, "$")
        full_ok = True
    except EncodingError:
        full_ok = False
    assert full_ok == (depth <= 32)
    if full_ok:
        assert decode(encode(value)) == value
    else:
        with pytest.raises(EncodingError, match="nesting"):
            encode(value)
        with pytest.raises(EncodingError, match="nesting"):
            decode(json.dumps(value).encode())


def test_lone_surrogate_escapes_still_refused_and_escaped_backslashes_kept() -> None:
    for raw in (b'{"a":"\\ud800"}', b'["x\\uDFFF"]', b'{"\\udc00":1}'):
        with pytest.raises(EncodingError, match="surrogate"):
            decode(raw)
    assert decode(b'["\\\\ud800"]') == ["\\ud800"]
    assert decode(b'["\\ud83d\\ude00"]') == ["\U0001f600"]  # a valid pair is fine


_SCALARS = st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.text(max_size=12)
_NESTED = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["boot_id", "a", "z", "},{"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(
    st.lists(
        st.dictionaries(st.sampled_from(["boot_id", "a", "b", "zz"]), _NESTED, max_size=4),
        max_size=6,
    )
)
def test_encode_objects_is_each_value_encoded_alone(values: list[dict[str, Any]]) -> None:
    """One encoder call cut apart gives each value's own canonical text, also when a value
    holds what looks like the cut (an array of objects with the same first key)."""
    from wire.canonical import encode_objects

    assert encode_objects(values) == [encode(v).decode("utf-8") for v in values]


def test_encode_objects_cut_inside_a_value_and_refusals() -> None:
    from wire.canonical import encode_objects

    tricky = [
        {"boot_id": 1, "p": [{"boot_id": 2}, {"boot_id": 3}]},
        {"boot_id": 4},
        {"boot_id": '},{"boot_id":'},
    ]
    assert encode_objects(tricky) == [encode(v).decode("utf-8") for v in tricky]
    # A value without the shared first key and a value with the cut inside it: the counts
    # would match, the pieces would not; each is encoded alone.
    swapped = [{"boot_id": 1, "p": [{"boot_id": 2}, {"boot_id": 3}]}, {"c": 1}, {"boot_id": 5}]
    assert encode_objects(swapped) == [encode(v).decode("utf-8") for v in swapped]
    with pytest.raises(EncodingError):
        encode_objects([{"a": 1}, {"a": float("nan")}])
    with pytest.raises(EncodingError):
        encode_objects([{"a": "\ud800"}])
    with pytest.raises(EncodingError):
        encode_objects([{"a": 1}, {1: 2, "a": 1}])
