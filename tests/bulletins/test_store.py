"""Through a real centre repository: uploads (with resends) → bulletins; explanations recorded
and shown in later bulletins; paging over many events at one instant."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from centre.bulletins.explanations import ExplanationStore, SqliteExplanationStore
from centre.bulletins.links import LinkUsed
from centre.bulletins.pg_store import PostgresExplanationStore
from centre.bulletins.source import (
    NotMissed,
    RoundNotFound,
    build_daily,
    build_monthly,
    fetch_events,
    record_explanation,
)
from centre.errors import BadRequest
from centre.store import SqliteRepository
from tests.bulletins.helpers import NOV_1, NOV_2, H, event, registry, upload
from tests.bulletins.test_daily import DAY, EXPECTED, lotus_events, rose_events, table
from tests.bulletins.test_monthly import gateway_events, hours
from tests.pg_cluster import BACKENDS

GATEWAYS = [
    ("gw-rose", "Rose Garden", "North"),
    ("gw-lotus", "Lotus Court", "North"),
    ("gw-bamboo", "Bamboo", "South"),
]
MISSED_ROUND = "night@2026-11-03T04:00"


def strip(evs: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    """Back to the gateway's upload shape."""
    return [{k: v for k, v in e.items() if k not in ("gateway_id", "compound", "township")}
            for e in evs]  # fmt: skip


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[SqliteRepository]:
    r = await registry(tmp_path, GATEWAYS)
    yield r
    await r.close()


