"""Simulated OSDP checkpoint readers (libosdp PeripheralDevice) for the bench.

Each :class:`SimReader` is a real OSDP PD with Secure Channel on its own end of a virtual
serial line (a device port of :class:`hil_tests.line.Rs485Bus`). The test presents cards on
demand and reads back, with timestamps, every LED and buzzer command the gateway sent: what
the guard would have seen and heard::

    with Rs485Bus(host_link=tmp_path / "busA", baud=9600, devices=2) as line:
        reader = SimReader(line.device_paths[0], address=1, scbk=key).start()
        t = reader.tap("04a1b2c3d4e5f6")
        reader.wait_led(CommandLEDColor.Green, after=t, timeout=5)
        reader.stop()

Install mode (``scbk=None``) and wrong keys are just constructor choices.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import serial
from osdp import (
    Capability,
    CardFormat,
    Command,
    CommandLEDColor,
    Event,
    LibFlag,
    LogLevel,
    PDCapabilities,
    PDInfo,
    PeripheralDevice,
    StatusReportType,
)

from drivers.osdp_bus import FrameSniffer, SerialChannel

GREEN = CommandLEDColor.Green
RED = CommandLEDColor.Red
AMBER = CommandLEDColor.Amber

_FORMATS = {"raw": CardFormat.Unspecified, "wiegand": CardFormat.Wiegand, "ascii": CardFormat.ASCII}


@dataclass(frozen=True, slots=True)
class LedCommand:
    mono_time: float
    color: int
    temporary: bool
    on_count: int
    timer_count: int


@dataclass(frozen=True, slots=True)
class BeepCommand:
    mono_time: float
    on_count: int
    rep_count: int


@dataclass(frozen=True, slots=True)
class TapRecord:
    mono_time: float
    wristband: str


class SimReader:
    """One simulated checkpoint reader (see the module docstring)."""

    def __init__(
        self,
        port_path: str,
        address: int,
        scbk: bytes | None,
        *,
        baud: int = 9600,
        install_mode: bool = False,
        log_level: int = LogLevel.Critical,
    ) -> None:
        self.port_path = port_path
        self.address = address
        self.scbk = scbk
        self.baud = baud
        self.install_mode = install_mode or scbk is None
        self.log_level = log_level
        self.leds: list[LedCommand] = []
        self.beeps: list[BeepCommand] = []
        self.taps: list[TapRecord] = []
        self.keys_received: list[bytes] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._port: serial.Serial | None = None
        self._pd: PeripheralDevice | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SimReader:
        if self._pd is not None:
            return self
        self._port = serial.Serial(self.port_path, self.baud, timeout=0, write_timeout=0.5)
        channel = SerialChannel(self._port, FrameSniffer(), lambda _r: None, self.baud)
        flags = [LibFlag.InstallMode] if self.install_mode else [LibFlag.EnforceSecure]
        caps = PDCapabilities(
            [
                (Capability.LEDControl, 1, 1),
                (Capability.AudibleControl, 1, 1),
                (Capability.CardDataFormat, 1, 1),
            ]
        )
        self._pd = PeripheralDevice(
            PDInfo(self.address, channel, scbk=self.scbk, name=f"sim-{self.address}", flags=flags),
            caps,
            log_level=self.log_level,
            command_handler=self._on_command,
        )
        self._pd.start()
        return self

    def stop(self) -> None:
        pd, self._pd = self._pd, None
        if pd is not None:
            pd.teardown()
        port, self._port = self._port, None
        if port is not None:
            port.close()

    def __enter__(self) -> SimReader:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ libosdp's thread

    def _on_command(self, cmd: dict[str, object]) -> tuple[int, None]:
        now = time.monotonic()
        kind = cmd.get("command")
        with self._changed:
            if kind == Command.LED:
                self.leds.append(
                    LedCommand(
                        now,
                        int(cmd.get("on_color", 0)),  # type: ignore[call-overload]
                        bool(cmd.get("temporary", False)),
                        int(cmd.get("on_count", 0)),  # type: ignore[call-overload]
                        int(cmd.get("timer_count", 0)),  # type: ignore[call-overload]
                    )
                )
            elif kind == Command.Buzzer:
                self.beeps.append(
                    BeepCommand(
                        now,
                        int(cmd.get("on_count", 0)),  # type: ignore[call-overload]
                        int(cmd.get("rep_count", 0)),  # type: ignore[call-overload]
                    )
                )
            elif kind == Command.Keyset:
                data = cmd.get("data")
                if isinstance(data, bytes):
                    self.keys_received.append(data)
            self._changed.notify_all()
        return 0, None

    # ------------------------------------------------------------------ the test's side

    @property
    def sc_active(self) -> bool:
        return bool(self._pd is not None and self._pd.is_sc_active())

    @property
    def online(self) -> bool:
        return bool(self._pd is not None and self._pd.is_online())

    def wait_secure(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sc_active:
                return True
            time.sleep(0.05)
        return False

    def tap(self, wristband_hex: str, *, card_format: str = "raw") -> float:
        """Present a wristband; returns the monotonic time the reader saw it."""
        assert self._pd is not None, "start() the reader first"
        data = bytes.fromhex(wristband_hex)
        event: dict[str, object] = {
            "event": Event.CardRead,
            "reader_no": 0,
            "format": _FORMATS[card_format],
            "direction": 0,
            "data": data,
        }
        if card_format != "ascii":
            event["length"] = len(data) * 8
        now = time.monotonic()
        with self._lock:
            self.taps.append(TapRecord(now, wristband_hex))
        self._pd.submit_event(event)
        return now

    def report_local_status(self, *, tamper: bool, power_fail: bool) -> None:
        """Send a local (tamper / power) status report."""
        assert self._pd is not None
        self._pd.submit_event(
            {
                "event": Event.Status,
                "type": StatusReportType.Local,
                "nr_entries": 2,
                "mask": int(tamper) | int(power_fail) << 1,
                "report": bytes([int(tamper), int(power_fail)]),
            }
        )

    def leds_since(self, t: float, color: int | None = None) -> list[LedCommand]:
        with self._lock:
            return [
                c for c in self.leds if c.mono_time >= t and (color is None or c.color == color)
            ]

    def wait_led(self, color: int | None, *, after: float, timeout: float) -> LedCommand | None:
        """The first LED command (of ``color``) at or after ``after``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for c in self.leds:
                    if c.mono_time >= after and (color is None or c.color == color):
                        return c
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    def green_count(self) -> int:
        with self._lock:
            return sum(1 for c in self.leds if c.color == GREEN)
