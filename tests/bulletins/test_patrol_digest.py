"""The repository's ``patrol_digest`` (SQL over ``patrol_rounds``, filled by a trigger at
ingest and by migration 6 for older events) chooses the same latest verdict per round as
``model.latest_verdicts`` does in Python, and counts the same checkpoints, on both backends:
revisions that outrank later events, ties on wall time settled by seq, events arriving out of
order, revisions of JSON ``true`` or of a float, events the model cannot read, and odd
checkpoint maps. The bulletins built from either path are equal."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from centre.bulletins.charts import compliance_series, missed_by_hour
from centre.bulletins.model import (
    Explanation,
    PatrolDigest,
    daily_bulletin,
    digest_verdicts,
    latest_verdicts,
    monthly_bulletin,
    units_from_registry,
)
from centre.bulletins.source import fetch_events, fetch_patrol_digest, patrol_history
from centre.pg_store import PostgresRepository, migrate_postgres
from centre.store import SqliteRepository, SqlRepository, migrate_sqlite
from tests.pg_cluster import OpenRepo
from wire import Batch

T0 = datetime(2026, 11, 3, 2, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
SINCE, UNTIL = T0 - 86400.0, T0 + 86400.0 * 3


def rnd(
    seq: int,
    round_id: str,
    verdict: str,
    *,
    wall: float,
    revision: Any = 1,
    day: Any = "2026-11-03",
    **extra: Any,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "round": round_id,
        "route": "r",
        "day": day,
        "local_start": "2026-11-03T02:00:00+08:00",
        "local_end": "2026-11-03T02:50:00+08:00",
        "verdict": verdict,
        "reasons": [],
        "checkpoints": {"a": 1, "b": 0},
        "responsible": ["G1"],
    }
    if revision is not None:
        payload["revision"] = revision
    payload.update(extra)
    return {
        "seq": seq, "kind": "patrol.round", "cls": "evidence", "payload": payload,
        "wall_time": wall, "mono_time": float(seq), "boot_id": "b", "clock_synced": True,
    }  # fmt: skip


def gw01_events() -> list[dict[str, Any]]:
    """gw-01's rounds, by seq; the expected winner of each round named in the comment."""
    return [
        # night@1: revision 2 outranks later events of revision 1 (seq 2 wins)
        rnd(1, "night@1", "missed", wall=T0 + 100),
        rnd(2, "night@1", "completed", wall=T0 + 50, revision=2),
        rnd(3, "night@1", "missed", wall=T0 + 900),
        # night@2: same revision and wall time, the higher seq wins (seq 5)
        rnd(4, "night@2", "late_completed", wall=T0 + 200),
        rnd(5, "night@2", "missed", wall=T0 + 200),
        # night@3: revision true is 1, a later wall time wins (seq 7); "3" and 2.5 are 0
        rnd(6, "night@3", "completed", wall=T0 + 300),
        rnd(7, "night@3", "incomplete", wall=T0 + 400, revision=True),
        rnd(8, "night@3", "missed", wall=T0 + 500, revision="3"),
        rnd(9, "night@3", "missed", wall=T0 + 600, revision=2.5),
        # night@4: the later, higher events cannot be read (seq 10 wins)
        rnd(10, "night@4", "missed", wall=T0 + 700),
        rnd(11, "night@4", "bogus", wall=T0 + 800, revision=9),
        rnd(12, "night@4", "completed", wall=T0 + 800, revision=9, day=20261103),
        rnd(13, 44, "completed", wall=T0 + 800, revision=9),
        # checkpoints: required_taps 2 (only a), true counts as 1, floats and text never
        rnd(14, "day@1", "incomplete", wall=T0 + 1000, required_taps=2,
            checkpoints={"a": 2, "b": 1, "c": True, "d": 1.0, "e": "x"}, excused=["e"]),
        rnd(15, "day@2", "incomplete", wall=T0 + 1000,
            checkpoints={"a": 2, "b": 1, "c": True, "d": False}, required_taps=0),
        rnd(16, "day@3", "completed", wall=T0 + 1000, excused=["a", "b", "c"]),
        rnd(17, "day@4", "unassessable", wall=T0 + 1000),
        rnd(18, "day@5", "completed", wall=T0 + 1000, checkpoints=["a", "b"], excused="a"),
        rnd(19, "day@6", "completed", wall=T0 + 1000, revision=None, required_taps=True),
        # outside the period: not read
        rnd(20, "day@7", "missed", wall=UNTIL + 10),
        rnd(21, "night@1", "missed", wall=SINCE - 10, revision=7),
        # another patrol day, and a verdict of a day the month does not hold
        rnd(22, "day@8", "missed", wall=T0 + 1100, day="2026-11-04"),
        rnd(23, "day@9", "completed", wall=T0 + 1100, day="2026-12-01"),
    ]  # fmt: skip


