"""Line emulator: virtual serial cables between the gateway and simulated devices.

:class:`SerialLine` is a null-modem (one host pty, one device pty, full duplex);
:class:`Rs485Bus` is a half-duplex multi-drop bus (one host pty, N device ptys, one shared wire
where everyone hears every byte and overlapping transmissions garble). Both pace characters at
the baud rate (10 bits each, evenly spaced) unless ``paced=False``, inject faults on demand and
can unplug and replug the host's adapter behind a stable symlink::

    with SerialLine(host_link=tmp_path / "ttyBUS0", baud=9600) as line:
        sim = serial.Serial(line.device_path)       # the simulator's end
        gw = serial.Serial(line.host_path)          # what the gateway opens
        line.set_faults(bit_error_rate=1e-4)
        line.unplug(); line.replug()
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from hil_tests.line.bridge import HOST, LineBridge, _Route
from hil_tests.line.wire import BITS_PER_CHAR, Faults, LineStats, char_time

Direction = Literal["both", "to_host", "to_device"]
DEVICE = 1
TO_HOST = "to_host"
TO_DEVICE = "to_device"


class SerialLine(LineBridge):
    """A virtual null-modem cable: the gateway's tty on one end, a simulator's on the other.

        line = SerialLine(host_link=tmp_path / "ttyUSB-osdp", baud=9600).start()
        line.host_path, line.device_path; line.stop()

    Faults and garbage take a ``direction``: ``"to_host"`` (what the gateway receives),
    ``"to_device"`` (what the simulator receives) or ``"both"``.
    """

    def __init__(
        self,
        host_link: str | os.PathLike[str] | None = None,
        baud: int = 9600,
        *,
        paced: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__(host_link=host_link, baud=baud, paced=paced, seed=seed, device_count=1)

    def _layout(self) -> Mapping[int, _Route]:
        return {
            HOST: _Route(tx=TO_DEVICE, rx=(TO_HOST,)),
            DEVICE: _Route(tx=TO_HOST, rx=(TO_DEVICE,)),
        }

    def start(self) -> SerialLine:
        super().start()
        return self

    def __enter__(self) -> SerialLine:
        return self.start()

    @property
    def device_path(self) -> str:
        """The pty path the simulator opens with pyserial."""
        return self._port(DEVICE).slave_path

    def set_faults(
        self,
        bit_error_rate: float = 0.0,
        drop_rate: float = 0.0,
        garbage_rate: float = 0.0,
        *,
        direction: Direction = "both",
    ) -> None:
        """Replace the fault rates (all 0, the default, is a clean line)."""
        faults = Faults(bit_error_rate, drop_rate, garbage_rate)
        self._set_faults(_wires_for(direction), faults)

    def clear_faults(self) -> None:
        self.set_faults()

    def inject_garbage(
        self, n: int, *, direction: Direction = "to_host", data: bytes | None = None
    ) -> None:
        """Put ``n`` random characters (or ``data``) on the line, paced like any transmission;
        in flight with a real frame they collide and garble it."""
        for wire in _wires_for(direction):
            self._inject(wire, data if data is not None else self._rng.randbytes(n))

    def stats_toward(self, side: Literal["host", "device"]) -> LineStats:
        """Counters of one direction only."""
        name = TO_HOST if side == "host" else TO_DEVICE
        return self._call(lambda: self._wire_stats(name))


class Rs485Bus(LineBridge):
    """A half-duplex RS-485 multi-drop bus: the host adapter plus ``devices`` simulator ports.

        bus = Rs485Bus(host_link=tmp_path / "ttyRS485", baud=9600, devices=3).start()
        bus.device_paths[0]; bus.stop()

    Every character reaches every port except its sender (auto-direction transceivers do not
    hear themselves). Characters of two transmitters that overlap in time collide: receivers
    get one random character per character time of overlap (``stats.collisions``). Collisions
    need pacing; unpaced, transmissions simply interleave.
    """

    def __init__(
        self,
        host_link: str | os.PathLike[str] | None = None,
        baud: int = 9600,
        *,
        devices: int = 1,
        paced: bool = True,
        seed: int | None = None,
    ) -> None:
        if devices < 1:
            raise ValueError("a bus needs at least one device port")
        super().__init__(
            host_link=host_link, baud=baud, paced=paced, seed=seed, device_count=devices
        )

    def _layout(self) -> Mapping[int, _Route]:
        return {port: _Route(tx="bus", rx=("bus",)) for port in range(self._device_count + 1)}

    def start(self) -> Rs485Bus:
        super().start()
        return self

    def __enter__(self) -> Rs485Bus:
        return self.start()

    @property
    def device_paths(self) -> list[str]:
        """One pty path per simulated device, in order."""
        return [self._port(i).slave_path for i in range(1, self._device_count + 1)]

    def set_faults(
        self, bit_error_rate: float = 0.0, drop_rate: float = 0.0, garbage_rate: float = 0.0
    ) -> None:
        """Replace the fault rates of the bus wire (all 0, the default, is a clean bus)."""
        self._set_faults(["bus"], Faults(bit_error_rate, drop_rate, garbage_rate))

    def clear_faults(self) -> None:
        self.set_faults()

    def inject_garbage(self, n: int, *, data: bytes | None = None) -> None:
        """Noise on the bus: ``n`` random characters every port hears (and that collide)."""
        self._inject("bus", data if data is not None else self._rng.randbytes(n))


def _wires_for(direction: Direction) -> list[str]:
    if direction == "both":
        return [TO_HOST, TO_DEVICE]
    if direction in (TO_HOST, TO_DEVICE):
        return [direction]
    raise ValueError(f"direction must be 'both', 'to_host' or 'to_device', not {direction!r}")


__all__ = [
    "BITS_PER_CHAR",
    "Faults",
    "LineStats",
    "Rs485Bus",
    "SerialLine",
    "char_time",
]
