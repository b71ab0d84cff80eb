"""End to end on real TLS over loopback: centre, token, provisioning, journal → centre once."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from centre.audit import audit_gateway
from gateway.clock import ManualClock
from gateway.events import TELEMETRY
from gateway.journal import Journal
from gateway.sync.config import SyncSection
from gateway.sync.uploader import Uploader
from tests.pg_cluster import BACKENDS
from tests.sync.conftest import Centre, enroll

FAST = SyncSection(
    batch_max_events=50,
    first_delay_max_s=0.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.5,
    idle_poll_s=0.2,
    request_timeout_s=10.0,
)


@pytest.fixture(params=BACKENDS)
def centre_backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs against the centre on SQLite and on PostgreSQL."""
    return str(request.param)


async def wait_for(predicate, timeout: float = 20.0, task=None) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if task is not None and task.done():
            task.result()
            raise AssertionError("uploader stopped")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_events_reach_the_centre_exactly_once(centre: Centre, tmp_path: Path) -> None:
    data = tmp_path / "gw"
    result = await enroll(centre, data)
    assert result.compound == "Rose Garden" and not result.trusted_on_first_use
    assert (data / "sync" / "gateway-key.pem").stat().st_mode & 0o777 == 0o600
    journal = await Journal.open(data / "journal.db", gateway_id="gw-rose-01", clock=ManualClock())
    published: dict[str, object] = {}
    uploader = Uploader(
        journal,
        ManualClock(),
        FAST,
        data_dir=data,
        rng=random.Random(1),
        publish=published.__setitem__,
    )
    try:
        for i in range(120):
            if i % 3 == 0:
                await journal.append("tap", {"checkpoint": f"cp-{i % 7}", "card": f"{i:08x}"})
            else:
                await journal.append("health.sample", {"cpu_c": 40 + i % 9}, cls=TELEMETRY)
        task = asyncio.create_task(uploader.run())
        repo = centre.running.repo

        async def all_there() -> bool:
            g = await repo.gateway("gw-rose-01")
            return g is not None and g.watermark >= 120

        await wait_for(all_there, task=task)
        # More while running: the uploader wakes up for them.
        for i in range(30):
            await journal.append("tap", {"checkpoint": "late", "n": i})

        async def caught_up() -> bool:
            g = await repo.gateway("gw-rose-01")
            return g is not None and g.watermark >= journal.last_seq

        await wait_for(caught_up, task=task)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        report = await audit_gateway(repo, "gw-rose-01")
        assert report.ok, report.problems
        assert report.highest == journal.last_seq
        seqs = await repo.event_seqs("gw-rose-01")
        assert seqs == list(range(1, journal.last_seq + 1))  # each once, none missing
        kinds = {e["kind"] for e in await repo.events(compound="Rose Garden", limit=10_000)}
        assert {"tap", "health.sample", "link.up"} <= kinds
        taps = await repo.events(compound="Rose Garden", kind="tap", limit=10_000)
        assert len(taps) == 40 + 30
        assert (await journal.stats())["unsynced"] == 0
        assert published["sync"]["link"] == "up"  # type: ignore[index]
    finally:
        await journal.close()
