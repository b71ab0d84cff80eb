"""A live checkpoint node (firmware in MicroPython/wasm, or the same code in CPython) on
a byte pipe, driven by libosdp's ControlPanel.  Used by the interop tests."""

from __future__ import annotations

import os
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

from osdp import Channel

from tests.firmware._mpy import (
    FIRMWARE,
    HARNESS,
    HOST_SHIM,
    MPY_TESTS,
    ROOT,
    have_wasm_runtime,
    node_binary,
)

# How long to wait for the node's next word: a bound, not a speed. WebAssembly MicroPython on a
# busy 2-core machine can take seconds to answer; only a node that never answers fails.
EXPECT_S = 60.0


class PipeChannel(Channel):
    """libosdp channel over two pipe file descriptors; non-blocking reads."""

    def __init__(self, rfd: int, wfd: int) -> None:
        super().__init__()
        self.rfd = rfd
        self.wfd = wfd
        os.set_blocking(rfd, False)

    def read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self.rfd, max_bytes)
        except (BlockingIOError, OSError):
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return os.write(self.wfd, buf)
        except (BrokenPipeError, OSError):
            return 0

    def flush(self) -> None:
        return None


class LiveNode:
    """The firmware PD in a child process: MicroPython (wasm, default) or CPython."""

    def __init__(self, flash_dir: Path, runtime: str = "micropython") -> None:
        self.flash_dir = flash_dir
        ctl_in_r, self._ctl_in_w = os.pipe()
        self._ctl_out_r, ctl_out_w = os.pipe()
        if runtime == "micropython":
            node = node_binary()
            assert node is not None and have_wasm_runtime(), "run `make bootstrap`"
            cmd = [node, str(HARNESS), "--serve", "--ctl-in", str(ctl_in_r), "--ctl-out",
                   str(ctl_out_w), "--flash-dir", str(flash_dir)]
            for lib in (FIRMWARE, HOST_SHIM, MPY_TESTS):
                cmd += ["--lib", str(lib)]
            cmd.append(str(MPY_TESTS / "serve_pd.py"))
        else:
            cmd = [sys.executable, str(Path(__file__).with_name("serve_pd_cpython.py")),
                   str(ctl_in_r), str(ctl_out_w), str(flash_dir)]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(ctl_in_r, ctl_out_w), cwd=ROOT,
        )
        os.close(ctl_in_r)
        os.close(ctl_out_w)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.channel = PipeChannel(self.proc.stdout.fileno(), self.proc.stdin.fileno())
        self.events: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read_ctl, daemon=True)
        self._reader.start()

    def _read_ctl(self) -> None:
        buf = b""
        while True:
            r, _, _ = select.select([self._ctl_out_r], [], [], 0.5)
            if not r:
                if self.proc.poll() is not None:
                    break
                continue
            chunk = os.read(self._ctl_out_r, 4096)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.events.put(line.decode())

    def send(self, line: str) -> None:
        os.write(self._ctl_in_w, (line + "\n").encode())

    def expect(self, prefix: str, timeout: float = EXPECT_S) -> str:
        """Next control event starting with prefix (others are skipped)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no '{prefix}' event from the node in {timeout}s; "
                                     f"stderr: {self.stderr_tail()}")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if ev.startswith(prefix):
                return ev

    def stderr_tail(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def stop(self) -> int:
        """Ask the node to quit (its /flash is saved), then reap the process."""
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=EXPECT_S)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=5)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        os.close(self._ctl_in_w)
        self._reader.join(timeout=5)
        os.close(self._ctl_out_r)
        return self.proc.returncode
