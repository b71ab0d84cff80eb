"""Batch and ack envelopes, signatures: tampering anywhere is detected."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from wire import (
    BATCH_TYPE,
    COMMAND_TYPE,
    Ack,
    Batch,
    EncodingError,
    EnvelopeError,
    SignatureError,
    decode,
    encode,
    holes,
    open_sealed,
    seal,
)

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def event(seq: int, kind: str = "tap", cls: str = "evidence", **payload: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": kind,
        "cls": cls,
        "payload": payload or {"n": seq},
        "wall_time": 1_790_000_000.0 + seq,
        "mono_time": 100.5 + seq,
        "boot_id": "b-1",
        "clock_synced": True,
    }


def batch(seqs: list[int], skipped: list[tuple[int, int]] = ()) -> Batch:  # type: ignore[assignment]
    return Batch.build(
        "gw-01",
        "b-1",
        [event(s) for s in seqs],
        head_seq=max(seqs) + 5,
        created_at=1_790_000_100.0,
        skipped=skipped,
    )


def test_batch_round_trip_through_signed_envelope() -> None:
    b = batch([3, 4, 7], skipped=[(1, 2), (5, 6)])
    raw = seal(BATCH_TYPE, b.to_dict(), KEY)
    assert Batch.from_dict(open_sealed(raw, BATCH_TYPE, KEY.public_key())) == b


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_byte_flip_is_detected(data: st.DataObject) -> None:
    raw = bytearray(seal(BATCH_TYPE, batch([1, 2, 3]).to_dict(), KEY))
    i = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    raw[i] ^= 1 << bit
    with pytest.raises((EncodingError, EnvelopeError, SignatureError)):
        body = open_sealed(bytes(raw), BATCH_TYPE, KEY.public_key())
        Batch.from_dict(body)


def test_tampered_payload_with_valid_json_fails_signature() -> None:
    env = decode(seal(BATCH_TYPE, batch([1, 2]).to_dict(), KEY))
    env["body"]["events"][0]["payload"]["n"] = 99
    with pytest.raises(SignatureError, match="does not verify"):
        open_sealed(encode(env), BATCH_TYPE, KEY.public_key())


def test_wrong_key_and_wrong_type_refused() -> None:
    raw = seal(BATCH_TYPE, batch([1]).to_dict(), KEY)
    with pytest.raises(SignatureError):
        open_sealed(raw, BATCH_TYPE, OTHER.public_key())
    with pytest.raises(EnvelopeError, match="expected a 'command' envelope"):
        open_sealed(raw, COMMAND_TYPE, KEY.public_key())
    # A batch signature re-labelled as a command does not verify: the type is signed.
    env = decode(raw)
    env["type"] = COMMAND_TYPE
    with pytest.raises(SignatureError):
        open_sealed(encode(env), COMMAND_TYPE, KEY.public_key())


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda e: e.update(sig="!!"), "base64"),
        (lambda e: e.update(sig=base64.b64encode(b"x" * 10).decode()), "10 bytes"),
        (lambda e: e.pop("key_id"), "fields are wrong"),
        (lambda e: e.update(extra=1), "fields are wrong"),
        (lambda e: e.update(body=[]), "not a JSON object"),
    ],
)
def test_malformed_envelopes(mutate: Any, fragment: str) -> None:
    env = decode(seal(BATCH_TYPE, batch([1]).to_dict(), KEY))
    mutate(env)
    with pytest.raises((EnvelopeError, SignatureError)) as info:
        open_sealed(encode(env), BATCH_TYPE, KEY.public_key())
    assert fragment in info.value.reason or fragment in str(info.value.fields)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda d: d["events"].reverse(), "not above the previous"),
        (lambda d: d["events"][0].pop("boot_id"), "missing field"),
        (lambda d: d["events"][0].update(extra=1), "unknown field"),
        (lambda d: d["events"][0].update(cls="gossip"), "cls must be one of"),
        (lambda d: d["events"][0].update(seq=True), "must be an integer"),
        (lambda d: d["events"][0].update(kind="Bad Kind!"), "does not match"),
        (lambda d: d["events"][0].update(clock_synced=1), "true or false"),
        (lambda d: d.update(first_seq=3), "do not match"),
        (lambda d: d.update(head_seq=1), "below last_seq"),
        (lambda d: d.update(gateway_id="../etc"), "does not match"),
        (lambda d: d.update(v=2), "only version 1"),
        (lambda d: d.update(events=[]), "non-empty"),
        (lambda d: d.update(skipped=[[2, 2]]), "covers seq 2"),
        (lambda d: d.update(skipped=[[9, 12]]), "below last_seq"),
        (lambda d: d.update(skipped=[[1, 0]]), "outside 1.."),
        (lambda d: d.update(skipped=[[1, 1], [1, 1]]), "overlapping or out of order"),
    ],
)
def test_bad_batches_refused(change: Any, fragment: str) -> None:
    d = batch([2, 3, 5]).to_dict()
    change(d)
    with pytest.raises(EnvelopeError) as info:
        Batch.from_dict(d)
    assert fragment in info.value.reason


def ack(**kw: Any) -> dict[str, Any]:
    base = {
        "v": 1,
        "gateway_id": "gw-01",
        "batch_id": "b-1",
        "watermark": 3,
        "highest": 3,
        "gaps": [],
        "gaps_truncated": False,
        "stored": 3,
        "duplicates": 0,
    }
    return base | kw


def test_ack_confirms_only_what_it_says() -> None:
    b = batch([1, 2, 3])
    assert Ack.from_dict(ack()).confirms_batch(b)
    assert not Ack.from_dict(ack(batch_id="b-2")).confirms_batch(b)
    assert not Ack.from_dict(ack(stored=2)).confirms_batch(b)
    assert not Ack.from_dict(ack(watermark=1, highest=1)).confirms_batch(b)
    # evidence ahead: 10 and 12 held, 4..9 and 11 missing
    e = batch([10, 12])
    a = Ack.from_dict(ack(watermark=3, highest=12, gaps=[[4, 9], [11, 11]], stored=2))
    assert a.confirms_batch(e)
    assert not Ack.from_dict(ack(watermark=3, highest=12, gaps=[[4, 10]], stored=2)).confirms_batch(
        e
    )


@pytest.mark.parametrize(
    "bad",
    [
        ack(highest=2),
        ack(highest=9),  # above watermark but no gap
        ack(highest=9, gaps=[[5, 6]]),  # gap not starting at watermark+1
        ack(highest=9, gaps=[[4, 9]]),  # gap reaching highest
        ack(watermark=-1),
        ack(gaps_truncated="no"),
        ack(stored=True),
        ack(extra=1),
    ],
)
def test_inconsistent_acks_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(EnvelopeError):
        Ack.from_dict(bad)


def test_holes() -> None:
    assert holes(10, [12, 13, 17]) == [(11, 11), (14, 16)]
    assert holes(0, [1, 2, 3]) == []


@pytest.mark.parametrize("kind", [BATCH_TYPE, COMMAND_TYPE])
def test_seal_is_the_canonical_encoding_of_the_signed_envelope(kind: str) -> None:
    # seal() assembles the envelope around a body encoded once; it must be byte for byte what
    # encoding sign()'s dict gives (Ed25519 is deterministic), so old and new peers agree.
    from wire import sign

    for body in (batch([3, 4, 7], skipped=[(1, 2), (5, 6)]).to_dict(), {"é": "ü", "n": [1.5]}):
        assert seal(kind, body, KEY) == encode(sign(kind, body, KEY))


def _split_both(raw: bytes, kind: str = BATCH_TYPE) -> tuple[Any, Any]:
    from wire import split_envelope, split_sealed

    def run(fn: Any) -> Any:
        try:
            return fn(raw, kind)[:3]
        except (EncodingError, EnvelopeError, SignatureError) as exc:
            return type(exc)

    return run(split_sealed), run(split_envelope)


def test_split_sealed_reads_what_split_envelope_reads() -> None:
    import json

    from wire import split_sealed, verify_signed

    raw = seal(BATCH_TYPE, batch([3, 4, 7]).to_dict(), KEY)
    fast, full = _split_both(raw)
    assert fast == full
    body, _kid, sig, signed = split_sealed(raw, BATCH_TYPE)
    assert signed == encode({"type": BATCH_TYPE, "body": body})
    verify_signed(BATCH_TYPE, body, sig, signed, KEY.public_key())
    with pytest.raises(SignatureError):
        verify_signed(BATCH_TYPE, body, sig, signed, OTHER.public_key())
    # Another layout of the same envelope (spaces, keys in another order) takes the general
    # path and still verifies: the signature is over the canonical form.
    loose = json.dumps(dict(reversed(list(decode(raw).items()))), indent=1).encode()
    body2, _, sig2, signed2 = split_sealed(loose, BATCH_TYPE)
    assert body2 == body and signed2 == signed
    verify_signed(BATCH_TYPE, body2, sig2, signed2, KEY.public_key())
    # Body bytes that are not canonical but carry the canonical form's signature: the fast cut
    # does not verify, the canonical re-encoding does (as verify() always judged it).
    env = decode(raw)
    spaced = raw.replace(b'{"body":{', b'{"body":{ ', 1)
    assert spaced != raw
    b3, _, s3, signed3 = split_sealed(spaced, BATCH_TYPE)
    assert b3 == env["body"] and signed3 != signed
    verify_signed(BATCH_TYPE, b3, s3, signed3, KEY.public_key())


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.replace(b'"type":"batch"}', b'"type":"command"}'),
        lambda r: r[:-1],
        lambda r: r + b" ",
        lambda r: r.replace(b'"sig":"', b'"sig":"A'),
        lambda r: r.replace(b'"key_id":"', b'"key_id":"', 1).replace(b'"body":{', b'"body":[', 1),
        lambda r: r.replace(b'{"body":', b'{"body":{"x":', 1),
        lambda r: r.replace(b'{"body":', b'{"body":' + b"[" * 31 + b"1" + b"]" * 31 + b",", 1),
        lambda r: r.replace(b'==","type"', b'=A","type"', 1),
    ],
)
def test_split_sealed_refuses_what_split_envelope_refuses(mutate: Any) -> None:
    raw = mutate(seal(BATCH_TYPE, {"n": [[[1]]]}, KEY))
    fast, full = _split_both(raw)
    assert fast == full


@pytest.mark.parametrize("depth", [30, 31, 32])
def test_split_sealed_keeps_the_envelope_nesting_limit(depth: int) -> None:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    raw = seal(COMMAND_TYPE, {"v": value}, KEY) if depth < 31 else None
    if raw is None:  # too deep to seal: build the envelope by hand around a canonical body
        body = ('{"v":' + "[" * depth + "1" + "]" * depth + "}").encode()
        raw = b'{"body":' + body + b',"key_id":"ab","sig":"' + b"A" * 86 + b'==","type":"command"}'
    fast, full = _split_both(raw, COMMAND_TYPE)
    assert fast == full
    assert (fast is EncodingError) == (depth >= 31)


def _full_check_passes(ev: Any) -> bool:
    try:
        check_event_slow(ev)
    except EnvelopeError:
        return False
    return True


def check_event_slow(ev: Any) -> None:
    """check_event with its fast path off: the rules as the full check words them."""
    import wire.envelopes as env

    saved = env._plain_event
    env._plain_event = lambda _ev: False  # type: ignore[assignment]
    try:
        env.check_event(ev)
    finally:
        env._plain_event = saved


_CHAINED = event(5) | {"prev_seq": 3, "prev_hash": "a" * 64, "hash": "b" * 64}
_ODD_VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**53,
    2**62,
    2**62 + 1,
    10**400,
    1.5,
    float("nan"),
    float("inf"),
    "",
    "x",
    "tap",
    "Tap",
    "a" * 65,
    "0" * 64,
    "g" * 64,
    "evidence",
    "telemetry",
    [],
    {},
    [1],
    {"a": 1},
    (1,),
]


def test_check_event_fast_path_agrees_with_the_full_check() -> None:
    """The fast path (exact types) never passes what the full check refuses, and passes the
    well-formed events the uploader sends: every field of each kind of event, dropped or set to
    each odd value in turn."""
    from wire.envelopes import _plain_event, check_event

    fields = [*sorted(_CHAINED), "extra"]
    for base in (event(7), event(8, cls="telemetry"), _CHAINED):
        assert _plain_event(base) and _full_check_passes(base)
        for field in fields:
            for ev in [{k: v for k, v in base.items() if k != field}] + [
                base | {field: value} for value in _ODD_VALUES
            ]:
                fast, full = _plain_event(ev), _full_check_passes(ev)
                assert full or not fast, ev
                if fast:
                    assert check_event(ev) == ev
                if not full:
                    with pytest.raises(EnvelopeError):
                        check_event(ev)
        genesis = base | {"prev_seq": 0, "prev_hash": "0" * 64, "hash": "b" * 64}
        assert _plain_event(genesis) and _full_check_passes(genesis)
