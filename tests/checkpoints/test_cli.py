"""``compound-gw readers`` and ``compound-gw reader pair`` (parser registered as the lead will)."""

from __future__ import annotations

import argparse
import json
import os
import stat
import time
from pathlib import Path

import pytest

from drivers.osdp_bus import verify_reader_key
from gateway.checkpoints.cli import add_cli
from gateway.config import read_secret_file
from hil_tests.sims.osdp_reader import ReaderBench


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="compound-gw")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_readers_without_a_daemon_lists_the_config(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "cp.toml"
    cfg.write_text(
        '[checkpoints]\n[[checkpoints.buses]]\nname = "a"\nport = "/dev/null"\n'
        '[[checkpoints.points]]\nid = "north-gate"\nbus = "a"\naddress = 3\n'
    )
    assert run_cli(["readers", "--checkpoints-file", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "daemon is not running" in out and "north-gate" in out and "a/3" in out


def test_readers_shows_the_live_table(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "cp.toml"
    cfg.write_text(
        '[checkpoints]\n[[checkpoints.buses]]\nname = "a"\nport = "/dev/null"\n'
        '[[checkpoints.points]]\nid = "north-gate"\nbus = "a"\naddress = 3\n'
        '[[checkpoints.points]]\nid = "car-park"\nbus = "a"\naddress = 4\n'
    )
    now = time.time()
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"readers": {"updated": now, "buses": [], "readers": [
        {"reader": "a/3", "online": True, "sc_active": True, "reason": "secure_channel_active",
         "last_tap": now - 42, "offline_transitions": 2, "refusals": 0},
        {"reader": "a/4", "online": False, "sc_active": False,
         "reason": "secure_channel_refused", "refusals": 1},
    ]}}))  # fmt: skip
    assert run_cli(["readers", "--checkpoints-file", str(cfg), "--status", str(status)]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln for ln in out.splitlines()[2:]}
    assert "yes" in lines["north-gate"] and "42s ago" in lines["north-gate"]
    assert " 2 " in lines["north-gate"]  # errors column
    assert "NO" in lines["car-park"] and "secure_channel_refused" in lines["car-park"]
    assert run_cli(["readers", "--checkpoints-file", str(cfg), "--status", str(status),
                    "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["source"] == "daemon"
    assert [r["online"] for r in report["readers"]] == [True, False]
    # A status board nobody updates is stale: not shown as live.
    status.write_text(json.dumps({"readers": {"updated": now - 300, "readers": []}}))
    run_cli(["readers", "--checkpoints-file", str(cfg), "--status", str(status)])
    assert "stale" in capsys.readouterr().out


def test_reader_pair_writes_a_private_key_the_reader_accepts(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with ReaderBench(tmp_path, {"a": 2}, baud=115200, install_mode=(("a", 2),)) as bench:
        key_file = tmp_path / "keys" / "a-2.scbk"
        key_file.unlink()  # a reader fresh from the box: no key yet
        argv = ["reader", "pair", "--checkpoints-file", str(bench.config_path), "--bus", "a",
                "--address", "2", "--timeout", "10"]  # fmt: skip
        assert run_cli(argv) == 0, capsys.readouterr().out
        assert "paired" in capsys.readouterr().out
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        key = read_secret_file(key_file, "k", length=16)
        assert key in bench.reader("a", 2).keys_received
        assert not (tmp_path / "keys" / "a-2.scbk.pending").exists()
        port = bench.lines["a"].host_path
        assert verify_reader_key(port, 115200, 2, key, timeout=5)


def test_reader_pair_failure_keeps_the_old_key(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with ReaderBench(tmp_path, {"a": 1}, baud=115200, wrong_key=(("a", 1),)) as bench:
        key_file = tmp_path / "keys" / "a-1.scbk"
        before = key_file.read_bytes()
        argv = ["reader", "pair", "--checkpoints-file", str(bench.config_path), "--bus", "a",
                "--address", "1", "--timeout", "3"]  # fmt: skip
        assert run_cli(argv) == 1
        assert "refused its current key" in capsys.readouterr().out
        assert key_file.read_bytes() == before
        assert not (tmp_path / "keys" / "a-1.scbk.pending").exists()


@pytest.mark.parametrize(
    ("bus", "address", "words"), [("z", 1, "no bus named"), ("a", 9, "no checkpoint at a/9")]
)
def test_reader_pair_usage_errors(tmp_path: Path, capsys, bus: str, address: int,  # type: ignore[no-untyped-def]
                                  words: str) -> None:  # fmt: skip
    cfg = tmp_path / "cp.toml"
    cfg.write_text(
        '[checkpoints]\n[[checkpoints.buses]]\nname = "a"\nport = "/dev/null"\n'
        '[[checkpoints.points]]\nid = "north-gate"\nbus = "a"\naddress = 3\n'
    )
    argv = ["reader", "pair", "--checkpoints-file", str(cfg), "--bus", bus,
            "--address", str(address)]  # fmt: skip
    assert run_cli(argv) == 2
    assert words in capsys.readouterr().out
