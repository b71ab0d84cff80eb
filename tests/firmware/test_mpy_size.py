"""Every node module compiles with mpy-cross; the total .mpy size and the heap a running
node needs are reported and held under budgets (see docs/checkpoint-node.md, "Budgets").
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.firmware._mpy import (
    FIGURES,
    HOST_SHIM,
    MPY_TESTS,
    NODE_MODULES,
    run_mpy,
)

# .mpy bytes copied to the node.  Imported bytecode lives in the GC heap (unless
# frozen), so this is also RAM: 40 KiB is under a quarter of the ~150-190 KiB heap an
# ESP32-C3 or RP2040 MicroPython build leaves free, with room for NTAG 424 DNA support.
MPY_BUDGET_BYTES = 40 * 1024
# Heap a running node needs when its modules are loaded as .mpy files (bytecode in
# RAM) plus the objects of a node that has done a Secure Channel handshake, measured in
# the 32-bit WebAssembly MicroPython with the pure-Python AES (a real node uses
# cryptolib and saves ~6 KiB).  100 KiB is about half of the ~190 KiB heap an RP2040
# build leaves free; freezing the modules (manifest.py) takes the bytecode share
# (~52 KiB) out of the heap, which is the recommended build for the ESP32-C3.
RAM_BUDGET_BYTES = 100 * 1024


def _mpy_cross(src: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), str(src)],
                          capture_output=True, text=True, check=False)


def test_every_module_compiles_and_fits_budget(tmp_path: Path) -> None:
    sizes = {}
    for src in NODE_MODULES:
        out = tmp_path / (src.stem + ".mpy")
        proc = _mpy_cross(src, out)
        assert proc.returncode == 0, f"{src.name}: {proc.stderr}"
        sizes[src.name] = out.stat().st_size
    total = sum(sizes.values())
    FIGURES["mpy_total"] = total
    FIGURES["mpy_budget"] = MPY_BUDGET_BYTES
    FIGURES["mpy_largest"] = max(sizes.items(), key=lambda kv: kv[1])
    print(f"firmware .mpy total: {total} bytes in {len(sizes)} modules "
          f"(budget {MPY_BUDGET_BYTES})")
    assert {"osdp_pd.py", "osdp_sc.py", "aes128.py", "tapstore.py", "pn532.py",
            "main.py", "boot.py"} <= set(sizes)
    assert total <= MPY_BUDGET_BYTES


def test_host_shim_compiles(tmp_path: Path) -> None:
    for src in sorted(HOST_SHIM.glob("*.py")):
        assert _mpy_cross(src, tmp_path / (src.stem + ".mpy")).returncode == 0, src


def test_mpy_cross_rejects_cpython_only_syntax(tmp_path: Path) -> None:
    """The gate is real: a construct MicroPython cannot compile fails the build."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(a, /, b):\n    return a\nx = [y := 1]\nasync def g():\n"
                   "    async with a as b:\n        pass\n" "match x:\n    case 1:\n        pass\n")
    assert _mpy_cross(bad, tmp_path / "bad.mpy").returncode != 0


def test_running_node_heap_fits_budget(tmp_path: Path) -> None:
    for src in NODE_MODULES:
        if src.name not in ("main.py", "boot.py"):
            assert _mpy_cross(src, tmp_path / (src.stem + ".mpy")).returncode == 0
    proc = run_mpy(MPY_TESTS / "t_ram.py", libs=[tmp_path, HOST_SHIM, MPY_TESTS])
    assert proc.returncode == 0, proc.stderr
    assert "MPY_LOADED True" in proc.stdout, proc.stdout
    assert "OTA_LOADED False" in proc.stdout, proc.stdout  # firmware_mpy/ota.py: heap note
    m = re.search(r"RAM_BYTES (\d+)", proc.stdout)
    assert m, proc.stdout
    ram = int(m.group(1))
    FIGURES["ram_import"] = int(re.search(r"IMPORT_BYTES (\d+)", proc.stdout).group(1))
    FIGURES["ram"] = ram
    FIGURES["ram_budget"] = RAM_BUDGET_BYTES
    print(f"running node heap: {ram} bytes (budget {RAM_BUDGET_BYTES})")
    assert 0 < ram <= RAM_BUDGET_BYTES
