"""Helpers shared by the firmware tests: where things are, how to run MicroPython."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware_mpy"
HOST_SHIM = FIRMWARE / "host"
CPYTHON_SHIM = HOST_SHIM / "cpython"
MPY_TESTS = Path(__file__).resolve().parent / "mpy"
HARNESS = Path(__file__).resolve().parent / "run_mpy.mjs"
WASM_PKG = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"

# Modules that go onto a node (the host shim and tests do not).
NODE_MODULES = sorted(
    p for p in FIRMWARE.glob("*.py") if p.name != "manifest.py"
)


def node_binary() -> str | None:
    return shutil.which("node")


def have_wasm_runtime() -> bool:
    return node_binary() is not None and (WASM_PKG / "micropython.mjs").exists()


def run_mpy(*scripts: Path, timeout: float = 240,
            libs: list[Path] | None = None) -> subprocess.CompletedProcess[str]:
    """Run scripts in real MicroPython (one fresh interpreter each, /flash carried over)."""
    node = node_binary()
    # No skip: these are acceptance tests, and a skipped one looks like a pass.
    assert node is not None and have_wasm_runtime(), (
        "Node.js or the npm package @micropython/micropython-webassembly-pyscript is "
        "missing: run `make bootstrap`")
    cmd = [node, str(HARNESS)]
    for lib in libs or [FIRMWARE, HOST_SHIM, MPY_TESTS]:
        cmd += ["--lib", str(lib)]
    cmd += [str(s) for s in scripts]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          check=False)

# Figures measured by the tests, printed at the end of the run by conftest.py.
FIGURES: dict[str, object] = {}
