"""The firmware is its own dialect with its own ruff settings (firmware_mpy/ruff.toml);
the root configuration excludes it, so this test is where it gets linted."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware._mpy import FIRMWARE

RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.skipif(not RUFF.exists() and shutil.which("ruff") is None, reason="ruff missing")
def test_firmware_passes_its_ruff_config() -> None:
    ruff = str(RUFF) if RUFF.exists() else "ruff"
    proc = subprocess.run([ruff, "check", "--config", str(FIRMWARE / "ruff.toml"), str(FIRMWARE)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_firmware_shares_no_imports_with_the_gateway() -> None:
    """Issue 5: the node firmware is independent of the gateway code."""
    for src in FIRMWARE.rglob("*.py"):
        text = src.read_text()
        for banned in ("import gateway", "from gateway", "import drivers", "from drivers",
                       "import wire", "from wire", "import centre", "from centre"):
            assert banned not in text, f"{src.name}: {banned}"


def test_sans_io_cores_do_not_touch_io() -> None:
    """Protocol and decision modules take bytes and time as arguments."""
    for name in ("osdp_frame.py", "osdp_sc.py", "osdp_pd.py", "indicator.py", "reports.py",
                 "provision.py"):
        text = (FIRMWARE / name).read_text()
        for banned in ("import machine", "import time", "import asyncio", "import select",
                       "import socket"):
            assert banned not in text, f"{name}: {banned}"


def test_docs_cover_console_commands_and_report_format() -> None:
    """docs/checkpoint-node.md is the contract with installers and the gateway."""
    import re

    from tests.firmware._mpy import ROOT

    doc = (ROOT / "docs" / "checkpoint-node.md").read_text()
    prov = (FIRMWARE / "provision.py").read_text()
    for cmd in re.findall(r"^#   (set \w+|show|save|reboot)", prov, flags=re.MULTILINE):
        assert cmd in doc, f"console command '{cmd}' is not documented"
    for field in ("tap number", "age in seconds", "UID length", "lower bound",
                  "osdp_RAW", "osdp_MFGREP", "stored, not yet delivered"):
        assert field in doc, field
    # the MFGREP layout in reports.py is the one documented: 13 header bytes after vendor
    rep = (FIRMWARE / "reports.py").read_text()
    assert '"<BBIIBBB"' in rep and "| 16 | n | UID |" in doc
