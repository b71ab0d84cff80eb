"""The scan's frames: golden vectors, every chunking, damage, and the sans-IO rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.setup import probe

# A libosdp reader at address 1 answering osdp_ID, captured on the simulated bench.
PDID_FRAME = bytes.fromhex("538114000445bebafe0101afbeaddeaddead89fa")
# ... and osdp_CAP (function 9 compliance 1: AES-128 Secure Channel).
PDCAP_FRAME = bytes.fromhex("53811d0005460301010401010501010801000901000a00011002005775")


def test_osdp_id_command_bytes() -> None:
    frame = probe.osdp_command(3, 0, probe.OSDP_ID)
    assert frame[:6] == bytes([0x53, 0x03, 0x09, 0x00, 0x04, 0x61])
    assert len(frame) == 9
    assert probe.osdp_crc16(frame[:-2]) == frame[-2] | frame[-1] << 8


def test_osdp_address_range_enforced() -> None:
    with pytest.raises(ValueError):
        probe.osdp_command(127, 0, probe.OSDP_ID)


def test_pdid_parsed() -> None:
    reply = probe.parse_osdp_reply(PDID_FRAME, 1)
    assert reply is not None and reply.code == probe.OSDP_PDID
    ident = probe.parse_pdid(reply.data)
    assert ident == probe.PdIdentity("bebafe", 1, 1, "deadbeaf", "173.222.173")


def test_pdcap_secure_channel() -> None:
    reply = probe.parse_osdp_reply(PDCAP_FRAME, 1)
    assert reply is not None and reply.code == probe.OSDP_PDCAP
    caps = probe.parse_pdcap(reply.data)
    assert caps[probe.CAP_COMMUNICATION_SECURITY] == (1, 0)
    assert probe.secure_channel_capable(caps)
    assert not probe.secure_channel_capable({9: (0, 0)})
    assert not probe.secure_channel_capable({})


def test_reply_from_another_address_is_not_ours() -> None:
    assert probe.parse_osdp_reply(PDID_FRAME, 2) is None


def test_damaged_reply_refused() -> None:
    bad = bytearray(PDID_FRAME)
    bad[8] ^= 0x01
    assert probe.parse_osdp_reply(bytes(bad), 1) is None


@given(st.integers(min_value=0, max_value=len(PDID_FRAME) - 1), st.binary(max_size=12))
def test_any_prefix_waits_and_noise_before_is_skipped(cut: int, noise: bytes) -> None:
    assert probe.parse_osdp_reply(PDID_FRAME[:cut], 1) is None
    reply = probe.parse_osdp_reply(noise + PDID_FRAME, 1)
    assert reply is not None and reply.data == probe.parse_osdp_reply(PDID_FRAME, 1).data  # type: ignore[union-attr]


def test_modbus_crc_golden() -> None:
    # The classic vector: read one holding register of device 1 -> CRC bytes 84 0A.
    assert probe.modbus_request(1, 0x03, 0, 1) == bytes.fromhex("010300000001840a")


def test_modbus_replies() -> None:
    body = bytes([2, 0x01, 1, 0b101])
    crc = probe.modbus_crc16(body)
    frame = body + bytes([crc & 0xFF, crc >> 8])
    assert probe.parse_modbus_reply(frame, 2, 0x01) == probe.ModbusReply(2, 1, 0, b"\x05")
    assert probe.parse_modbus_reply(frame[:-1], 2, 0x01) is None
    assert probe.parse_modbus_reply(frame, 3, 0x01) is None
    exc_body = bytes([2, 0x81, 0x02])
    crc = probe.modbus_crc16(exc_body)
    exc = exc_body + bytes([crc & 0xFF, crc >> 8])
    assert probe.parse_modbus_reply(b"\x00\xff" + exc, 2, 0x01) == probe.ModbusReply(2, 1, 2, b"")


def test_probe_is_sans_io() -> None:
    tree = ast.parse(Path(probe.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "serial", "sqlite3", "time", "socket", "threading"}


def test_noise_that_looks_like_a_long_header_does_not_hide_the_reply() -> None:
    # SOM, an address, then a length of 256: a frame that would end far past the real reply.
    reply = probe.parse_osdp_reply(b"\x53\x00\x00\x01" + PDID_FRAME, 1)
    assert reply is not None and reply.code == probe.OSDP_PDID
