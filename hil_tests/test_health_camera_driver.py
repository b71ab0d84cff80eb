"""The camera driver against the simulator: each auth scheme, each fault with its field."""

from __future__ import annotations

import hashlib

import pytest

from drivers.camera import CameraError, HttpCamera, parse_rtsp_reply, rtsp_options
from hil_tests.sims.camera import CameraSim


@pytest.mark.parametrize(
    ("auth", "algorithm"),
    [("digest", "MD5"), ("digest", "SHA-256"), ("basic", "MD5"), ("none", "MD5")],
)
async def test_snapshot_with_each_auth_scheme(auth: str, algorithm: str) -> None:
    async with CameraSim("c", auth=auth, algorithm=algorithm, password="pw") as sim:  # type: ignore[arg-type]
        async with HttpCamera("c", sim.snapshot_url, "admin", "pw", auth=auth) as cam:  # type: ignore[arg-type]
            for _ in range(3):  # the Digest nonce count advances; each fetch still works
                shot = await cam.snapshot()
            assert hashlib.sha256(shot.data).hexdigest() == sim.served[-1]
            assert shot.content_type == "image/jpeg" and 0 <= shot.elapsed_s < 60
        assert len(sim.served) == 3


async def _fault(cam: HttpCamera) -> tuple[str, str]:
    with pytest.raises(CameraError) as err:
        await cam.snapshot()
    return str(err.value.fields["fault"]), err.value.reason


async def test_each_fault_is_named() -> None:
    async with CameraSim("c", password="pw") as sim:
        async with HttpCamera("c", sim.snapshot_url, "admin", "nope", timeout_s=0.5) as bad:
            fault, reason = await _fault(bad)
            assert fault == "auth" and "wrong credentials (HTTP 401)" in reason
        async with HttpCamera("c", sim.snapshot_url, "admin", "pw", timeout_s=0.5) as cam:
            sim.serve_html = True
            fault, reason = await _fault(cam)
            assert fault == "bad_image" and "not a JPEG" in reason and "text/html" in reason
            sim.serve_html = False
            sim.hang = True
            assert (await _fault(cam))[0] == "timeout"
            sim.hang = False
            await sim.go_dark()
            fault, reason = await _fault(cam)
            assert fault == "unreachable" and "unreachable" in reason
            with pytest.raises(CameraError) as err:
                await rtsp_options(sim.rtsp_url, timeout=0.5)
            assert err.value.fields["fault"] == "unreachable"
            await sim.come_back()
            assert (await cam.snapshot()).data[:2] == b"\xff\xd8"
            reply = await rtsp_options(sim.rtsp_url, timeout=1.0)
            assert reply.status == 200 and "OPTIONS" in reply.public


def test_rtsp_reply_parser() -> None:
    status, reason, headers = parse_rtsp_reply(
        b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest x\r\n\r\n"
    )
    assert (status, reason, headers["cseq"]) == (401, "Unauthorized", "1")
    with pytest.raises(CameraError):
        parse_rtsp_reply(b"HTTP/1.1 200 OK\r\n\r\n")
