"""Bench files: what is wired to the gateway on a test bench, simulated or real.

A bench file is TOML (``hil_tests/benches/sim.toml`` is the default, everything simulated;
``example-real.toml`` is a documented template for a real bench). It names the serial lines
the gateway's adapters sit on, the devices on each line, the cameras, the modem and the centre.
A value of ``"sim"`` (a line's ``port``, a camera's ``snapshot_url``, the centre's ``url``)
means "the bench simulates it"; anything else is real hardware::

    bench = load_bench(pytestconfig.getoption("--bench") or DEFAULT_BENCH)
    bench.simulated                       # True when nothing is real
    bench.require_sim("line noise", line="readers-a")   # pytest.skip on real hardware
    with start_sim_lines(bench, tmp_path) as lines:     # line emulators for the "sim" lines
        lines.host_path("readers-a"); lines.device_path("north-gate")

Parsing goes through :func:`gateway.config.schema.parse_section`, so a mistake names its key
(``readers[2].address: 130 is outside 0..126``) and unknown keys are refused.
"""

from __future__ import annotations

import contextlib
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gateway.config.schema import parse_section, setting
from gateway.errors import ConfigError

SIM = "sim"
BENCHES_DIR = Path(__file__).with_name("benches")
DEFAULT_BENCH = BENCHES_DIR / "sim.toml"
NAME = r"[a-z0-9][a-z0-9_-]{0,62}"
BAUD_RATES = (9600, 19200, 38400, 57600, 115200)
OSDP_ADDRESSES = (0, 126)  # 0x7F is broadcast
MODBUS_ADDRESSES = (1, 247)


def _is_sim(value: str) -> bool:
    return value == SIM


@dataclass(frozen=True, slots=True)
class BenchInfo:
    name: str = setting(doc="bench name, shown in test reports", pattern=NAME)
    description: str = setting("", doc="what this bench is and where it stands")


@dataclass(frozen=True, slots=True)
class Line:
    """A serial line the gateway opens: one USB adapter on a real bench."""

    name: str = setting(doc="line name devices refer to", pattern=NAME)
    port: str = setting(
        doc="'sim' (the bench's line emulator) or the gateway's device path, e.g. "
        "/dev/serial/by-id/usb-FTDI_USB-RS485-if00-port0"
    )
    kind: Literal["rs485", "serial"] = setting(
        "rs485", doc="rs485: half-duplex multi-drop bus; serial: point-to-point (modem)"
    )
    baud: int = setting(9600, choices=BAUD_RATES, doc="line speed, 8N1")
    paced: bool = setting(True, doc="sim only: pace bytes at the baud rate (false: fast)")
    seed: int = setting(0, doc="sim only: random seed for faults and collisions")

    @property
    def simulated(self) -> bool:
        return _is_sim(self.port)

    def check(self) -> Iterable[tuple[str, str]]:
        if not self.simulated and not self.port.startswith("/dev/"):
            yield "port", f"{self.port!r} is neither 'sim' nor a /dev/... path"


@dataclass(frozen=True, slots=True)
class Reader:
    """An OSDP checkpoint reader (a libosdp PeripheralDevice on a simulated bench)."""

    name: str = setting(doc="checkpoint id the reader serves", pattern=NAME)
    line: str = setting(doc="name of the RS-485 line it is wired to")
    address: int = setting(doc="OSDP address (0..126), set on the reader", min=0, max=126)
    key_file: str = setting(
        "", doc="SCBK file (hex, mode 0600; relative: to the bench file); '' on sim: generated"
    )
    install_mode: bool = setting(False, doc="sim only: the reader has no SCBK yet")


@dataclass(frozen=True, slots=True)
class RelayBoard:
    """A Modbus RTU relay board (pymodbus server on a simulated bench)."""

    name: str = setting(doc="board name", pattern=NAME)
    line: str = setting(doc="name of the RS-485 line it is wired to")
    address: int = setting(doc="Modbus address (1..247), from its DIP switches", min=1, max=247)
    profile: Literal["coils", "waveshare_v2", "holding"] = setting(
        "waveshare_v2", doc="register map of the board"
    )
    channels: int = setting(8, min=1, max=32, doc="relays on the board")


