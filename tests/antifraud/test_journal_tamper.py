"""Issue 21 acceptance: a gateway journal edited, pruned by hand and rolled back is flagged at
the centre with gateway and sequence. A real journal file, real sync over loopback TLS to a real
centre; the tampering is done the way somebody with root would, with sqlite3 on the file."""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from centre.cli import main
from centre.store import (
    JOURNAL_DELETED,
    JOURNAL_EDITED,
    JOURNAL_REWRITTEN,
    AlertRecord,
    SqliteRepository,
)
from gateway.clock import ManualClock
from gateway.events import TELEMETRY
from gateway.journal import AUDIT_KIND, Journal
from gateway.sync.config import SyncSection
from gateway.sync.uploader import Uploader
from tests.sync.conftest import (  # noqa: F401 - centre, centre_dir: the real-centre fixtures
    Centre,
    centre,
    centre_dir,
    enroll,
)

GW = "gw-rose-01"
FAST = SyncSection(
    batch_max_events=50,
    first_delay_max_s=0.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.3,
    idle_poll_s=0.1,
    request_timeout_s=10.0,
)


async def wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def sync_until(journal: Journal, data: Path, done) -> None:  # type: ignore[no-untyped-def]
    """Run the real uploader until ``done()`` holds, then stop it."""
    uploader = Uploader(journal, ManualClock(), FAST, data_dir=data, rng=random.Random(1))
    task = asyncio.create_task(uploader.run())
    try:
        await wait_for(done)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def tap_seqs(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT seq FROM events WHERE kind='tap' ORDER BY seq")]
    finally:
        conn.close()


def flagged(alerts: list[AlertRecord]) -> set[tuple[str, str, int | None]]:
    return {(a.kind, a.gateway_id, a.seq) for a in alerts}


async def test_edits_deletion_and_rollback_are_flagged_with_gateway_and_seq(
    centre: Centre,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "gw"
    await enroll(centre, data)
    db = data / "journal.db"
    repo = centre.running.repo
    assert isinstance(repo, SqliteRepository)
    clock = ManualClock()

    # 1. Honest history, synced: taps and telemetry; then an old copy of the file is kept.
    journal = await Journal.open(db, gateway_id=GW, clock=clock)
    for i in range(6):
        clock.advance(60)
        await journal.append("tap", {"checkpoint": f"cp-{i}", "wristband": "band-7"})
        await journal.append("health.sample", {"cpu_c": 40 + i}, cls=TELEMETRY)

    async def caught_up() -> bool:
        # The centre holds everything *and* the gateway has read its ack: stopping the
        # uploader between the two would leave rows unsynced here, resent later (409).
        g = await repo.gateway(GW)
        held = g is not None and g.watermark >= journal.last_seq
        return held and not await journal.read_after(0, limit=1, unsynced_only=True)

    await sync_until(journal, data, caught_up)
    assert await repo.alerts(gateway_id=GW) == []  # honest history raises nothing
    await journal.close()
    old_copy = tmp_path / "journal-old.db"
    shutil.copy(db, old_copy)
    synced_tap = tap_seqs(db)[2]

    # 2. More taps, not yet synced.
    journal = await Journal.open(db, gateway_id=GW, clock=clock)
    for i in range(5):
        clock.advance(60)
        await journal.append("tap", {"checkpoint": f"late-{i}", "wristband": "band-7"})
    await journal.close()
    unsynced = sorted(set(tap_seqs(db)) - set(tap_seqs(old_copy)))
    edited_unsynced, deleted = unsynced[1], unsynced[3]

    # 3. Root edits the file: a synced tap's time, an unsynced tap's time, deletes a row.
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE events SET wall = wall - 900 WHERE seq = ?", (synced_tap,))
        conn.execute("UPDATE events SET wall = wall - 900 WHERE seq = ?", (edited_unsynced,))
        conn.execute("DELETE FROM events WHERE seq = ?", (deleted,))
    conn.close()

    journal = await Journal.open(db, gateway_id=GW, clock=clock)
    await journal.audited()
    audit = [e for e in await journal.read_after(0, limit=10_000) if e.kind == AUDIT_KIND]
    assert [f["seq"] for f in audit[0].payload["findings"]] == [synced_tap, edited_unsynced]
    await sync_until(journal, data, caught_up)
    await journal.close()
    alerts = await repo.alerts(gateway_id=GW)
    marks = flagged(alerts)
    assert marks == {
        (JOURNAL_EDITED, GW, synced_tap),  # the gateway's own audit reported it
        (JOURNAL_EDITED, GW, edited_unsynced),  # the centre found it on arrival
        (JOURNAL_DELETED, GW, deleted),  # named by its successor, declared skipped
    }
    # The edited event is kept at the centre as sent (evidence is never dropped), flagged.
    held = await repo.events(gateway_id=GW, kind="tap", limit=1000)
    assert edited_unsynced in {e["seq"] for e in held}
    by_seq = {a.seq: a for a in alerts if a.kind == JOURNAL_EDITED}
    assert by_seq[edited_unsynced].details["found_by"] == "centre"
    assert by_seq[synced_tap].details["found_by"] == "gateway"

    # 4. Root restores the old copy: the next tap reuses a seq the centre holds.
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(old_copy, db)
    journal = await Journal.open(db, gateway_id=GW, clock=clock)
    clock.advance(60)
    reused = await journal.append("tap", {"checkpoint": "after-restore", "wristband": "band-7"})

    async def rollback_flagged() -> bool:
        return (JOURNAL_REWRITTEN, GW, reused.seq) in flagged(await repo.alerts(gateway_id=GW))

    await sync_until(journal, data, rollback_flagged)
    await journal.close()
    rewritten = [a for a in await repo.alerts(gateway_id=GW) if a.kind == JOURNAL_REWRITTEN]
    assert rewritten[0].details["sent"]["payload"]["checkpoint"] == "after-restore"
    assert rewritten[0].compound == "Rose Garden"
    # The centre's copy of that seq is untouched.
    still = [e for e in await repo.events(gateway_id=GW, limit=1000) if e["seq"] == reused.seq]
    assert still[0]["payload"]["checkpoint"] != "after-restore"

    # 5. `compound-centre verify --chain` walks the stored chain again and lists the alerts.
    capsys.readouterr()
    args = ["--data", str(centre.paths.root), "verify", "--chain", "--gateway", GW]
    assert await asyncio.to_thread(main, args) == 1
    out = capsys.readouterr().out
    assert f"{GW}: PROBLEM" in out
    assert f"chain {GW} edited: seq {edited_unsynced}" in out
    assert f"chain {GW} deleted: seq {deleted}" in out
    for kind, seq in (
        (JOURNAL_EDITED, synced_tap),
        (JOURNAL_DELETED, deleted),
        (JOURNAL_REWRITTEN, reused.seq),
    ):
        assert f"alert {GW} seq {seq}: {kind}" in out


async def test_an_edited_row_whose_ack_was_lost_does_not_stop_the_upload(
    centre: Centre,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    """The centre stored a batch but its ack never came back; then a synced row was edited.
    The resend of that row is refused (409 seq_conflict) every time: the gateway counts the seq
    as delivered (the centre keeps both versions) and goes on, so the events after it arrive."""
    data = tmp_path / "gw"
    await enroll(centre, data)
    db = data / "journal.db"
    repo = centre.running.repo
    assert isinstance(repo, SqliteRepository)
    clock = ManualClock()
    journal = await Journal.open(db, gateway_id=GW, clock=clock)
    for i in range(4):
        clock.advance(60)
        await journal.append("tap", {"checkpoint": f"cp-{i}", "wristband": "band-7"})

    async def caught_up() -> bool:
        g = await repo.gateway(GW)
        return g is not None and g.watermark >= journal.last_seq

    await sync_until(journal, data, caught_up)
    await journal.close()
    edited = tap_seqs(db)[1]
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE events SET synced = 0")  # the ack was lost
        conn.execute("UPDATE events SET wall = wall - 900 WHERE seq = ?", (edited,))
    conn.close()

    journal = await Journal.open(db, gateway_id=GW, clock=clock)
    clock.advance(60)
    after = await journal.append("tap", {"checkpoint": "after-edit", "wristband": "band-7"})
    await sync_until(journal, data, caught_up)
    await journal.close()
    assert after.seq in await repo.event_seqs(GW)
    assert (JOURNAL_REWRITTEN, GW, edited) in flagged(await repo.alerts(gateway_id=GW))
    held = [e for e in await repo.events(gateway_id=GW, limit=1000) if e["seq"] == edited]
    assert held[0]["payload"]["checkpoint"] == "cp-1"  # the first version stays as it was
