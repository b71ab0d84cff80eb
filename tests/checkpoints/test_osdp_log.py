"""libosdp's own log goes through our logger, with levels and a rate limit (issue 16).

Before, the library printed raw ``[ERROR] ... Going offline for 300 seconds`` lines straight to
stderr, about one a second per refused reader, with no priority prefix.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from drivers.checkpoints import ReaderStatus
from drivers.osdp_bus import (
    LIBOSDP_LOG_BURST,
    LIBOSDP_LOG_WINDOW_S,
    BusSpec,
    LibosdpLog,
    OsdpBus,
    ReaderSpec,
)
from hil_tests.line import Rs485Bus
from hil_tests.sims.osdp_reader import SimReader

BAUD = 115200
KEY = bytes(range(16))


async def test_refused_reader_logs_through_our_logger_not_raw_stderr(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="drivers.osdp_bus")
    line = Rs485Bus(host_link=tmp_path / "tty", baud=BAUD, devices=1).start()
    sim = SimReader(line.device_paths[0], 1, bytes(b ^ 0x5A for b in KEY), baud=BAUD).start()
    bus = OsdpBus(BusSpec("north", line.host_path, BAUD, (ReaderSpec(1, KEY),), "error"))
    try:
        await bus.start()

        async def refused() -> None:
            async for item in bus.events():
                if isinstance(item, ReaderStatus) and item.reason == "secure_channel_refused":
                    return

        await asyncio.wait_for(refused(), 30)
        await asyncio.sleep(3.0)  # several more refusals and revivals
    finally:
        await bus.aclose()
        sim.stop()
        line.stop()
    raw = capfd.readouterr().err
    assert "[ERROR]" not in raw and "Going offline" not in raw, (
        f"libosdp wrote to stderr itself: {raw[:500]}"
    )
    mine = [r for r in caplog.records if r.name == "drivers.osdp_bus.libosdp"]
    assert mine, "no libosdp line reached our logger"
    assert all(r.levelno <= logging.WARNING for r in mine)  # its errors are link events here
    assert all(r.getMessage().startswith("libosdp bus north: ") for r in mine)
    shapes: dict[str, int] = {}
    for r in mine:
        shape = "".join(c for c in r.getMessage().split(" (")[0] if not c.isdigit())
        shapes[shape] = shapes.get(shape, 0) + 1
    assert max(shapes.values()) <= LIBOSDP_LOG_BURST, shapes


def test_rate_limit_holds_back_repeats_and_says_how_many() -> None:
    now = [0.0]
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("test.libosdp.rate")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Keep())
    log = LibosdpLog("north", "warning", clock=lambda: now[0], logger=logger)
    for i in range(61):  # a minute and one more of "going offline" once a second
        log.line(3, f"Going offline for 300 seconds; Was in 'Online' state #{i}".encode())
        now[0] += 1.0
    log.line(6, b"CP Setup complete")  # INFO is below the bus's level: dropped
    log.line(3, b"\xff\xfe not utf-8")  # never raises
    assert [r.levelno for r in records[:LIBOSDP_LOG_BURST]] == [logging.WARNING] * 3
    shown_first_minute = [r for r in records if "Going offline" in r.getMessage()]
    assert len(shown_first_minute) == LIBOSDP_LOG_BURST + 1  # the window rolled over once
    assert "similar lines held back" in shown_first_minute[-1].getMessage()
    assert log.suppressed == 61 - LIBOSDP_LOG_BURST - 1
    assert not any("Setup complete" in r.getMessage() for r in records)
    assert LIBOSDP_LOG_WINDOW_S == 60.0
    log.line(3, None)  # an empty line from C: ignored
