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

import json
import random
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

from drivers.osdp_bus import FOLLOW_UP_REFRESH_S, REFRESH_S, FrameSniffer, SerialChannel
from hil_tests.line import Rs485Bus
from hil_tests.orphans import die_with_parent

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


class _ReaderChannel(SerialChannel):
    """The reader's side of the line. A sluggish reader answers every command ``delay_s``
    late (libosdp's PD thread waits before each reply leaves, as a slow reader's firmware
    would); ``delay_next_reply_s`` holds back just the next reply (one slow answer)."""

    def __init__(self, *args: Any, delay_s: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s = delay_s
        self.delay_next_reply_s = 0.0

    def write(self, buf: bytes) -> int:
        delay, self.delay_next_reply_s = self.delay_s + self.delay_next_reply_s, 0.0
        if delay > 0:
            time.sleep(delay)
        return super().write(buf)


class _LineDrivenPD(PeripheralDevice):
    """libosdp's PD with its refresh driven by the line: the binding's own thread sleeps 20 ms
    between refreshes, so a command could wait up to 20 ms for its answer and the bench would
    measure the simulator. This one refreshes as soon as a whole command frame has arrived
    (and at least every ``REFRESH_S`` for libosdp's own timers)."""

    def __init__(self, *args: Any, channel: SerialChannel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._line = channel

    def start(self) -> None:
        if getattr(self, "thread", None) is not None:
            raise RuntimeError("Thread already running!")
        self.event = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(name="pd", target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        channel, stop, lock, ctx = self._line, self.event, self.lock, self.ctx
        follow_up = False
        while not stop.is_set():
            fd = channel.fileno()
            timeout = FOLLOW_UP_REFRESH_S if follow_up else REFRESH_S
            due = channel.partial_due()
            if due is not None:
                timeout = max(0.0, min(timeout, due - time.monotonic()))
            if fd is None:
                stop.wait(timeout)
            else:
                try:
                    readable, _, _ = select.select([fd], [], [], timeout)
                except (OSError, ValueError):  # the port was closed under us (stop)
                    stop.wait(timeout)
                    readable = []
                if readable:
                    channel.pull()
                    if not channel.frames_ready():
                        follow_up = False
                        continue  # part of a command: wait for the rest
            rx, tx = channel.rx_frames, channel.tx_bytes
            with lock:
                ctx.refresh()
            # A command taken but not answered in the same refresh: answer it right away.
            follow_up = channel.rx_frames != rx and channel.tx_bytes == tx


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
        refuse_keyset: bool = False,
        reply_delay_s: float = 0.0,
        log_level: int = LogLevel.Critical,
    ) -> None:
        self.port_path = port_path
        self.address = address
        self.scbk = scbk
        self.baud = baud
        self.install_mode = install_mode or scbk is None
        self.refuse_keyset = refuse_keyset  # a reader that NAKs osdp_KEYSET (a locked key)
        # A sluggish reader (slow firmware, or a starved host): every reply leaves this late.
        self.reply_delay_s = reply_delay_s
        self.log_level = log_level
        self.leds: list[LedCommand] = []
        self.beeps: list[BeepCommand] = []
        self.taps: list[TapRecord] = []
        self.keys_received: list[bytes] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._port: serial.Serial | None = None
        self._pd: PeripheralDevice | None = None
        self._channel: _ReaderChannel | None = None
        # Seconds by which the answer to the next LED command is held back (one slow reply).
        self.late_led_reply_s = 0.0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SimReader:
        if self._pd is not None:
            return self
        self._port = serial.Serial(self.port_path, self.baud, timeout=0, write_timeout=0.5)
        channel = _ReaderChannel(
            self._port, FrameSniffer(), lambda _r: None, self.baud, delay_s=self.reply_delay_s
        )
        self._channel = channel
        flags = [LibFlag.InstallMode] if self.install_mode else [LibFlag.EnforceSecure]
        caps = PDCapabilities(
            [
                (Capability.LEDControl, 1, 1),
                (Capability.AudibleControl, 1, 1),
                (Capability.CardDataFormat, 1, 1),
            ]
        )
        self._pd = _LineDrivenPD(
            PDInfo(self.address, channel, scbk=self.scbk, name=f"sim-{self.address}", flags=flags),
            caps,
            log_level=self.log_level,
            command_handler=self._on_command,
            channel=channel,
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
                if self.late_led_reply_s > 0 and self._channel is not None:
                    self._channel.delay_next_reply_s = self.late_led_reply_s
                    self.late_led_reply_s = 0.0
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
                if self.refuse_keyset:
                    self._changed.notify_all()
                    return -1, None  # libosdp answers NAK
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
        return self.tap_data(bytes.fromhex(wristband_hex), card_format=card_format)

    def tap_data(self, data: bytes, *, card_format: str = "raw") -> float:
        """Present a card whose read gives ``data`` (e.g. a band's SUN message,
        :class:`hil_tests.sims.ntag424.SimBand`); returns when the reader saw it."""
        assert self._pd is not None, "start() the reader first"
        wristband_hex = data.hex()
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

    def commands_heard(self) -> list[tuple[float, int]]:
        """(time, command code) of every CP command to this reader heard since the last call:
        the bench measures the real poll cycle from it (0x60 is osdp_POLL)."""
        if self._channel is None:
            return []
        return [
            (t, f.code) for t, f in self._channel.take_frames()
            if not f.reply and f.address == self.address
        ]  # fmt: skip

    def green_count(self) -> int:
        with self._lock:
            return sum(1 for c in self.leds if c.color == GREEN)


# ============================================================================ a whole bench


class ReaderBench:
    """Simulated checkpoint buses: one :class:`Rs485Bus` per bus, a :class:`SimReader` per
    checkpoint, their keys in 0600 files and the ``[checkpoints]`` TOML that describes them.

        with ReaderBench(tmp_path, {"a": 8, "b": 8}, baud=9600) as bench:
            bench.config_path                      # give it to the gateway
            bench.reader("a", 3).tap("04a1b2")

    ``wrong_key`` lists (bus, address) readers whose simulator holds a different key from the
    gateway's key file; ``install_mode`` lists readers with no key at all (SCBK-D only).
    """

    def __init__(
        self,
        root: Path,
        buses: dict[str, int],
        *,
        baud: int = 9600,
        paced: bool = True,
        roster: dict[str, str] | None = None,
        wrong_key: tuple[tuple[str, int], ...] = (),
        install_mode: tuple[tuple[str, int], ...] = (),
        dedupe_window_s: float = 10.0,
        seed: int = 1,
        band_key: bytes | None = None,
        require_verified_bands: bool = False,
        reply_delay_s: float = 0.0,
    ) -> None:
        self.root = Path(root)
        self.layout = dict(buses)
        self.baud = baud
        self.paced = paced
        self.roster = dict(roster or {})
        self.wrong_key = set(wrong_key)
        self.install_mode = set(install_mode)
        self.dedupe_window_s = dedupe_window_s
        self.seed = seed
        self.band_key = band_key  # the site's NTAG 424 master key (keys/bands.key)
        self.require_verified_bands = require_verified_bands
        self.reply_delay_s = reply_delay_s  # every simulated reader answers this late
        self.lines: dict[str, Rs485Bus] = {}
        self.readers: dict[tuple[str, int], SimReader] = {}
        self.keys: dict[tuple[str, int], bytes] = {}
        self.config_path = self.root / "checkpoints.toml"

    def checkpoint_id(self, bus: str, address: int) -> str:
        return f"cp-{bus}-{address}"

    def start(self) -> ReaderBench:
        from gateway.config import write_secret_file

        self.root.mkdir(parents=True, exist_ok=True)
        rng = random.Random(self.seed)
        points = []
        for bus, count in self.layout.items():
            line = Rs485Bus(
                host_link=self.root / f"tty-{bus}", baud=self.baud, devices=count,
                paced=self.paced, seed=rng.getrandbits(32),
            ).start()  # fmt: skip
            self.lines[bus] = line
            for i, path in enumerate(line.device_paths):
                address = i + 1
                key = rng.randbytes(16)
                self.keys[(bus, address)] = key
                write_secret_file(self.root / "keys" / f"{bus}-{address}.scbk", key)
                sim_key: bytes | None = key
                if (bus, address) in self.wrong_key:
                    sim_key = bytes(b ^ 0x5A for b in key)
                if (bus, address) in self.install_mode:
                    sim_key = None
                self.readers[(bus, address)] = SimReader(
                    path, address, sim_key, baud=self.baud, reply_delay_s=self.reply_delay_s
                ).start()
                points.append((bus, address))
        lines = ["[checkpoints]", f"dedupe_window_s = {self.dedupe_window_s}"]
        if self.band_key is not None:
            write_secret_file(self.root / "keys" / "bands.key", self.band_key)
            lines.append('band_key_file = "keys/bands.key"')
        if self.require_verified_bands:
            lines.append("require_verified_bands = true")
        lines.append("")
        for bus in self.layout:
            port = self.lines[bus].host_path
            lines += ["[[checkpoints.buses]]", f'name = "{bus}"', f'port = "{port}"',
                      f"baud = {self.baud}", ""]  # fmt: skip
        for bus, address in points:
            lines += [
                "[[checkpoints.points]]",
                f'id = "{self.checkpoint_id(bus, address)}"',
                f'bus = "{bus}"',
                f"address = {address}",
                f'name = "Checkpoint {bus.upper()}{address}"',
                "",
            ]
        for band, guard in self.roster.items():
            lines += ["[[checkpoints.roster]]", f'wristband = "{band}"', f'guard = "{guard}"', ""]
        self.config_path.write_text("\n".join(lines))
        return self

    def reader(self, bus: str, address: int) -> SimReader:
        return self.readers[(bus, address)]

    def stop(self) -> None:
        for sim in self.readers.values():
            sim.stop()
        for line in self.lines.values():
            line.stop()

    def __enter__(self) -> ReaderBench:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServiceProcess:
    """The checkpoint service as a subprocess (``python -m gateway.checkpoints``) to SIGKILL.

        proc = ServiceProcess(bench.config_path, tmp_path / "journal.db").start()
        proc.kill(); proc.start(); proc.stop()
    """

    def __init__(self, config: Path, journal: Path, *, status: Path | None = None) -> None:
        self.config = config
        self.journal = journal
        self.status = status or journal.with_suffix(".status.json")
        self.log_path = journal.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> ServiceProcess:
        assert self.proc is None or self.proc.poll() is not None
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.checkpoints", "--config", str(self.config),
                 "--journal", str(self.journal), "--status", str(self.status),
                 "--log-level", "warning"],
                stdout=log, stderr=log, cwd=str(Path(__file__).resolve().parents[2]),
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - prctl only
            )  # fmt: skip
        finally:
            log.close()
        self.starts += 1
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def readers_status(self) -> dict[str, dict[str, object]]:
        """The service's live reader table, by reader id ({} before the first publish)."""
        try:
            board = json.loads(self.status.read_text())
        except (OSError, ValueError):
            return {}
        return {r["reader"]: r for r in board.get("readers", {}).get("readers", [])}

    def wait_online(self, readers: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            table = self.readers_status()
            if all(table.get(r, {}).get("online") for r in readers):
                return True
            time.sleep(0.2)
        return False


def journal_events(path: Path, kind: str | None = None) -> list[Any]:
    """Every event in the journal file (read-only), optionally of one kind."""
    from gateway.journal import read_events

    out: list[Any] = []
    after = 0
    while True:
        batch = read_events(path, after_seq=after, limit=1000)
        if not batch:
            break
        out.extend(e for e in batch if kind is None or e.kind == kind)
        after = batch[-1].seq
    return out
