"""The detectors wired into the centre: taps ingested into a real repository raise durable
alerts for crafted fraud, and none for a week of honest simulated patrols."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from centre.antifraud import BuddyRules, walking_times_from_routes
from centre.antifraud.monitor import AntifraudMonitor
from centre.store import SqlRepository, TokenGrant
from gateway.clock import ManualClock
from gateway.journal import Journal
from tests.antifraud import simulate
from tests.antifraud.test_journal_tamper import sync_until
from tests.pg_cluster import OpenRepo
from tests.sync.conftest import (  # noqa: F401 - centre, centre_dir: the real-centre fixtures
    Centre,
    centre,
    centre_dir,
    enroll,
)
from wire import Batch

GW = simulate.GATEWAY


@pytest.fixture
async def repo(open_repo: OpenRepo) -> AsyncIterator[SqlRepository]:
    """The repository with one enrolled gateway, on each backend in turn."""
    r: SqlRepository = await open_repo()
    now = time.time()
    await r.create_token("t" * 64, "Rose Garden", "North", now, now + 600)

    def issue(grant: TokenGrant) -> tuple[str, str, str, str]:
        return ("cert", "fp-1", "pub", "kid-1")

    await r.enroll("t" * 64, GW, None, now, issue)
    try:
        yield r
    finally:
        await r.close()


def monitor(repo: SqlRepository) -> AntifraudMonitor:
    walks = walking_times_from_routes(simulate.ROUTES, positions=simulate.POSITIONS)
    return AntifraudMonitor(
        repo,
        walks=lambda gw: walks if gw == GW else None,
        buddy=BuddyRules(allowed_guard_pairs=simulate.ALLOWED_PAIRS),
    )


async def ingest_all(repo: SqlRepository, events: list[dict[str, Any]]) -> int:
    """Ingest in journal order, in batches, running the monitor after each as the app does."""
    m = monitor(repo)
    events = sorted(events, key=lambda e: e["seq"])
    added = 0
    for i in range(0, len(events), 200):
        part = events[i : i + 200]
        batch = Batch.build(GW, f"b{i}", part, head_seq=part[-1]["seq"], created_at=1.0)
        result = await repo.ingest(batch, envelope=b"{}", signature=b"s", key_id="kid-1", now=2.0)
        assert result.stored == len(part)
        added += await m.after_ingest(GW, batch.events, now=3.0)
    return added


async def test_crafted_clone_and_buddies_raise_durable_alerts(repo: SqlRepository) -> None:
    events = simulate.honest_month(seed=3, days=7)
    rng = random.Random(5)
    clones = simulate.inject_clones(events, rng, 2)
    buddies = simulate.inject_buddies(events, rng, 2)
    added = await ingest_all(repo, events)
    alerts = await repo.alerts(gateway_id=GW)
    assert added == len(alerts) > 0
    kinds = {a.kind for a in alerts}
    assert kinds == {"impossible_travel", "buddy_tap"}, (clones, buddies)
    for a in alerts:
        assert a.compound == "Rose Garden" and a.seq is not None
        assert a.details["alert_id"] == a.alert_key
    # Judging the same taps again records nothing twice.
    m = monitor(repo)
    again = await m.after_ingest(GW, simulate.honest_month(seed=3, days=7)[:50], now=4.0)
    assert again == 0


async def test_a_week_of_honest_patrols_raises_nothing(repo: SqlRepository) -> None:
    events = simulate.honest_month(seed=11, days=7)
    assert await ingest_all(repo, events) == 0
    assert await repo.alerts(gateway_id=GW) == []


async def test_the_centre_runs_the_detectors_on_ingest(
    centre: Centre,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """Through the real service: two bands carried together past three checkpoints."""
    data = tmp_path / "gw"
    await enroll(centre, data)
    clock = ManualClock()
    journal = await Journal.open(data / "journal.db", gateway_id="gw-rose-01", clock=clock)
    for cp in ("gate", "hub", "yard"):
        clock.advance(300)
        await journal.append("tap", {"checkpoint": cp, "wristband": "band-1", "guard": "g1"})
        clock.advance(2)
        await journal.append("tap", {"checkpoint": cp, "wristband": "band-2", "guard": "g2"})
    repo = centre.running.repo

    async def alerted() -> bool:
        return any(a.kind == "buddy_tap" for a in await repo.alerts(gateway_id="gw-rose-01"))

    try:
        await sync_until(journal, data, alerted)
    finally:
        await journal.close()
    [alert] = await repo.alerts(gateway_id="gw-rose-01")
    assert alert.compound == "Rose Garden"
    assert sorted(alert.details["wristbands"]) == ["band-1", "band-2"]
