"""Bench files: the default simulated bench, the real-bench template, and errors naming keys."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from gateway.config.schema import documented_keys
from gateway.errors import ConfigError
from hil_tests.benchfile import (
    BENCHES_DIR,
    DEFAULT_BENCH,
    Bench,
    bench_from_config,
    load_bench,
    parse_bench,
    preflight,
    sim_only_skip_reason,
    start_sim_lines,
)
from hil_tests.line.leakcheck import no_leaks

REAL = BENCHES_DIR / "example-real.toml"
DOC = Path(__file__).resolve().parent.parent / "docs" / "hil-bench.md"


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    with no_leaks():
        yield


def _sim_data() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_BENCH.read_text())


def _error(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_bench(data)
    return info.value


def test_the_default_bench_is_all_simulated() -> None:
    bench = load_bench()
    assert bench.name == "sim"
    assert bench.simulated
    assert [r.name for r in bench.readers_on("readers-a")] == ["north-gate", "block-3"]
    assert [b.address for b in bench.boards_on("relays")] == [1, 2]
    assert bench.role("relays") == "relays" and bench.role("modem") == "modem"
    assert all(line.simulated and line.paced for line in bench.lines if line.kind == "rs485")
    assert bench.modem is not None and bench.modem.csq == (21, 99)


def test_the_bench_option_selects_a_file(pytestconfig: pytest.Config) -> None:
    bench = bench_from_config(pytestconfig)
    assert bench is bench_from_config(pytestconfig), "loaded once per session"
    if pytestconfig.getoption("--bench") is None:  # as the suite runs in CI
        assert bench.name == "sim" and bench.simulated


def test_sim_only_tests_skip_on_a_real_bench_with_a_reason() -> None:
    assert sim_only_skip_reason(load_bench()) is None
    reason = sim_only_skip_reason(load_bench(REAL))
    assert reason is not None and "district-lab-1" in reason and "simulator-only" in reason


def test_the_real_template_names_real_ports_addresses_and_urls() -> None:
    bench = load_bench(REAL)
    assert not bench.simulated
    real_lines = [line for line in bench.lines if not line.simulated]
    assert real_lines and all(line.port.startswith("/dev/serial/by-id/") for line in real_lines)
    assert [(b.name, b.address, b.profile) for b in bench.relay_boards] == [
        ("amp-main", 1, "waveshare_v2")
    ]
    assert all(r.key_file for r in bench.readers)
    gate = bench.cameras[0]
    assert gate.snapshot_url.startswith("http://") and gate.rtsp_url.startswith("rtsp://")
    assert not gate.simulated and bench.cameras[1].simulated  # parts may stay simulated
    assert bench.path("keys/x") == REAL.resolve().parent / "keys" / "x"
    assert bench.gpio.pin_factory == "native"


def test_require_sim_skips_on_real_parts_with_a_reason() -> None:
    real = load_bench(REAL)
    with pytest.raises(pytest.skip.Exception, match="line noise needs a simulator"):
        real.require_sim("line noise", line="readers-a")
    with pytest.raises(pytest.skip.Exception, match="district-lab-1"):
        real.require_sim("camera going dark")
    load_bench().require_sim("line noise", line="readers-a")  # no skip on the sim bench


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (lambda d: d["readers"][2].update(address=130), "readers[2].address", "outside 0..126"),
        (lambda d: d["relay_boards"][0].update(address=0), "relay_boards[0].address", "1..247"),
        (lambda d: d["lines"][0].update(speed=9600), "lines[0].speed", "unknown key"),
        (lambda d: d["lines"][1].update(baud=1200), "lines[1].baud", "not one of"),
        (lambda d: d["lines"][0].update(port="COM3"), "lines[0].port", "neither 'sim'"),
        (lambda d: d["lines"][1].update(name="readers-a"), "lines[1].name", "already lines[0]"),
        (lambda d: d["readers"][1].update(address=1), "readers[1].address", "also readers[0]"),
        (lambda d: d["readers"][0].update(line="nowhere"), "readers[0].line", "no line named"),
        (lambda d: d["readers"][0].update(line="modem"), "readers[0].line", "needs rs485"),
        (lambda d: d["modem"].update(line="relays"), "modem.line", "needs serial"),
        (lambda d: d["relay_boards"][0].update(line="readers-a"), "lines[0]", "cannot share"),
        (lambda d: d["cameras"][0].update(snapshot_url="ftp://x"), "cameras[0].snapshot_url", ""),
        (lambda d: d["cameras"][1].update(name="north-gate"), "cameras[1].name", "readers[0]"),
        (lambda d: d["centre"].update(url="http://plain"), "centre.url", "https"),
        (lambda d: d["bench"].update(name="Has Spaces"), "bench.name", "does not match"),
    ],
)
def test_mistakes_name_their_key(change: Any, key: str, reason: str) -> None:
    data = _sim_data()
    change(data)
    err = _error(data)
    assert err.key == key
    assert reason in err.detail


def test_a_real_reader_needs_its_key_file() -> None:
    data = _sim_data()
    data["lines"][0]["port"] = "/dev/serial/by-id/usb-FTDI-if00-port0"
    err = _error(data)
    assert err.key == "readers[0].key_file"


def test_two_lines_cannot_name_the_same_adapter() -> None:
    data = tomllib.loads(REAL.read_text())
    data["lines"][1]["port"] = data["lines"][0]["port"]
    assert _error(data).key == "lines[1].port"


def test_file_errors_say_which_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read bench file"):
        load_bench(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[bench\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_bench(bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[bench]\nname = "x"\n[[lines]]\nname = "a"\nport = "sim"\nbaud = 7\n')
    with pytest.raises(ConfigError, match=r"lines\[0\].baud: .*wrong.toml"):
        load_bench(wrong)


def test_sim_lines_come_up_for_the_simulated_lines(tmp_path: Path) -> None:
    bench = load_bench()
    with start_sim_lines(bench, tmp_path) as lines:
        assert set(lines.emulators) == {"readers-a", "readers-b", "relays", "modem"}
        host = lines.host_path("readers-a")
        assert Path(host).is_symlink() and Path(host).parent == tmp_path
        assert lines.host_path("modem") == str(tmp_path / "tty-modem")
        assert lines.device_path("modem") == lines.emulator("modem").device_path
        readers = {lines.device_path(r.name) for r in bench.readers}
        assert len(readers) == 4, "each reader has its own device port"
        assert lines.device_path("amp-main") == lines.device_path("zones-east")
        lines.emulator("readers-a").set_pacing(paced=False)
        with (
            serial.Serial(host, timeout=2) as gw,
            serial.Serial(lines.device_path("block-3"), timeout=2) as pd,
        ):
            gw.write(b"\x53\x02")
            assert pd.read(2) == b"\x53\x02"
    assert not os.path.lexists(host)


def test_sim_lines_leave_real_lines_alone(tmp_path: Path) -> None:
    with start_sim_lines(load_bench(REAL), tmp_path) as lines:
        assert lines.emulators == {}
        assert lines.host_path("relays").startswith("/dev/serial/by-id/")


def test_every_bench_key_is_documented() -> None:
    doc = DOC.read_text(encoding="utf-8")
    missing = [
        key
        for key, text in documented_keys(Bench)
        if key != "base_dir" and (not text or f"`{key}`" not in doc)
    ]
    assert not missing, f"undocumented bench keys (docs/hil-bench.md): {missing}"


REPO = Path(__file__).resolve().parents[1]


def test_the_real_template_on_a_machine_without_its_hardware_fails_with_one_line_each() -> None:
    # Issue 15: the template copied unchanged gave 10 passes and a KeyError traceback without
    # touching any hardware. Now the preflight stops the session before any test runs.
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--bench", str(REAL), "-p", "no:cacheprovider", "-q"],
        capture_output=True, text=True, timeout=240, check=False, cwd=REPO,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 3, text
    missing = [line for line in text.splitlines() if line.startswith("MISSING ")]
    devices = [line.split(": ", 1)[0].removeprefix("MISSING ") for line in missing]
    assert devices == [
        "line 'readers-a'",
        "line 'relays'",
        "line 'modem'",
        "reader 'north-gate'",
        "reader 'block-3'",
        "relay board 'amp-main'",
        "modem",
        "camera 'gate-cam'",
        "gpio",
    ], text
    assert "9 device(s) missing or silent, no test run" in text
    assert "/dev/serial/by-id/usb-FTDI_USB-RS485_Cable_FT4XXXXA-if00-port0 does not exist" in text
    assert "keys/north-gate.scbk is missing" in text
    assert " passed" not in text and "Traceback" not in text and "KeyError" not in text


def test_a_port_that_is_there_but_silent_names_each_silent_device(tmp_path: Path) -> None:
    from hil_tests.line import Rs485Bus

    key = tmp_path / "north-gate.scbk"
    key.write_text("00" * 16 + "\n")
    key.chmod(0o600)
    # A real-looking bench whose "adapter" is a pty with nothing on the far side.
    with Rs485Bus(tmp_path / "tty-rs485", 9600, devices=1, paced=False) as bus:
        bench = parse_bench(
            {
                "bench": {"name": "silent"},
                "lines": [{"name": "readers-a", "port": f"/dev/../{bus.host_path}"}],
                "readers": [
                    {"name": "north-gate", "line": "readers-a", "address": 1, "key_file": str(key)},
                    {"name": "block-3", "line": "readers-a", "address": 2, "key_file": "gone"},
                ],
            },
            tmp_path,
        )
        missing = preflight(bench)
    by_device = {line.split(": ", 1)[0]: line for line in missing}
    assert len(missing) == 2 and len(by_device) == 2, missing
    north, block = by_device["MISSING reader 'north-gate'"], by_device["MISSING reader 'block-3'"]
    assert "key file" not in north and "no answer at OSDP address 1 on 'readers-a'" in north
    assert "gone is missing or unreadable" in block and "no answer at OSDP address 2" in block
