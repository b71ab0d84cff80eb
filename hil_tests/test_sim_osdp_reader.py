"""The reader simulator against libosdp's own ControlPanel (not our driver): what it claims
to be (a secure OSDP PD that reads cards and records LED and buzzer commands) it is."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import serial
from osdp import Command, CommandLEDColor, ControlPanel, Event, LibFlag, LogLevel, PDInfo

from drivers.osdp_bus import SCBK_DEFAULT, FrameSniffer, SerialChannel
from hil_tests.line import SerialLine
from hil_tests.sims.osdp_reader import GREEN, SimReader

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]
KEY = bytes(range(16))


def open_cp(path: str, key: bytes, flags: list[int]) -> tuple[serial.Serial, ControlPanel]:
    port = serial.Serial(path, 9600, timeout=0)
    cp = ControlPanel(
        [PDInfo(4, SerialChannel(port, FrameSniffer(), lambda _r: None), scbk=key, flags=flags)],
        log_level=LogLevel.Critical,
    )
    cp.start()
    return port, cp


def wait(pred, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_secure_reader_reads_cards_and_records_feedback(tmp_path: Path) -> None:
    with SerialLine(host_link=tmp_path / "tty", baud=9600) as line:
        sim = SimReader(line.device_path, 4, KEY).start()
        port, cp = open_cp(line.host_path, KEY, [LibFlag.EnforceSecure])
        try:
            # Bounds for a loaded machine: a first handshake may fail and be retried.
            assert wait(lambda: cp.is_sc_active(4), 45) and sim.wait_secure(30)
            t = sim.tap("04a1b2c3d4e5f6")
            ev = cp.get_event(4, timeout=20)
            while ev is not None and ev["event"] != Event.CardRead:
                ev = cp.get_event(4, timeout=20)
            assert ev is not None and ev["data"] == bytes.fromhex("04a1b2c3d4e5f6")
            assert ev["length"] == 56
            sent = time.monotonic()
            assert cp.submit_command(4, {
                "command": Command.LED, "reader": 0, "led_number": 0, "control_code": 2,
                "on_color": CommandLEDColor.Green, "off_color": CommandLEDColor.Black,
                "on_count": 5, "off_count": 0, "timer_count": 5, "temporary": True,
            })  # fmt: skip
            led = sim.wait_led(GREEN, after=sent, timeout=20)
            assert led is not None and led.temporary and led.timer_count == 5
            assert led.mono_time >= t
            assert sim.taps[0].wristband == "04a1b2c3d4e5f6"
        finally:
            cp.teardown()
            port.close()
            sim.stop()


def test_wrong_key_never_gets_a_secure_channel(tmp_path: Path) -> None:
    with SerialLine(host_link=tmp_path / "tty", baud=9600) as line:
        sim = SimReader(line.device_path, 4, bytes(16)).start()
        port, cp = open_cp(line.host_path, KEY, [LibFlag.EnforceSecure])
        try:
            assert not wait(lambda: cp.is_sc_active(4), 3)
            assert not sim.sc_active
        finally:
            cp.teardown()
            port.close()
            sim.stop()


def test_install_mode_accepts_the_default_key_and_a_keyset(tmp_path: Path) -> None:
    with SerialLine(host_link=tmp_path / "tty", baud=9600) as line:
        sim = SimReader(line.device_path, 4, None).start()
        port, cp = open_cp(line.host_path, KEY, [LibFlag.InstallMode])
        try:
            # Bounds for a loaded machine: a first handshake may fail and be retried.
            assert wait(lambda: cp.is_sc_active(4), 45)
            assert wait(lambda: KEY in sim.keys_received, 30)
            assert SCBK_DEFAULT not in sim.keys_received
        finally:
            cp.teardown()
            port.close()
            sim.stop()
