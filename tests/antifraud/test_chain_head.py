"""The signed chain head: every batch carries the gateway journal's chain head under the batch
signature; the centre compares it with the chain it holds. A matching head passes, a head
whose hash differs (a fork, edited history) or that went back (an old copy restored) raises
an alert naming gateway and seq, and a forged head (signature) is refused with a clear error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from centre.store import JOURNAL_HEAD_MISMATCH, JOURNAL_HEAD_REWOUND, SqlRepository
from gateway.clock import ManualClock
from gateway.journal import Journal
from gateway.sync.config import SyncSection
from gateway.sync.provision import load_private_key
from gateway.sync.tls import client_ssl_context
from gateway.sync.uploader import CHAIN_HEAD_INTERVAL_S, CHAIN_HEAD_KIND, Uploader
from tests.antifraud.test_centre_chain import GW, journal, marks, rehash, repo  # noqa: F401
from tests.sync.conftest import (  # noqa: F401 - centre, centre_dir: the real-centre fixtures
    Centre,
    centre,
    centre_dir,
)
from tests.sync.test_refusals import gateway_ctx, post
from wire import BATCH_TYPE, Batch, ChainHead, EnvelopeError, decode, encode, seal
from wire.chain import GENESIS


async def send_with_head(
    repo: SqlRepository,  # noqa: F811
    events: list[dict[str, Any]],
    head: ChainHead,
    batch: str,
) -> None:
    b = Batch.build(GW, batch, events, head_seq=max(head.seq, events[-1]["seq"]),
                    created_at=1.0, chain_head=head)  # fmt: skip
    await repo.ingest(b, envelope=b"{}", signature=b"s", key_id="kid-1", now=2.0)


async def test_a_matching_head_passes(repo: SqlRepository) -> None:  # noqa: F811
    evs = journal(6)
    await send_with_head(repo, evs[:3], ChainHead(3, evs[2]["hash"]), "b1")
    # A head ahead of what is held (a backlog) is not judged yet; then it is, and matches.
    await send_with_head(repo, evs[3:4], ChainHead(6, evs[5]["hash"]), "b2")
    await send_with_head(repo, evs[4:], ChainHead(6, evs[5]["hash"]), "b3")
    assert await marks(repo) == set()


async def test_a_head_that_differs_from_the_held_chain_names_gateway_and_seq(
    repo: SqlRepository,  # noqa: F811
) -> None:
    evs = journal(5)
    await send_with_head(repo, evs, ChainHead(5, evs[4]["hash"]), "b1")
    # The gateway's history at 4..5 was rewritten (rehashed, so its own chain is consistent):
    # its head at 5 no longer matches what the centre holds. The next batch carries event 6.
    forged4 = rehash(evs[3], payload={"checkpoint": "elsewhere"})
    forged5 = rehash(evs[4], prev_hash=forged4["hash"])
    nxt = rehash({**journal(6)[5], "prev_hash": forged5["hash"]})
    await send_with_head(repo, [nxt], ChainHead(5, forged5["hash"]), "b2")
    [alert] = [a for a in await repo.alerts(gateway_id=GW) if a.kind == JOURNAL_HEAD_MISMATCH]
    assert (alert.gateway_id, alert.seq, alert.compound) == (GW, 5, "Rose Garden")
    assert alert.details["held_hash"] == evs[4]["hash"]
    assert alert.details["head_hash"] == forged5["hash"] and alert.details["batch_id"] == "b2"
    # The same head again is the same alert, not a second one.
    await send_with_head(repo, [nxt], ChainHead(5, forged5["hash"]), "b2")
    assert sum(1 for a in await repo.alerts(gateway_id=GW) if a.kind == JOURNAL_HEAD_MISMATCH) == 1


async def test_a_head_ahead_of_a_backlog_is_kept_and_judged_when_its_event_arrives(
    repo: SqlRepository,  # noqa: F811
) -> None:
    evs = journal(6)
    # The head signed while 4..6 were still unsent; then the backlog was re-written (6 rehashed)
    # before upload: the event that arrives at 6 is not the one the signed head named.
    await send_with_head(repo, evs[:3], ChainHead(6, evs[5]["hash"]), "b1")
    assert await marks(repo) == set()
    rewritten = rehash(evs[5], payload={"checkpoint": "never-visited"})
    await send_with_head(repo, [*evs[3:5], rewritten], ChainHead(6, rewritten["hash"]), "b2")
    [alert] = [a for a in await repo.alerts(gateway_id=GW) if a.kind == JOURNAL_HEAD_MISMATCH]
    assert (alert.seq, alert.details["batch_id"]) == (6, "b1")
    assert alert.details["held_hash"] == rewritten["hash"] != evs[5]["hash"]
    # Judged once: a later batch over the same range raises nothing new.
    await send_with_head(repo, [*evs[3:5], rewritten], ChainHead(6, rewritten["hash"]), "b2")
    assert sum(1 for a in await repo.alerts(gateway_id=GW) if a.kind == JOURNAL_HEAD_MISMATCH) == 1


async def test_a_head_below_the_held_chain_is_a_rewound_journal(
    repo: SqlRepository,  # noqa: F811
) -> None:
    evs = journal(8)
    await send_with_head(repo, evs, ChainHead(8, evs[7]["hash"]), "b1")
    # An old copy of the journal file restored: its head is at 5, the centre holds up to 8.
    telemetry = {**journal(1, telemetry={9}, start=9)[0]}
    await send_with_head(repo, [telemetry], ChainHead(5, evs[4]["hash"]), "b2")
    assert (JOURNAL_HEAD_REWOUND, 5) in await marks(repo)
    [alert] = [a for a in await repo.alerts(gateway_id=GW) if a.kind == JOURNAL_HEAD_REWOUND]
    assert alert.details["held_seq"] == 8


@pytest.mark.parametrize(
    "bad",
    [
        {"seq": 0, "hash": "0" * 64},
        {"seq": 3, "hash": "XYZ"},
        {"seq": 3, "hash": "a" * 64, "extra": 1},
        {"seq": True, "hash": "a" * 64},
        {"seq": 99, "hash": "a" * 64},  # above head_seq
        "head",
    ],
)
def test_malformed_chain_heads_are_refused_by_the_wire(bad: Any) -> None:
    b = Batch.build(GW, "b1", journal(3), head_seq=3, created_at=1.0).to_dict()
    with pytest.raises(EnvelopeError):
        Batch.from_dict(b | {"chain_head": bad})
    head = ChainHead(3, journal(3)[2]["hash"])
    ok = Batch.build(GW, "b1", journal(3), head_seq=3, created_at=1.0, chain_head=head)
    assert Batch.from_dict(ok.to_dict()) == ok and ok.to_dict()["chain_head"]["seq"] == 3
    assert "chain_head" not in Batch.build(GW, "b", journal(1), head_seq=1, created_at=1).to_dict()


async def test_a_forged_head_is_refused_with_a_clear_error(
    centre: Centre,  # noqa: F811
    tmp_path: Path,
) -> None:
    ctx, key = await gateway_ctx(centre, tmp_path)
    evs = journal(3)
    b = Batch.build("gw-rose-01", "b-h", evs, head_seq=3, created_at=1.0,
                    chain_head=ChainHead(3, evs[2]["hash"]))  # fmt: skip
    env = decode(seal(BATCH_TYPE, b.to_dict(), key))
    env["body"]["chain_head"]["hash"] = "f" * 64  # someone else's idea of the head
    status, body = await post(centre.url, encode(env), ctx)
    assert status == 422 and body["error"] == "bad_signature" and body["reason"]
    assert await centre.running.repo.event_seqs("gw-rose-01") == []
    # The genuine one goes through and raises nothing.
    status, ack = await post(centre.url, seal(BATCH_TYPE, b.to_dict(), key), ctx)
    assert status == 200 and ack["stored"] == 3
    assert await centre.running.repo.alerts(gateway_id="gw-rose-01") == []


async def test_the_uploader_signs_the_head_into_every_batch_and_journals_one_hourly(
    centre: Centre,  # noqa: F811
    tmp_path: Path,
) -> None:
    data = tmp_path / "gw"
    await gateway_ctx(centre, data)
    clock = ManualClock()
    j = await Journal.open(data / "journal.db", gateway_id="gw-rose-01", clock=clock)
    try:
        up = Uploader(j, clock, SyncSection(centre_url=centre.url, idle_poll_s=0.05),
                      data_dir=data)  # fmt: skip
        assert j.chain_head == (0, GENESIS)
        for n in range(3):
            await j.append("tap", {"n": n})
        seq, digest = j.chain_head
        assert seq == 3 and len(digest) == 64
        key = load_private_key(up.paths.key)
        ctx = client_ssl_context(up.paths.ca, up.paths.cert, up.paths.key)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
            assert await asyncio.wait_for(up.step(session, key), 60) == 0.0
            stored = await centre.running.repo.stored_batches("gw-rose-01")
            body = decode(stored[-1].envelope)["body"]
            assert body["chain_head"] == {"seq": 3, "hash": digest}
            # The link came up (an evidence event, seq 4): uploaded in turn, head and all.
            while await up.plan() is not None:
                assert await asyncio.wait_for(up.step(session, key), 60) == 0.0
            seq, digest = j.chain_head
            last = j.last_seq
            body = decode((await centre.running.repo.stored_batches("gw-rose-01"))[-1].envelope)
            assert body["body"]["chain_head"] == {"seq": seq, "hash": digest} and seq >= 4
            # Idle: nothing is journaled before the hour, a chain-head event after it.
            assert await asyncio.wait_for(up.step(session, key), 60) == 0.0
            assert j.last_seq == last
            clock.advance(CHAIN_HEAD_INTERVAL_S + 1)
            assert await asyncio.wait_for(up.step(session, key), 60) == 0.0
            [ev] = await j.read_after(last, limit=10)
            assert ev.kind == CHAIN_HEAD_KIND
            assert ev.payload == {"chain_seq": seq, "chain_hash": digest}
            assert await asyncio.wait_for(up.step(session, key), 60) == 0.0
            stored = await centre.running.repo.stored_batches("gw-rose-01")
            body = decode(stored[-1].envelope)["body"]
            assert body["chain_head"] == {"seq": seq, "hash": digest}
            assert body["last_seq"] == ev.seq
        assert await centre.running.repo.alerts(gateway_id="gw-rose-01") == []
    finally:
        await j.close()
