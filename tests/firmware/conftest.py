"""Prints the firmware figures (mpy size, node heap) at the end of the test run."""

from __future__ import annotations

import pytest

from tests.firmware._mpy import FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    tr = terminalreporter
    tr.section("checkpoint node firmware")
    if "mpy_total" in FIGURES:
        name, size = FIGURES["mpy_largest"]  # type: ignore[misc]
        tr.write_line(
            f".mpy total {FIGURES['mpy_total']} bytes (budget {FIGURES['mpy_budget']}); "
            f"largest {name} {size} bytes"
        )
    if "ram" in FIGURES:
        tr.write_line(f"running node heap {FIGURES['ram']} bytes, of which .mpy modules "
                      f"{FIGURES['ram_import']} (budget {FIGURES['ram_budget']}), "
                      "measured in MicroPython")
