"""Starting a slot's gateway and judging its first start (the process boundary of updates).

A version passes its first start when, within ``ready_timeout_s``:

1. its process sends ``READY=1`` on the notify socket (the ``Type=notify`` contract the daemon
   already keeps, see gateway/daemon.py ``sd_notify``),
2. it is still alive ``settle_s`` after that (a version that crashes right after READY fails),
3. its self-check command (``<slot>/bin/compound-gw update selfcheck`` by default) exits 0.

:class:`SpawnRunner` starts the slot's launcher itself, in its own session, and keeps its pid in
a file so a later run of the updater (after a power cut) can stop it; its output goes to
``run.log`` beside the pid file. It is what the tests and a
bench use. On a gateway under systemd, :class:`SystemdRunner` asks systemd instead (systemd owns
the notify socket; ``systemctl start`` of a ``Type=notify`` unit returns after READY).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DEFAULT_COMMAND = ("bin/compound-gw", "run")
DEFAULT_CHECK = ("bin/compound-gw", "update", "selfcheck")


@dataclass(frozen=True)
class StartResult:
    ok: bool
    reason: str  # "" when ok; else "no_ready" | "exited" | "selfcheck_failed" | "start_failed"
    detail: str = ""


class Runner(Protocol):
    def stop(self) -> None: ...

    def start(self, slot: Path) -> StartResult: ...


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is not alive.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[-1][:1] != b"Z"
    except OSError:
        return False


def _run_check(
    slot: Path, check: Sequence[str], timeout: float, env: dict[str, str]
) -> tuple[bool, str]:
    try:
        proc = subprocess.run(
            [str(slot / check[0]), *check[1:]],
            cwd=slot,
            env=env,
            capture_output=True,
            timeout=max(timeout, 0.1),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, "self-check timed out"
    except OSError as exc:
        return False, f"self-check could not start: {exc.strerror}"
    tail = (proc.stdout + proc.stderr).decode("utf-8", "replace").strip()[-300:]
    return proc.returncode == 0, f"exit {proc.returncode}: {tail}" if proc.returncode else ""


class SpawnRunner:
    """Start ``<slot>/<command>`` ourselves, wait for READY on our own notify socket."""

    def __init__(
        self,
        pid_file: Path,
        *,
        ready_timeout_s: float = 120.0,
        settle_s: float = 3.0,
        command: Sequence[str] = DEFAULT_COMMAND,
        check: Sequence[str] | None = DEFAULT_CHECK,
        stop_timeout_s: float = 20.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.pid_file = pid_file
        self.ready_timeout_s = ready_timeout_s
        self.settle_s = settle_s
        self.command = tuple(command)
        self.check = tuple(check) if check else None
        self.stop_timeout_s = stop_timeout_s
        self.env = env or {}

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid > 1 and _alive(pid) else None

    def stop(self) -> None:
        """SIGTERM the running gateway (its whole session), SIGKILL after the timeout."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        for sig, wait in ((signal.SIGTERM, self.stop_timeout_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _alive(pid):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.05)
            if not _alive(pid):
                break
        self.pid_file.unlink(missing_ok=True)

    def start(self, slot: Path) -> StartResult:
        with tempfile.TemporaryDirectory(prefix="cgw-notify-") as tmp:
            path = os.path.join(tmp, "notify")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(path)
                return self._start(slot, sock, path)
            finally:
                sock.close()

    def _start(self, slot: Path, sock: socket.socket, notify: str) -> StartResult:
        env = {**os.environ, **self.env, "NOTIFY_SOCKET": notify}
        # The gateway outlives the updater: it must not hold the updater's output open.
        log_path = self.pid_file.with_name(self.pid_file.stem + ".log")
        try:
            with open(log_path, "ab") as log_file:
                proc = subprocess.Popen(
                    [str(slot / self.command[0]), *self.command[1:]],
                    cwd=slot,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    start_new_session=True,
                )
        except OSError as exc:
            return StartResult(False, "start_failed", exc.strerror or str(exc))
        tmp = self.pid_file.with_name(self.pid_file.name + ".tmp")
        tmp.write_text(f"{proc.pid}\n")
        os.replace(tmp, self.pid_file)
        deadline = time.monotonic() + self.ready_timeout_s
        ready = False
        while not ready and time.monotonic() < deadline:
            if proc.poll() is not None:
                return StartResult(False, "exited", f"exit {proc.returncode} before READY")
            sock.settimeout(min(0.2, max(deadline - time.monotonic(), 0.01)))
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            ready = b"READY=1" in data.split(b"\n")
        if not ready:
            return StartResult(False, "no_ready", f"no READY=1 within {self.ready_timeout_s:g} s")
        settle_until = min(time.monotonic() + self.settle_s, deadline)
        while time.monotonic() < settle_until:
            if proc.poll() is not None:
                return StartResult(False, "exited", f"exit {proc.returncode} after READY")
            time.sleep(0.05)
        if self.check:
            ok, detail = _run_check(
                slot, self.check, deadline - time.monotonic(), {**os.environ, **self.env}
            )
            if not ok:
                return StartResult(False, "selfcheck_failed", detail)
        if proc.poll() is not None:
            return StartResult(False, "exited", f"exit {proc.returncode} after self-check")
        return StartResult(True, "")


