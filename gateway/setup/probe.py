"""Bus-scan frames, pure: OSDP osdp_ID/osdp_CAP probes and Modbus RTU probes, built and parsed.

The scan asks every address on a line "who are you?" and needs only a few frames, so they are
written here as plain bytes rather than borrowed from libosdp or pymodbus (a libosdp
ControlPanel per candidate address would cost a handshake each; pymodbus retries and waits
far longer than a scan can afford). Sans-IO: no serial, no time, no asyncio::

    wire = osdp_command(3, 0, OSDP_ID)          # to address 3, sequence 0
    reply = parse_osdp_reply(bytes_read, 3)     # OsdpReply(code=0x45, data=...) or None
    ident = parse_pdid(reply.data)              # vendor, model, version, serial, firmware
"""

from __future__ import annotations

from dataclasses import dataclass

OSDP_SOM = 0x53
OSDP_ID = 0x61
OSDP_CAP = 0x62
OSDP_PDID = 0x45
OSDP_PDCAP = 0x46
OSDP_NAK = 0x41
# Capability function code 9: communication security (compliance bit 0: AES-128 supported).
CAP_COMMUNICATION_SECURITY = 9
OSDP_HEADER_LEN = 5
MAX_OSDP_FRAME = 1440

MODBUS_READ_COILS = 0x01
MODBUS_READ_HOLDING = 0x03
MODBUS_WRITE_COIL = 0x05
# Waveshare V2: coil 0x00FF addresses every relay at once; firmware version at 0x8000.
WAVESHARE_ALL_COILS = 0x00FF
WAVESHARE_VERSION_REGISTER = 0x8000


def osdp_crc16(data: bytes) -> int:
    """OSDP's CRC-16 (CCITT polynomial 0x1021, initial value 0x1D0F, not reflected)."""
    crc = 0x1D0F
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def osdp_command(address: int, seq: int, code: int, data: bytes = b"\x00") -> bytes:
    """A clear-text OSDP command frame with CRC (osdp_ID and osdp_CAP take one 0x00 byte)."""
    if not 0 <= address <= 0x7E:
        raise ValueError(f"OSDP address {address} is outside 0..126")
    length = OSDP_HEADER_LEN + 1 + len(data) + 2
    body = bytes([OSDP_SOM, address, length & 0xFF, length >> 8, (seq & 0x03) | 0x04, code]) + data
    crc = osdp_crc16(body)
    return body + bytes([crc & 0xFF, crc >> 8])


@dataclass(frozen=True, slots=True)
class OsdpReply:
    address: int
    code: int
    data: bytes


def osdp_frame_length(buf: bytes) -> int | None:
    """Length a frame starting at ``buf[0]`` claims, or None if the header is not all here."""
    if len(buf) < 4:
        return None
    return buf[2] | (buf[3] << 8)


def parse_osdp_reply(buf: bytes, address: int) -> OsdpReply | None:
    """The first well-formed clear-text reply from ``address`` in ``buf`` (None: none yet)."""
    pos = 0
    while True:
        start = buf.find(OSDP_SOM, pos)
        if start < 0 or len(buf) - start < 8:
            return None  # nothing (more) that could be a whole frame
        frame_len = osdp_frame_length(buf[start:])
        if frame_len is None or frame_len < 8 or frame_len > MAX_OSDP_FRAME:
            pos = start + 1
            continue
        frame = buf[start : start + frame_len]
        if len(frame) < frame_len:
            # Either a reply still arriving or noise that looks like a header: a whole, valid
            # frame further on wins; otherwise wait for more bytes.
            pos = start + 1
            continue
        ctrl = frame[4]
        if ctrl & 0x04:
            good = osdp_crc16(frame[:-2]) == frame[-2] | (frame[-1] << 8)
            tail = 2
        else:
            good = (sum(frame[:-1]) + frame[-1]) & 0xFF == 0
            tail = 1
        if not good or ctrl & 0x08 or frame[1] != (address | 0x80):
            pos = start + 1
            continue
        return OsdpReply(address, frame[5], bytes(frame[6 : frame_len - tail]))


