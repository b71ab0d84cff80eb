"""The link's fault matrix through the HIL fault proxy, on real TLS over loopback.

Gateway (journal + uploader) → FaultProxy → centre. Each fault strikes while batches are in
flight; afterwards the centre must hold every event exactly once, sequence-complete, with every
batch signature valid, and the gateway's journal must have nothing left unsynced.

Latency is scaled in the default run: 1 s each way (a new TLS connection plus one request is
3 round trips, 6 s, under the 15 s request timeout used here); a 30 s round trip (15 s each
way) runs in the slow test (``--slow``, about 3 minutes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from centre.audit import audit_gateway
from centre.pki import CentrePaths, init_centre
from centre.server import RunningCentre, running_centre
from centre.tokens import hash_token, new_token
from gateway.clock import SystemClock
from gateway.events import TELEMETRY
from gateway.journal import Journal
from gateway.sync.config import SyncSection
from gateway.sync.provision import provision
from gateway.sync.uploader import Uploader
from hil_tests.netproxy import FaultProxy

GATEWAY = "gw-fault-01"


@dataclass
class Rig:
    centre: RunningCentre
    proxy: FaultProxy
    journal: Journal
    uploader: Uploader
    task: asyncio.Task[None]
    db_path: Path

    async def watermark(self) -> int:
        g = await self.centre.repo.gateway(GATEWAY)
        return g.watermark if g else 0

    async def wait(self, predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not await predicate():
            if self.task.done():
                self.task.result()
                raise AssertionError("uploader stopped")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out: watermark {await self.watermark()}, journal at"
                    f" {self.journal.last_seq}, link {self.uploader.status()}"
                )
            await asyncio.sleep(0.05)

    async def wait_watermark(self, at_least: int, timeout: float = 30.0) -> None:
        async def reached() -> bool:
            return await self.watermark() >= at_least

        await self.wait(reached, timeout)

    async def drained(self, timeout: float = 60.0) -> None:
        async def done() -> bool:
            return (
                await self.watermark() >= self.journal.last_seq
                and (await self.journal.stats())["unsynced"] == 0
            )

        await self.wait(done, timeout)

    def resent_seqs(self) -> int:
        """Events the centre received more than once (each stored once)."""
        db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            return int(
                db.execute("SELECT COALESCE(SUM(count - new_count), 0) FROM batches").fetchone()[0]
            )
        finally:
            db.close()


async def append_mixed(journal: Journal, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        if i % 4 == 0:
            await journal.append("tap", {"checkpoint": f"cp-{i % 11}", "card": f"{i:08x}", "n": i})
        else:
            await journal.append(
                "health.sample", {"cpu_c": 41.5, "disk_free": 1_000_000 - i, "n": i}, cls=TELEMETRY
            )


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    paths = CentrePaths(tmp_path / "centre")
    fp = init_centre(paths, hostnames=["localhost"], ips=["127.0.0.1"], now=time.time(), name="T")
    async with running_centre(paths) as centre:
        token = new_token()
        now = time.time()
        await centre.repo.create_token(hash_token(token), "Fault Court", "", now, now + 600)
        data = tmp_path / "gw"
        await provision(
            centre.url,
            token,
            data_dir=data,
            gateway_id=GATEWAY,
            compound="Fault Court",
            ca_fingerprint=fp,
        )
        proxy = FaultProxy(target=("127.0.0.1", centre.port))
        await proxy.start()
        section = SyncSection(
            centre_url=f"https://127.0.0.1:{proxy.port}",
            batch_max_events=20,
            first_delay_max_s=0.0,
            backoff_initial_s=0.1,
            backoff_max_s=0.8,
            idle_poll_s=0.2,
            request_timeout_s=15.0,
            connect_timeout_s=3.0,
        )
        journal = await Journal.open(data / "journal.db", gateway_id=GATEWAY, clock=SystemClock())
        await append_mixed(journal, 200)
        uploader = Uploader(journal, SystemClock(), section, data_dir=data, rng=random.Random(7))
        task = asyncio.create_task(uploader.run())
        try:
            yield Rig(centre, proxy, journal, uploader, task, paths.database)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await proxy.stop()
            await journal.close()


async def assert_exactly_once(rig: Rig) -> None:
    await rig.drained()
    report = await audit_gateway(rig.centre.repo, GATEWAY)
    assert report.ok, report.problems
    assert report.highest == rig.journal.last_seq
    assert await rig.centre.repo.event_seqs(GATEWAY) == list(range(1, rig.journal.last_seq + 1))


async def test_cut_mid_batch(rig: Rig) -> None:
    await rig.wait_watermark(20)
    # Every connection dies 700 bytes into its request: batches are cut mid-upload.
    rig.proxy.reset_mid_stream(700, direction="upstream")
    await append_mixed(rig.journal, 100, start=200)
    await rig.proxy.wait_for_reset(timeout=10)
    await asyncio.sleep(1.0)
    stuck = await rig.watermark()
    rig.proxy.heal()
    await assert_exactly_once(rig)
    assert rig.proxy.stats.resets >= 1
    assert stuck < rig.journal.last_seq


async def test_reset_after_processed_before_reply(rig: Rig) -> None:
    for round_ in range(3):
        # Idle on a kept-alive TLS connection, so the next downstream byte is the reply to the
        # next batch: the centre stores it, the reply is lost, the gateway must resend, and the
        # centre must count the resend as duplicates, not new events.
        await rig.drained()
        waiter = asyncio.create_task(rig.proxy.wait_for_reset(timeout=15))
        await asyncio.sleep(0)
        rig.proxy.reset_before_response(once=True)
        await append_mixed(rig.journal, 30, start=1000 * (round_ + 1))
        await waiter
    await assert_exactly_once(rig)
    assert rig.resent_seqs() >= 3, "each lost reply must have caused a resend"


async def test_black_hole(rig: Rig) -> None:
    await rig.wait_watermark(20)
    rig.proxy.blackhole()
    await append_mixed(rig.journal, 60, start=rig.journal.last_seq)
    before = await rig.watermark()
    await asyncio.sleep(3.0)
    assert await rig.watermark() == before  # nothing can move through a black hole
    rig.proxy.heal()
    await assert_exactly_once(rig)


async def test_one_kilobyte_per_second(rig: Rig) -> None:
    await rig.wait_watermark(20)
    rig.proxy.set_mode("throttle", bandwidth_bps=8_000)  # 1 KB/s each way
    start = await rig.watermark()
    await append_mixed(rig.journal, 60, start=rig.journal.last_seq)
    await rig.wait_watermark(start + 20, timeout=30)  # progress at 1 KB/s, not a stall
    rig.proxy.heal()
    await assert_exactly_once(rig)


async def test_high_latency(rig: Rig) -> None:
    await rig.wait_watermark(20)
    rig.proxy.set_mode("delay", delay_s=1.0)  # scaled from 30 s (see module doc)
    start = await rig.watermark()
    await append_mixed(rig.journal, 60, start=rig.journal.last_seq)
    await rig.wait_watermark(start + 20, timeout=30)
    rig.proxy.heal()
    await assert_exactly_once(rig)


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_thirty_second_latency(rig: Rig) -> None:
    """30 s round trip (15 s each way). At 30 s *each way* no TLS handshake completes: the
    centre's asyncio server gives a handshake 60 s, and TLS 1.3 needs a full round trip."""
    await rig.wait_watermark(20)
    # Restart the uploader with timeouts that fit a 60 s round trip: on such a link the
    # operator raises sync.connect_timeout_s (it covers the TLS handshake) and
    # sync.request_timeout_s; the defaults (15 s, 60 s) would retry forever.
    rig.task.cancel()
    await asyncio.gather(rig.task, return_exceptions=True)
    section = dataclasses.replace(
        rig.uploader.section, request_timeout_s=200.0, connect_timeout_s=150.0
    )
    rig.uploader = Uploader(
        rig.journal,
        SystemClock(),
        section,
        data_dir=rig.uploader.paths.cert.parent.parent,
        rng=random.Random(3),
    )
    rig.proxy.set_mode("delay", delay_s=15.0)
    rig.task = asyncio.create_task(rig.uploader.run())
    start = await rig.watermark()
    await append_mixed(rig.journal, 60, start=rig.journal.last_seq)
    # state query on a new connection: TLS (1 round trip) + request (1) = 60 s; then evidence
    # ahead (30 s), then the in-order batch (30 s).
    await rig.wait_watermark(start + 20, timeout=400)
    rig.proxy.heal()
    await assert_exactly_once(rig)