@dataclass(frozen=True, slots=True)
class Camera:
    name: str = setting(doc="camera name", pattern=NAME)
    snapshot_url: str = setting(doc="'sim' or the camera's JPEG snapshot URL")
    profile: Literal["http", "hikvision", "dahua"] = setting(
        "http",
        doc="how the gateway takes snapshots (docs/cameras.md): http from snapshot_url, or the "
        "hikvision (ISAPI) / dahua (CGI) paths from address and channel",
    )
    address: str = setting("", doc="host[:port] of a real hikvision or dahua camera")
    channel: int = setting(1, min=1, max=256, doc="video channel (hikvision and dahua)")
    rtsp_url: str = setting("", doc="'sim', '' (none) or the camera's rtsp:// URL")
    auth: Literal["digest", "basic", "none"] = setting("digest", doc="HTTP authentication")
    username: str = setting("", doc="HTTP user (sim: the simulator accepts this one)")
    password_file: str = setting("", doc="password file (0600; relative: to the bench file)")

    @property
    def simulated(self) -> bool:
        return _is_sim(self.snapshot_url)

    def check(self) -> Iterable[tuple[str, str]]:
        if not self.simulated and not self.snapshot_url.startswith(("http://", "https://")):
            yield "snapshot_url", f"{self.snapshot_url!r} is neither 'sim' nor an http(s) URL"
        if self.rtsp_url and not _is_sim(self.rtsp_url):
            if self.simulated:
                yield "rtsp_url", "a simulated camera has a simulated RTSP responder: use 'sim'"
            elif not self.rtsp_url.startswith("rtsp://"):
                yield "rtsp_url", f"{self.rtsp_url!r} is not an rtsp:// URL"
        if self.profile != "http" and not self.simulated and not self.address:
            yield "address", f"a real camera with profile = {self.profile!r} needs its address"
        if not self.simulated and self.auth != "none" and not self.password_file:
            yield "password_file", "a real camera with authentication needs a password file"


@dataclass(frozen=True, slots=True)
class Modem:
    line: str = setting(doc="name of the serial line of the modem's AT port")
    csq: tuple[int, ...] = setting((21, 99), doc="sim only: AT+CSQ answer (rssi, ber)")
    operator: str = setting("SimTel", doc="sim only: AT+COPS? operator name")


@dataclass(frozen=True, slots=True)
class Centre:
    url: str = setting(SIM, doc="'sim' (a local reference centre) or a staging centre URL")
    fault_proxy: bool = setting(True, doc="sim only: put the network fault proxy in between")

    @property
    def simulated(self) -> bool:
        return _is_sim(self.url)

    def check(self) -> Iterable[tuple[str, str]]:
        if not self.simulated and not self.url.startswith("https://"):
            yield "url", f"{self.url!r} is neither 'sim' nor an https:// URL"


@dataclass(frozen=True, slots=True)
class Gpio:
    pin_factory: Literal["mock", "native"] = setting(
        "mock", doc="mock: gpiozero's mock pins (tests drive them); native: the Pi's header"
    )
    tamper_pin: int | None = setting(None, min=0, max=53, doc="BCM pin of the tamper switch")
    mains_pin: int | None = setting(None, min=0, max=53, doc="BCM pin of the mains input")
    button_pin: int | None = setting(None, min=0, max=53, doc="BCM pin of the broadcast button")
    led_pin: int | None = setting(None, min=0, max=53, doc="BCM pin of the status LED")


