"""Answers validation, the state file (resume, 0600, no secrets) and the progress bar."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.setup.answers import load_answers, parse_answers
from gateway.setup.progress import ProgressBar
from gateway.setup.state import StateFile
from gateway.setup.wizard import deep_merge

MINIMAL = {"gateway": {"id": "gw-rose-01", "compound": "Rose Garden"}}
PORT = {"path": "/dev/ttyUSB0", "name": "a"}
ZONE0 = {"number": 0, "board": "b", "channel": 0}


def test_minimal_answers_and_defaults(tmp_path: Path) -> None:
    a = parse_answers({**MINIMAL, "config": {"web": {"port": 0}}}, tmp_path)
    assert a.gateway.id == "gw-rose-01"
    assert a.scan.osdp_first == 0 and a.scan.osdp_last == 126
    assert a.config == {"web": {"port": 0}}
    assert a.path("keys/x") == tmp_path / "keys/x"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({**MINIMAL, "ports": [{**PORT, "baud": 1200}]}, "ports[0].baud"),
        ({**MINIMAL, "ports": [{**PORT, "kind": "can"}]}, "ports[0].kind"),
        ({**MINIMAL, "scan": {"osdp_last": 127}}, "scan.osdp_last"),
        ({**MINIMAL, "relays": {"zones": [ZONE0]}}, "relays.zones[0].number"),
        ({**MINIMAL, "enroll": {"token": "cgt-secret"}}, "enroll.token"),
        ({"gateway": {"id": "GW", "compound": "x"}}, "gateway.id"),
    ],
)
def test_bad_answers_name_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_answers(data)
    assert err.value.key == key


def test_load_answers_file(tmp_path: Path) -> None:
    f = tmp_path / "a.toml"
    f.write_text('[gateway]\nid = "gw-a1"\ncompound = "A"\n[[checkpoints]]\nid = "gate"\n')
    a = load_answers(f)
    assert [c.id for c in a.checkpoints] == ["gate"]
    f.write_text("[gateway\n")
    with pytest.raises(ConfigError):
        load_answers(f)


def test_state_file_resumes_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    s = StateFile.load(path)
    assert not s.done("scan")
    s.finish("scan", {"buses": [1]})
    s.save_partial("pair", {"a/1": {"key_file": "keys/a-1.scbk"}})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = StateFile.load(path)
    assert again.done("scan") and again.result("scan") == {"buses": [1]}
    assert again.partial("pair") == {"a/1": {"key_file": "keys/a-1.scbk"}}
    again.finish("pair", {"readers": {}})
    assert StateFile.load(path).partial("pair") == {}


def test_damaged_state_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError):
        StateFile.load(path)
    path.write_text('{"version": 99}')
    with pytest.raises(ConfigError):
        StateFile.load(path)


def test_deep_merge_keeps_both_sides() -> None:
    base = {"checkpoints": {"buses": [1]}, "gateway": {"id": "a"}}
    extra = {"checkpoints": {"roster": [2]}, "web": {"port": 0}}
    assert deep_merge(base, extra) == {
        "checkpoints": {"buses": [1], "roster": [2]},
        "gateway": {"id": "a"},
        "web": {"port": 0},
    }


def test_progress_bar_plain_stream_prints_quarters() -> None:
    out = io.StringIO()
    bar = ProgressBar("scan a", 8, out)
    for i in range(1, 9):
        bar.update(i)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines == [f"  scan a: {n}/8" for n in (1, 2, 4, 6, 8)]
