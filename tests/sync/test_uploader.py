"""The uploader against odd centres (a local TLS server with the centre's own certificate, so
TLS verifies and only the replies are wrong), and against the real one when backlogged."""

from __future__ import annotations

import asyncio
import gzip
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from centre.app import server_ssl_context
from gateway.clock import ManualClock
from gateway.events import TELEMETRY
from gateway.journal import Journal
from gateway.sync.config import SyncSection
from gateway.sync.uploader import Uploader
from tests.sync.conftest import Centre, enroll
from wire import BATCH_TYPE, Ack, Batch, encode, split_envelope

FAST = dict(
    first_delay_max_s=0.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.2,
    idle_poll_s=0.1,
    request_timeout_s=5.0,
)

Reply = Callable[[Batch], web.Response]


class FakeCentre:
    """Answers each batch with ``reply(batch)``; records batches and their arrival times."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.batches: list[Batch] = []
        self.times: list[float] = []

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body, _, _ = split_envelope(raw, BATCH_TYPE)
        batch = Batch.from_dict(body)
        self.batches.append(batch)
        self.times.append(time.monotonic())
        return self.reply(batch)


@pytest.fixture
async def fake(centre: Centre) -> AsyncIterator[Callable[[Reply], Any]]:
    runners: list[web.AppRunner] = []

    async def start(reply: Reply) -> tuple[FakeCentre, str]:
        fc = FakeCentre(reply)
        app = web.Application()

        async def route(request: web.Request) -> web.Response:
            return await fc.handle(request)  # looked up per request: tests may swap it

        app.router.add_post("/api/v1/ingest", route)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(centre.paths))
        await site.start()
        return fc, f"https://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for r in runners:
        await r.cleanup()


def ack_for(batch: Batch, **over: Any) -> dict[str, Any]:
    a = Ack(
        batch.gateway_id,
        batch.batch_id,
        batch.last_seq,
        batch.last_seq,
        (),
        False,
        len(batch.events),
        0,
    ).to_dict()
    return a | over


async def run_for(uploader: Uploader, seconds: float) -> None:
    task = asyncio.create_task(uploader.run())
    await asyncio.sleep(seconds)
    if task.done():
        task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def gateway(
    centre: Centre, tmp_path: Path, url: str, n: int = 10, **section: Any
) -> tuple[Journal, Uploader]:
    data = tmp_path / "gw"
    await enroll(centre, data)
    journal = await Journal.open(data / "j.db", gateway_id="gw-rose-01", clock=ManualClock())
    for i in range(n):
        await journal.append("tap", {"n": i})
    sec = SyncSection(centre_url=url, **(FAST | section))
    return journal, Uploader(journal, ManualClock(), sec, data_dir=data, rng=random.Random(5))


ODD_REPLIES: dict[str, Reply] = {
    "captive portal html": lambda b: web.Response(
        text="<html><body>Please log in to FreeWiFi</body></html>", content_type="text/html"
    ),
    "json that is no ack": lambda b: web.json_response({"ok": True}),
    "truncated json": lambda b: web.Response(
        body=encode(ack_for(b))[:-3], content_type="application/json"
    ),
    "ack above what was written": lambda b: web.Response(
        body=encode(ack_for(b, watermark=10_000, highest=10_000)), content_type="application/json"
    ),
    "ack for another batch": lambda b: web.Response(
        body=encode(ack_for(b, batch_id="someone-else")), content_type="application/json"
    ),
    "ack missing events": lambda b: web.Response(
        body=encode(ack_for(b, watermark=b.first_seq, highest=b.first_seq, stored=1)),
        content_type="application/json",
    ),
    "duplicate keys": lambda b: web.Response(
        body=b'{"v":1,"v":1}', content_type="application/json"
    ),
    "http 500": lambda b: web.Response(status=500, text="oops"),
    "redirect to login": lambda b: web.Response(status=302, headers={"Location": "http://x/"}),
}


@pytest.mark.parametrize("case", sorted(ODD_REPLIES))
async def test_odd_reply_never_marks_rows(
    case: str, centre: Centre, fake: Any, tmp_path: Path
) -> None:
    fc, url = await fake(ODD_REPLIES[case])
    journal, up = await gateway(centre, tmp_path, url)
    try:
        await run_for(up, 0.6)
        stats = await journal.stats()
        assert len(fc.batches) >= 2, "an odd reply must be retried"
        assert stats["unsynced"] == stats["events"], "nothing may be marked synced"
        assert up.counters["errors"] >= 2
        assert up.link.last_error
        kinds = [e.kind for e in await journal.read_after(0, limit=100)]
        assert kinds.count("link.down") == 1  # one transition, not one per retry
    finally:
        await journal.close()


async def test_retry_after_is_honoured(centre: Centre, fake: Any, tmp_path: Path) -> None:
    calls = {"n": 0}

    def reply(b: Batch) -> web.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return web.json_response(
                {"error": "unavailable", "reason": "busy"}, status=503, headers={"Retry-After": "1"}
            )
        return web.Response(body=encode(ack_for(b)), content_type="application/json")

    fc, url = await fake(reply)
    journal, up = await gateway(centre, tmp_path, url)
    try:
        await run_for(up, 1.8)
        assert len(fc.times) >= 2
        assert fc.times[1] - fc.times[0] >= 1.0  # waited as told (plus jitter)
        assert (await journal.stats())["unsynced"] == 0
    finally:
        await journal.close()


async def test_timeouts_shrink_the_batch(centre: Centre, fake: Any, tmp_path: Path) -> None:
    fc, url = await fake(
        lambda b: web.Response(body=encode(ack_for(b)), content_type="application/json")
    )
    orig = fc.handle

    async def handle(request: web.Request) -> web.Response:
        if len(fc.batches) < 2:
            raw = await request.read()
            fc.batches.append(Batch.from_dict(split_envelope(raw, BATCH_TYPE)[0]))
            await asyncio.sleep(2.0)  # beyond the 1 s timeout: the reply never makes it
            return web.Response(status=504)
        return await orig(request)

    fc.handle = handle  # type: ignore[method-assign]
    journal, up = await gateway(
        centre, tmp_path, url, n=40, batch_max_events=16, request_timeout_s=1.0
    )
    try:
        await run_for(up, 3.5)
        sizes = [len(b.events) for b in fc.batches]
        assert sizes[:3] == [16, 8, 4]
    finally:
        await journal.close()


async def test_evidence_goes_before_a_telemetry_backlog(
    centre: Centre, fake: Any, tmp_path: Path
) -> None:
    def reply(b: Batch) -> web.Response:
        # A real centre's answer for evidence sent ahead: watermark stays, gaps below.
        return web.Response(body=encode(ack_for(b)), content_type="application/json")

    fc, url = await fake(reply)
    data = tmp_path / "gw"
    await enroll(centre, data)
    journal = await Journal.open(data / "j.db", gateway_id="gw-rose-01", clock=ManualClock())
    try:
        for i in range(300):
            await journal.append("health.sample", {"i": i}, cls=TELEMETRY)
        for i in range(5):
            await journal.append("tap", {"late": i})
        sec = SyncSection(centre_url=url, batch_max_events=50, **FAST)
        up = Uploader(journal, ManualClock(), sec, data_dir=data, rng=random.Random(1))
        await run_for(up, 1.0)
        first = fc.batches[0]
        assert [e["kind"] for e in first.events] == ["tap"] * 5
        assert first.skipped == ()
        # then the telemetry, in order, each batch bounded
        assert all(len(b.events) <= 50 for b in fc.batches)
        firsts = [b.first_seq for b in fc.batches]
        assert 1 in firsts and firsts.index(1) > 0  # telemetry from seq 1, after the taps
        assert (await journal.stats())["unsynced"] == 0
    finally:
        await journal.close()


async def test_gzip_on_the_wire(centre: Centre, tmp_path: Path) -> None:
    # Through the real centre: bytes on the wire are well below the canonical size.
    journal, up = await gateway(centre, tmp_path, centre.url, n=200)
    try:
        await run_for(up, 1.0)
        assert (await journal.stats())["unsynced"] == 0
        assert up.counters["wire_bytes"] * 3 < up.counters["raw_bytes"]
        assert gzip.decompress(gzip.compress(b"x")) == b"x"
    finally:
        await journal.close()


async def test_dropped_telemetry_is_declared_and_the_centre_passes_it(
    centre: Centre, tmp_path: Path
) -> None:
    data = tmp_path / "gw"
    await enroll(centre, data)
    journal = await Journal.open(
        data / "j.db",
        gateway_id="gw-rose-01",
        clock=ManualClock(),
        telemetry_budget_bytes=64 * 1024,
    )
    try:
        for i in range(1500):  # ~100 KB of telemetry against a 64 KB budget: the oldest go
            await journal.append("health.sample", {"i": i, "pad": "x" * 40}, cls=TELEMETRY)
        await journal.append("tap", {"after": "drops"})
        assert (await journal.stats())["dropped_unsynced"] > 0
        sec = SyncSection(centre_url=centre.url, batch_max_events=200, **FAST)
        up = Uploader(journal, ManualClock(), sec, data_dir=data, rng=random.Random(1))
        await run_for(up, 1.5)
        from centre.audit import audit_gateway

        report = await audit_gateway(centre.running.repo, "gw-rose-01")
        assert report.ok, report.problems
        assert report.skipped > 0 and report.highest == journal.last_seq
        g = await centre.running.repo.gateway("gw-rose-01")
        assert g is not None and g.watermark == journal.last_seq
    finally:
        await journal.close()


async def test_batch_prepared_ahead_is_dropped_when_the_one_in_flight_fails(
    centre: Centre, fake: Any, tmp_path: Path
) -> None:
    """The next batch is prepared while one is in flight, assuming it is confirmed. When it is
    not, what was prepared ahead must never go out: the failed batch's rows are sent again
    first, and every row is marked only by the ack that confirms it."""
    refused: list[Batch] = []

    def reply(b: Batch) -> web.Response:
        if b.first_seq == 21 and not refused:  # the third in-order batch, refused once
            refused.append(b)
            return web.Response(text="<html>proxy error</html>", content_type="text/html")
        return web.Response(body=encode(ack_for(b)), content_type="application/json")

    fc, url = await fake(reply)
    journal, up = await gateway(centre, tmp_path, url, n=0, batch_max_events=10)
    for i in range(100):  # telemetry: in-order batches, the ones prepared ahead
        await journal.append("health.sample", {"n": i}, cls=TELEMETRY)
    task = asyncio.create_task(up.run())
    try:
        for _ in range(400):  # a bound on a hang, not a timing assertion
            if not await journal.read_after(0, limit=1, unsynced_only=True) or task.done():
                break
            await asyncio.sleep(0.05)
        if task.done():
            task.result()
        assert not await journal.read_after(0, limit=1, unsynced_only=True)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()
    # link.up / link.down are evidence and may go ahead of the telemetry: judge the in-order
    # (telemetry) batches, then every batch together.
    telemetry = [b for b in fc.batches if b.events[0]["cls"] == TELEMETRY]
    firsts = [b.first_seq for b in telemetry]
    assert firsts[:4] == [1, 11, 21, 21], "the refused batch goes again before anything after"
    assert firsts == sorted(firsts)
    confirmed = [b for b in fc.batches if b is not refused[0]]
    seqs = sorted(s for b in confirmed for s in b.seqs())
    assert seqs == list(range(1, journal.last_seq + 1))  # each row confirmed exactly once
    assert up.counters["prefetched"] >= 5  # the others were prepared ahead
