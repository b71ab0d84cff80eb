"""An unprovisioned gateway's command channel waits quietly: it says so at start, then hourly."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import SystemClock
from gateway.commands import channel as channel_mod
from gateway.commands.channel import CommandChannel, Phase
from gateway.commands.config import CommandsSection
from gateway.journal import Journal
from gateway.sync.config import SyncSection


async def test_not_provisioned_is_logged_at_start_and_then_every_hour_of_polls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(channel_mod, "NOT_PROVISIONED_POLL_S", 0.0)
    polls = 0
    real_sleep = asyncio.sleep

    async def counted_sleep(delay: float, *a: Any) -> None:
        nonlocal polls
        polls += 1
        await real_sleep(0)

    journal = await Journal.open(tmp_path / "j.db", gateway_id="gw-np", clock=SystemClock())
    try:
        chan = CommandChannel(
            journal, SystemClock(), SyncSection(), CommandsSection(),
            data_dir=tmp_path, trigger=None,  # type: ignore[arg-type]  # never reached
        )  # fmt: skip
        monkeypatch.setattr(channel_mod.asyncio, "sleep", counted_sleep)
        with caplog.at_level(logging.WARNING, logger="gateway.commands"):
            task = asyncio.create_task(chan.run())
            while polls < 2 * channel_mod.NOT_PROVISIONED_LOG_EVERY + 1:
                await real_sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert chan.phase is Phase.WAITING
        said = [r for r in caplog.records if "not provisioned" in r.getMessage()]
        assert len(said) == 3  # polls 0, 60 and 120
    finally:
        await journal.close()


async def test_the_uploader_says_not_provisioned_at_start_and_then_hourly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from gateway.sync import uploader as uploader_mod

    monkeypatch.setattr(uploader_mod, "NOT_PROVISIONED_POLL_S", 0.0)
    polls = 0
    real_sleep = asyncio.sleep

    async def counted_sleep(delay: float, *a: Any) -> None:
        nonlocal polls
        polls += 1
        await real_sleep(0)

    journal = await Journal.open(tmp_path / "j.db", gateway_id="gw-np", clock=SystemClock())
    try:
        up = uploader_mod.Uploader(journal, SystemClock(), SyncSection(), data_dir=tmp_path)
        monkeypatch.setattr(uploader_mod.asyncio, "sleep", counted_sleep)
        with caplog.at_level(logging.WARNING, logger="gateway.sync"):
            task = asyncio.create_task(up.run())
            while polls < 2 * uploader_mod.NOT_PROVISIONED_LOG_EVERY + 1:
                await real_sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        said = [r for r in caplog.records if "not provisioned" in r.getMessage()]
        assert len(said) == 3  # polls 0, 60 and 120
    finally:
        await journal.close()
