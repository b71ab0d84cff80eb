"""Hostile cameras (issue 14, items 9 and 10): whatever a camera sends, the driver raises
:class:`drivers.camera.CameraError` and nothing else, within a second, and the camera monitor
keeps running and reports the camera degraded with a clear reason.

The cameras are real TCP servers on loopback (``tests/hostile/drivers_rawserver.py``) writing the
bytes each example chose; the client is the production ``HttpCamera`` / ``rtsp_options``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.camera import CameraError, HttpCamera, parse_rtsp_reply, rtsp_options
from gateway.clock import SystemClock
from gateway.health.config import CameraConfig
from gateway.health.hub import HealthHub
from gateway.health.model import State
from gateway.health.services import CameraMonitor
from tests.health.helpers import events_of, open_journal, running, wait_until
from tests.hostile.drivers_rawserver import RawServer

LIMIT_S = 1.0
SERVER_CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

# -- strategies ---------------------------------------------------------------------------------

# Digits that str.isdigit() accepts but int() or ASCII protocols do not, and other odd ones.
ODD_DIGITS = "\u00b2\u00b3\u00b9\u0663\u06f3\u0967\u0e53\uff13\U0001d7d1\u2460"
odd_number = st.one_of(
    st.text(st.sampled_from("0123456789" + ODD_DIGITS), min_size=1, max_size=6),
    st.integers(min_value=10**20, max_value=10**400).map(str),
    st.integers(-(10**6), 10**6).map(str),
)
header_bytes = st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
latin_text = st.text(max_size=40).map(lambda s: s.encode("utf-8", "surrogatepass"))


@st.composite
def rtsp_heads(draw: st.DrawFn) -> bytes:
    """Status lines that look almost right, with headers, possibly truncated."""
    version = draw(st.sampled_from([b"RTSP/1.0", b"RTSP/2.0", b"RTSP/", b"HTTP/1.1", b"rtsp/1.0"]))
    status = draw(odd_number).encode("utf-8")
    reason = draw(header_bytes)
    headers = draw(st.lists(header_bytes, max_size=4))
    head = version + b" " + status + b" " + reason + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n"
    cut = draw(st.integers(0, len(head)))
    return head[:cut] if draw(st.booleans()) else head


@st.composite
def digest_challenges(draw: st.DrawFn) -> bytes:
    """A 401 whose Digest challenge carries any bytes (control, non-UTF-8) in its fields."""
    realm, nonce, qop, opaque = (draw(header_bytes) for _ in range(4))
    algo = draw(st.sampled_from([b"MD5", b"SHA-256", b"MD5-sess", b"\xff", b"", b"md5"]))
    parts = [b'realm="' + realm + b'"', b'nonce="' + nonce + b'"']
    if draw(st.booleans()):
        parts.append(b'qop="' + qop + b'"')
    if draw(st.booleans()):
        parts.append(b"algorithm=" + algo)
    if draw(st.booleans()):
        parts.append(b'opaque="' + opaque + b'"')
    return (
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest "
        + b", ".join(draw(st.permutations(parts)))
        + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )


JPEG = b"\xff\xd8" + b"\x00" * 64 + b"\xff\xd9"
GOOD_200 = (
    b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: "
    + str(len(JPEG)).encode()
    + b"\r\nConnection: close\r\n\r\n"
    + JPEG
)


@st.composite
def http_replies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["raw", "status", "challenge", "truncated", "headers"]))
    if kind == "raw":
        return draw(st.binary(max_size=600))
    if kind == "status":
        status = draw(odd_number).encode("utf-8")
        return b"HTTP/1.1 " + status + b" X\r\nContent-Length: 0\r\n\r\n"
    if kind == "challenge":
        return draw(digest_challenges())
    if kind == "truncated":
        return GOOD_200[: draw(st.integers(0, len(GOOD_200) - 1))]
    lines = draw(st.lists(header_bytes, max_size=6))
    length = draw(st.one_of(odd_number, st.just("-1"), st.just("99999999999999999999")))
    return (
        b"HTTP/1.1 200 OK\r\nContent-Length: "
        + length.encode("utf-8")
        + b"\r\n"
        + b"\r\n".join(lines)
        + b"\r\n\r\n"
        + JPEG
    )


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[RawServer]:
    with RawServer() as srv:
        yield srv


def _snapshot(url: str, auth: str = "digest") -> tuple[object, float]:
    async def go() -> object:
        async with HttpCamera("gate", url, "admin", "s3cret", auth=auth, timeout_s=3.0) as cam:  # type: ignore[arg-type]
            try:
                return await cam.snapshot()
            except CameraError as exc:
                return exc

    started = time.monotonic()
    result = asyncio.run(go())
    return result, time.monotonic() - started


def _rtsp(url: str) -> tuple[object, float]:
    async def go() -> object:
        try:
            return await rtsp_options(url, timeout=3.0)
        except CameraError as exc:
            return exc

    started = time.monotonic()
    result = asyncio.run(go())
    return result, time.monotonic() - started


# -- regressions --------------------------------------------------------------------------------


def test_rtsp_status_with_a_non_ascii_digit_is_a_camera_error() -> None:
    """Item 9: '\\xb2' (superscript two) passed str.isdigit() and then crashed int()."""
    with pytest.raises(CameraError) as info:
        parse_rtsp_reply(b"RTSP/1.0 \xb2 OK\r\n\r\n")
    assert info.value.fields["fault"] == "rtsp_protocol"
    assert "not an RTSP reply" in info.value.reason


@pytest.mark.parametrize(
    "challenge",
    [
        b'Digest realm="a\x01b", nonce="n", qop="auth"',  # control byte in the realm
        b'Digest realm="r", nonce="n\x7f", qop="auth"',  # DEL in the nonce
        b'Digest realm="\xff\xfe", nonce="n", qop="auth"',  # not UTF-8
        b'Digest realm="r", nonce="\xb2", qop="auth"',
    ],
)
def test_hostile_digest_challenge_is_a_camera_error(server: RawServer, challenge: bytes) -> None:
    """Item 10: aiohttp's Digest middleware raised ValueError / UnicodeEncodeError."""
    server.reply = (
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: " + challenge
        + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )  # fmt: skip
    result, _ = _snapshot(server.url("http", "/snapshot.jpg"))
    assert isinstance(result, CameraError), result
    assert result.fields["fault"] == "http"
    assert "unusable reply" in result.reason


