"""A simulated 4G modem on a pseudo-terminal: answers AT, ATE0/ATE1, AT+CSQ, AT+CREG?, AT+COPS?.

The modem side holds the pty master; the gateway opens ``sim.path`` (a stable symlink to the
current slave, as udev would give a real modem) with pyserial. Faults:

- ``sim.mode = "error"``: every command answers ``ERROR`` (or ``+CME ERROR: 10`` via
  ``error_text``);
- ``sim.mode = "silent"``: the modem reads and never answers;
- ``sim.send_unsolicited("+CREG: 2")``: a line out of the blue, also injected mid-response with
  ``urc_mid_response``;
- ``await sim.unplug()`` closes the master (pyserial then raises, exactly like a pulled USB
  adapter); ``await sim.replug()`` makes a new pty and re-points the symlink.

    async with ModemSim(tmp_path / "modem", csq=(21, 99)) as sim:
        port = serial.Serial(str(sim.path))

Values are plain attributes: change ``sim.csq``/``sim.creg``/``sim.operator`` at any time.

On the line emulator the sim is the device end of a :class:`~hil_tests.line.SerialLine` (baud
pacing, noise, unplug/replug of the gateway's adapter are then the line's business)::

    with SerialLine(host_link=tmp_path / "ttyModem", baud=115200) as line:
        async with ModemSim(device=line.device_path) as sim:
            ...  # the gateway opens line.host_path
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from pathlib import Path
from typing import Literal


class ModemSim:
    """One simulated modem; use as an async context manager (or ``start()``/``stop()``)."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        device: str | None = None,
        csq: tuple[int, int] = (21, 99),
        creg: int = 1,
        operator: str | None = "SimTel",
        act: int = 7,
        echo: bool = True,
    ) -> None:
        if (path is None) == (device is None):
            raise ValueError("give either path (own pty) or device (a line's device end)")
        self.path = Path(path) if path is not None else Path(str(device))
        self.device = device
        self.csq = csq
        self.creg = creg
        self.operator = operator
        self.act = act
        self.echo = echo
        self.mode: Literal["normal", "error", "silent"] = "normal"
        self.error_text = "ERROR"
        self.urc_mid_response: str | None = None
        self.commands: list[str] = []
        self._master: int | None = None
        self._slave: int | None = None
        self._buf = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> ModemSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._plug()

    async def stop(self) -> None:
        self._unplug()
        if self.device is None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def _plug(self) -> None:
        assert self._loop is not None
        if self.device is not None:
            # The line's device pty: we are the program on its slave side.
            fd = os.open(self.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(fd)
            self._master, self._slave = fd, None
            self._loop.add_reader(fd, self._readable)
            return
        master, slave = os.openpty()
        # Raw, or the line discipline would echo and turn our CR into LF behind our back.
        tty.setraw(slave)
        tty.setraw(master)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.path.with_name(self.path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(slave))
        os.replace(tmp, self.path)
        self._loop.add_reader(master, self._readable)

    def _unplug(self) -> None:
        if self._master is None:
            return
        assert self._loop is not None
        self._loop.remove_reader(self._master)
        os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None
        self._buf.clear()

    async def unplug(self) -> None:
        """Pull the modem: the gateway's open port starts failing."""
        if self.device is not None:
            raise RuntimeError("on a SerialLine, unplug the line")
        self._unplug()

    async def replug(self) -> None:
        """Plug it back in (a new tty behind the same ``path``)."""
        if self.device is not None:
            raise RuntimeError("on a SerialLine, replug the line")
        self._unplug()
        self._plug()

    def send_unsolicited(self, line: str) -> None:
        """Emit a URC, framed as a modem does: CRLF line CRLF."""
        self._write(b"\r\n" + line.encode() + b"\r\n")

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._master, data)

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            # EIO: the last holder of the slave closed it. Not an error for the modem.
            return
        self._buf += data
        while (cut := self._buf.find(b"\r")) >= 0:
            line = self._buf[:cut].decode("ascii", errors="replace").strip()
            del self._buf[: cut + 1]
            if line:
                self._command(line)

    def _command(self, line: str) -> None:
        self.commands.append(line)
        if self.mode == "silent":
            return
        out = bytearray()
        if self.echo:
            out += line.encode() + b"\r"
        if self.mode == "error":
            out += b"\r\n" + self.error_text.encode() + b"\r\n"
            self._write(bytes(out))
            return
        info, final = self._answer(line.upper())
        for i, text in enumerate(info):
            out += b"\r\n" + text.encode() + b"\r\n"
            if i == 0 and self.urc_mid_response:
                out += b"\r\n" + self.urc_mid_response.encode() + b"\r\n"
        out += b"\r\n" + final.encode() + b"\r\n"
        self._write(bytes(out))

    def _answer(self, cmd: str) -> tuple[list[str], str]:
        if cmd in ("AT", "ATZ"):
            return [], "OK"
        if cmd == "ATE0":
            self.echo = False
            return [], "OK"
        if cmd == "ATE1":
            self.echo = True
            return [], "OK"
        if cmd == "ATI":
            return ["SimModem", "Revision: SIM01"], "OK"
        if cmd == "AT+CSQ":
            return [f"+CSQ: {self.csq[0]},{self.csq[1]}"], "OK"
        if cmd == "AT+CREG?":
            return [f"+CREG: 0,{self.creg}"], "OK"
        if cmd == "AT+COPS?":
            if self.operator is None:
                return ["+COPS: 0"], "OK"
            return [f'+COPS: 0,0,"{self.operator}",{self.act}'], "OK"
        return [], "ERROR"
