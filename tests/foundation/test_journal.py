"""The journal: durability, group commit, sequences, telemetry budget, corruption, disk full."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.clock import ManualClock
from gateway.errors import JournalClosedError, JournalError, JournalFullError
from gateway.events import EVIDENCE, TELEMETRY
from gateway.journal import Journal, check_integrity, read_events, read_status


async def open_journal(path: Path, **kw: object) -> Journal:
    return await Journal.open(path, gateway_id="gw-test", clock=ManualClock(), **kw)  # type: ignore[arg-type]


def all_rows(path: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT seq, kind, cls FROM events ORDER BY seq").fetchall()
    finally:
        conn.close()


async def test_append_returns_durable_event_with_all_fields(tmp_path: Path) -> None:
    clock = ManualClock(wall=1_800_000_000.0, synced=False, boot_id="boot-a")
    j = await Journal.open(tmp_path / "j.db", gateway_id="gw-test", clock=clock)
    ev = await j.append("tap", {"checkpoint": "north", "n": 1})
    await j.close()
    assert ev.seq == 1
    assert (ev.kind, ev.cls) == ("tap", EVIDENCE)
    assert ev.wall_time == 1_800_000_000.0
    assert ev.boot_id == "boot-a"
    assert ev.clock_synced is False
    [stored] = read_events(tmp_path / "j.db")
    assert stored == ev


async def test_sequences_are_gap_free_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = await open_journal(path)
    await asyncio.gather(*(j.append("a", {"i": i}) for i in range(50)))
    await j.close()
    j = await open_journal(path)
    await asyncio.gather(*(j.append("b", {"i": i}) for i in range(50)))
    assert j.last_seq == 100
    await j.close()
    assert [r[0] for r in all_rows(path)] == list(range(1, 101))


async def test_group_commit_folds_concurrent_appends_into_few_commits(tmp_path: Path) -> None:
    j = await open_journal(tmp_path / "j.db")
    commits_before = j.commits
    n = 400
    events = await asyncio.gather(*(j.append("tap", {"i": i}) for i in range(n)))
    commits = j.commits - commits_before
    await j.close()
    assert sorted(e.seq for e in events) == list(range(1, n + 1))
    # One commit per event would be n; group commit needs only a handful.
    assert commits <= n // 10, f"{commits} commits for {n} concurrent appends"


async def test_sequential_appends_commit_one_by_one(tmp_path: Path) -> None:
    # The counter-check of the group-commit test: awaited one at a time, each is its own commit.
    j = await open_journal(tmp_path / "j.db")
    before = j.commits
    for i in range(20):
        await j.append("tap", {"i": i})
    assert j.commits - before == 20
    await j.close()


async def test_bad_payloads_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    j = await open_journal(tmp_path / "j.db")
    with pytest.raises(JournalError, match="JSON"):
        await j.append("x", {"bad": float("nan")})
    with pytest.raises(JournalError, match="JSON"):
        await j.append("x", {"bad": object()})
    with pytest.raises(JournalError, match="class"):
        await j.append("x", {}, cls="gossip")
    ev = await j.append("x", {"ok": True})
    await j.close()
    assert ev.seq == 1


async def test_closed_journal_refuses_appends(tmp_path: Path) -> None:
    j = await open_journal(tmp_path / "j.db")
    await j.close()
    with pytest.raises(JournalClosedError):
        await j.append("x", {})


async def test_cursor_reads_in_order_with_limits_and_marks_synced(tmp_path: Path) -> None:
    j = await open_journal(tmp_path / "j.db")
    for i in range(30):
        await j.append("e" if i % 3 else "t", {"i": i}, cls=EVIDENCE if i % 3 else TELEMETRY)
    batch = await j.read_after(0, limit=10)
    assert [e.seq for e in batch] == list(range(1, 11))
    small = await j.read_after(0, max_bytes=1)
    assert len(small) == 1  # always at least one, or a huge event would block the cursor
    only_t = await j.read_after(0, classes=[TELEMETRY])
    assert {e.cls for e in only_t} == {TELEMETRY} and len(only_t) == 10
    assert await j.mark_synced_through(12) == 12
    assert await j.mark_synced([20, 25, 25, 999]) == 2
    unsynced = await j.read_after(0, unsynced_only=True)
    assert [e.seq for e in unsynced] == [s for s in range(13, 31) if s not in (20, 25)]
    stats = await j.stats()
    assert stats["unsynced"] == 16
    await j.close()


async def test_mark_synced_through_cannot_pass_last_seq(tmp_path: Path) -> None:
    j = await open_journal(tmp_path / "j.db")
    await j.append("e", {})
    assert await j.mark_synced_through(10**9) == 1
    await j.append("e", {})
    unsynced = await j.read_after(0, unsynced_only=True)
    assert [e.seq for e in unsynced] == [2]
    await j.close()


async def test_retention_prunes_only_synced_old_events_and_keeps_the_newest(tmp_path: Path) -> None:
    clock = ManualClock(wall=1_000_000.0)
    path = tmp_path / "j.db"
    j = await Journal.open(path, gateway_id="gw-test", clock=clock)
    for i in range(10):
        await j.append("old", {"i": i})
    clock.advance(10 * 86400)
    for i in range(3):
        await j.append("new", {"i": i})
    await j.mark_synced_through(8)
    pruned = await j.prune(retention_s=86400)
    assert pruned == 8
    assert [r[0] for r in all_rows(path)] == [9, 10, 11, 12, 13]
    await j.mark_synced_through(13)
    clock.advance(10 * 86400)
    await j.prune(retention_s=86400)
    assert [r[0] for r in all_rows(path)] == [13]  # never the newest: sequence must not restart
    await j.close()
    j = await Journal.open(path, gateway_id="gw-test", clock=clock)
    assert (await j.append("after", {})).seq == 14
    await j.close()


async def test_wait_for_new_wakes_on_commit(tmp_path: Path) -> None:
    j = await open_journal(tmp_path / "j.db")
    waiter = asyncio.create_task(j.wait_for_new(0, timeout=5))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await j.append("x", {})
    assert await waiter == 1
    assert await j.wait_for_new(1, timeout=0.05) == 1  # times out, returns as it is
    await j.close()


async def test_journal_refuses_another_gateways_file(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = await open_journal(path)
    await j.close()
    with pytest.raises(JournalError, match="belongs to gateway"):
        await Journal.open(path, gateway_id="gw-other", clock=ManualClock())


# --------------------------------------------------------------------------- telemetry budget


async def test_telemetry_budget_drops_oldest_synced_first_and_counts_exactly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    budget = 64 * 1024
    j = await open_journal(path, telemetry_budget_bytes=budget)
    sample = {"v": "x" * 400}
    evidence_seqs = []
    telemetry_seqs = []
    for i in range(100):
        await j.append("health.sample", sample | {"i": i}, cls=TELEMETRY)
        if i % 10 == 0:
            evidence_seqs.append((await j.append("tap", {"i": i})).seq)
    # The first 100 telemetry rows reach the centre; the budget must spend those first.
    await j.mark_synced_through(j.last_seq)
    first_unsynced = j.last_seq + 1
    for i in range(400):
        ev = await j.append("health.sample", sample | {"i": 100 + i}, cls=TELEMETRY)
        telemetry_seqs.append(ev.seq)
        if i % 10 == 0:
            evidence_seqs.append((await j.append("tap", {"i": i})).seq)
    stats = await j.stats()
    await j.close()

    rows = all_rows(path)
    present = {r[0] for r in rows}
    # Evidence is never dropped.
    assert set(evidence_seqs) <= present
    final = read_status(path)
    telemetry_left = sum(1 for r in rows if r[2] == TELEMETRY)
    assert final["dropped"] == 500 - telemetry_left  # every drop counted, exactly
    assert stats["telemetry_bytes"] <= budget
    # Synced telemetry goes first: all 100 synced rows went before unsynced ones were touched,
    # and the unsynced drops are the oldest unsynced telemetry (a prefix, no holes).
    assert final["dropped_synced"] == 100
    assert telemetry_seqs[0] >= first_unsynced
    kept = [s for s in telemetry_seqs if s in present]
    dropped = [s for s in telemetry_seqs if s not in present]
    assert final["dropped_unsynced"] == len(dropped)
    assert kept and all(s < kept[0] for s in dropped)
    # The drops are themselves reported, and the reports add up to the counter.
    reports = [e for e in read_events(path) if e.kind == "journal.telemetry_dropped"]
    assert reports, "drops must be reported as evidence"
    assert all(e.cls == EVIDENCE for e in reports)
    assert (
        sum(e.payload["dropped_synced"] + e.payload["dropped_unsynced"] for e in reports)
        == (final["dropped"])
    )
    assert reports[-1].payload["total_dropped"] == final["dropped"]


# --------------------------------------------------------------------------- corruption


async def test_garbage_file_is_moved_aside_and_a_fresh_journal_starts(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    j = await open_journal(path)
    assert j.recovery is not None
    moved = Path(j.recovery.moved_to)
    ev = await j.append("tap", {})
    await j.close()
    assert moved.exists() and moved.read_bytes() == garbage  # never deleted
    kinds = [e.kind for e in read_events(path)]
    assert kinds == ["journal.recovered", "tap"]
    assert ev.seq == 2
    assert check_integrity(path, full=True) == "ok"


async def test_damaged_pages_are_detected_and_sequence_resumes_after_salvage(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    j = await open_journal(path)
    await asyncio.gather(*(j.append("tap", {"i": i, "pad": "p" * 200}) for i in range(3000)))
    last = j.last_seq
    await j.close()
    # Scribble over index pages in the middle of the file (a worn SD card's torn write).
    data = bytearray(path.read_bytes())
    page = 4096
    for n in range(len(data) // page - 8, len(data) // page - 2):
        data[n * page + 8 : n * page + 400] = os.urandom(392)
    path.write_bytes(bytes(data))
    assert check_integrity(path) != "ok"
    j = await open_journal(path)
    assert j.recovery is not None
    resumed = j.recovery.salvaged_last_seq
    ev = await j.append("tap", {})
    await j.close()
    assert 0 <= resumed <= last
    assert ev.seq == resumed + 2  # the recovery event, then this one


# --------------------------------------------------------------------------- disk full


async def test_disk_full_raises_typed_error_and_loses_nothing_acknowledged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.db"
    j = await open_journal(path, max_db_bytes=256 * 1024)
    acked = []
    with pytest.raises(JournalFullError):
        for i in range(100_000):
            acked.append((await j.append("tap", {"i": i, "pad": "x" * 300})).seq)
    # The journal still works for reads and stays consistent.
    assert j.last_seq == acked[-1]
    with pytest.raises(JournalFullError):
        await j.append("tap", {"pad": "x" * 300})
    await j.close()
    assert [r[0] for r in all_rows(path)] == acked
    assert check_integrity(path, full=True) == "ok"


async def test_disk_full_makes_room_by_dropping_telemetry_for_evidence(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = await open_journal(path, max_db_bytes=256 * 1024, telemetry_budget_bytes=10 * 2**20)
    for i in range(200):
        await j.append("sample", {"i": i, "pad": "s" * 300}, cls=TELEMETRY)
    acked = []
    with pytest.raises(JournalFullError):
        for i in range(100_000):
            acked.append((await j.append("tap", {"i": i, "pad": "x" * 300})).seq)
    await j.close()
    rows = all_rows(path)
    # Evidence got the room telemetry had: every sample went, every acked tap stayed.
    assert {r[0] for r in rows if r[1] == "tap"} == set(acked)
    assert len(acked) > 200
    assert read_status(path)["dropped"] == 200 - sum(1 for r in rows if r[2] == TELEMETRY)
    assert read_status(path)["dropped"] >= 100


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_real_enospc_on_a_full_filesystem(tiny_tmpfs: Path) -> None:
    path = tiny_tmpfs / "j.db"
    j = await open_journal(path)
    acked = []
    with pytest.raises(JournalFullError):
        for i in range(100_000):
            acked.append((await j.append("tap", {"i": i, "pad": "x" * 500})).seq)
    await j.close()
    assert acked, "some appends must have fitted"
    present = [r[0] for r in all_rows(path)]
    assert present[: len(acked)] == acked


# --------------------------------------------------------------------------- writer lifecycle


async def test_close_needs_no_executor_thread(tmp_path: Path) -> None:
    """close() waits for the writer on the loop itself, never by parking an executor thread.

    An executor thread blocked in ``writer.join()`` is what made a failed test hang the whole
    run: the loop's executor shutdown waited for it forever.
    """
    j = await open_journal(tmp_path / "j.db")
    await j.append("tap", {"n": 1})
    await asyncio.get_running_loop().shutdown_default_executor()
    await asyncio.wait_for(j.close(), timeout=30)
    assert not j.writer_alive()
    assert [e.kind for e in read_events(tmp_path / "j.db")] == ["tap"]


def test_writer_closes_the_journal_when_its_loop_ends_without_close(tmp_path: Path) -> None:
    """A caller that dies before close() (a failed test, a crash) leaves no thread or file open."""
    path = tmp_path / "j.db"
    holder: list[Journal] = []

    async def forgetful() -> None:
        j = await open_journal(path)
        holder.append(j)
        await j.append("tap", {"n": 1})
        # ...and never closes it.

    asyncio.run(forgetful())
    [j] = holder
    deadline = time.monotonic() + 30
    while j.writer_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not j.writer_alive(), "the writer outlived its event loop"
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0, (
        "closed properly: the WAL was checkpointed"
    )
    assert [e.kind for e in read_events(path)] == ["tap"]


async def test_close_right_after_a_burst_of_appends_finishes_them_and_returns(
    tmp_path: Path,
) -> None:
    """The writer groups queued appends with ``get_nowait``; close()'s marker queued right behind
    them used to be taken into a group and then forgotten, so the writer waited for work forever
    and close() never returned (seen as hangs at the end of a health test and a supervisor test).
    """
    for attempt in range(5):
        journal = await Journal.open(
            tmp_path / f"j{attempt}.db", gateway_id="gw-test", clock=ManualClock(), max_group=8
        )
        appends = [asyncio.ensure_future(journal.append("x", {"i": i})) for i in range(300)]
        await asyncio.sleep(0)  # every append is queued, and close() queues its marker behind
        await asyncio.wait_for(journal.close(), 30)
        events = await asyncio.wait_for(asyncio.gather(*appends), 30)
        assert [e.seq for e in events] == list(range(1, 301))
        assert len(read_events(tmp_path / f"j{attempt}.db")) == 300


async def test_a_journal_migrated_by_sqlite_utils_opens_unchanged(tmp_path: Path) -> None:
    """Journals made while sqlite-utils ran the migrations keep their records: nothing re-runs."""
    import sqlite_utils
    from sqlite_utils.migrations import Migrations

    from gateway.journal import MIGRATION_SET, MIGRATIONS

    path = tmp_path / "j.db"
    old = Migrations(MIGRATION_SET)
    for fn in MIGRATIONS:
        old(name=fn.__name__)(lambda db, fn=fn: fn(db.conn))
    conn = sqlite3.connect(path, isolation_level=None)
    old.apply(sqlite_utils.Database(conn))
    conn.close()
    j = await open_journal(path)
    await j.append("tap", {"checkpoint": "north-gate"})
    await j.close()
    conn = sqlite3.connect(path)
    names = conn.execute("SELECT name FROM _sqlite_migrations ORDER BY id").fetchall()
    conn.close()
    assert names == [(fn.__name__,) for fn in MIGRATIONS]
    assert [r[1] for r in all_rows(path)] == ["tap"]


def test_a_migrated_journal_opens_without_loading_sqlite_utils(tmp_path: Path) -> None:
    """sqlite-utils runs the journal's migrations (a new journal, a new release); every other
    open reads its record table with plain sqlite3, so the daemon does not keep its ~4 MiB of
    modules (docs/ARCHITECTURE.md, "Daemon footprint")."""
    path = tmp_path / "j.db"
    script = (
        "import asyncio, sys\n"
        "from gateway.journal import Journal\n"
        "async def main():\n"
        f"    j = await Journal.open({str(path)!r}, gateway_id='gw-t')\n"
        "    await j.append('tap', {'checkpoint': 'north-gate'})\n"
        "    await j.close()\n"
        "asyncio.run(main())\n"
        "print('sqlite_utils' in sys.modules)\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert runs == ["True", "False"]  # the first open migrated; the second did not need to
    assert [r[1] for r in all_rows(path)] == ["tap", "tap"]
