"""Property tests of the gateway's parsers of network input: bad input raises the documented
error type and nothing else, and never takes a second.

| parser | input from | documented outcome for bad input |
|---|---|---|
| ``gateway.sync.policy.parse_retry_after`` | a centre's Retry-After header | None (never raises) |
| ``gateway.sync.replies.parse_ack``, ``reply_json``, ``reply_object`` | reply bodies | SyncError |
| ``gateway.sync.replies.reply_error`` | centre error bodies | returns a SyncError, never raises |
| ``gateway.sync.provision.parse_enrollment_reply`` | the enrollment reply | SyncError |
| ``gateway.web.auth.csrf_matches`` | form fields and cookies | False (never raises) |
| ``gateway.commands.verifier.ChannelVerifier.verify`` | command frames | CommandRefused |
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.clock import ManualClock
from gateway.commands.verifier import ChannelVerifier
from gateway.errors import CommandRefused, SyncError
from gateway.sync.policy import RETRY_AFTER_MAX_S, parse_retry_after
from gateway.sync.provision import parse_enrollment_reply
from gateway.sync.replies import parse_ack, reply_error, reply_json, reply_object
from gateway.web.auth import csrf_matches
from wire import Ack, encode, seal
from wire.commands import Limits

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMIT_S = 1.0

ODD_DIGITS = "0123456789\u00b2\u00b3\u00b9\u0660\u0661\u06f5\u0966\uff11\u2155\U0001d7ce"
odd_text = st.text(alphabet=st.sampled_from(ODD_DIGITS + " -+.,:GMTSunMonJan\x00\xff"), max_size=60)
huge_int = st.integers(min_value=4300, max_value=6000).map(lambda n: "9" * n)
GOOD_ACK = encode(Ack("gw-rose-01", "b1-x", 5, 5, (), False, 5, 0).to_dict())


def nested(depth: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return open_ * depth + close * depth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)

hostile_bodies = st.one_of(
    st.binary(max_size=2000),
    odd_text.map(str.encode),
    huge_int.map(lambda d: b'{"v":1,"watermark":' + d.encode() + b"}"),
    huge_int.map(lambda d: d.encode()),
    st.integers(min_value=30, max_value=100_000).map(nested),
    st.integers(min_value=30, max_value=50_000).map(lambda d: nested(d, b'{"a":', b"}")),
    st.integers(min_value=0, max_value=len(GOOD_ACK) - 1).map(lambda n: GOOD_ACK[:n]),
    json_values.map(lambda v: encode(v) if _encodable(v) else b"null"),
    st.binary(min_size=1, max_size=8).map(lambda junk: GOOD_ACK[:20] + junk + GOOD_ACK[20:]),
    st.just(b'{"v":"\xff\xfe"}'),
    st.just(b"\xef\xbb\xbf" + GOOD_ACK),
)


def _encodable(v: object) -> bool:
    try:
        encode(v)
    except Exception:
        return False
    return True


# Timed in CPU seconds of the test's thread (time.thread_time): the 1 s bound is on the
# parser's own work; a loaded machine's scheduler pauses (seen at over 1 s) are not.
def timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.thread_time()
    try:
        return fn(*args)
    finally:
        elapsed = time.thread_time() - start
        assert elapsed < LIMIT_S, f"{fn.__name__} took {elapsed:.2f} s"


@SETTINGS
@given(st.one_of(odd_text, huge_int, st.text(max_size=200), st.none()), st.floats(0, 2e9))
def test_retry_after_is_none_or_a_bounded_delay(value: str | None, now: float) -> None:
    got = timed(parse_retry_after, value, now)
    assert got is None or 0.0 <= got <= RETRY_AFTER_MAX_S


@SETTINGS
@given(hostile_bodies)
def test_centre_reply_parsers_raise_only_sync_error(body: bytes) -> None:
    for parse in (
        parse_ack,
        lambda b: reply_json(b, "reply"),
        lambda b: reply_object(b, "reply", ("certificate",), 64 * 1024),
        parse_enrollment_reply,
    ):
        try:
            timed(parse, body)
        except SyncError:
            pass
    err = timed(reply_error, 400, "application/json", body)
    assert isinstance(err, SyncError)
    assert err.reason.isprintable()


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=100).map(lambda b: b.decode("utf-8", "surrogateescape")),
    ),
    st.one_of(st.none(), st.text(max_size=300), odd_text),
)
def test_csrf_comparison_is_a_bool_whatever_the_cookie_and_field(
    cookie: str, field: str | None
) -> None:
    assert timed(csrf_matches, cookie, field) in (True, False)


KEY = Ed25519PrivateKey.generate()


def _envelope_like(body: object) -> bytes:
    try:
        return seal("command", body, KEY)  # type: ignore[arg-type]
    except Exception:
        return b"{}"


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.one_of(
        hostile_bodies,
        json_values.map(_envelope_like),
        st.integers(16 * 1024, 40 * 1024).map(
            lambda n: b'{"type":"command","pad":"' + b"x" * n + b'"}'
        ),
    )
)
def test_command_frames_are_refused_never_crash_the_verifier(tmp_path: Path, frame: bytes) -> None:
    async def check() -> None:
        verifier = await ChannelVerifier.open(
            KEY.public_key(), "gw-rose-01", tmp_path / "state.json", ManualClock(), Limits()
        )
        start = time.monotonic()
        try:
            await verifier.verify(frame)
        except CommandRefused as exc:
            assert exc.fields.get("code"), exc.fields
        else:
            raise AssertionError("a hostile frame was accepted")
        assert time.monotonic() - start < LIMIT_S

    asyncio.run(check())