def gw02_events() -> list[dict[str, Any]]:
    # The same round ids on another gateway are other rounds.
    return [
        rnd(1, "night@1", "completed", wall=T0 + 100, revision=3),
        rnd(2, "night@1", "missed", wall=T0 + 200, revision=3),
        rnd(3, "night@2", "late_completed", wall=T0 + 300),
    ]


async def enroll(repo: SqlRepository, gw: str, compound: str, township: str) -> None:
    await repo.create_token("h-" + gw, compound, township, 0.0, 1e12)
    await repo.enroll("h-" + gw, gw, compound, 1.0, lambda g: ("pem", "fp-" + gw, "pub", "kid"))


async def send(repo: SqlRepository, gw: str, events: list[dict[str, Any]], tag: str) -> None:
    b = Batch.build(gw, tag, events, head_seq=30, created_at=0.0)
    await repo.ingest(b, envelope=b"{}", signature=b"s" * 64, key_id="kid", now=time.time())


class EventsOnly:
    """The repository seen through :class:`EventSource` alone (no ``patrol_digest``): the
    bulletins' Python path."""

    def __init__(self, repo: SqlRepository) -> None:
        self.repo = repo

    async def events(self, **kw: Any) -> list[dict[str, Any]]:
        return await self.repo.events(**kw)

    async def gateways(self) -> Sequence[Any]:
        return await self.repo.gateways()

    async def alerts(self, **kw: Any) -> Sequence[Any]:
        return await self.repo.alerts(**kw)

    async def tap_tally(self, *, since: float, until: float) -> Sequence[Any]:
        return await self.repo.tap_tally(since=since, until=until)


def canonical(d: PatrolDigest) -> tuple[Any, ...]:
    return (
        sorted(d.listed, key=lambda v: (v.gateway_id, v.round_id)),
        sorted(d.counts, key=lambda c: (c.gateway_id, c.day, c.verdict)),
    )


async def assert_same_as_python(repo: SqlRepository) -> PatrolDigest:
    sql = await fetch_patrol_digest(repo, since=SINCE, until=UNTIL)
    python = await fetch_patrol_digest(EventsOnly(repo), since=SINCE, until=UNTIL)
    assert canonical(sql) == canonical(python)
    # The Python path is the model's own rule, read straight from the events.
    rounds = await fetch_events(repo, "patrol.round", since=SINCE, until=UNTIL)
    assert canonical(python) == canonical(digest_verdicts(latest_verdicts(rounds).values()))
    units = units_from_registry(await repo.gateways())
    days = ["2026-11-03", "2026-11-04"]
    assert compliance_series(units, sql.listed, days, sql.counts) == compliance_series(
        units, list(latest_verdicts(rounds).values()), days
    )
    assert missed_by_hour(units, sql.listed, days, "Asia/Shanghai") == missed_by_hour(
        units, list(latest_verdicts(rounds).values()), days, "Asia/Shanghai"
    )
    a, b, c = (
        monthly_bulletin("2026-11", units, v, {}, now=T0 + 86400 * 40)
        for v in (sql, python, latest_verdicts(rounds))
    )
    assert a == b == c and a.townships
    told = [Explanation(1, "Rose", "night@2", "asleep", "Rose", "op", T0)]
    for day in ("2026-11-03", "2026-11-04"):
        x, y, z = (
            daily_bulletin(day, units, v, {}, told, now=T0 + 86400 * 40)
            for v in (sql, python, latest_verdicts(rounds))
        )
        assert x == y == z and x.rows
    return sql