@pytest.fixture(params=BACKENDS)
async def store(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[ExplanationStore]:
    """The explanation store on each backend (its SQLite file, or the centre's PostgreSQL)."""
    s: ExplanationStore
    if request.param == "postgres":
        s = await PostgresExplanationStore.open(request.getfixturevalue("pg_dsn"))
    else:
        s = await SqliteExplanationStore.open(tmp_path / "bulletins.db")
    yield s
    await s.close()


async def test_uploaded_fixture_gives_the_expected_table(
    repo: SqliteRepository, store: ExplanationStore
) -> None:
    rose = strip(rose_events())
    await upload(repo, "gw-rose", rose[:4], now=NOV_2 + 2 * 86400, batch="b1")
    # A resend overlapping the first batch, then the rest: stored once, counted once.
    await upload(repo, "gw-rose", rose, now=NOV_2 + 2 * 86400, batch="b2")
    await upload(repo, "gw-lotus", strip(lotus_events()), now=NOV_2 + 2 * 86400)
    b = await build_daily(repo, store, DAY, now=NOV_2 + 3 * 86400)
    assert table(b) == EXPECTED


async def test_explanation_shows_in_later_bulletins(
    repo: SqliteRepository, store: ExplanationStore
) -> None:
    await upload(repo, "gw-rose", strip(rose_events()), now=NOV_2 + 2 * 86400)
    before = await build_daily(repo, store, DAY, now=NOV_2 + 2 * 86400)
    assert before.must_explain == ("Rose Garden",)
    x = await record_explanation(
        repo, store, compound="Rose Garden", round_id=MISSED_ROUND,
        text="guard g2 was taken ill at 03:30;\nno relief available",
        given_by="chief Wang", recorded_by="duty-1", now=NOV_2 + 2 * 86400 + H,
    )  # fmt: skip
    after = await build_daily(repo, store, DAY, now=NOV_2 + 3 * 86400)
    assert after.must_explain == ()
    assert after.missed[0].explanations == (x,)
    assert (x.recorded_by, x.given_by, x.recorded_at) == (
        "duty-1", "chief Wang", NOV_2 + 2 * 86400 + H,
    )  # fmt: skip
    row = next(r for r in after.rows if r.compound == "Rose Garden")
    assert (row.status, row.tally.missed_explained) == ("explained", 1)
    # The monthly bulletin counts it as explained too.
    monthly = await build_monthly(repo, store, "2026-11", now=NOV_2 + 3 * 86400)
    rose = next(c for t in monthly.townships for c in t.compounds if c.compound == "Rose Garden")
    assert (rose.patrol.missed, rose.patrol.missed_explained) == (1, 1)


async def test_explanations_only_for_missed_rounds(
    repo: SqliteRepository, store: ExplanationStore
) -> None:
    await upload(repo, "gw-rose", strip(rose_events()), now=NOV_2 + 2 * 86400)
    kw = {"text": "x", "given_by": "", "recorded_by": "duty-1", "now": NOV_2 + 2 * 86400}
    with pytest.raises(NotMissed):  # revised from missed to incomplete
        await record_explanation(
            repo, store, compound="Rose Garden", round_id="night@2026-11-03T02:00", **kw
        )
    with pytest.raises(RoundNotFound):  # right round, other compound
        await record_explanation(repo, store, compound="Lotus Court", round_id=MISSED_ROUND, **kw)
    with pytest.raises(BadRequest):
        await record_explanation(repo, store, compound="Rose Garden", round_id="nonsense", **kw)
    assert await store.all() == []


async def test_store_validates_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    s = await SqliteExplanationStore.open(path)
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for bad in ("", "   ", "a\x00b", "x" * 2001, "bell\x07"):
            with pytest.raises(BadRequest):
                await s.add("C", "r@1", bad, given_by="", recorded_by="op", now=1.0)
        with pytest.raises(BadRequest):
            await s.add("C", "r@1", "ok", given_by="", recorded_by="", now=1.0)
        a = await s.add("C", "r@1", " line one\nline two ", given_by="", recorded_by="op", now=2.0)
        b = await s.add("D", "r@1", "later", given_by="w", recorded_by="op", now=1.0)
        assert a.text == "line one\nline two"
    finally:
        await s.close()
    s = await SqliteExplanationStore.open(path)
    try:
        assert await s.all() == [b, a]  # by time recorded
        assert await s.all(compound="C") == [a]
    finally:
        await s.close()


async def test_paging_over_one_instant(repo: SqliteRepository) -> None:
    same = [event(i, "patrol.round", {"n": i}, NOV_2) for i in range(1, 8)]
    spread = [event(i, "patrol.round", {"n": i}, NOV_2 + i) for i in range(8, 15)]
    await upload(repo, "gw-rose", same + spread, now=NOV_2)
    for page in (1, 2, 3, 100):
        got = await fetch_events(repo, "patrol.round", since=NOV_2, until=NOV_2 + 60, page=page)
        assert sorted(e["seq"] for e in got) == list(range(1, 15))
    got = await fetch_events(repo, "patrol.round", since=NOV_2 + 1, until=NOV_2 + 10, page=2)
    assert sorted(e["seq"] for e in got) == [8, 9]


async def test_monthly_through_the_repository(
    repo: SqliteRepository, store: ExplanationStore
) -> None:
    await upload(repo, "gw-rose", gateway_events(), now=NOV_1 + 86400)
    b = await build_monthly(repo, store, "2026-10", now=NOV_1 + 5 * 86400)
    north = next(t for t in b.townships if t.township == "North")
    rose = next(c for c in north.compounds if c.compound == "Rose Garden")
    devices = {(d.kind, d.device): d for d in rose.devices}
    assert hours(devices[("reader", "bus0:1")]) == (739, 0, 3, 2)
    assert hours(devices[("camera", "cam-1")]) == (712, 2, 4, 26)
    assert hours(devices[("link", "centre link")]) == (736, 0, 8, 0)
    # Lotus Court and Bamboo never uploaded: listed, each with a "never uploaded" fault.
    lotus = next(c for c in north.compounds if c.compound == "Lotus Court")
    assert [(f.kind, f.reason, f.since) for f in lotus.faults] == [
        ("gateway", "never uploaded", None)
    ]
    assert lotus.devices == ()


async def test_a_link_works_once_across_centre_processes(pg_dsn: str) -> None:
    """Two centre processes on one PostgreSQL: the same link (compound and day) used through
    both at once records one set of explanations, and the other is refused with LinkUsed."""
    import asyncio

    a = await PostgresExplanationStore.open(pg_dsn)
    b = await PostgresExplanationStore.open(pg_dsn)
    try:
        rounds = ["night@2026-11-03T02:00", "night@2026-11-03T04:00"]

        async def use(store: ExplanationStore, text: str) -> object:
            try:
                return await store.add_via_link(
                    "Rose Garden", "2026-11-03", rounds, text, given_by="Wang", now=5.0
                )
            except LinkUsed as exc:
                return exc

        results = await asyncio.gather(use(a, "guard ill"), use(b, "no relief"))
        refused = [r for r in results if isinstance(r, LinkUsed)]
        recorded = [r for r in results if isinstance(r, list)]
        assert len(refused) == 1 and len(recorded) == 1, results
        assert await b.all() == recorded[0]
        assert [e.round_id for e in await a.all()] == rounds
        assert await a.link_used_at("Rose Garden", "2026-11-03") == 5.0
        assert await b.link_used_at("Rose Garden", "2026-11-04") is None
    finally:
        await a.close()
        await b.close()
