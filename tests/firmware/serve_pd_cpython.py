"""Run tests/firmware/mpy/serve_pd.py -- the same node code the wasm harness runs --
under CPython, with the machine shim, for the interop tests' CPython variant.

    python serve_pd_cpython.py CTL_IN_FD CTL_OUT_FD FLASH_DIR

stdin/stdout are the OSDP byte pipe, as with run_mpy.mjs --serve.
"""

from __future__ import annotations

import ast
import asyncio
import binascii
import os
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> int:
    ctl_in, ctl_out, flash = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    sys.path[:0] = [str(ROOT / "firmware_mpy"), str(ROOT / "firmware_mpy" / "host"),
                    str(ROOT / "firmware_mpy" / "host" / "cpython"), str(HERE / "mpy")]
    os.set_blocking(0, False)
    os.set_blocking(ctl_in, False)
    pending = {"ctl": b""}

    def read() -> str:
        try:
            return binascii.hexlify(os.read(0, 4096)).decode()
        except BlockingIOError:
            return ""

    def write(hexstr: str) -> int:
        data = binascii.unhexlify(hexstr)
        os.write(1, data)
        return len(data)

    def ctl_read() -> str:
        try:
            pending["ctl"] += os.read(ctl_in, 4096)
        except BlockingIOError:
            pass
        if b"\n" not in pending["ctl"]:
            return ""
        line, pending["ctl"] = pending["ctl"].split(b"\n", 1)
        return line.decode()

    def ctl_write(text: str) -> int:
        os.write(ctl_out, (text + "\n").encode())
        return 0

    hostio = types.ModuleType("hostio")
    hostio.read = read  # type: ignore[attr-defined]
    hostio.write = write  # type: ignore[attr-defined]
    hostio.ctl_read = ctl_read  # type: ignore[attr-defined]
    hostio.ctl_write = ctl_write  # type: ignore[attr-defined]
    hostio.FLASH = flash  # type: ignore[attr-defined]
    sys.modules["hostio"] = hostio
    # MicroPython's asyncio has sleep_ms; CPython's does not.
    asyncio.sleep_ms = lambda ms: asyncio.sleep(ms / 1000)  # type: ignore[attr-defined]

    src = (HERE / "mpy" / "serve_pd.py").read_text()
    code = compile(src, "serve_pd.py", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    coro = eval(code, {"__name__": "serve_pd"})  # our own file, compiled above
    if coro is not None:
        asyncio.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