async def test_latest_verdicts_and_counts_agree_with_the_model(open_repo: OpenRepo) -> None:
    repo: SqlRepository = await open_repo()
    try:
        await enroll(repo, "gw-01", "Rose", "North")
        await enroll(repo, "gw-02", "Lily", "South")
        evs = gw01_events()
        # Out of order: the later seqs first, then the earlier ones.
        await send(repo, "gw-01", evs[12:], "late")
        await send(repo, "gw-01", evs[:12], "early")
        await send(repo, "gw-02", gw02_events(), "b")
        sql = await assert_same_as_python(repo)
        winners = {(v.gateway_id, v.round_id): v.seq for v in sql.listed}
        assert winners == {("gw-01", "night@2"): 5, ("gw-01", "night@4"): 10,
                           ("gw-01", "day@8"): 22, ("gw-02", "night@1"): 2}  # fmt: skip
        counts = {(c.gateway_id, c.day, c.verdict): c for c in sql.counts}
        c = counts[("gw-01", "2026-11-03", "incomplete")]  # night@3 (seq 7), day@1, day@2
        assert (c.rounds, c.checkpoints_done, c.checkpoints_due) == (3, 1 + 1 + 3, 2 + 4 + 4)
        c = counts[("gw-01", "2026-11-03", "completed")]  # night@1, day@3, day@5, day@6
        assert (c.rounds, c.checkpoints_done, c.checkpoints_due) == (
            4,
            1 + 1 + 0 + 1,
            2 + 0 + 0 + 2,
        )
        assert counts[("gw-01", "2026-11-03", "unassessable")].checkpoints_due == 0
        # The charts' own read (its own period), by SQL and by Python: the same charts.
        days = ["2026-11-02", "2026-11-03", "2026-11-04"]
        h1, h2 = [
            await patrol_history(r, days, now=T0 + 86400 * 60) for r in (repo, EventsOnly(repo))
        ]
        # A wider period: night@1's revision 7 (seq 21) and day@7 (seq 20) are read now.
        assert h1.counts and {(v.gateway_id, v.seq) for v in h1.verdicts} == {
            (v.gateway_id, v.seq) for v in h2.verdicts
        } == {("gw-01", 21), ("gw-01", 5), ("gw-01", 10), ("gw-01", 20), ("gw-01", 22),
              ("gw-02", 2)}  # fmt: skip
        assert compliance_series(h1.units, h1.verdicts, days, h1.counts) == compliance_series(
            h2.units, h2.verdicts, days, h2.counts
        )
        assert missed_by_hour(h1.units, h1.verdicts, days, "Asia/Shanghai") == missed_by_hour(
            h2.units, h2.verdicts, days, "Asia/Shanghai"
        )
    finally:
        await repo.close()


def _v5_rows(execute: Any, mark: str) -> None:
    """gw-01 and its rounds written at schema version 5 (before patrol_rounds existed)."""
    q = (lambda sql: sql) if mark == "?" else (lambda sql: sql.replace("?", "%s"))
    execute(q("INSERT INTO gateways (gateway_id, compound, township, cert_fingerprint,"
              " cert_pem, public_key_pem, key_id, enrolled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
            ("gw-01", "Rose", "North", "fp", "pem", "pub", "kid", 1.0))  # fmt: skip
    for e in gw01_events():
        execute(q("INSERT INTO events (gateway_id, seq, kind, cls, wall_time, body, batch_id,"
                  " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                ("gw-01", e["seq"], e["kind"], e["cls"], e["wall_time"],
                 json.dumps(e, separators=(",", ":")), "b1", 2.0))  # fmt: skip


async def test_migration_6_backfills_the_rounds_already_stored(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        with psycopg.connect(dsn) as conn:
            migrate_postgres(conn, upto=5)
            _v5_rows(conn.execute, "%s")
        repo: SqlRepository = await PostgresRepository.open(dsn)
    else:
        db = sqlite3.connect(tmp_path / "c.db", isolation_level=None)
        migrate_sqlite(db, upto=5)
        _v5_rows(db.execute, "?")
        db.close()
        repo = await SqliteRepository.open(tmp_path / "c.db")
    try:
        sql = await assert_same_as_python(repo)
        assert len(sql.listed) == 3 and sql.counts
    finally:
        await repo.close()