@dataclass(frozen=True, slots=True)
class Bench:
    """A whole bench; build it with :func:`load_bench` or :func:`parse_bench`."""

    bench: BenchInfo = setting(doc="name and description")
    lines: tuple[Line, ...] = setting((), doc="serial lines (USB adapters)")
    readers: tuple[Reader, ...] = setting((), doc="OSDP checkpoint readers")
    relay_boards: tuple[RelayBoard, ...] = setting((), doc="Modbus RTU relay boards")
    cameras: tuple[Camera, ...] = setting((), doc="IP cameras")
    modem: Modem | None = setting(None, doc="the 4G modem's AT port")
    centre: Centre = field(default_factory=Centre, metadata={"doc": "the district centre"})
    gpio: Gpio = field(default_factory=Gpio, metadata={"doc": "GPIO inputs and outputs"})
    # Folder of the bench file: relative key files resolve against it. Not a TOML key.
    base_dir: str = field(default=".", metadata={"doc": "", "internal": True}, compare=False)

    # -- questions tests ask ----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.bench.name

    @property
    def simulated(self) -> bool:
        """True when nothing on this bench is real hardware."""
        return (
            all(line.simulated for line in self.lines)
            and all(cam.simulated for cam in self.cameras)
            and self.centre.simulated
            and self.gpio.pin_factory == "mock"
        )

    def line(self, name: str) -> Line:
        for line in self.lines:
            if line.name == name:
                return line
        raise KeyError(f"bench {self.name!r} has no line {name!r}")

    def readers_on(self, line: str) -> tuple[Reader, ...]:
        return tuple(r for r in self.readers if r.line == line)

    def boards_on(self, line: str) -> tuple[RelayBoard, ...]:
        return tuple(b for b in self.relay_boards if b.line == line)

    def role(self, line: str) -> Literal["readers", "relays", "modem", "unused"]:
        """What a line carries (one protocol per line)."""
        if self.readers_on(line):
            return "readers"
        if self.boards_on(line):
            return "relays"
        if self.modem is not None and self.modem.line == line:
            return "modem"
        return "unused"

    def path(self, value: str) -> Path:
        """``value`` as a path, relative ones taken from the bench file's folder."""
        p = Path(value)
        return p if p.is_absolute() else Path(self.base_dir) / p

    def require_sim(self, power: str, *, line: str | None = None) -> None:
        """Skip the calling test when ``power`` (e.g. "line noise") needs a simulated part.

        With ``line``, only that line must be simulated; without it, the whole bench.
        """
        simulated = self.line(line).simulated if line is not None else self.simulated
        if not simulated:
            import pytest

            where = f"line {line!r}" if line is not None else "this bench"
            pytest.skip(f"{power} needs a simulator; {where} on bench {self.name!r} is real")

    # -- cross-field rules ------------------------------------------------------------------

    def check(self) -> Iterable[tuple[str, str]]:
        names: dict[str, int] = {}
        for i, line in enumerate(self.lines):
            if line.name in names:
                yield f"lines[{i}].name", f"{line.name!r} is already lines[{names[line.name]}]"
            names[line.name] = i
        real_ports: dict[str, int] = {}
        for i, line in enumerate(self.lines):
            if not line.simulated:
                if line.port in real_ports:
                    yield f"lines[{i}].port", f"{line.port} is also lines[{real_ports[line.port]}]"
                real_ports[line.port] = i

        def line_of(key: str, name: str, kinds: tuple[str, ...]) -> Iterator[tuple[str, str]]:
            if name not in names:
                known = ", ".join(sorted(names)) or "none"
                yield key, f"no line named {name!r} (lines: {known})"
            elif self.lines[names[name]].kind not in kinds:
                yield (
                    key,
                    f"line {name!r} is {self.lines[names[name]].kind}, needs "
                    + (" or ".join(kinds)),
                )

        seen_devices: dict[str, str] = {}
        for i, r in enumerate(self.readers):
            yield from line_of(f"readers[{i}].line", r.line, ("rs485",))
            if r.name in seen_devices:
                yield f"readers[{i}].name", f"{r.name!r} is already {seen_devices[r.name]}"
            seen_devices[r.name] = f"readers[{i}]"
            if r.line in names and not self.lines[names[r.line]].simulated:
                if not r.key_file:
                    yield f"readers[{i}].key_file", "a real reader needs its SCBK file"
                if r.install_mode:
                    yield f"readers[{i}].install_mode", "only a simulated reader can be told this"
        for i, b in enumerate(self.relay_boards):
            yield from line_of(f"relay_boards[{i}].line", b.line, ("rs485",))
            if b.name in seen_devices:
                yield f"relay_boards[{i}].name", f"{b.name!r} is already {seen_devices[b.name]}"
            seen_devices[b.name] = f"relay_boards[{i}]"
        for i, c in enumerate(self.cameras):
            if c.name in seen_devices:
                yield f"cameras[{i}].name", f"{c.name!r} is already {seen_devices[c.name]}"
            seen_devices[c.name] = f"cameras[{i}]"
        if self.modem is not None:
            yield from line_of("modem.line", self.modem.line, ("serial",))
            if len(self.modem.csq) != 2:
                yield "modem.csq", "needs two numbers: rssi and ber"

        spots: list[tuple[str, list[tuple[str, int]]]] = [
            ("readers", [(r.line, r.address) for r in self.readers]),
            ("relay_boards", [(b.line, b.address) for b in self.relay_boards]),
        ]
        for key, items in spots:
            by_line: dict[tuple[str, int], int] = {}
            for i, spot in enumerate(items):
                if spot in by_line:
                    yield (
                        f"{key}[{i}].address",
                        f"address {spot[1]} on line {spot[0]!r} is also {key}[{by_line[spot]}]",
                    )
                by_line[spot] = i
        for i, line in enumerate(self.lines):
            if self.readers_on(line.name) and self.boards_on(line.name):
                yield f"lines[{i}]", "OSDP readers and Modbus boards cannot share a line"


