"""Black-box harness: the real ``compound-gw run`` as a subprocess, watched like systemd would.

    gw = DaemonProcess(config_path)
    gw.start()                 # returns once the daemon sent READY=1 on our NOTIFY_SOCKET
    gw.kill()                  # SIGKILL, as a power cut or OOM would
    gw.start()                 # and again
    assert gw.terminate() == 0 # SIGTERM: must exit 0, journal closed

Readiness is the daemon's own systemd notification: the harness binds a datagram socket and
passes it as NOTIFY_SOCKET, exactly the contract of ``Type=notify``. The daemon's stderr goes
to a log file beside the config, shown in failures.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import IO

from hil_tests.orphans import die_with_parent

# Bounds, not speeds: a daemon starting or stopping on a busy 2-core machine can take seconds.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

# Every DaemonProcess made, so hil_tests/conftest.py can close what a failed test left running.
LIVE: weakref.WeakSet[DaemonProcess] = weakref.WeakSet()


class DaemonError(AssertionError):
    """The daemon did not behave: message carries the tail of its log."""


class DaemonProcess:
    """One gateway daemon under test."""

    def __init__(
        self,
        config_path: Path,
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.config_path = Path(config_path)
        self.env = env or {}
        self.log_path = log_path or self.config_path.with_name("daemon.log")
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.notifications: list[str] = []
        self._sock: socket.socket | None = None
        self._sock_dir: tempfile.TemporaryDirectory[str] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0
        LIVE.add(self)

    # ------------------------------------------------------------------ lifecycle

    def _open_notify_socket(self) -> str:
        self._close_notify_socket()
        # A short path: AF_UNIX paths are limited to 108 bytes.
        self._sock_dir = tempfile.TemporaryDirectory(prefix="gwn-")
        path = os.path.join(self._sock_dir.name, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        sock.bind(path)
        self._sock = sock
        return path

    def _close_notify_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._sock_dir is not None:
            self._sock_dir.cleanup()
            self._sock_dir = None

    def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Start the daemon and wait for READY=1."""
        if self.running:
            raise DaemonError("daemon already running")
        notify = self._open_notify_socket()
        env = {**os.environ, **self.env, "NOTIFY_SOCKET": notify, "PYTHONUNBUFFERED": "1"}
        env.pop("JOURNAL_STREAM", None)
        if self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open across restarts
        self._log.write(f"\n===== start {self.starts + 1} =====\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "run",
                "--config",
                str(self.config_path),
                *self.args,
            ],
            stdout=self._log,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=env,
            close_fds=True,
            preexec_fn=die_with_parent(),  # noqa: PLW1509 - prctl only, no Python state
        )
        self.starts += 1
        if not self.wait_for_notification("READY=1", timeout):
            self.kill()
            raise DaemonError(f"daemon not ready within {timeout} s\n{self.log_tail()}")

    def wait_for_notification(self, word: str, timeout: float) -> bool:
        assert self._sock is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(word in n.split("\n") for n in self.notifications):
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return False
            self._sock.settimeout(min(0.2, max(0.01, deadline - time.monotonic())))
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            self.notifications.append(data.decode(errors="replace"))
        return any(word in n.split("\n") for n in self.notifications)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything, as in a power cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.notifications.clear()

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; returns the exit code (DaemonError if it overruns ``timeout``)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill()
            raise DaemonError(f"daemon ignored SIGTERM for {timeout} s\n{self.log_tail()}") from exc
        self.notifications.clear()
        return rc

    def close(self) -> None:
        """Always safe: kills a daemon still running, closes sockets and the log."""
        self.kill()
        self._close_notify_socket()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def child_pids(parent: int | None = None) -> set[int]:
    """Live (non-zombie) child processes of ``parent`` (default: this process), from /proc."""
    parent = os.getpid() if parent is None else parent
    out: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and int(fields[1]) == parent and fields[0] != "Z":
            out.add(int(entry))
    return out


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def fd_targets(fds: set[int]) -> dict[int, str]:
    out = {}
    for fd in fds:
        with contextlib.suppress(OSError):
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return out


def write_config(folder: Path, text: str) -> Path:
    """Write a gateway config (TOML text) into ``folder`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "gateway.toml"
    path.write_text(text)
    return path


def minimal_config(gateway_id: str = "gw-hil", extra: str = "", runtime_dir: str = "run") -> str:
    """A config whose data and runtime folders sit beside the file (runtime: any path)."""
    return (
        "[gateway]\n"
        f'id = "{gateway_id}"\n'
        'compound = "HIL Compound"\n'
        'township = "Bench"\n'
        'data_dir = "data"\n'
        f'runtime_dir = "{runtime_dir}"\n'
        "[supervisor]\n"
        "backoff_initial_s = 0.05\n"
        "backoff_max_s = 1.0\n"
        # Loopback only, and a free port each, so parallel test daemons never collide.
        "[web]\n"
        'host = "127.0.0.1"\n'
        "port = 0\n" + extra
    )
