"""Pairing and naming as in the field: new readers in install mode, a wizard that died between
sending a key and saving it, and an installer who taps the wrong reader.

* reader a/1 is in install mode: the wizard pairs it with SCBK-D (one osdp_KEYSET);
* reader a/2 already took a key whose file was left as ``.pending`` (the wizard was killed
  right after the KEYSET): the wizard finds that key works, keeps it and sends no second key —
  the reader is not locked out;
* checkpoints are named by taps in crossed order (cp-one is a/2), and a second tap on an
  already named reader is refused (red) until the right one is tapped.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from pathlib import Path

from drivers.osdp_bus import pair_reader, verify_reader_key
from gateway.config import read_secret_file, write_secret_file
from gateway.config.model import load_config
from gateway.setup.answers import parse_answers
from gateway.setup.state import StateFile
from gateway.setup.wizard import Wizard
from hil_tests.line import SerialLine
from hil_tests.sims.osdp_reader import RED, ReaderBench, SimReader

BAND = "04b2c3d4e5f607"


class TapOnPrompt(io.StringIO):
    """The wizard's output; taps the simulated readers the way the installer would."""

    def __init__(self, one: SimReader, two: SimReader) -> None:
        super().__init__()
        self.one, self.two = one, two

    def write(self, s: str) -> int:
        if "@@setup tap-wanted cp-one" in s:
            self.two.tap(BAND)
        elif "@@setup tap-wanted cp-two" in s:
            self.two.tap(BAND)  # wrong: already cp-one
        elif "already 'cp-one'" in s:
            self.one.tap(BAND)
        return super().write(s)


async def test_install_mode_pending_key_and_wrong_tap(tmp_path: Path) -> None:
    with ReaderBench(tmp_path / "bench", {"a": 2}, install_mode=(("a", 1), ("a", 2))) as bench:
        port = bench.lines["a"].host_path
        site = tmp_path / "site"
        keys = site / "keys"
        one, two = bench.reader("a", 1), bench.reader("a", 2)

        # A wizard killed after a/2 took its key, before the key file was renamed.
        key = secrets.token_bytes(16)
        write_secret_file(keys / "a-2.scbk.pending", key)
        result = await asyncio.to_thread(pair_reader, port, 9600, 2, key, timeout=45)
        assert result.ok, result.message
        assert len(two.keys_received) == 1

        answers = parse_answers(
            {
                "gateway": {
                    "id": "gw-pair-01",
                    "compound": "P",
                    "data_dir": "data",
                    "runtime_dir": "run",
                },
                "ports": [{"path": port, "name": "a", "kind": "osdp"}],
                "scan": {"osdp_first": 0, "osdp_last": 4},
                "checkpoints": [{"id": "cp-one"}, {"id": "cp-two"}],
                "tap_timeout_s": 20.0,
                "enroll": {"skip": True},
            },
            site,
        )
        out = TapOnPrompt(one, two)
        wizard = Wizard(
            answers,
            config_path=site / "gateway.toml",
            state=StateFile.load(site / "state.json"),
            out=out,
        )
        rc = await asyncio.to_thread(wizard.run)
        text = out.getvalue()
        assert rc == 0, text
        assert "  a/1: pairing with install key (SCBK-D) ..." in text
        assert "  a/2: already holds our key" in text
        assert len(one.keys_received) == 1
        assert len(two.keys_received) == 1, "a second key was sent to a/2"
        assert not (keys / "a-2.scbk.pending").exists()
        assert read_secret_file(keys / "a-2.scbk", "k", length=16) == key
        assert "that was a/2, already 'cp-one': tap the other reader" in text
        assert two.leds_since(0, RED), "the wrong tap got no red light"

        cfg = load_config(site / "gateway.toml")
        assert {p.id: (p.bus, p.address) for p in cfg.checkpoints.points} == {
            "cp-one": ("a", 2),
            "cp-two": ("a", 1),
        }
        a1 = read_secret_file(keys / "a-1.scbk", "k", length=16)
        assert await asyncio.to_thread(verify_reader_key, port, 9600, 1, a1, 10.0)


def test_a_reader_that_refuses_the_new_key_is_reported_as_such(tmp_path: Path) -> None:
    """The pairing watches the reader's answer to KEYSET (no guessed delay) and says the
    reader refused the new key, rather than blaming the install key or the wiring."""
    with SerialLine(host_link=tmp_path / "tty", baud=9600) as line:
        sim = SimReader(line.device_path, 3, None, refuse_keyset=True).start()
        try:
            result = pair_reader(line.host_path, 9600, 3, secrets.token_bytes(16), timeout=20)
        finally:
            sim.stop()
    assert not result.ok
    assert "refused the new key" in result.message, result.message
    assert sim.keys_received == []