@dataclass(frozen=True, slots=True)
class PdIdentity:
    """What osdp_PDID says: vendor (IEEE OUI, hex), model, version, serial, firmware."""

    vendor: str
    model: int
    version: int
    serial: str
    firmware: str


def osdp_reply_sources(buf: bytes) -> set[int]:
    """Addresses of every well-formed clear-text reply in ``buf``, whoever was asked: a reader
    answering later than the scan's window is heard while the next address is being asked."""
    return {a for a in range(0x7F) if bytes([OSDP_SOM, a | 0x80]) in buf
            and parse_osdp_reply(buf, a) is not None}  # fmt: skip


def parse_pdid(data: bytes) -> PdIdentity | None:
    if len(data) < 12:
        return None
    serial = int.from_bytes(data[5:9], "little")
    return PdIdentity(
        vendor=data[0:3].hex(),
        model=data[3],
        version=data[4],
        serial=f"{serial:08x}",
        firmware=f"{data[9]}.{data[10]}.{data[11]}",
    )


def parse_pdcap(data: bytes) -> dict[int, tuple[int, int]]:
    """osdp_PDCAP as {function code: (compliance, number of items)}."""
    return {data[i]: (data[i + 1], data[i + 2]) for i in range(0, len(data) - 2, 3)}


def secure_channel_capable(caps: dict[int, tuple[int, int]]) -> bool:
    compliance, _items = caps.get(CAP_COMMUNICATION_SECURITY, (0, 0))
    return bool(compliance & 0x01)


# ============================================================================ Modbus RTU


def modbus_crc16(data: bytes) -> int:
    """Modbus RTU CRC-16 (reflected polynomial 0xA001, initial 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def modbus_request(address: int, function: int, first: int, value: int) -> bytes:
    """An 8-byte RTU request (FC01/03 with a count, FC05 with a coil value)."""
    if not 1 <= address <= 247:
        raise ValueError(f"Modbus address {address} is outside 1..247")
    body = bytes([address, function]) + first.to_bytes(2, "big") + value.to_bytes(2, "big")
    crc = modbus_crc16(body)
    return body + bytes([crc & 0xFF, crc >> 8])


@dataclass(frozen=True, slots=True)
class ModbusReply:
    """A board's answer: ``exception`` is the exception code, or 0 for a normal reply."""

    address: int
    function: int
    exception: int
    data: bytes


def _expected_len(buf: bytes, function: int) -> int | None:
    if len(buf) < 3:
        return None
    if buf[1] & 0x80:
        return 5
    if function in (MODBUS_READ_COILS, MODBUS_READ_HOLDING):
        return 3 + buf[2] + 2
    return 8


def parse_modbus_reply(buf: bytes, address: int, function: int) -> ModbusReply | None:
    """The reply from ``address`` to ``function`` if ``buf`` holds a whole, valid one."""
    for start in range(len(buf)):
        if buf[start] != address:
            continue
        rest = buf[start:]
        if len(rest) >= 2 and rest[1] & 0x7F != function:
            continue
        need = _expected_len(rest, function)
        if need is None or len(rest) < need:
            continue
        frame = rest[:need]
        if modbus_crc16(frame[:-2]) != frame[-2] | (frame[-1] << 8):
            continue
        if frame[1] & 0x80:
            return ModbusReply(address, function, frame[2], b"")
        if function in (MODBUS_READ_COILS, MODBUS_READ_HOLDING):
            return ModbusReply(address, function, 0, bytes(frame[3:-2]))
        return ModbusReply(address, function, 0, bytes(frame[2:-2]))
    return None


def modbus_reply_length(function: int, count: int) -> int:
    """Bytes of a normal reply to an 8-byte request (for the read deadline)."""
    if function == MODBUS_READ_COILS:
        return 3 + (count + 7) // 8 + 2
    if function == MODBUS_READ_HOLDING:
        return 3 + 2 * count + 2
    return 8
