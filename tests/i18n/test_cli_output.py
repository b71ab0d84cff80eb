"""`compound-gw status`, `health` and `patrol today` for people: words and local times in the
configured language (zh-CN by default), `--json` unchanged for machines, and `status` exits 3
when the daemon is not running."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import os
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import EXIT_NOT_RUNNING, main
from gateway.clock import ManualClock
from gateway.journal import Journal
from tests.web.visible import what_should_not_be_seen

TZ = "Asia/Shanghai"
PATROL = """
[[patrol.routes]]
id = "outer"
name = "Outer loop"
checkpoints = ["north-gate", "bike-shed"]

[[patrol.schedules]]
id = "night"
route = "outer"
times = ["22:00", "23:00"]
window_minutes = 30
"""


def write_config(tmp: Path, language: str | None = None, patrol: bool = False) -> Path:
    lang = f'language = "{language}"\n' if language else ""
    points = (
        '[checkpoints]\nbuses = [{name = "bus0", port = "/dev/null"}]\n'
        'points = [{id = "north-gate", bus = "bus0", address = 1}, '
        '{id = "bike-shed", bus = "bus0", address = 2}]\n'
    )
    text = (
        f'[gateway]\nid = "gw-cli"\ncompound = "Lotus Garden"\ntimezone = "{TZ}"\n{lang}'
        'data_dir = "data"\nruntime_dir = "run"\n'
    )
    if patrol:
        text += points + PATROL
    path = tmp / "gateway.toml"
    path.write_text(text)
    (tmp / "run").mkdir(exist_ok=True)
    (tmp / "data").mkdir(exist_ok=True)
    return path


def board(tmp: Path, now: float, running: bool = True) -> None:
    status: dict[str, Any] = {
        "services": [{"service": "checkpoints", "state": "backoff", "restarts": 2,
                      "crashes": 2, "last_error": "DeviceError: bus0 gone"}],
        "health": [{"device": "cam-gate", "kind": "camera", "state": "down",
                    "reason": "no reply", "for_s": 4000.0, "seen_s_ago": 3.0}],
        "sync": {"centre": "https://centre:8443", "link": "down", "backlog": 9,
                 "last_success": now - 600, "last_error": "connection refused",
                 "synced_floor": 3, "since": now - 300},
        "readers": {"buses": [], "readers": [
            {"checkpoint": "bike-shed", "reader": "bus0/2", "online": False,
             "sc_active": False, "reason": "no reply", "since": now - 120}]},
    }  # fmt: skip
    if running:
        status["daemon"] = {"pid": os.getpid(), "updated": now}
    (tmp / "run" / "status.json").write_text(json.dumps(status))


async def journal_file(tmp: Path) -> None:
    async with await Journal.open(tmp / "data" / "journal.db", gateway_id="gw-cli") as journal:
        await journal.append("daemon.started", {"previous_stop": "first_start"})


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    # Each run in a fresh context: the language main() sets must not leak into other tests.
    code = contextvars.Context().run(main, argv)
    return code, capsys.readouterr().out


def local(wall: float, fmt: str) -> str:
    return dt.datetime.fromtimestamp(wall, zoneinfo.ZoneInfo(TZ)).strftime(fmt)


async def test_status_in_chinese_by_default_with_local_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOUND_GW_LANG")
    cfg = write_config(tmp_path)
    await journal_file(tmp_path)
    now = dt.datetime.now().timestamp()
    board(tmp_path, now)
    code, out = run(["status", "-c", str(cfg)], capsys)
    assert code == 0
    assert "日志：共 1 个事件" in out
    for words in ("网关服务：运行中", "与区中心的连接：故障", "读卡器：", "离线", "无应答",
                  "设备：", "摄像头", "故障", "1小时6分钟", "巡更读卡器", "即将重启"):  # fmt: skip
        assert words in out, words
    assert f"9 个事件待上传；上次上传 {local(now - 600, '%H:%M')}；" in out
    assert what_should_not_be_seen(out) == [], out
    assert str(int(now)) not in out


async def test_language_from_config_env_and_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOUND_GW_LANG")
    now = dt.datetime.now().timestamp()
    cfg = write_config(tmp_path, language="en")
    board(tmp_path, now)
    assert "Daemon: running" in run(["status", "-c", str(cfg)], capsys)[1]
    assert "网关服务：运行中" in run(["--lang", "zh-CN", "status", "-c", str(cfg)], capsys)[1]
    monkeypatch.setenv("COMPOUND_GW_LANG", "zh_CN")
    assert "网关服务：运行中" in run(["status", "-c", str(cfg)], capsys)[1]
    assert "Daemon: running" in run(["--lang", "en", "status", "-c", str(cfg)], capsys)[1]
    with pytest.raises(SystemExit) as exit_:
        run(["--lang", "fr", "status", "-c", str(cfg)], capsys)
    assert exit_.value.code == 2


async def test_status_exits_3_when_the_daemon_is_not_running_and_json_is_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path)
    now = dt.datetime.now().timestamp()
    board(tmp_path, now, running=False)
    code, out = run(["status", "-c", str(cfg)], capsys)
    assert (code, "Daemon: not running" in out) == (EXIT_NOT_RUNNING, True)
    code, out = run(["status", "--json", "-c", str(cfg)], capsys)
    assert code == EXIT_NOT_RUNNING
    data = json.loads(out)
    assert data["daemon"] == {"running": False, "pid": None, "status_age_s": None}
    assert data["sync"]["synced_floor"] == 3, "machines keep every field"
    board(tmp_path, now)
    assert run(["status", "--json", "-c", str(cfg)], capsys)[0] == 0


async def test_health_in_chinese(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOUND_GW_LANG")
    cfg = write_config(tmp_path)
    board(tmp_path, dt.datetime.now().timestamp())
    code, out = run(["health", "-c", str(cfg)], capsys)
    assert code == 0
    assert "网关 gw-cli：故障（实时，来自运行中的网关服务）" in out
    assert out.splitlines()[1].split() == ["设备", "类型", "状态", "持续", "原因"]
    assert what_should_not_be_seen(out) == []


async def test_patrol_today_in_words_and_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOUND_GW_LANG")
    cfg = write_config(tmp_path, patrol=True)
    evening = dt.datetime.combine(
        dt.datetime.now(zoneinfo.ZoneInfo(TZ)).date(), dt.time(21, 0), zoneinfo.ZoneInfo(TZ)
    )
    clock = ManualClock(wall=evening.timestamp(), synced=True)
    async with await Journal.open(tmp_path / "data" / "journal.db", gateway_id="gw-cli",
                                  clock=clock) as journal:  # fmt: skip
        await journal.append("daemon.started", {"previous_stop": "first_start"})
    code, out = run(["patrol", "today", "-c", str(cfg)], capsys)
    assert code == 0
    code_json, raw = run(["patrol", "today", "--json", "-c", str(cfg)], capsys)
    rows = json.loads(raw)
    assert code_json == 0 and rows, "rounds planned tonight"
    lines = out.splitlines()
    assert lines[0].startswith("巡逻日 ")
    assert lines[1].split()[:4] == ["巡逻", "路线", "时间", "状态"]
    for row in rows:
        assert row["round"] in out and row["window"] in out
    assert what_should_not_be_seen(out) == []


async def test_events_tail_shows_the_compounds_local_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOUND_GW_LANG")
    monkeypatch.setenv("TZ", "America/New_York")  # the machine's zone must not matter
    cfg = write_config(tmp_path)
    wall = dt.datetime(2026, 12, 5, 9, 30, 15, tzinfo=zoneinfo.ZoneInfo(TZ)).timestamp()
    clock = ManualClock(wall=wall, synced=False)
    async with await Journal.open(tmp_path / "data" / "journal.db", gateway_id="gw-cli",
                                  clock=clock) as journal:  # fmt: skip
        await journal.append("tap", {"checkpoint": "north-gate", "guard": "Wang Wei"})
    code, out = run(["events", "tail", "-c", str(cfg)], capsys)
    assert code == 0
    assert "2026年12月5日 09:30:15 (时钟未同步)" in out
    assert str(int(wall)) not in out
