"""The modem simulator against an independent client: plain pyserial on the pty."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import serial

from hil_tests.sims.modem import ModemSim


async def _ask(
    port: serial.Serial, cmd: bytes, until: bytes = b"OK\r\n", wait: float = 2.0
) -> bytes:
    """Write a command and read (off the loop) until ``until`` or the deadline."""
    port.write(cmd + b"\r")

    def read() -> bytes:
        deadline = time.monotonic() + wait
        buf = b""
        while time.monotonic() < deadline and until not in buf:
            buf += port.read(256)
        return buf

    return await asyncio.to_thread(read)


@pytest.fixture
async def sim(tmp_path: Path):
    async with ModemSim(tmp_path / "modem", csq=(17, 99), creg=5, operator="Sim Mobile") as s:
        yield s


async def test_answers_the_three_queries(sim: ModemSim) -> None:
    with serial.Serial(str(sim.path), timeout=0.05) as port:
        assert await _ask(port, b"AT") == b"AT\r\r\nOK\r\n"
        assert b"+CSQ: 17,99\r\n\r\nOK\r\n" in await _ask(port, b"AT+CSQ")
        assert b"+CREG: 0,5\r\n" in await _ask(port, b"AT+CREG?")
        assert b'+COPS: 0,0,"Sim Mobile",7\r\n' in await _ask(port, b"AT+COPS?")
        sim.csq = (3, 2)
        assert await _ask(port, b"ATE0") == b"ATE0\r\r\nOK\r\n"
        assert await _ask(port, b"AT+CSQ") == b"\r\n+CSQ: 3,2\r\n\r\nOK\r\n"
        assert await _ask(port, b"AT+NOPE", until=b"ERROR\r\n") == b"\r\nERROR\r\n"
    assert sim.commands[:2] == ["AT", "AT+CSQ"]


async def test_error_mode_silence_and_unsolicited(sim: ModemSim) -> None:
    with serial.Serial(str(sim.path), timeout=0.05) as port:
        sim.mode = "error"
        sim.error_text = "+CME ERROR: 10"
        assert (await _ask(port, b"AT+CSQ", until=b"ERROR: 10\r\n")).endswith(b"+CME ERROR: 10\r\n")
        sim.mode = "silent"
        assert await _ask(port, b"AT", wait=0.3) == b""
        sim.mode = "normal"
        sim.send_unsolicited("+CREG: 2")
        assert await _ask(port, b"AT") == b"\r\n+CREG: 2\r\nAT\r\r\nOK\r\n"
        sim.urc_mid_response = "RING"
        assert b"+CSQ: 17,99\r\n\r\nRING\r\n\r\nOK" in await _ask(port, b"AT+CSQ")


async def test_unplug_breaks_the_port_and_replug_brings_a_new_one(sim: ModemSim) -> None:
    first = sim.path.resolve()
    port = serial.Serial(str(sim.path), timeout=0.2)
    try:
        await sim.unplug()
        with pytest.raises(serial.SerialException):
            await asyncio.to_thread(port.read, 10)
    finally:
        port.close()
    await sim.replug()
    assert sim.path.resolve() != first or sim.plugged
    with serial.Serial(str(sim.path), timeout=0.05) as port2:
        assert await _ask(port2, b"AT") == b"AT\r\r\nOK\r\n"
