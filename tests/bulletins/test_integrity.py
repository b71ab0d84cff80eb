"""Unverified bands and anti-fraud alerts in the bulletins, through a real repository: taps
uploaded, the real AntifraudMonitor run after each batch, daily and monthly built, rendered."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from centre.antifraud import walking_times_from_routes
from centre.antifraud.monitor import AntifraudMonitor
from centre.bulletins import render
from centre.bulletins.explanations import SqliteExplanationStore
from centre.bulletins.integrity import compound_integrity, fraud_alert, tap_mark
from centre.bulletins.model import Unit
from centre.bulletins.source import build_daily, build_monthly
from centre.store import SqliteRepository
from tests.bulletins.helpers import NOV_2, H, event, registry
from wire import Batch

DAY = "2026-11-02"
POSITIONS = {"a": (0.0, 0.0), "b": (100.0, 0.0), "c": (200.0, 0.0), "far": (900.0, 0.0)}
ROUTES = [{"id": "r", "checkpoints": ["a", "b", "c"], "min_walk_s": 40}]
WALKS = walking_times_from_routes(ROUTES, positions=POSITIONS)
GATEWAYS = [("gw-rose", "Rose Garden", "North"), ("gw-lotus", "Lotus Court", "North")]
BAND_1, BAND_2, CLONE = "04aa0000000001", "04aa0000000002", "04bb000000000c"


def tap(seq: int, cp: str, at: float, band: str, guard: str, *, verified: bool) -> dict[str, Any]:
    payload = {"checkpoint": cp, "reader": f"bus0/{seq}", "wristband": band, "guard": guard,
               "format": "raw", "bits": 56, "verified": verified}  # fmt: skip
    return event(seq, "tap", payload, at)


def rose_taps() -> list[dict[str, Any]]:
    t = NOV_2 + 10 * H  # 10:00 local on the 2nd
    return [
        # Two verified bands tapped together at a, b and c: one guard carrying both.
        tap(1, "a", t, BAND_1, "g1", verified=True),
        tap(2, "a", t + 2, BAND_2, "g2", verified=True),
        tap(3, "b", t + 60, BAND_1, "g1", verified=True),
        tap(4, "b", t + 61, BAND_2, "g2", verified=True),
        tap(5, "c", t + 120, BAND_1, "g1", verified=True),
        tap(6, "c", t + 123, BAND_2, "g2", verified=True),
        # A UID-only band: at a, then at the far end 30 s later (a clone in two places).
        tap(7, "a", t + 3 * H, CLONE, "g3", verified=False),
        tap(8, "far", t + 3 * H + 30, CLONE, "g3", verified=False),
    ]


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[SqliteRepository]:
    r = await registry(tmp_path, GATEWAYS)
    yield r
    await r.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteExplanationStore]:
    s = await SqliteExplanationStore.open(tmp_path / "bulletins.db")
    yield s
    await s.close()


async def ingest(repo: SqliteRepository, gw: str, events: list[dict[str, Any]]) -> int:
    monitor = AntifraudMonitor(repo, walks=lambda g: WALKS)
    now = NOV_2 + 20 * H
    b = Batch.build(gw, "b1", events, head_seq=events[-1]["seq"], created_at=now)
    await repo.ingest(b, envelope=b"{}", signature=b"s" * 64, key_id="kid", now=now)
    return await monitor.after_ingest(gw, b.events, now=now)


async def test_daily_bulletin_marks_unverified_taps_and_lists_alerts_with_evidence(
    repo: SqliteRepository, store: SqliteExplanationStore
) -> None:
    assert await ingest(repo, "gw-rose", rose_taps()) == 2
    lotus = [tap(1, "a", NOV_2 + 9 * H, "04cc000000000d", "g9", verified=True)]
    assert await ingest(repo, "gw-lotus", lotus) == 0
    b = await build_daily(repo, store, DAY, now=NOV_2 + 2 * 86400)
    by = {c.compound: c for c in b.integrity}
    rose, lotus_row = by["Rose Garden"], by["Lotus Court"]
    assert (rose.taps, rose.unverified_count, rose.unverified_bands) == (8, 2, 1)
    assert [t.seq for t in rose.unverified] == [7, 8]
    assert (rose.travel_alerts, rose.buddy_alerts) == (1, 1)
    assert (lotus_row.taps, lotus_row.unverified_count, lotus_row.alerts) == (1, 0, ())
    travel = next(a for a in rose.alerts if a.kind == "impossible_travel")
    assert travel.checkpoints == ("a", "far") and travel.wristbands == (CLONE,)
    assert [t.seq for t in travel.taps] == [7, 8]
    buddy = next(a for a in rose.alerts if a.kind == "buddy_tap")
    assert buddy.wristbands == (BAND_1, BAND_2) and buddy.checkpoints == ("a", "b", "c")
    assert len(buddy.taps) == 6

    page = render.daily_html(b)  # Chinese by default
    assert "未验证腕带" in page and "代打卡" in page and "不可能的行程" in page
    assert page.count('class="unverified-tap"') == 2
    assert "2026-11-02 13:00" in page  # the clone's first tap, in local time
    assert str(int(NOV_2 + 13 * H)) not in page  # no raw epoch numbers
    english = render.daily_html(b, lang="en")
    assert "Unverified bands" in english and "buddy tapping" in english

    rows = list(csv.reader(io.StringIO(render.integrity_csv(b), newline="")))
    assert rows[0] == list(render.INTEGRITY_HEADER)
    items = [(r[2], r[4], r[6]) for r in rows[1:]]
    assert ("Rose Garden", "7", "unverified_tap") in items
    assert ("Rose Garden", "8", "unverified_tap") in items
    assert sum(1 for r in rows[1:] if r[6] == "impossible_travel") == 1
    assert sum(1 for r in rows[1:] if r[6] == "buddy_tap") == 1
    travel_row = next(r for r in rows[1:] if r[6] == "impossible_travel")
    assert travel_row[11].count(CLONE) == 2 and "2026-11-02" in travel_row[11]


async def test_monthly_bulletin_counts_per_compound(
    repo: SqliteRepository, store: SqliteExplanationStore
) -> None:
    await ingest(repo, "gw-rose", rose_taps())
    # A gateway older than band verification: its tap has no ``verified``; counted unverified.
    old = event(1, "tap", {"checkpoint": "a", "wristband": "04dd", "guard": "g9"}, NOV_2 + 9 * H)
    b = Batch.build("gw-lotus", "b1", [old], head_seq=1, created_at=NOV_2)
    await repo.ingest(b, envelope=b"{}", signature=b"s" * 64, key_id="kid", now=NOV_2 + H)
    m = await build_monthly(repo, store, "2026-11", now=NOV_2 + 5 * 86400)
    by = {c.compound: c for c in m.integrity}
    rose, lotus = by["Rose Garden"], by["Lotus Court"]
    assert (rose.unverified_count, rose.unverified_bands) == (2, 1)
    assert (rose.travel_alerts, rose.buddy_alerts) == (1, 1)
    assert (lotus.taps, lotus.unverified_count, lotus.unverified_bands) == (1, 1, 1)
    # The monthly counts (one SQL aggregate) agree with the daily list (taps decoded).
    day = await build_daily(repo, store, DAY, now=NOV_2 + 86400)
    daily = {c.compound: c for c in day.integrity}
    for name, c in by.items():
        d = daily[name]
        assert (d.taps, d.unverified_count, d.unverified_bands) == (
            c.taps,
            c.unverified_count,
            c.unverified_bands,
        )
    rows = list(csv.reader(io.StringIO(render.monthly_integrity_csv(m), newline="")))
    assert rows == [
        list(render.MONTHLY_INTEGRITY_HEADER),
        ["2026-11", "North", "Lotus Court", "1", "1", "1", "0", "0"],
        ["2026-11", "North", "Rose Garden", "8", "2", "1", "1", "1"],
    ]
    page = render.monthly_html(m)
    assert "腕带验证与防作弊" in page and "2 次打卡，1 个腕带" in page
    # Another month: nothing of November shows.
    october = await build_monthly(repo, store, "2026-10", now=NOV_2 + 5 * 86400)
    assert october.integrity == ()
    assert "本月无打卡，也无防作弊告警。" in render.monthly_html(october)


def test_a_tap_without_the_verified_field_is_unverified_and_hostile_input_is_skipped() -> None:
    old = event(1, "tap", {"checkpoint": "a", "wristband": "04", "guard": "g"}, NOV_2 + H)
    mark = tap_mark(old | {"gateway_id": "gw"})
    assert mark is not None and mark.verified is False
    for bad in (
        {},
        {"kind": "tap"},
        event(2, "tap", "x", NOV_2),  # type: ignore[arg-type]
        event(3, "tap", {}, float("nan")),
        event(4, "health.state", {}, NOV_2),
    ):
        assert tap_mark(bad) is None
    assert fraud_alert("journal.edited", "gw", 1, NOV_2, {}) is None
    weird = fraud_alert("buddy_tap", "gw", 1, NOV_2, {"taps": [[{"at": "x"}, 5], None]})
    assert weird is not None and weird.taps == ()
    units = [Unit("Rose", "North", ("gw",))]
    [row] = compound_integrity(units, [old | {"gateway_id": "gw"}] * 2, [], NOV_2, NOV_2 + 86400)
    assert (row.taps, row.unverified_count) == (1, 1)  # one (gateway, seq), counted once
