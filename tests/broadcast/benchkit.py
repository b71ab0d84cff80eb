"""Shared bench pieces for the broadcast HIL tests and bench/relay_latency.py.

    with serial_line(baud=9600) as line:
        async with RelayBoardSim(line.device_path, boards):
            ...open line.host_path with the driver...

``serial_line`` prefers the bench's line emulator (``hil_tests.line.SerialLine``: paced,
faults, stable symlink) and falls back to the small :class:`PtyLine` when it is absent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.broadcast.ptyline import PtyLine

try:  # the bench's own emulator, when present
    from hil_tests.line import SerialLine
except ImportError:  # pragma: no cover - only before the line emulator lands
    SerialLine = None  # type: ignore[assignment,misc]

BAUD = 9600


@contextlib.contextmanager
def serial_line(
    baud: int = BAUD, *, paced: bool = True, host_link: Path | None = None
) -> Iterator[Any]:
    """A virtual null-modem: ``.host_path`` for the gateway, ``.device_path`` for the sim."""
    if SerialLine is not None:
        line: Any = SerialLine(host_link=host_link, baud=baud, paced=paced).start()
    else:
        line = PtyLine(baud=baud, paced=paced).start()
    try:
        yield line
    finally:
        line.stop()


def char_time(baud: int) -> float:
    """Seconds per character on an 8N1 line (10 bits)."""
    return 10.0 / baud


def t35(baud: int) -> float:
    """Modbus RTU inter-frame gap: 3.5 characters (fixed 1.75 ms above 19200 baud)."""
    return 3.5 * char_time(baud) if baud <= 19200 else 0.00175


def transaction_minimum(request_bytes: int, response_bytes: int, baud: int) -> float:
    """The bus minimum of one transaction: request + response wire time + 2 x t3.5."""
    return (request_bytes + response_bytes) * char_time(baud) + 2 * t35(baud)


def board_config(profile: str, address: int = 1, name: str = "main") -> dict[str, Any]:
    return {"name": name, "address": address, "profile": profile}


def section_data(
    port: str,
    boards: list[dict[str, Any]],
    zones: dict[int, tuple[str, int]],
    *,
    amplifier: tuple[str, int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``[broadcast]`` table (as TOML would give it) for one bus."""
    data: dict[str, Any] = {
        "ports": [{"port": port, "baud": BAUD, "boards": boards}],
        "zones": [{"number": n, "board": b, "channel": ch} for n, (b, ch) in sorted(zones.items())],
        "warmup_s": 0.2,
        "hardware_grace_s": 1.0,
        "poll_interval_s": 60.0,
        **extra,
    }
    if amplifier is not None:
        data["amplifier"] = {"board": amplifier[0], "channel": amplifier[1]}
    return data
