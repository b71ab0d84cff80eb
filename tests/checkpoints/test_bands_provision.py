"""``compound-gw bands provision`` / ``bands list``: keys and SUN settings written to a simulated
blank NTAG 424 DNA, proven by the gateway's own verifier and by the real tap path; bad input
refused with typed errors; the list read from a real journal file."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.checkpoints.bands_cli import band_table
from gateway.checkpoints.bandwriter import (
    BadBandInput,
    BandCheckFailed,
    BandLocked,
    BandWriteError,
    BandWriter,
    app_master_key,
    check_url_prefix,
    ndef_layout,
    ndef_url,
    open_transport,
)
from gateway.checkpoints.cli import add_cli
from gateway.checkpoints.core import TapDecider
from gateway.clock import ManualClock
from gateway.config import write_secret_file
from gateway.credentials.bands import BandVerifier
from gateway.errors import ConfigError, DeviceError
from gateway.journal import Journal
from hil_tests.sims.ntag424 import FACTORY_KEY, SimChip, SimChipTransport

MASTER = bytes.fromhex("00112233445566778899aabbccddeeff")
UID = bytes.fromhex("04de5f1eacc040")


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="compound-gw")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def site(tmp_path: Path, roster: str = "", key: bool = True) -> Path:
    cfg = tmp_path / "cp.toml"
    text = '[checkpoints]\n[[checkpoints.buses]]\nname = "a"\nport = "/dev/null"\n'
    text += '[[checkpoints.points]]\nid = "north-gate"\nbus = "a"\naddress = 3\n'
    if key:
        write_secret_file(tmp_path / "bands.key", MASTER)
        text = text.replace("[checkpoints]\n", '[checkpoints]\nband_key_file = "bands.key"\n', 1)
    cfg.write_text(text + roster)
    return cfg


def test_a_blank_band_is_provisioned_and_then_verifies_at_a_checkpoint() -> None:
    chip = SimChip(UID)
    transport = SimChipTransport(chip)
    result = BandWriter(MASTER).provision(transport)
    assert (result.uid_hex, result.verified, result.counter, result.reprovisioned) == (
        UID.hex(),
        True,
        1,
        False,
    )
    # Key 0 last (it ends the session), all three keys changed, the read proven.
    assert transport.log == [
        "select",
        "auth 0",
        "write_ndef",
        "change_file_settings",
        "change_key 2",
        "change_key 1",
        "change_key 0",
        "read_ndef",
    ]
    assert chip.keys[0] == app_master_key(MASTER, UID) != FACTORY_KEY
    assert chip.key_versions[:3] == [1, 1, 1]
    # The band now taps like any provisioned band: verified, counter rising, replay refused.
    decider = TapDecider([], {UID.hex(): "g1"}, bands=BandVerifier(MASTER))
    reads = [ndef_url(chip.read_ndef()) for _ in range(3)]
    checks = [decider.bands.check(r) for r in reads]
    assert [(c.verified, c.counter) for c in checks] == [(True, 2), (True, 3), (True, 4)]
    assert decider.bands.check(reads[1]).refusal == "replay"
    # Its UID-only clone is what a site requiring verified bands refuses.
    strict = BandVerifier(MASTER, require_verified=True)
    assert strict.check(UID).refusal == "unverified_band"


def test_provisioning_again_rewrites_our_own_band_and_a_foreign_band_is_left_alone() -> None:
    chip = SimChip(UID)
    t = SimChipTransport(chip)
    BandWriter(MASTER).provision(t)
    t.present(chip)
    again = BandWriter(MASTER).provision(t)
    assert again.reprovisioned and again.verified
    t.present(chip)
    keys_before = list(chip.keys)
    with pytest.raises(BandLocked) as err:
        BandWriter(os.urandom(16)).provision(t)
    assert err.value.fields["uid"] == UID.hex() and chip.keys == keys_before


def test_reader_and_band_failures_are_typed() -> None:
    with pytest.raises(BandWriteError) as err:
        BandWriter(MASTER).provision(SimChipTransport(), timeout_s=0.1)  # nothing presented
    assert err.value.fields["step"] == "select" and isinstance(err.value, DeviceError)

    class PulledAway(SimChipTransport):
        def change_key(self, key_no: int, new_key: bytes, version: int, old_key: bytes) -> None:
            self._on().removed = True
            super().change_key(key_no, new_key, version, old_key)

    with pytest.raises(BandWriteError) as err:
        BandWriter(MASTER).provision(PulledAway(SimChip(UID)))
    assert err.value.fields == {"step": "change_key 2", "uid": UID.hex()}

    class WrongMirror(SimChipTransport):
        def change_file_settings(self, file_no: int, sdm: dict[str, int]) -> None:
            super().change_file_settings(file_no, sdm | {"file_key": 3})  # MAC under key 3

    with pytest.raises(BandCheckFailed) as failed:
        BandWriter(MASTER).provision(WrongMirror(SimChip(UID)))
    assert failed.value.fields["refusal"] == "bad_mac"


@pytest.mark.parametrize(
    ("call", "key"),
    [
        (lambda: BandWriter(b"short"), "checkpoints.band_key_file"),
        (lambda: BandWriter(MASTER, url_prefix="http://plain.example"), "url_prefix"),
        (lambda: check_url_prefix("https://x.example/t?already=1"), "url_prefix"),
        (lambda: check_url_prefix("https://x.example/\u4e2d"), "url_prefix"),
        (lambda: check_url_prefix("https://" + "x" * 200), "url_prefix"),
        (lambda: open_transport("pn532:/nonexistent/compound-gw-test-tty"), "reader"),
        (lambda: open_transport("sim:zz"), "reader"),
        (lambda: open_transport("sim:0401"), "reader"),
        (lambda: open_transport("telepathy"), "reader"),
    ],
)
def test_bad_input_is_refused_naming_the_key(call: Any, key: str) -> None:
    with pytest.raises(BadBandInput) as err:
        call()
    assert err.value.key == key and isinstance(err.value, ConfigError)


def test_ndef_layout_offsets_point_at_the_placeholders() -> None:
    layout = ndef_layout("https://band.example/t")
    text = layout.data.decode("latin-1")
    assert text[layout.picc_offset : layout.picc_offset + 32] == "0" * 32
    assert text[layout.mac_offset - 6 : layout.mac_offset] == "&cmac="
    assert ndef_url(layout.data).startswith(b"https://band.example/t?picc_data=")
    with pytest.raises(BandCheckFailed):
        ndef_url(b"\x00\x03\xd1\x01")


def test_cli_provisions_and_lists(tmp_path: Path, capsys: Any) -> None:
    cfg = site(
        tmp_path,
        f'[[checkpoints.roster]]\nguard = "g1"\nwristband = "{UID.hex()}"\n'
        '[[checkpoints.roster]]\nguard = "g2"\nwristband = "04aaaaaaaaaaaa"\n',
    )
    assert (
        run_cli(
            ["bands", "provision", "--checkpoints-file", str(cfg), "--reader", f"sim:{UID.hex()}"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"band {UID.hex()} provisioned; first read verified (counter 1" in out
    # A second band asked for, none presented: a failure, exit 1, said plainly.
    assert (
        run_cli(
            [
                "bands",
                "provision",
                "--checkpoints-file",
                str(cfg),
                "--reader",
                "sim",
                "--count",
                "2",
                "--timeout",
                "0.1",
            ]
        )
        == 1
    )
    assert "band not provisioned: select failed" in capsys.readouterr().out
    for argv in (
        ["--count", "0"],
        ["--timeout", "-1"],
        ["--reader", "pn532:/nonexistent/compound-gw-test-tty"],
        ["--url-prefix", "ftp://x"],
    ):
        base = ["bands", "provision", "--checkpoints-file", str(cfg), "--reader", "sim"]
        assert run_cli(base + argv) == 2, argv
        assert "config error" in capsys.readouterr().out
    keyless = site(tmp_path / "k", key=False) if (tmp_path / "k").mkdir() is None else None
    assert keyless is not None
    assert (
        run_cli(["bands", "provision", "--checkpoints-file", str(keyless), "--reader", "sim"]) == 2
    )
    assert "band_key_file" in capsys.readouterr().out


async def test_bands_list_reads_the_journal(tmp_path: Path, capsys: Any) -> None:
    cfg = site(
        tmp_path,
        f'[[checkpoints.roster]]\nguard = "g1"\nwristband = "{UID.hex()}"\n'
        '[[checkpoints.roster]]\nguard = "g2"\nwristband = "04aaaaaaaaaaaa"\n'
        '[[checkpoints.roster]]\nguard = "g3"\nwristband = "04bbbbbbbbbbbb"\n',
    )
    path = tmp_path / "journal.db"
    j = await Journal.open(path, gateway_id="gw-1", clock=ManualClock())
    tap = {"checkpoint": "north-gate", "reader": "a/3", "format": "raw", "bits": 56}
    await j.append(
        "tap",
        tap
        | {"wristband": UID.hex(), "guard": "g1", "verified": True, "counter": 5, "counter_gap": 0},
    )
    await j.append(
        "tap",
        tap
        | {"wristband": UID.hex(), "guard": "g1", "verified": True, "counter": 9, "counter_gap": 3},
    )
    await j.append("tap", tap | {"wristband": "04aaaaaaaaaaaa", "guard": "g2", "verified": False})
    await j.append(
        "tap.refused",
        tap | {"wristband": UID.hex(), "guard": "g1", "verified": False, "reason": "replay"},
    )
    await j.append(
        "unknown_wristband",
        tap | {"wristband": "04cccccccccccc", "guard": "unknown", "verified": False},
    )
    await j.close()
    assert (
        run_cli(["bands", "list", "--checkpoints-file", str(cfg), "--journal", str(path), "--json"])
        == 0
    )
    rows = {r["wristband"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[UID.hex()]["status"] == "verified"
    assert (rows[UID.hex()]["counter"], rows[UID.hex()]["gaps"]) == (9, 3)
    assert rows[UID.hex()]["refused"] == {"replay": 1}
    assert rows["04aaaaaaaaaaaa"]["status"] == "uid_only"
    assert rows["04bbbbbbbbbbbb"]["status"] == "never_seen"
    assert rows["04cccccccccccc"]["on_roster"] is False
    assert run_cli(["bands", "list", "--checkpoints-file", str(cfg), "--journal", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 bands, 1 verified" in out and "UID only: can be cloned" in out
    assert "(not on the roster)" in out
    # No journal yet: the roster, never seen.
    assert (
        run_cli(
            [
                "bands",
                "list",
                "--checkpoints-file",
                str(cfg),
                "--journal",
                str(tmp_path / "none.db"),
            ]
        )
        == 0
    )
    assert "3 bands, 0 verified" in capsys.readouterr().out
    assert band_table({}, []) == []