class SystemdRunner:
    """Start the gateway through systemd (``Type=notify``): systemd owns the notify socket.

    ``systemctl start`` returns once the unit sent READY=1 (or failed, or hit its own
    TimeoutStartSec); after that the unit must stay ``active`` for ``settle_s`` (with
    ``Restart=`` a crash shows as ``activating``/``failed``) and the self-check must pass, all
    within ``ready_timeout_s``. The unit is expected to start
    ``<root>/current/bin/compound-gw run``, so it starts the slot ``current`` names.
    """

    def __init__(
        self,
        unit: str = "compound-gw.service",
        *,
        systemctl: str = "systemctl",
        ready_timeout_s: float = 120.0,
        settle_s: float = 3.0,
        check: Sequence[str] | None = DEFAULT_CHECK,
        env: dict[str, str] | None = None,
    ) -> None:
        self.unit = unit
        self.systemctl = systemctl
        self.ready_timeout_s = ready_timeout_s
        self.settle_s = settle_s
        self.check = tuple(check) if check else None
        self.env = env or {}

    def _ctl(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.systemctl, *args],
            capture_output=True,
            text=True,
            timeout=max(timeout, 0.1),
            check=False,
        )

    def is_active(self) -> bool:
        try:
            return self._ctl("is-active", self.unit, timeout=30).stdout.strip() == "active"
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        try:
            self._ctl("stop", self.unit, timeout=120)
        except subprocess.TimeoutExpired:
            raise OSError("systemctl stop timed out") from None

    def start(self, slot: Path) -> StartResult:
        deadline = time.monotonic() + self.ready_timeout_s
        try:
            proc = self._ctl("start", self.unit, timeout=self.ready_timeout_s)
        except subprocess.TimeoutExpired:
            return StartResult(False, "no_ready", f"no READY=1 within {self.ready_timeout_s:g} s")
        except OSError as exc:
            return StartResult(False, "start_failed", exc.strerror or str(exc))
        if proc.returncode != 0:
            try:
                result = self._ctl("show", "-p", "Result", "--value", self.unit).stdout.strip()
            except subprocess.TimeoutExpired:
                result = ""
            reason = "no_ready" if result == "timeout" else "exited"
            return StartResult(False, reason, (proc.stderr or result).strip()[-300:])
        settle_until = min(time.monotonic() + self.settle_s, deadline)
        while True:
            if not self.is_active():
                return StartResult(False, "exited", "the unit left the active state after READY")
            if time.monotonic() >= settle_until:
                break
            time.sleep(0.2)
        if self.check:
            ok, detail = _run_check(
                slot, self.check, deadline - time.monotonic(), {**os.environ, **self.env}
            )
            if not ok:
                return StartResult(False, "selfcheck_failed", detail)
        return StartResult(True, "")
