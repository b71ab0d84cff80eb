"""Configuration: every invalid example names its key; any valid config round-trips."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import (
    GatewayConfig,
    GatewaySection,
    JournalSection,
    LogSection,
    SupervisorSection,
    dump_config,
    load_config,
    parse_config,
    read_secret_file,
    write_config_atomically,
    write_secret_file,
)
from gateway.config.schema import documented_keys
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "gateway.example.toml"
GOOD = '[gateway]\nid = "gw-01"\ncompound = "Lotus"\n'

INVALID = [
    # (TOML text, the key the error must name, words the reason must contain)
    ("", "gateway", "is required"),
    ('[gateway]\ncompound = "x"\n', "gateway.id", "is required"),
    ('[gateway]\nid = "GW 01"\ncompound = "x"\n', "gateway.id", "does not match"),
    ('[gateway]\nid = 7\ncompound = "x"\n', "gateway.id", "expected a string"),
    (GOOD + 'colour = "red"\n', "gateway.colour", "unknown key"),
    (GOOD + 'timezone = "Mars/Olympus"\n', "gateway.timezone", "not a known IANA time zone"),
    (GOOD + "[journal]\nmax_group = 0\n", "journal.max_group", "outside 1..100000"),
    (GOOD + "[journal]\nmax_group = 1.5\n", "journal.max_group", "expected an integer"),
    (GOOD + "[journal]\nmax_group = true\n", "journal.max_group", "expected an integer"),
    (GOOD + "[journal]\ntelemetry_budget_bytes = 10\n", "journal.telemetry_budget_bytes", "below"),
    (GOOD + "[journal]\nretention_days = nan\n", "journal.retention_days", "finite"),
    (GOOD + '[journal]\nretention_days = "30"\n', "journal.retention_days", "expected a number"),
    (GOOD + "[journal]\nfsync = false\n", "journal.fsync", "unknown key"),
    (
        GOOD + "[supervisor]\nbackoff_initial_s = 5.0\nbackoff_max_s = 1.0\n",
        "supervisor.backoff_max_s",
        "not be below",
    ),
    (GOOD + '[log]\nlevel = "loud"\n', "log.level", "is not one of"),
    (GOOD + "[log]\nlevel = 3\n", "log.level", "is not one of"),
    (GOOD + "journal = 3\n", "gateway.journal", "unknown key"),
    ('journal = 3\n[gateway]\nid = "gw-01"\ncompound = "x"\n', "journal", "expected a table"),
    (GOOD + "[printer]\nmodel = 1\n", "printer", "unknown key"),
    (GOOD + 'base_dir = "/"\n', "gateway.base_dir", "unknown key"),
]


@pytest.mark.parametrize(("text", "key", "reason"), INVALID)
def test_invalid_config_names_the_key(text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text))
    assert info.value.key == key
    assert reason in str(info.value)
    assert str(info.value).startswith(key + ":")


def test_example_config_is_valid_and_documents_every_key() -> None:
    cfg = load_config(EXAMPLE)
    assert cfg.gateway.timezone == "Asia/Shanghai"
    text = EXAMPLE.read_text()
    for key, doc in documented_keys(GatewayConfig):
        if key == "base_dir":
            continue
        leaf = key.split(".")[-1]
        assert f"{leaf} =" in text or f"[{key}]" in text, f"{key} missing from the example"
        assert doc, f"{key} has no documentation line in its setting()"


def test_file_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gateway\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(binary)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "gw.toml"
    path.parent.mkdir()
    path.write_text(GOOD.replace('compound = "Lotus"', 'compound = "Lotus"\ndata_dir = "state"'))
    cfg = load_config(path)
    assert cfg.journal_path == tmp_path / "etc" / "state" / "journal.db"


ids = st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}", fullmatch=True)
# Any Unicode text but NUL (no path or name can hold one; the schema refuses it).
chars = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00")
names = st.text(chars, min_size=1, max_size=40)
finite = st.floats(allow_nan=False, allow_infinity=False)

configs = st.builds(
    GatewayConfig,
    gateway=st.builds(
        GatewaySection,
        id=ids,
        compound=names.filter(lambda s: "\n" not in s and "\r" not in s),
        township=st.text(chars, max_size=20),
        timezone=st.sampled_from(["Asia/Shanghai", "UTC", "Europe/Berlin", "America/New_York"]),
        runtime_dir=st.text(chars, min_size=1, max_size=30),
        data_dir=st.text(chars, min_size=1, max_size=30),
    ),
    journal=st.builds(
        JournalSection,
        path=st.text(chars, min_size=1, max_size=30),
        telemetry_budget_bytes=st.integers(64 * 1024, 2**40),
        retention_days=st.floats(0.0, 3650.0),
        max_group=st.integers(1, 100_000),
    ),
    supervisor=st.tuples(
        st.floats(0.01, 600.0), st.floats(0.0, 3000.0), st.floats(0.1, 86400.0)
    ).map(lambda t: SupervisorSection(t[0], t[0] + t[1], t[2])),
    log=st.builds(LogSection, level=st.sampled_from(["debug", "info", "warning", "error"])),
)


@settings(max_examples=200, deadline=None)
@given(configs)
def test_any_valid_config_round_trips(cfg: GatewayConfig) -> None:
    text = dump_config(cfg)
    again = parse_config(tomllib.loads(text))
    assert again == cfg
    assert dump_config(again) == text


def test_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    first = parse_config(tomllib.loads(GOOD))
    write_config_atomically(first, path)
    second = parse_config(tomllib.loads(GOOD.replace("Lotus", "Magnolia")))
    write_config_atomically(second, path)
    assert load_config(path).gateway.compound == "Magnolia"
    assert "Lotus" in (tmp_path / "gw.toml.bak").read_text()


def test_secret_files_must_be_private(tmp_path: Path) -> None:
    key = tmp_path / "reader.key"
    write_secret_file(key, bytes(range(16)))
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert read_secret_file(key, "checkpoints[0].scbk_file", length=16) == bytes(range(16))
    with pytest.raises(ConfigError, match="expected 32"):
        read_secret_file(key, "k", length=32)
    os.chmod(key, 0o644)
    with pytest.raises(ConfigError) as info:
        read_secret_file(key, "checkpoints[0].scbk_file")
    assert info.value.key == "checkpoints[0].scbk_file"
    assert "0644" in str(info.value)
