"""The relay-board simulator against an independent client: pymodbus's own serial client.

Our driver (drivers/relay_modbus.py) is tested against the simulator elsewhere; here nothing of
ours talks to it, so a misreading shared by driver and simulator cannot hide.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import serial
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerType

from hil_tests.line import SerialLine
from hil_tests.sims.relay_board import RelayBoardSim, SimBoard

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]


@pytest.fixture
async def client_and_boards(
    tmp_path: Path,
) -> AsyncIterator[tuple[AsyncModbusSerialClient, dict[int, SimBoard]]]:
    boards = [SimBoard(1, "waveshare_v2"), SimBoard(2, "coils"), SimBoard(3, "holding")]
    line = SerialLine(host_link=tmp_path / "tty-relays", baud=9600, paced=True).start()
    try:
        async with RelayBoardSim(line.device_path, boards, baudrate=9600):
            client = AsyncModbusSerialClient(
                port=str(line.host_path),
                framer=FramerType.RTU,
                baudrate=9600,
                timeout=0.5,
                retries=0,
            )
            assert await client.connect()
            try:
                yield client, {b.address: b for b in boards}
            finally:
                client.close()
    finally:
        line.stop()


async def test_write_and_read_coils_as_a_plain_modbus_master(client_and_boards) -> None:  # type: ignore[no-untyped-def]
    client, boards = client_and_boards
    rr = await client.write_coil(3, True, device_id=2)
    assert not rr.isError()
    assert boards[2].coils[3] is True
    read = await client.read_coils(0, count=8, device_id=2)
    assert not read.isError()
    assert read.bits[:8] == [False, False, False, True, False, False, False, False]
    assert boards[2].changes[-1].channel == 3 and boards[2].changes[-1].on


def crc16_modbus(data: bytes) -> bytes:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


async def test_waveshare_timed_flash_from_raw_frames_releases_by_itself(tmp_path: Path) -> None:
    # pymodbus's write_coil only sends 0xFF00/0x0000, so the Waveshare flash-on (FC05 to
    # 0x0200+n, value in 100 ms units) is sent as a hand-built RTU frame over plain pyserial.
    board = SimBoard(1, "waveshare_v2")
    line = SerialLine(host_link=tmp_path / "tty-ws", baud=9600, paced=True).start()
    try:
        async with RelayBoardSim(line.device_path, [board], baudrate=9600):
            port = serial.Serial(str(line.host_path), 9600, timeout=1.0)
            try:
                pdu = bytes([0x01, 0x05, 0x02, 0x02, 0x00, 0x05])  # ch 2 on for 0.5 s
                port.write(pdu + crc16_modbus(pdu))
                echo = await asyncio.to_thread(port.read, 8)
                assert echo == pdu + crc16_modbus(pdu)  # the board echoes the request
                assert board.coils[2] is True
                await asyncio.sleep(0.9)
                assert board.coils[2] is False  # released by the board itself
                assert [c.on for c in board.changes if c.channel == 2] == [True, False]
            finally:
                port.close()
    finally:
        line.stop()


async def test_holding_register_board(client_and_boards) -> None:  # type: ignore[no-untyped-def]
    client, boards = client_and_boards
    board = boards[3]
    rr = await client.write_register(board.register_base + 4, 0x0100, device_id=3)
    assert not rr.isError()
    assert board.coils[4] is True
    regs = await client.read_holding_registers(board.register_base, count=8, device_id=3)
    assert not regs.isError()
    assert regs.registers[4] == 1 and sum(regs.registers) == 1


async def test_silent_board_and_unknown_address_do_not_answer(client_and_boards) -> None:  # type: ignore[no-untyped-def]
    client, boards = client_and_boards
    boards[2].silent = True
    with pytest.raises(ModbusIOException):
        await client.read_coils(0, count=8, device_id=2)
    with pytest.raises(ModbusIOException):
        await client.read_coils(0, count=8, device_id=9)  # nobody at address 9
    boards[2].silent = False
    ok = await client.read_coils(0, count=8, device_id=2)
    assert not ok.isError()
