"""A centre repository seeded with the daily and monthly fixtures, and a way to serve an aiohttp
app on 127.0.0.1 for the duration of a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from centre.bulletins.explanations import SqliteExplanationStore
from centre.store import SqliteRepository
from tests.bulletins.helpers import NOV_1, NOV_2, at_gateway, event, registry, upload, verdict
from tests.bulletins.test_daily import DAY, lotus_events, rose_events
from tests.bulletins.test_monthly import gateway_events

HOSTILE_COMPOUND = '<script>alert("pwned")</script> & =cmd|"/c calc"!A1'


@dataclass
class Seeded:
    repo: SqliteRepository
    store: SqliteExplanationStore
    data_dir: Path


def _plain(evs: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    drop = ("gateway_id", "compound", "township")
    return [{k: v for k, v in e.items() if k not in drop} for e in evs]


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[Seeded]:
    """Rose Garden, Lotus Court (North), Bamboo (South) and a compound with a hostile name."""
    repo = await registry(
        tmp_path,
        [
            ("gw-rose", "Rose Garden", "North"),
            ("gw-lotus", "Lotus Court", "North"),
            ("gw-bamboo", "Bamboo", "South"),
            ("gw-evil", HOSTILE_COMPOUND, "South"),
        ],
    )
    store = await SqliteExplanationStore.open(tmp_path / "bulletins.db")
    try:
        rose = _plain(rose_events())
        # October's device history first, then November's patrol verdicts (seqs go on).
        october = gateway_events()
        n = len(october)
        await upload(repo, "gw-rose", october, now=NOV_1 + 86400, batch="oct")
        await upload(
            repo,
            "gw-rose",
            [dict(e, seq=e["seq"] + n) for e in rose],
            now=NOV_2 + 2 * 86400,
            batch="nov",
        )
        await upload(repo, "gw-lotus", _plain(lotus_events()), now=NOV_2 + 2 * 86400)
        evil = verdict("n@2026-11-03T00:00", DAY, "missed", counts={HOSTILE_COMPOUND: 0},
                       reasons=[HOSTILE_COMPOUND])  # fmt: skip
        await upload(
            repo,
            "gw-evil",
            _plain([at_gateway(event(1, "patrol.round", evil, NOV_2 + 86400), "gw-evil", "", "")]),
            now=NOV_2 + 2 * 86400,
        )
        yield Seeded(repo, store, tmp_path)
    finally:
        await store.close()
        await repo.close()


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port); yields its base URL; cleans everything up."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
