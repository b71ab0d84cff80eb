"""Bus scan: which serial ports exist, and who answers on them (OSDP readers, Modbus boards).

Blocking (run it in a thread, one per line: lines are independent and scan in parallel). One
address at a time, as RS-485 is half duplex: send a probe, wait for the frame's own wire time
plus a short answer window, move on. An OSDP reader answers osdp_ID in a few milliseconds
(libosdp readers in about 10-25 ms); a silent address costs ``frame time + answer window``.
Measured on the simulated bench (9600 baud, paced): 127 OSDP addresses in ~8 s, 247 Modbus
addresses in ~9 s; the lines scan in parallel. Frames come from :mod:`gateway.setup.probe`::

    ports = list_serial_ports()
    readers = scan_osdp("/dev/serial/by-id/usb-FTDI...", 9600, range(0, 127), progress=bar.update)
    boards = scan_modbus("/dev/ttyUSB1", 9600, range(1, 248))
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import serial

from gateway.setup import probe

# Answer windows after our frame has left: readers and boards that answer at all answer fast.
OSDP_ANSWER_WINDOW_S = 0.045
MODBUS_ANSWER_WINDOW_S = 0.03
# After a reply, the bus stays quiet this long: a libosdp reader that hears another reader's
# reply drops a command arriving within its next refresh (measured on the bench).
OSDP_SETTLE_S = 0.06
MODBUS_SETTLE_S = 0.005
# Confirming a found address (osdp_CAP, profile probes) may take its time: it happens rarely.
CONFIRM_WINDOW_S = 0.3
POLL_S = 0.002

Progress = Callable[[int], None]

SERIAL_GLOBS = ("/dev/ttyUSB*", "/dev/ttyACM*", "/dev/ttyAMA*", "/dev/ttyS0", "/dev/serial0")
BY_ID_DIR = "/dev/serial/by-id"
# Names packaging/install.sh's udev rules give the adapters (docs/install.md, section 4).
UDEV_NAMES_DIR = "/dev/compound-gw"


@dataclass(frozen=True, slots=True)
class PortInfo:
    """A serial port: the stable name to put in the config and the device it points at."""

    path: str
    device: str
    stable: bool


def list_serial_ports(
    by_id_dir: str = BY_ID_DIR,
    globs: Iterable[str] = SERIAL_GLOBS,
    udev_dir: str = UDEV_NAMES_DIR,
) -> list[PortInfo]:
    """Serial ports on this machine, stable names first (the install's /dev/compound-gw/NAME,
    then /dev/serial/by-id), then bare devices not reachable by a stable name."""
    out: list[PortInfo] = []
    seen: set[str] = set()
    links = sorted(p for p in glob.glob(os.path.join(udev_dir, "*")) if not os.path.isdir(p))
    links += sorted(glob.glob(os.path.join(by_id_dir, "*")))
    for link in links:
        device = os.path.realpath(link)
        if device in seen:
            continue
        out.append(PortInfo(link, device, True))
        seen.add(device)
    for pattern in globs:
        for dev in sorted(glob.glob(pattern)):
            real = os.path.realpath(dev)
            if real not in seen:
                out.append(PortInfo(dev, real, False))
                seen.add(real)
    return out


def char_time(baud: int) -> float:
    return 10.0 / baud


def _exchange(
    ser: serial.Serial,
    frame: bytes,
    reply_len_hint: int,
    window_s: float,
    baud: int,
    done: Callable[[bytes], bool],
) -> bytes:
    """Send ``frame``; collect bytes until ``done`` or the line stays silent too long."""
    ser.reset_input_buffer()
    ser.write(frame)
    start = time.monotonic()
    first_deadline = start + len(frame) * char_time(baud) + window_s
    buf = b""
    last = start
    while True:
        chunk = ser.read(512)
        now = time.monotonic()
        if chunk:
            buf += chunk
            last = now
            if done(buf):
                return buf
        elif not buf and now >= first_deadline:
            return buf
        elif buf and now - last > max(0.02, reply_len_hint * char_time(baud)):
            return buf  # a reply that stopped half way: noise or a collision
        time.sleep(POLL_S)


# ============================================================================ OSDP


@dataclass(frozen=True, slots=True)
class FoundReader:
    address: int
    vendor: str
    model: int
    version: int
    serial: str
    firmware: str
    secure_channel: bool


def _open(port: str, baud: int) -> serial.Serial:
    return serial.Serial(port, baud, timeout=0, write_timeout=1.0, exclusive=True)


def _osdp_ask(
    ser: serial.Serial,
    address: int,
    seq: int,
    code: int,
    baud: int,
    window: float,
    late: set[int] | None = None,
) -> probe.OsdpReply | None:
    frame = probe.osdp_command(address, seq, code)
    found: list[probe.OsdpReply] = []

    def done(buf: bytes) -> bool:
        reply = probe.parse_osdp_reply(buf, address)
        if reply is not None:
            found.append(reply)
        return reply is not None

    buf = _exchange(ser, frame, 64, window, baud, done)
    if buf:
        if late is not None and not found:
            late.update(probe.osdp_reply_sources(buf) - {address})
        time.sleep(OSDP_SETTLE_S)
    return found[0] if found else None


def _osdp_listen(ser: serial.Serial, window: float) -> set[int]:
    """Who answers late after the last question: addresses of replies heard within ``window``."""
    deadline = time.monotonic() + window
    buf = b""
    while time.monotonic() < deadline:
        buf += ser.read(512)
        time.sleep(POLL_S)
    return probe.osdp_reply_sources(buf)


def scan_osdp(
    port: str,
    baud: int,
    addresses: Iterable[int] = range(0, 127),
    *,
    window_s: float = OSDP_ANSWER_WINDOW_S,
    progress: Progress | None = None,
) -> list[FoundReader]:
    """Every OSDP reader answering osdp_ID on ``port``: identity (PDID) and Secure Channel
    capability (PDCAP). A reader answers in clear text whatever its key: no key is needed."""
    found: dict[int, FoundReader] = {}
    asked = list(addresses)
    late: set[int] = set()
    with _open(port, baud) as ser:
        for i, address in enumerate(asked):
            reader = _identify(ser, address, baud, window_s, late)
            if reader is not None:
                found[address] = reader
            if progress is not None:
                progress(i + 1)
        # A reader slower than the window (the spec allows up to 200 ms; a busy one, or a
        # host starved of CPU) was heard answering while the next address was asked: ask it
        # again, patiently. Silence is never re-asked (that is the common case).
        if asked:
            late |= _osdp_listen(ser, CONFIRM_WINDOW_S)
        for address in sorted(late & set(asked) - set(found)):
            reader = _identify(ser, address, baud, CONFIRM_WINDOW_S, None)
            if reader is not None:
                found[address] = reader
    return [found[a] for a in sorted(found)]


def _identify(
    ser: serial.Serial, address: int, baud: int, window_s: float, late: set[int] | None
) -> FoundReader | None:
    """osdp_ID then osdp_CAP to ``address``: the reader there, or None."""
    reply = _osdp_ask(ser, address, 0, probe.OSDP_ID, baud, window_s, late)
    if reply is None or reply.code != probe.OSDP_PDID:
        return None
    ident = probe.parse_pdid(reply.data)
    caps_reply = _osdp_ask(ser, address, 1, probe.OSDP_CAP, baud, CONFIRM_WINDOW_S, late)
    caps = (
        probe.parse_pdcap(caps_reply.data)
        if caps_reply is not None and caps_reply.code == probe.OSDP_PDCAP
        else {}
    )
    if ident is None:
        return None
    return FoundReader(
        address, ident.vendor, ident.model, ident.version, ident.serial, ident.firmware,
        probe.secure_channel_capable(caps),
    )  # fmt: skip


# ============================================================================ Modbus


@dataclass(frozen=True, slots=True)
class FoundBoard:
    address: int
    profile: str
    channels: int
    firmware: str


def _modbus_ask(
    ser: serial.Serial,
    address: int,
    function: int,
    first: int,
    value: int,
    baud: int,
    window: float,
) -> probe.ModbusReply | None:
    frame = probe.modbus_request(address, function, first, value)
    found: list[probe.ModbusReply] = []
    count = value if function in (probe.MODBUS_READ_COILS, probe.MODBUS_READ_HOLDING) else 0

    def done(buf: bytes) -> bool:
        reply = probe.parse_modbus_reply(buf, address, function)
        if reply is not None:
            found.append(reply)
        return reply is not None

    buf = _exchange(ser, frame, probe.modbus_reply_length(function, count), window, baud, done)
    if buf:
        time.sleep(MODBUS_SETTLE_S)
    return found[0] if found else None


def _largest_count(ser: serial.Serial, address: int, function: int, first: int, baud: int) -> int:
    for count in (32, 16, 8, 4, 2, 1):
        reply = _modbus_ask(ser, address, function, first, count, baud, CONFIRM_WINDOW_S)
        if reply is not None and reply.exception == 0:
            return count
    return 0


def identify_board(ser: serial.Serial, address: int, baud: int) -> FoundBoard:
    """Guess a board's profile without switching anything on.

    Coil boards answer FC01; a Waveshare V2 also takes "all relays off" at coil 0x00FF (safe at
    commissioning: nothing should be on), which plain coil boards refuse; holding-register
    boards refuse FC01 and answer FC03 from register 1.
    """
    coils = _modbus_ask(ser, address, probe.MODBUS_READ_COILS, 0, 1, baud, CONFIRM_WINDOW_S)
    firmware = ""
    version = _modbus_ask(
        ser,
        address,
        probe.MODBUS_READ_HOLDING,
        probe.WAVESHARE_VERSION_REGISTER,
        1,
        baud,
        CONFIRM_WINDOW_S,
    )
    if version is not None and version.exception == 0 and len(version.data) >= 2:
        firmware = f"{version.data[0]}.{version.data[1]:02d}"
    if coils is not None and coils.exception == 0:
        all_off = _modbus_ask(
            ser,
            address,
            probe.MODBUS_WRITE_COIL,
            probe.WAVESHARE_ALL_COILS,
            0x0000,
            baud,
            CONFIRM_WINDOW_S,
        )
        profile = "waveshare_v2" if all_off is not None and all_off.exception == 0 else "coils"
        channels = _largest_count(ser, address, probe.MODBUS_READ_COILS, 0, baud)
        return FoundBoard(address, profile, channels or 8, firmware)
    channels = _largest_count(ser, address, probe.MODBUS_READ_HOLDING, 1, baud)
    return FoundBoard(address, "holding" if channels else "unknown", channels or 8, firmware)


def scan_modbus(
    port: str,
    baud: int,
    addresses: Iterable[int] = range(1, 248),
    *,
    window_s: float = MODBUS_ANSWER_WINDOW_S,
    progress: Progress | None = None,
) -> list[FoundBoard]:
    """Every Modbus RTU board answering on ``port`` (any reply, even an exception, is a board),
    with a profile guess (:func:`identify_board`)."""
    present: list[int] = []
    with _open(port, baud) as ser:
        for i, address in enumerate(addresses):
            reply = _modbus_ask(ser, address, probe.MODBUS_READ_COILS, 0, 1, baud, window_s)
            if reply is not None:
                present.append(address)
            if progress is not None:
                progress(i + 1)
        return [identify_board(ser, a, baud) for a in present]


def port_exists(path: str) -> bool:
    return Path(path).exists()


def board_firmware(port: str, baud: int, address: int) -> str:
    """A board's firmware version where it says (Waveshare V2: register 0x8000), else ''."""
    with _open(port, baud) as ser:
        reply = _modbus_ask(
            ser,
            address,
            probe.MODBUS_READ_HOLDING,
            probe.WAVESHARE_VERSION_REGISTER,
            1,
            baud,
            CONFIRM_WINDOW_S,
        )
    if reply is None or reply.exception or len(reply.data) < 2:
        return ""
    return f"{reply.data[0]}.{reply.data[1]:02d}"
