"""The camera simulator against an independent client: aiohttp's own Digest/Basic auth, raw TCP."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import pytest

from hil_tests.sims.camera import CameraSim, digest_response, parse_auth_params


def test_digest_matches_rfc7616_examples() -> None:
    # RFC 7616 section 3.9.1 (the "Mufasa" example), MD5 and SHA-256.
    args = dict(
        username="Mufasa",
        realm="http-auth@example.org",
        password="Circle of Life",
        method="GET",
        uri="/dir/index.html",
        nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        nc="00000001",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        qop="auth",
    )
    assert digest_response("MD5", **args) == "8ca523f5e9506fed4657c9700eebdbec"
    assert (
        digest_response("SHA-256", **args)
        == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_auth_params_parse_quoted_commas() -> None:
    p = parse_auth_params('username="a\\"b", realm="x, y", nc=00000001, qop=auth')
    assert p == {"username": 'a"b', "realm": "x, y", "nc": "00000001", "qop": "auth"}


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
async def test_digest_snapshot_with_aiohttp_client(algorithm: str) -> None:
    async with CameraSim("c1", password="pw", algorithm=algorithm) as cam:  # type: ignore[arg-type]
        digest = aiohttp.DigestAuthMiddleware("admin", "pw")
        async with (
            aiohttp.ClientSession(middlewares=(digest,)) as s,
            s.get(cam.snapshot_url) as r,
        ):
            assert r.status == 200
            body = await r.read()
        assert body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9"
        assert cam.served == [hashlib.sha256(body).hexdigest()]


async def test_wrong_credentials_and_no_credentials_get_401() -> None:
    async with CameraSim("c1", password="right") as cam:
        async with (
            aiohttp.ClientSession(
                middlewares=(aiohttp.DigestAuthMiddleware("admin", "wrong"),)
            ) as s,
            s.get(cam.snapshot_url) as r,
        ):
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Digest ")
        async with aiohttp.ClientSession() as s, s.get(cam.snapshot_url) as r:
            assert r.status == 401
        assert cam.rejected == 1 and cam.served == []


async def test_basic_auth() -> None:
    good = {"Authorization": aiohttp.encode_basic_auth("admin", "pw")}
    bad = {"Authorization": aiohttp.encode_basic_auth("admin", "no")}
    async with CameraSim("c1", auth="basic", password="pw") as cam, aiohttp.ClientSession() as s:
        async with s.get(cam.snapshot_url, headers=good) as r:
            assert r.status == 200
        async with s.get(cam.snapshot_url, headers=bad) as r:
            assert r.status == 401


async def _raw_rtsp(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_rtsp_options_and_going_dark() -> None:
    async with CameraSim("c1") as cam:
        reply = await _raw_rtsp(cam.rtsp_port, b"OPTIONS * RTSP/1.0\r\nCSeq: 7\r\n\r\n")
        assert reply.startswith(b"RTSP/1.0 200 OK\r\nCSeq: 7\r\n")
        assert b"Public: OPTIONS" in reply
        reply = await _raw_rtsp(cam.rtsp_port, b"PLAY * RTSP/1.0\r\nCSeq: 8\r\n\r\n")
        assert reply.startswith(b"RTSP/1.0 405")
        http_port, rtsp_port = cam.http_port, cam.rtsp_port
        await cam.go_dark()
        with pytest.raises(OSError):
            await _raw_rtsp(rtsp_port, b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n")
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.ClientConnectorError):
                await s.get(cam.snapshot_url)
        await cam.come_back()
        assert (cam.http_port, cam.rtsp_port) == (http_port, rtsp_port)
        reply = await _raw_rtsp(cam.rtsp_port, b"OPTIONS * RTSP/1.0\r\nCSeq: 10\r\n\r\n")
        assert b"CSeq: 10" in reply


async def test_hang_means_timeouts() -> None:
    async with CameraSim("c1", auth="none") as cam:
        cam.hang = True
        async with aiohttp.ClientSession() as s:
            with pytest.raises(TimeoutError):
                await s.get(cam.snapshot_url, timeout=aiohttp.ClientTimeout(total=0.3))