def parse_bench(data: dict[str, Any], base_dir: str | Path = ".") -> Bench:
    """Validate TOML data into a :class:`Bench` (ConfigError names the first bad key)."""
    if "base_dir" in data:
        raise ConfigError("base_dir", "unknown key")
    bench = parse_section(Bench, data, "")
    values = {name: getattr(bench, name) for name in Bench.__dataclass_fields__}
    values["base_dir"] = str(base_dir)
    return Bench(**values)


def load_bench(path: str | Path | None = None) -> Bench:
    """Read a bench file (``None``: the simulated default, ``benches/sim.toml``)."""
    p = Path(path) if path is not None else DEFAULT_BENCH
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read bench file {p}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{p} is not valid TOML: {exc}") from exc
    try:
        return parse_bench(data, p.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(exc.key, f"{exc.detail} (in {p})") from exc


# -- pytest glue (for hil_tests/conftest.py) -------------------------------------------------


def bench_from_config(config: Any) -> Bench:
    """The bench ``--bench`` selects (default: sim.toml), loaded once per pytest session.

    @pytest.fixture(scope="session")
    def bench(pytestconfig): return bench_from_config(pytestconfig)
    """
    cached = getattr(config, "_hil_bench", None)
    if cached is None:
        cached = load_bench(config.getoption("--bench"))
        config._hil_bench = cached
    return cached


def sim_only_skip_reason(bench: Bench) -> str | None:
    """Why a ``@pytest.mark.sim_only`` test cannot run on ``bench`` (None: it can)."""
    if bench.simulated:
        return None
    return f"needs a simulator-only power (fault injection); bench {bench.name!r} has real parts"


# -- preflight: every real part is there and answers -------------------------------------------

PREFLIGHT_TIMEOUT_S = 3.0


def _http_answers(url: str, expected: tuple[int, ...]) -> str | None:
    """None when ``url`` answers with one of the ``expected`` HTTP statuses, else why not.
    (A camera asks for its password with 401; a proxy or a web page is not a camera.)"""
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only "is it there": the tests check trust
    try:
        with urllib.request.urlopen(url, timeout=PREFLIGHT_TIMEOUT_S, context=context) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        return f"{url} does not answer ({exc})"
    if status not in expected:
        wanted = " or ".join(map(str, expected))
        return f"{url} answered HTTP {status}, not {wanted}: is this the device?"
    return None


def _secret_problem(bench: Bench, value: str) -> str | None:
    """None when a key or password file is there, readable and 0600, else what is wrong."""
    import stat

    path = bench.path(value)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        path.read_bytes()
    except OSError as exc:
        return f"{path} is missing or unreadable ({exc.strerror})"
    if mode & 0o077:
        return f"{path} has mode {mode:04o}; it must be 0600"
    return None


def _modem_answers(port: str, baud: int) -> bool:
    import serial

    with serial.Serial(port, baud, timeout=PREFLIGHT_TIMEOUT_S) as ser:
        ser.reset_input_buffer()
        ser.write(b"AT\r")
        return b"OK" in ser.read_until(b"OK", 64)


def preflight(bench: Bench) -> list[str]:
    """One line per real part that is absent or silent (empty: every real part answered).

    Checked: each real line's port exists and opens; on it, each reader answers osdp_ID, each
    relay board answers a Modbus read and the modem answers AT; each real reader's key file
    and camera's password file is there and 0600; each real camera and the centre accept a
    connection; a native GPIO bench has a GPIO chip. Simulated parts are not checked.
    """
    from gateway.setup.scan import scan_modbus, scan_osdp

    missing: list[str] = []
    open_lines: set[str] = set()
    for line in bench.lines:
        if line.simulated:
            continue
        if not Path(line.port).exists():
            missing.append(
                f"line {line.name!r}: port {line.port} does not exist "
                "(adapter unplugged? `ls -l /dev/serial/by-id/` lists the ones there)"
            )
            continue
        try:
            import serial

            with serial.Serial(line.port, line.baud, timeout=0.1):
                pass
        except (OSError, ValueError) as exc:
            missing.append(f"line {line.name!r}: port {line.port} does not open ({exc})")
            continue
        open_lines.add(line.name)
    for r in bench.readers:
        if bench.line(r.line).simulated:
            continue
        if r.key_file:
            problem = _secret_problem(bench, r.key_file)
            if problem:
                missing.append(f"reader {r.name!r}: key file {problem}")
        if r.line not in open_lines:
            missing.append(f"reader {r.name!r}: not checked, its line {r.line!r} is missing")
    for name in sorted(open_lines):
        line = bench.line(name)
        try:
            readers = bench.readers_on(name)
            if readers:
                found = {
                    f.address for f in scan_osdp(line.port, line.baud, [r.address for r in readers])
                }
                for r in readers:
                    if r.address not in found:
                        missing.append(
                            f"reader {r.name!r}: no answer at OSDP address {r.address} on "
                            f"{name!r} (power, A/B wiring, address, baud {line.baud}?)"
                        )
            boards = bench.boards_on(name)
            if boards:
                found = {
                    f.address
                    for f in scan_modbus(line.port, line.baud, [b.address for b in boards])
                }
                for b in boards:
                    if b.address not in found:
                        missing.append(
                            f"relay board {b.name!r}: no answer at Modbus address {b.address} "
                            f"on {name!r} (power, A/B wiring, address, baud {line.baud}?)"
                        )
            if (
                bench.modem is not None
                and bench.modem.line == name
                and not _modem_answers(line.port, line.baud)
            ):
                missing.append(f"modem: no OK to AT on {name!r} ({line.port})")
        except (OSError, ValueError) as exc:
            missing.append(f"line {name!r}: {exc}")
    for b in bench.relay_boards:
        if not bench.line(b.line).simulated and b.line not in open_lines:
            missing.append(f"relay board {b.name!r}: not checked, its line {b.line!r} is missing")
    if bench.modem is not None:
        modem_line = bench.line(bench.modem.line)
        if not modem_line.simulated and modem_line.name not in open_lines:
            missing.append(f"modem: not checked, its line {modem_line.name!r} is missing")
    for c in bench.cameras:
        if c.simulated:
            continue
        if c.password_file:
            problem = _secret_problem(bench, c.password_file)
            if problem:
                missing.append(f"camera {c.name!r}: password file {problem}")
        why = _http_answers(c.snapshot_url, (200, 401))
        if why:
            missing.append(f"camera {c.name!r}: {why}")
    if not bench.centre.simulated:
        why = _http_answers(bench.centre.url.rstrip("/") + "/api/v1/ca", (200,))
        if why:
            missing.append(f"centre: {why}")
    if bench.gpio.pin_factory == "native" and not any(Path("/dev").glob("gpiochip*")):
        missing.append("gpio: pin_factory is 'native' but this machine has no /dev/gpiochip*")
    # One line per device, its problems joined: the reader of the list counts devices.
    by_device: dict[str, list[str]] = {}
    for item in missing:
        device, _, problem = item.partition(": ")
        by_device.setdefault(device, []).append(problem)
    return [f"MISSING {device}: {'; '.join(problems)}" for device, problems in by_device.items()]


# -- line emulators for a simulated bench ------------------------------------------------------


@dataclass(slots=True)
class SimLines:
    """The running line emulators of a bench's ``"sim"`` lines (see :func:`start_sim_lines`).

    A reader gets a device port of its own (each libosdp PD owns its port); the relay boards of
    a line share one (one pymodbus server answers every address on it); the modem is the device
    end of a point-to-point :class:`~hil_tests.line.SerialLine` (``ModemSim(device=...)``).
    """

    bench: Bench
    emulators: dict[str, Any] = field(default_factory=dict)
    _ports: dict[str, tuple[str, int]] = field(default_factory=dict)

    def host_path(self, line: str) -> str:
        """The path the gateway's config names for ``line`` (real lines: their port)."""
        if line in self.emulators:
            return str(self.emulators[line].host_path)
        return self.bench.line(line).port

    def emulator(self, line: str) -> Any:
        """The :class:`SerialLine` or :class:`Rs485Bus` of a simulated line (for faults)."""
        return self.emulators[line]

    def device_path(self, device: str) -> str:
        """The pty a device's simulator opens: a reader's or relay board's name, or "modem"."""
        line, index = self._ports[device]
        emu = self.emulators[line]
        return str(emu.device_paths[index] if hasattr(emu, "device_paths") else emu.device_path)


@contextlib.contextmanager
def start_sim_lines(bench: Bench, folder: Path) -> Iterator[SimLines]:
    """Start a line emulator per simulated line, host links as ``folder/tty-<line>``; all are
    stopped on exit (so no pty outlives the block)."""
    from hil_tests.line import Rs485Bus, SerialLine

    lines = SimLines(bench)
    with contextlib.ExitStack() as stack:
        for line in bench.lines:
            if not line.simulated:
                continue
            link = folder / f"tty-{line.name}"
            if line.kind == "serial":
                emu: Any = SerialLine(link, line.baud, paced=line.paced, seed=line.seed)
                if bench.role(line.name) == "modem":
                    lines._ports["modem"] = (line.name, 0)
            else:
                readers = bench.readers_on(line.name)
                boards = bench.boards_on(line.name)
                emu = Rs485Bus(
                    link, line.baud, devices=max(1, len(readers)), paced=line.paced, seed=line.seed
                )
                for i, reader in enumerate(readers):
                    lines._ports[reader.name] = (line.name, i)
                for board in boards:
                    lines._ports[board.name] = (line.name, 0)
            lines.emulators[line.name] = stack.enter_context(emu)
        yield lines


__all__ = [
    "BENCHES_DIR",
    "DEFAULT_BENCH",
    "SIM",
    "Bench",
    "BenchInfo",
    "Camera",
    "Centre",
    "Gpio",
    "Line",
    "Modem",
    "Reader",
    "RelayBoard",
    "SimLines",
    "bench_from_config",
    "load_bench",
    "parse_bench",
    "preflight",
    "sim_only_skip_reason",
    "start_sim_lines",
]
