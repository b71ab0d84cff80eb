"""The patrol data file (roster, routes, schedules beside the config): validated with the
config loader's rules, merged by ``load_config``, written atomically, reloaded on SIGHUP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import ManualClock
from gateway.config import load_config
from gateway.daemon import reload_patrol_data
from gateway.errors import ConfigError
from gateway.journal import Journal
from gateway.patrol.service import PatrolService
from gateway.patrol.store import (
    PatrolData,
    data_path,
    load_patrol_data,
    parse_patrol_data,
    save_patrol_data,
)
from tests.patrol.helpers import at

CONFIG = """
[gateway]
id = "gw-store-01"
compound = "Store"
data_dir = "data"
runtime_dir = "run"

[[checkpoints.buses]]
name = "a"
port = "/dev/null"

[[checkpoints.points]]
id = "north-gate"
bus = "a"
address = 1

[[checkpoints.points]]
id = "b3-door"
bus = "a"
address = 2
"""

DATA: dict[str, Any] = {
    "roster": [{"wristband": "04a1b2", "guard": "g-017", "name": "Zhang"}],
    "routes": [{"id": "main", "checkpoints": ["north-gate", "b3-door"]}],
    "schedules": [{"id": "nights", "route": "main", "every_hours": 2, "start": "22:00",
                   "end": "06:00"}],
}  # fmt: skip


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "site" / "gateway.toml"
    p.parent.mkdir()
    p.write_text(CONFIG)
    return p


def test_load_config_merges_the_data_file(config: Path) -> None:
    assert load_config(config).checkpoints.roster == ()
    save_patrol_data(data_path(config), parse_patrol_data(DATA))
    cfg = load_config(config)
    assert [(g.wristband, g.guard) for g in cfg.checkpoints.roster] == [("04a1b2", "g-017")]
    assert [r.id for r in cfg.patrol.routes] == ["main"]
    assert [s.id for s in cfg.patrol.schedules] == ["nights"]
    assert load_config(config, patrol_data=False).patrol.routes == ()


def test_written_atomically_and_read_back(config: Path) -> None:
    path = data_path(config)
    config.chmod(0o640)
    data = parse_patrol_data(DATA)
    save_patrol_data(path, data, like=config)
    assert load_patrol_data(path) == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(os.listdir(path.parent)) == ["gateway.toml", "patrol-data.toml"]  # no .tmp


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        ({"routes": [{"id": "main", "checkpoints": ["north-gate", "x"]}]},
         "patrol-data.toml: routes[0].checkpoints[1]", "'x' is not a known checkpoint"),
        ({"schedules": [{"id": "n", "route": "nope", "every_hours": 2}]},
         "patrol-data.toml: schedules[0].route", "'nope' is not a route id"),
        ({"roster": [{"wristband": "04A1", "guard": "g1"}]},
         "patrol-data.toml: roster[0].wristband", ""),
        ({"roster": [{"wristband": "04a1", "guard": "g1"}, {"wristband": "04a1", "guard": "g2"}]},
         "patrol-data.toml: roster[1].wristband", "04a1 is already roster[0]"),
        ({"schedules": [{"id": "n", "route": "main", "every_hours": 2, "grace_minutes": 500}]},
         "patrol-data.toml: schedules[0].grace_minutes", "must be shorter than the round window"),
    ],
)  # fmt: skip
def test_invalid_data_names_file_and_key(
    config: Path, change: dict[str, Any], key: str, reason: str
) -> None:
    bad = {**DATA, **change}
    data_path(config).write_text(_toml(bad))
    with pytest.raises(ConfigError) as exc:
        load_config(config)
    assert exc.value.key == key
    assert reason in exc.value.detail


def test_the_same_id_in_config_and_file_is_refused(config: Path) -> None:
    config.write_text(CONFIG + '\n[[patrol.routes]]\nid = "main"\ncheckpoints = ["b3-door"]\n')
    save_patrol_data(data_path(config), parse_patrol_data(DATA))
    with pytest.raises(ConfigError) as exc:
        load_config(config)
    assert exc.value.key == "patrol-data.toml: routes[0]"
    assert "also in the gateway config" in exc.value.detail


def _toml(data: dict[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(data)


# ------------------------------------------------------------------ reload (SIGHUP)


class _TapPath:
    name = "checkpoints"

    def __init__(self) -> None:
        self.roster: dict[str, str] | None = None

    def set_roster(self, roster: dict[str, str]) -> None:
        self.roster = roster


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[tuple[Journal, ManualClock]]:
    clock = ManualClock(wall=at(21, 0), synced=True, boot_id="boot-1")
    j = await Journal.open(tmp_path / "journal.db", gateway_id="gw-test", clock=clock)
    try:
        yield j, clock
    finally:
        await j.close()


async def test_reload_applies_roster_routes_and_schedules(
    config: Path, journal: tuple[Journal, ManualClock]
) -> None:
    j, clock = journal
    cfg = load_config(config)
    patrol = PatrolService(cfg.patrol, j, clock, tick_s=0.05, lag_s=0.0)
    taps = _TapPath()
    task = asyncio.create_task(patrol.run())
    try:
        await asyncio.sleep(0.1)
        assert patrol.engine is None  # no schedule: idle, nothing replayed
        save_patrol_data(data_path(config), parse_patrol_data(DATA))
        ok, words = await reload_patrol_data(config, j, [taps, patrol])
        assert ok, words
        assert taps.roster == {"04a1b2": "g-017"}
        for _ in range(200):
            if patrol.engine is not None:
                break
            await asyncio.sleep(0.02)
        assert patrol.engine is not None and patrol.section.schedules[0].id == "nights"
        clock.set_wall(at(22, 1))
        for _ in range(200):
            if patrol.engine.round_ids():
                break
            await asyncio.sleep(0.02)
        assert "nights@2026-11-28T22:00" in patrol.engine.round_ids()
        (ev,) = await j.read_after(0, kinds=("config.reloaded",))
        assert ev.payload["guards"] == 1 and ev.payload["schedules"] == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_invalid_file_is_refused_and_the_old_data_kept(
    config: Path, journal: tuple[Journal, ManualClock]
) -> None:
    j, _clock = journal
    save_patrol_data(data_path(config), parse_patrol_data(DATA))
    taps = _TapPath()
    ok, _words = await reload_patrol_data(config, j, [taps])
    assert ok and taps.roster == {"04a1b2": "g-017"}
    data_path(config).write_text(_toml({**DATA, "routes": [{"id": "main", "checkpoints": ["x"]}]}))
    ok, words = await reload_patrol_data(config, j, [taps])
    assert not ok and "'x' is not a known checkpoint" in words
    assert taps.roster == {"04a1b2": "g-017"}, "the data in force was dropped"
    (ev,) = await j.read_after(0, kinds=("config.reload_refused",))
    assert ev.payload["key"] == "patrol-data.toml: routes[0].checkpoints[0]"


def test_empty_data_is_the_default() -> None:
    assert load_patrol_data(Path("/nonexistent/patrol-data.toml")) == PatrolData()
