"""The [checkpoints] section: parsing, errors that name the key, key files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.checkpoints.config import (
    CheckpointsSection,
    key_path,
    load_reader_key,
    load_section_file,
)
from gateway.config import write_secret_file
from gateway.config.schema import documented_keys, dump_section, parse_section
from gateway.errors import ConfigError

GOOD = {
    "dedupe_window_s": 5.0,
    "buses": [{"name": "north", "port": "/dev/ttyUSB0", "baud": 9600}],
    "points": [
        {"id": "north-gate", "bus": "north", "address": 1, "name": "North gate",
         "location": "Block 3", "key_file": "keys/ng.scbk"},
        {"id": "car-park", "bus": "north", "address": 2},
    ],
    "roster": [{"wristband": "04a1b2c3d4e5f6", "guard": "g-017"}],
}  # fmt: skip


def parse(data: dict) -> CheckpointsSection:  # type: ignore[type-arg]
    return parse_section(CheckpointsSection, data, "checkpoints")


def test_good_section_round_trips() -> None:
    section = parse(GOOD)
    assert section.point_at("north", 2) is not None
    assert section.bus("north") is not None and section.bus("south") is None
    assert parse(dump_section(section)) == section
    assert parse({}).dedupe_window_s == 10.0


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (lambda d: d["points"][1].update(address=300), "checkpoints.points[1].address",
         "outside 0..126"),
        (lambda d: d["points"][1].update(address=1), "checkpoints.points[1].address",
         "also 'north-gate'"),
        (lambda d: d["points"][1].update(bus="south"), "checkpoints.points[1].bus",
         "not a configured bus"),
        (lambda d: d["points"][1].update(id="north-gate"), "checkpoints.points[1].id", "used"),
        (lambda d: d["buses"][0].update(baud=1200), "checkpoints.buses[0].baud", "not one of"),
        (lambda d: d["buses"][0].update(speed=9600), "checkpoints.buses[0].speed", "unknown key"),
        (lambda d: d["roster"].append(dict(d["roster"][0])), "checkpoints.roster[1].wristband",
         "twice"),
        (lambda d: d["roster"][0].update(wristband="04A1"), "checkpoints.roster[0].wristband",
         "does not match"),
    ],
)  # fmt: skip
def test_errors_name_the_key(change, key: str, words: str) -> None:  # type: ignore[no-untyped-def]
    import copy

    data = copy.deepcopy(GOOD)
    change(data)
    with pytest.raises(ConfigError) as err:
        parse(data)
    assert err.value.key == key
    assert words in err.value.detail


def test_every_key_is_documented() -> None:
    undocumented = [k for k, doc in documented_keys(CheckpointsSection) if not doc]
    assert undocumented == []


def test_key_files_must_be_private_and_16_bytes(tmp_path: Path) -> None:
    section = parse(GOOD)
    ng, cp = section.points
    assert key_path(ng, tmp_path) == tmp_path / "keys" / "ng.scbk"
    assert key_path(cp, tmp_path) == tmp_path / "keys" / "north-2.scbk"
    with pytest.raises(ConfigError) as err:
        load_reader_key(section, ng, tmp_path)
    assert err.value.key == "checkpoints.points[0].key_file"
    write_secret_file(key_path(ng, tmp_path), bytes(range(16)))
    assert load_reader_key(section, ng, tmp_path) == bytes(range(16))
    os.chmod(key_path(ng, tmp_path), 0o644)
    with pytest.raises(ConfigError, match="mode 0644"):
        load_reader_key(section, ng, tmp_path)
    write_secret_file(key_path(cp, tmp_path), bytes(8))
    with pytest.raises(ConfigError, match="expected 16"):
        load_reader_key(section, cp, tmp_path)


def test_section_file(tmp_path: Path) -> None:
    f = tmp_path / "cp.toml"
    f.write_text('[checkpoints]\n[[checkpoints.buses]]\nname = "a"\nport = "/dev/x"\n')
    section, base = load_section_file(f)
    assert section.buses[0].name == "a" and base == tmp_path
    f.write_text("[other]\n")
    with pytest.raises(ConfigError, match="no \\[checkpoints\\]"):
        load_section_file(f)
