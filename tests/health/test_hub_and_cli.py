"""The hub with a real journal (state changes, thinned samples, staleness, the status board) and
the ``health`` command reading the board or, with no daemon, the journal."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.clock import ManualClock
from gateway.health.cli import add_cli, format_health_table, gather_health
from gateway.health.hub import HealthHub
from gateway.health.model import Hysteresis, State
from gateway.journal import Journal
from tests.health.helpers import events_of, running, wait_until


class _Board:
    def __init__(self) -> None:
        self.sections: dict[str, Any] = {}

    def publish(self, section: str, value: Any) -> None:
        self.sections[section] = value


async def test_hub_journals_changes_thins_samples_and_marks_stale(tmp_path: Path) -> None:
    clock = ManualClock()
    board = _Board()
    async with await Journal.open(tmp_path / "j.db", gateway_id="gw-t", clock=clock) as journal:
        hub = HealthHub.for_journal(journal, clock, board, heartbeat_s=600)
        assert HealthHub.for_journal(journal, clock) is hub  # every capability shares it
        hub.configure({"reader": Hysteresis(worsen_after=2, recover_after=1, stale_after_s=30)})
        async with running(hub):
            hub.register("r1", "reader")
            assert board.sections["health"][0]["state"] == "unknown"
            hub.report("r1", "reader", "ok", "polling", detail={"poll_ms": 3})
            for i in range(20):
                clock.advance(1)
                hub.sample("r1", "reader", {"poll_ms": 3.0 + (i % 2) * 0.1, "crc_errors": 0})
                hub.report("r1", "reader", "ok", "polling")
            hub.sample("r1", "reader", {"poll_ms": 3.0, "crc_errors": 5})  # news
            hub.report("r1", "reader", State.DOWN, "no reply")
            hub.report("r1", "reader", State.DOWN, "no reply to 5 polls")
            clock.advance(31)
            await hub.flush()
            from tests.health.helpers import wait_until

            await wait_until(lambda: hub.model.get("r1").state is State.UNKNOWN)  # type: ignore[union-attr]
            await hub.flush()
        changes = [e.payload for e in await events_of(journal, "health.state")]
        assert [(c["previous"], c["state"]) for c in changes] == [
            ("unknown", "ok"), ("ok", "down"), ("down", "unknown"),
        ]  # fmt: skip
        assert changes[1]["reason"] == "no reply to 5 polls"
        assert changes[2]["reason"].startswith("no report for")
        samples = [e.payload for e in await events_of(journal, "health.sample")]
        assert [s["crc_errors"] for s in samples] == [0, 5]
        assert board.sections["health"][0]["state"] == "unknown"
        assert "detail" not in board.sections["health"][0]
        assert board.sections["health_detail"]["r1"] == {"poll_ms": 3}


async def test_samples_wait_for_their_batch_and_a_stop_still_writes_them(tmp_path: Path) -> None:
    """Samples share one commit per ``telemetry_batch_s`` (SD writes), evidence takes the waiting
    samples along at once, and stopping the hub writes what still waits (nothing is lost)."""
    clock = ManualClock()
    async with await Journal.open(tmp_path / "j.db", gateway_id="gw-t", clock=clock) as journal:
        hub = HealthHub.for_journal(journal, clock)
        assert hub.telemetry_batch_s == 300.0  # the default: at most 12 sample commits an hour
        async with running(hub):
            hub.sample("cam-1", "camera", {"snapshot_ms": 40.0})
            clock.advance(299)  # the batch is not due: nothing is written yet
            for _ in range(5):
                await asyncio.sleep(0.01)
            assert await events_of(journal, "health.sample") == []
            hub.record("tamper.open", {"input": "tamper"})  # evidence: at once, with the sample
            await wait_until(lambda: hub.events_written == 2, what="evidence and the sample")
            commits = journal.commits
            hub.sample("cam-2", "camera", {"snapshot_ms": 41.0})
            for _ in range(5):
                await asyncio.sleep(0.01)
            assert journal.commits == commits  # still waiting for its batch
        # ``running`` cancelled the hub, as the supervisor does on stop.
        kinds = [e.kind for e in await events_of(journal, "health.sample")]
        assert kinds == ["health.sample", "health.sample"]
        assert journal.commits == commits + 1


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(
        '[gateway]\nid = "gw-cli"\ncompound = "Test Compound"\n'
        'runtime_dir = "run"\ndata_dir = "data"\n'
    )
    return cfg


def _args(cfg: Path, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="command"))
    return parser.parse_args(["health", "--config", str(cfg), *argv])


async def test_health_command_from_journal_then_from_live_board(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg_path = _config(tmp_path)
    async with await Journal.open(
        tmp_path / "data" / "journal.db", gateway_id="gw-cli", clock=ManualClock()
    ) as journal:
        hub = HealthHub(journal, ManualClock())
        async with running(hub):
            hub.report("gate", "camera", "ok", "snapshot 20000 bytes in 12 ms")
            hub.report("modem", "modem", "degraded", "weak signal -105 dBm")
            await hub.flush()
    args = _args(cfg_path, "--json")
    assert args.handler(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == "journal" and report["worst"] == "degraded"
    assert [(d["device"], d["state"]) for d in report["devices"]] == [
        ("gate", "ok"), ("modem", "degraded"),
    ]  # fmt: skip

    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text(json.dumps({
        "daemon": {"pid": 1, "updated": time.time()},
        "health": [{"device": "gate", "kind": "camera", "state": "down",
                    "reason": "unreachable: Connection refused", "for_s": 4000}],
        "health_detail": {"gate": {"fault": "unreachable"}},
    }))  # fmt: skip
    from gateway.config import load_config

    live = gather_health(load_config(cfg_path))
    assert live["source"] == "daemon" and live["worst"] == "down"
    assert live["devices"][0]["detail"] == {"fault": "unreachable"}
    args = _args(cfg_path)
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "Gateway gw-cli: down (live, from the running daemon)" in out
    assert "gate    camera  down   1 hour 6 minutes  unreachable: Connection refused" in out


def test_table_shape() -> None:
    table = format_health_table([
        {"device": "gate", "kind": "camera", "state": "ok", "reason": "fine", "for_s": 5},
        {"device": "reader-12", "kind": "reader", "state": "unknown", "reason": "", "for_s": None},
    ])  # fmt: skip
    lines = table.splitlines()
    assert lines[0].split() == ["Device", "Type", "State", "For", "Reason"]
    assert lines[1].split() == ["gate", "camera", "OK", "5", "seconds", "fine"]
    assert lines[2].split() == ["reader-12", "checkpoint", "reader", "unknown"]
    assert format_health_table([]) == "  (no devices reported)"


def test_table_in_chinese_lines_up(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextvars

    from gateway.i18n import set_language
    from i18n import display_width

    def table() -> str:
        set_language("zh-CN")
        return format_health_table([
            {"device": "gate", "kind": "camera", "state": "down", "reason": "no reply",
             "for_s": 4000},
            {"device": "modem-1", "kind": "modem", "state": "degraded", "reason": "weak signal",
             "for_s": 90},
        ])  # fmt: skip

    lines = contextvars.Context().run(table).splitlines()
    assert lines[0].split() == ["设备", "类型", "状态", "持续", "原因"]
    assert lines[1].split() == ["gate", "摄像头", "故障", "1小时6分钟", "无应答"]
    # The reason column starts at the same terminal column on every row (CJK is two wide).
    starts = {display_width(line[: line.rindex(line.split()[-1])]) for line in lines}
    assert len(starts) == 1, lines


async def test_daemon_factory_builds_from_a_gateway_config(tmp_path: Path) -> None:
    from gateway.config import parse_config
    from gateway.health.services import SelfMonitor, daemon_factory

    cfg = parse_config(
        {"gateway": {"id": "gw-f", "compound": "C", "data_dir": "data", "runtime_dir": "run"}},
        tmp_path,
    )
    board = _Board()
    async with await Journal.open(cfg.journal_path, gateway_id="gw-f") as journal:
        services = daemon_factory(cfg, journal, ManualClock(), board)
        # No [health] section yet: the hub and the self-monitor still run.
        assert [type(s) for s in services] == [HealthHub, SelfMonitor]
        assert services[0] is HealthHub.for_journal(journal, ManualClock())


async def test_evidence_stays_queued_when_the_disk_is_full(tmp_path: Path) -> None:
    """A full journal drops telemetry (counted) but never evidence: the hub crashes holding it,
    so the supervisor's restart tries again."""
    import pytest

    from gateway.errors import JournalFullError

    clock = ManualClock()
    async with await Journal.open(
        tmp_path / "j.db", gateway_id="gw-t", clock=clock, max_db_bytes=64 * 1024
    ) as journal:
        with pytest.raises(JournalFullError):
            for i in range(10_000):  # fill the small database with evidence
                await journal.append("filler", {"i": i, "pad": "x" * 200})
        hub = HealthHub(journal, clock)
        hub.sample("cam", "camera", {"snapshot_ms": 5})
        hub.report("cam", "camera", "ok", "fine")
        with pytest.raises(JournalFullError):
            await hub.run()
        assert [k for k, _, _ in hub._pending] == ["health.state"]
        assert hub.telemetry_dropped == 1
