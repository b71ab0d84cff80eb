"""The centre's ingest admission: a batch that finds every slot taken waits in line for one.

One slot (``max_concurrent_ingest=1``), held by gateway A's request whose body trickles in over
the wire (a slow 4G link holds its slot while the centre reads it). Gateway B's batch then waits
in line and is served once A's slot frees, instead of being sent away with 503 at once; past
the wait, or with no line, it gets 503 with ``Retry-After``. B sends a body the centre refuses
(400 ``bad_envelope``): a 400 shows B was admitted and read, a 503 that it was not.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from centre.pki import CentrePaths
from centre.server import running_centre
from gateway.sync.tls import client_ssl_context
from tests.sync.conftest import Centre, enroll

BODY = b'{"not": "a signed batch"}'


class Raw:
    """An HTTP/1.1 request over the gateway's own mTLS credentials, written by hand so the
    test decides when each byte goes out."""

    def __init__(self, url: str, data_dir: Path) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 443
        sync = data_dir / "sync"
        self.ctx = client_ssl_context(
            sync / "centre-ca.pem", sync / "gateway-cert.pem", sync / "gateway-key.pem"
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def start(self, length: int, first: bytes) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.ctx, server_hostname=self.host
        )
        head = (
            f"POST /api/v1/ingest HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n"
            "Connection: close\r\n\r\n"
        )
        self.writer.write(head.encode("ascii") + first)
        await self.writer.drain()

    async def finish(self, rest: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(rest)
        await self.writer.drain()
        raw = await asyncio.wait_for(self.reader.read(), 30)
        self.writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
        return status, headers, json.loads(body)

    async def post(self, body: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
        await self.start(len(body), b"")
        return await self.finish(body)


OneSlot = Callable[[float], AbstractAsyncContextManager[tuple[Raw, Raw]]]


@pytest.fixture
def one_slot(centre_dir: tuple[CentrePaths, str], tmp_path: Path) -> OneSlot:
    """A centre with one ingest slot and a line of ``wait`` seconds; two enrolled gateways."""

    @asynccontextmanager
    async def make(wait: float) -> AsyncIterator[tuple[Raw, Raw]]:
        template, fp = centre_dir
        root = tmp_path / f"centre-{wait}"
        shutil.copytree(template.root, root)
        async with running_centre(
            CentrePaths(root), max_concurrent_ingest=1, ingest_queue_wait_s=wait
        ) as running:
            centre = Centre(CentrePaths(root), running, fp)
            a, b = tmp_path / f"a-{wait}", tmp_path / f"b-{wait}"
            await enroll(centre, a, "gw-a", "Rose Garden")
            await enroll(centre, b, "gw-b", "Lotus Court")
            yield Raw(centre.url, a), Raw(centre.url, b)

    return make


async def test_a_batch_waits_in_line_for_the_slot_instead_of_503(one_slot: OneSlot) -> None:
    async with one_slot(10.0) as (a, b):
        await a.start(len(BODY), BODY[:5])  # A holds the only slot, its body half sent
        await asyncio.sleep(0.3)
        waiting = asyncio.create_task(b.post(BODY))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # B waits in line: no 503 at once
        status_a, _, reply_a = await a.finish(BODY[5:])
        assert status_a == 400, reply_a
        status_b, _, reply_b = await waiting
        assert status_b == 400 and reply_b["error"] == "bad_envelope", reply_b


async def test_past_the_wait_the_batch_gets_503_with_retry_after(one_slot: OneSlot) -> None:
    async with one_slot(0.5) as (a, b):
        await a.start(len(BODY), BODY[:5])
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        status, headers, reply = await b.post(BODY)
        waited = time.monotonic() - t0
        assert status == 503 and reply["error"] == "unavailable", reply
        assert headers["retry-after"] == "5"
        assert waited >= 0.45  # it did wait in line before being sent away
        status_a, _, _ = await a.finish(BODY[5:])
        assert status_a == 400
        assert (await b.post(BODY))[0] == 400  # the slot is free again: admitted


async def test_with_no_line_a_busy_centre_answers_503_at_once(one_slot: OneSlot) -> None:
    async with one_slot(0.0) as (a, b):
        await a.start(len(BODY), BODY[:5])
        await asyncio.sleep(0.3)
        status, headers, reply = await b.post(BODY)
        assert status == 503 and headers["retry-after"] == "5", reply
        assert (await a.finish(BODY[5:]))[0] == 400
