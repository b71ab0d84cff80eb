# ruff: noqa: F811 - the centre fixtures are imported by name, then requested as arguments
"""The uploader and the enrollment against a hostile centre: a raw TLS server on loopback (the
centre's own certificate, so TLS verifies and only the replies are hostile) answering each
request with the next canned byte string, whatever HTTP says.

Every hostile reply must be a logged, retried ``SyncError``: the uploader keeps running, marks
nothing, journals ``link.down`` once, and the good ack that follows is honoured at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from centre.app import server_ssl_context
from gateway.clock import ManualClock
from gateway.errors import SyncError
from gateway.journal import Journal
from gateway.sync.config import SyncSection
from gateway.sync.provision import provision
from gateway.sync.uploader import Uploader
from tests.sync.conftest import Centre, centre, centre_dir, enroll  # noqa: F401 - fixtures used by name
from wire import BATCH_TYPE, Ack, Batch, encode, split_envelope

FAST = dict(
    first_delay_max_s=0.0,
    backoff_initial_s=0.02,
    backoff_max_s=0.05,
    idle_poll_s=0.1,
    request_timeout_s=5.0,
)
GW = "gw-rose-01"

Responder = Callable[[bytes, bytes], bytes]  # (request head, request body) -> raw reply


def http(status: str, body: bytes, *headers: str, ctype: str = "application/json") -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
    if ctype:
        head.append(f"Content-Type: {ctype}")
    return ("\r\n".join([*head, *headers]) + "\r\n\r\n").encode("latin-1") + body


class RawCentre:
    """Answers request n with ``replies[n]`` (the last one for ever after)."""

    def __init__(self, replies: list[Responder]) -> None:
        self.replies = replies
        self.requests = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            if head.startswith(b"GET /api/v1/ingest/state"):
                # The uploader's start-up question gets the first hostile reply too (when that
                # can be made without a batch); it is not counted.
                try:
                    writer.write(self.replies[0](head, body))
                except Exception:
                    writer.write(http("404 Not Found", b"{}"))
            else:
                reply = self.replies[min(self.requests, len(self.replies) - 1)]
                self.requests += 1
                writer.write(reply(head, body))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@pytest.fixture
async def raw_centre(centre: Centre) -> AsyncIterator[Callable[[list[Responder]], object]]:
    servers: list[asyncio.Server] = []

    async def start(replies: list[Responder]) -> tuple[RawCentre, str]:
        rc = RawCentre(replies)
        server = await asyncio.start_server(
            rc.handle, "127.0.0.1", 0, ssl=server_ssl_context(centre.paths)
        )
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return rc, f"https://127.0.0.1:{port}"

    yield start
    for s in servers:
        s.close()
        await s.wait_closed()


def batch_of(body: bytes) -> Batch:
    import gzip

    env, _, _ = split_envelope(gzip.decompress(body), BATCH_TYPE)
    return Batch.from_dict(env)


def good_ack(head: bytes, body: bytes) -> bytes:
    b = batch_of(body)
    ack = Ack(b.gateway_id, b.batch_id, b.last_seq, b.last_seq, (), False, len(b.events), 0)
    return http("200 OK", encode(ack.to_dict()))


def ack_with(**over: object) -> Responder:
    def reply(head: bytes, body: bytes) -> bytes:
        b = batch_of(body)
        ack = Ack(b.gateway_id, b.batch_id, b.last_seq, b.last_seq, (), False, len(b.events), 0)
        raw = encode(ack.to_dict() | over)
        return http("200 OK", raw)

    return reply


def fixed(raw: bytes) -> Responder:
    return lambda head, body: raw


HUGE = "9" * 5000  # above Python's 4300-digit limit for int(str)
HOSTILE: dict[str, Responder] = {
    "ack with a 5000-digit watermark": fixed(
        http("200 OK", b'{"v":1,"watermark":' + HUGE.encode() + b"}")
    ),
    "ack with a 5000-digit stored count": lambda h, b: http(
        "200 OK",
        good_ack(h, b)
        .split(b"\r\n\r\n", 1)[1]
        .replace(b'"stored":', b'"stored":9' + HUGE.encode() + b',"x":', 1),
    ),
    "error body with a 5000-digit integer": fixed(
        http("400 Bad Request", b'{"error":' + HUGE.encode() + b',"reason":"x"}')
    ),
    "429 with Retry-After: superscript two": fixed(
        http("429 Too Many", b"{}", "Retry-After: \u00b2".encode().decode("latin-1"))
    ),
    "503 with a date past year 9999": fixed(
        http("503 Busy", b"{}", "Retry-After: Mon, 01 Jan 99999999999 00:00:00 GMT")
    ),
    "ack nested 100000 deep": fixed(http("200 OK", b"[" * 100_000 + b"]" * 100_000)),
    "ack that is not UTF-8": fixed(http("200 OK", b'{"v":"\xff\xfe"}')),
    "ack with a float watermark": ack_with(watermark=1e300),
    "ack with a negative highest": ack_with(highest=-1),
    "ack with odd Unicode digits": fixed(http("200 OK", '{"v":\u0661}'.encode())),
    "truncated reply": fixed(http("200 OK", b'{"v":1,"gateway_id":')[:-5]),
    "garbage status line": fixed(b"HTTP/1.1 99999999999999999999 WAT\r\n\r\n"),
    "not HTTP at all": fixed(b"\x00\xff\xfe SSH-2.0-OpenSSH\r\n\r\n"),
    "header without a colon": fixed(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"),
    "content type with a bad charset": fixed(
        http("200 OK", b"{}", ctype="application/json; charset=klingon-42")
    ),
    "html from a captive portal": fixed(http("200 OK", b"<html>log in</html>", ctype="text/html")),
    "reply above the size limit": fixed(http("200 OK", b" " * (2 * 1024 * 1024))),
}


async def wait_synced(journal: Journal, task: asyncio.Task[None], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (await journal.stats())["unsynced"]:
        if task.done():
            task.result()  # re-raises the crash: the point of the test
            raise AssertionError("the uploader stopped without an exception")
        if time.monotonic() > deadline:
            raise AssertionError("the good ack after the hostile replies was never honoured")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_uploader_survives_a_hostile_reply_and_the_next_good_ack_works(
    case: str,
    centre: Centre,
    raw_centre: Callable[..., object],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile = HOSTILE[case]
    rc, url = await raw_centre([hostile, hostile, good_ack])  # type: ignore[misc]
    data = tmp_path / "gw"
    await enroll(centre, data)
    journal = await Journal.open(data / "j.db", gateway_id=GW, clock=ManualClock())
    for i in range(5):
        await journal.append("tap", {"n": i})
    section = SyncSection(centre_url=url, **FAST)  # type: ignore[arg-type]
    up = Uploader(journal, ManualClock(), section, data_dir=data, rng=random.Random(1))
    caplog.set_level(logging.INFO, logger="gateway.sync")
    task = asyncio.create_task(up.run())
    try:
        await wait_synced(journal, task, timeout=20.0)
        assert not task.done(), "the uploader must still be running"
        assert rc.requests >= 3, "each hostile reply is followed by a retry"
        # Something readable was said about it: a warning (or the 429/503 info line).
        said = [r for r in caplog.records if r.name.startswith("gateway.sync")]
        assert any("retry" in r.getMessage() for r in said), [r.getMessage() for r in said]
        assert not any(r.exc_info for r in said), "no traceback in the log"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()


ENROLL_HOSTILE: dict[str, bytes] = {
    "5000-digit integer": http("201 Created", b'{"certificate":' + HUGE.encode() + b"}"),
    "not UTF-8": http("201 Created", b'{"certificate":"\xff"}'),
    "nested 100000 deep": http("201 Created", b"[" * 100_000 + b"]" * 100_000),
    "certificate not PEM": http(
        "201 Created",
        encode(
            {
                "certificate": "-----BEGIN CERTIFICATE-----\n\u00b2\n-----END CERTIFICATE-----",
                "ca_certificate": "x",
                "command_public_key": "y",
                "compound": "Rose Garden",
            }
        ),
    ),
    "certificate with non-ASCII": http(
        "201 Created",
        encode(
            {
                "certificate": "\u4e2d\u6587",
                "ca_certificate": "x",
                "command_public_key": "y",
                "compound": "Rose Garden",
            }
        ),
    ),
    "refusal with a 5000-digit integer": http(
        "403 Forbidden", b'{"reason":"no","error":' + HUGE.encode() + b"}"
    ),
    "garbage status line": b"HTTP/1.1 0x WAT\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(ENROLL_HOSTILE))
async def test_enrollment_reply_that_is_hostile_is_a_sync_error(
    case: str, centre: Centre, raw_centre: Callable[..., object], tmp_path: Path
) -> None:
    ca_pem = centre.paths.ca_cert.read_text()

    def reply(head: bytes, body: bytes) -> bytes:
        if b" /api/v1/ca " in head:
            return http("200 OK", encode({"ca_certificate": ca_pem}))
        return ENROLL_HOSTILE[case]

    _, url = await raw_centre([reply])  # type: ignore[misc]
    url = url.replace("127.0.0.1", "localhost")  # the server certificate names localhost too
    with pytest.raises(SyncError):
        await provision(
            url,
            "cgt-token",
            data_dir=tmp_path / "gw",
            gateway_id=GW,
            ca_fingerprint=centre.fingerprint,
        )
    assert not (tmp_path / "gw" / "sync" / "gateway-cert.pem").exists()
