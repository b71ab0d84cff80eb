"""The centre's chain checks on ingest (centre/store.py), batch by batch: honest uploads in any
of the uploader's shapes raise nothing; each kind of tampering raises its alert at its seq."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Any

import pytest

from centre.errors import Conflict
from centre.store import SqlRepository, TokenGrant
from tests.pg_cluster import OpenRepo
from wire import Batch
from wire.chain import GENESIS, event_hash

GW = "gw-chain"


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


def journal(n: int, telemetry: Collection[int] = (), start: int = 1) -> list[dict[str, Any]]:
    """``n`` events from seq ``start``, chained as the gateway journal chains them."""
    out: list[dict[str, Any]] = []
    prev_seq, prev_hash = 0, GENESIS
    for seq in range(start, start + n):
        ev: dict[str, Any] = {
            "seq": seq,
            "kind": "tap" if seq not in telemetry else "health.sample",
            "cls": "evidence" if seq not in telemetry else "telemetry",
            "payload": {"checkpoint": f"cp-{seq}"},
            "wall_time": 1_790_000_000.0 + seq,
            "mono_time": float(seq),
            "boot_id": "boot-1",
            "clock_synced": True,
        }
        if seq not in telemetry:
            ev.update(prev_seq=prev_seq, prev_hash=prev_hash)
            ev["hash"] = event_hash(ev)
            prev_seq, prev_hash = seq, ev["hash"]
        out.append(ev)
    return out


def rehash(ev: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**ev, **changes}
    out["hash"] = event_hash(out)
    return out


async def send(
    repo: SqlRepository, events: list[dict[str, Any]], skipped: Sequence[tuple[int, int]] = ()
) -> None:
    head = max(e["seq"] for e in events)
    b = Batch.build(
        GW,
        f"b{events[0]['seq']}-{len(events)}",
        events,
        head_seq=head,
        created_at=1.0,
        skipped=skipped,
    )
    await repo.ingest(b, envelope=b"{}", signature=b"s", key_id="kid-1", now=2.0)


async def marks(repo: SqlRepository) -> set[tuple[str, int | None]]:
    return {(a.kind, a.seq) for a in await repo.alerts(gateway_id=GW)}


async def test_honest_uploads_in_every_shape_raise_nothing(repo: SqlRepository) -> None:
    evs = journal(12, telemetry={2, 3, 6, 9})
    by_seq = {e["seq"]: e for e in evs}
    # Evidence ahead of telemetry (out of order), then the in-order rest declaring what the
    # centre already holds as skipped, then a resend (duplicates).
    await send(repo, [by_seq[s] for s in (7, 8, 10)])
    await send(repo, [by_seq[s] for s in range(1, 7)])
    await send(repo, [by_seq[s] for s in (9, 11, 12)], skipped=[(7, 8), (10, 10)])
    await send(repo, [by_seq[s] for s in range(1, 13)])
    assert await marks(repo) == set()


async def test_a_body_that_no_longer_matches_its_hash_is_edited(repo: SqlRepository) -> None:
    evs = journal(4)
    evs[2] = {**evs[2], "wall_time": evs[2]["wall_time"] - 900}
    await send(repo, evs)
    assert await marks(repo) == {("journal.edited", 3)}
    assert len(await repo.event_seqs(GW)) == 4  # kept, marked by the alert


async def test_a_rehashed_edit_breaks_the_link_either_way_round(repo: SqlRepository) -> None:
    evs = journal(5)
    forged = rehash(evs[2], payload={"checkpoint": "elsewhere"})
    await send(repo, [evs[3], evs[4]])  # the successor arrives first
    await send(repo, [evs[0], evs[1], forged])
    assert await marks(repo) == {("journal.broken_link", 4)}


async def test_a_deleted_event_is_named_by_its_successor(repo: SqlRepository) -> None:
    evs = journal(6)
    await send(repo, evs[:2])
    await send(repo, evs[3:4])  # evidence batch: seq 4 names 3, which is not here (yet)
    assert await marks(repo) == set()
    await send(repo, evs[4:], skipped=[(3, 4)])  # the gateway says 3 will never come
    assert await marks(repo) == {("journal.deleted", 3)}


async def test_a_deletion_declared_in_the_same_batch(repo: SqlRepository) -> None:
    evs = journal(4)
    await send(repo, [evs[0], evs[1], evs[3]], skipped=[(3, 3)])
    assert await marks(repo) == {("journal.deleted", 3)}


async def test_fork_segment_start_and_rewritten(repo: SqlRepository) -> None:
    evs = journal(3)
    await send(repo, evs)
    twin = rehash(journal(1, start=4)[0], prev_seq=2, prev_hash=evs[1]["hash"])
    restart = journal(1, start=5)[0]  # a chain starting again at genesis above seq 1
    await send(repo, [twin, restart])
    other = rehash(evs[2], payload={"checkpoint": "restored"})
    with pytest.raises(Conflict):
        await send(repo, [other])
    assert await marks(repo) == {
        ("journal.fork", 4),
        ("journal.segment_start", 5),
        ("journal.rewritten", 3),
    }
    [kept] = [a for a in await repo.alerts(gateway_id=GW) if a.kind == "journal.rewritten"]
    assert kept.details["sent"]["payload"] == {"checkpoint": "restored"}
    assert await repo.event_seqs(GW) == [1, 2, 3, 4, 5]


async def test_a_gateway_audit_report_becomes_alerts(repo: SqlRepository) -> None:
    evs = journal(2)
    report = rehash(
        journal(1, start=3)[0],
        kind="journal.chain_audit",
        payload={"findings": [{"kind": "edited", "seq": 1}, {"kind": "bogus"}], "total": 2},
        prev_seq=2,
        prev_hash=evs[1]["hash"],
    )
    await send(repo, [*evs, report])
    assert await marks(repo) == {("journal.edited", 1)}