# -- properties ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=4096), rtsp_heads()))
def test_parse_rtsp_reply_raises_only_camera_error(head: bytes) -> None:
    started = time.monotonic()
    try:
        status, _reason, headers = parse_rtsp_reply(head)
    except CameraError as exc:
        assert exc.fields["fault"] == "rtsp_protocol"
    else:
        assert 0 <= status <= 999 and isinstance(headers, dict)
    assert time.monotonic() - started < LIMIT_S


@settings(max_examples=150, deadline=None, suppress_health_check=SERVER_CHECKS)
@given(reply=http_replies())
def test_snapshot_raises_only_camera_error(server: RawServer, reply: bytes) -> None:
    server.reply = reply
    result, elapsed = _snapshot(server.url("http", "/snapshot.jpg"))
    assert isinstance(result, CameraError) or result.__class__.__name__ == "Snapshot", result
    assert elapsed < LIMIT_S, f"snapshot took {elapsed:.2f} s on {reply[:80]!r}"


@settings(max_examples=100, deadline=None, suppress_health_check=SERVER_CHECKS)
@given(reply=st.one_of(st.binary(max_size=600), rtsp_heads()))
def test_rtsp_options_raises_only_camera_error(server: RawServer, reply: bytes) -> None:
    server.reply = reply
    result, elapsed = _rtsp(server.url("rtsp", "/stream1"))
    assert isinstance(result, CameraError) or result.__class__.__name__ == "RtspReply", result
    assert elapsed < LIMIT_S, f"rtsp took {elapsed:.2f} s on {reply[:80]!r}"


# -- the service survives -----------------------------------------------------------------------


async def test_camera_monitor_survives_a_hostile_camera(tmp_path: Path) -> None:
    """A camera answering items 9 and 10's bytes: the monitor keeps polling, the hub records
    the camera degraded with the reason, and the service never crashes."""
    with RawServer() as http, RawServer() as rtsp:
        http.reply = (
            b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm="a\x01b", '
            b'nonce="\xb2", qop="auth"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'
        )
        rtsp.reply = b"RTSP/1.0 \xb2 OK\r\n\r\n"
        async with open_journal(tmp_path) as journal:
            hub = HealthHub(journal, SystemClock())
            cfg = CameraConfig(
                name="gate",
                snapshot_url=http.url("http", "/snapshot.jpg"),
                rtsp_url=rtsp.url("rtsp", "/stream1"),
                username="admin",
                interval_s=0.05,
                timeout_s=2.0,
            )
            mon = CameraMonitor(cfg, HttpCamera("gate", cfg.snapshot_url, "admin", "pw"), hub)
            async with running(hub, mon) as tasks:

                def degraded() -> bool:
                    h = hub.model.get("gate")
                    return h is not None and h.state is State.DEGRADED

                await wait_until(degraded, timeout=20.0, what="camera reported degraded")
                polls = mon.polls
                await wait_until(lambda: mon.polls >= polls + 3, timeout=20.0, what="more polls")
                assert not any(t.done() for t in tasks), "a service stopped"
                await hub.flush()
            # aiohttp keeps the challenge and fails before connecting on later polls.
            assert http.requests >= 1 and rtsp.requests >= 3
            changes = [e.payload for e in await events_of(journal, "health.state")]
        assert changes and changes[-1]["state"] == "degraded"
        reason = changes[-1]["reason"]
        assert "unusable reply to the snapshot request" in reason, reason
