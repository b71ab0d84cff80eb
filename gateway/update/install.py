"""A/B install with a persisted state machine and automatic rollback.

Layout under the update root (default ``/opt/compound-gw``)::

    a/, b/                 two slots; a slot is complete when a/.update/complete exists
    a/.update/metadata.json, metadata.sig   the verified metadata the slot was built from
    current -> a           the running version (systemd starts current/bin/compound-gw run)
    staging/               the downloaded, verified copy of a bundle
    update-state.json      the state machine and the trusted installed release (atomic writes)

Steps (each persisted before it starts, with fsync and rename)::

    idle -> downloading -> downloaded -> unpacking -> unpacked -> switching -> switched
         -> starting -> idle (installed)   or   -> idle (rolled_back: link switched back)

:meth:`Installer.recover` runs first in every command (and, in the field, before the gateway
starts): an interrupted install before ``switching`` leaves ``current`` untouched and discards
the half-made slot; one at or after ``switching`` switches ``current`` back to the previous
complete slot. Either way ``current`` points to a complete, verified slot, which then starts.
The installed release only advances, together with ``step = idle``, in one atomic write after
the new version passed its first start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.errors import GatewayError
from gateway.update import bundle as b
from gateway.update.bundle import Metadata, UpdateRefused
from gateway.update.runner import Runner

log = logging.getLogger(__name__)

SLOTS = ("a", "b")
STATE_NAME = "update-state.json"
STEPS = (
    "idle",
    "downloading",
    "downloaded",
    "unpacking",
    "unpacked",
    "switching",
    "switched",
    "starting",
)
BEFORE_SWITCH = {"downloading", "downloaded", "unpacking", "unpacked"}
MARKER_DIR = ".update"
PACKAGED_DIR = "venv"  # the version packaging/install.sh put in place (no slot, no metadata)
WHEELS_DIR = "wheels"
VENV_DIR = "venv"
VENV_TIMEOUT_S = 900.0
VENV_LOG_MAX = 2000

# A test (hil_tests/test_update_kill.py) names a step here to make the installer print each step
# and pause after persisting the named one, so it can SIGKILL it there. Never set in the field.
STEP_PAUSE_ENV = "COMPOUND_GW_UPDATE_STEP_PAUSE"

Record = Callable[[str, dict[str, Any]], None]


class UpdateStateError(GatewayError):
    """The update root is unusable (no complete slot, unreadable state) or busy.

    ``code``: ``busy`` (another update command holds the lock) or ``broken`` (needs a person).
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason, code=code)
        self.code = code


@dataclass(frozen=True)
class Outcome:
    result: str  # "installed" | "rolled_back" | "failed" (no previous version to go back to)
    release: int
    version: str
    slot: str
    reason: str = ""
    detail: str = ""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _empty_state() -> dict[str, Any]:
    return {
        "step": "idle",
        "installed_release": 0,
        "installed_version": "",
        "failed_releases": [],
        "target": None,
        "previous_slot": None,
        "last_result": None,
    }


class Installer:
    """Installs verified bundles into the inactive slot of ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        public_key: Ed25519PublicKey,
        hardware: str,
        runner: Runner,
        record: Record,
        clock: Callable[[], float] = time.time,
        python: str = sys.executable,
    ) -> None:
        self.root = root
        self.python = python
        self.public_key = public_key
        self.hardware = hardware
        self.runner = runner
        self.record = record
        self.clock = clock
        self.state_path = root / STATE_NAME
        self.current_link = root / "current"
        self.staging = root / "staging"

    # ------------------------------------------------------------------ state

    def load_state(self) -> dict[str, Any]:
        try:
            data = b.read_capped(self.state_path, 1024 * 1024)
        except UpdateRefused as exc:
            if exc.code == "missing_file" and not self.state_path.exists():
                return _empty_state()
            raise UpdateStateError("broken", f"{self.state_path}: {exc.reason}") from None
        try:
            state = json.loads(data)
        except ValueError:
            raise UpdateStateError("broken", f"{self.state_path} is not JSON") from None
        if not isinstance(state, dict) or state.get("step") not in STEPS:
            raise UpdateStateError("broken", f"{self.state_path} has no valid step")
        state = {**_empty_state(), **state}
        target = state["target"]
        ok = (
            type(state["installed_release"]) is int
            and isinstance(state["installed_version"], str)
            and isinstance(state["failed_releases"], list)
            and all(type(r) is int for r in state["failed_releases"])
            and state["previous_slot"] in (None, *SLOTS)
            and (target is None or (isinstance(target, dict) and target.get("slot") in SLOTS))
            and (state["step"] == "idle" or target is not None)
            and (state["last_result"] is None or isinstance(state["last_result"], dict))
        )
        if not ok:
            raise UpdateStateError("broken", f"{self.state_path} has a value of the wrong type")
        return state

    def _save(self, state: dict[str, Any]) -> None:
        _write_json_atomic(self.state_path, state)

    def _step(self, state: dict[str, Any], step: str) -> None:
        state["step"] = step
        self._save(state)
        pause_at = os.environ.get(STEP_PAUSE_ENV)
        if pause_at:
            print(f"STEP {step}", flush=True)
            if pause_at == step:
                time.sleep(60)

    # ------------------------------------------------------------------ slots

    def current_slot(self) -> str | None:
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return None
        return target if target in SLOTS else None

    def slot_metadata(self, slot: str) -> Metadata | None:
        """The slot's metadata if the slot is complete (marker written last), else None."""
        marker = self.root / slot / MARKER_DIR
        if not (marker / "complete").is_file():
            return None
        try:
            return b.decode_metadata(b.read_capped(marker / b.METADATA_NAME, b.METADATA_MAX_BYTES))
        except UpdateRefused:
            return None

    def slot_verified(self, slot: str) -> bool:
        """Complete, signed by the pinned key, and every file matches its hash."""
        meta_dir = self.root / slot / MARKER_DIR
        meta = self.slot_metadata(slot)
        if meta is None:
            return False
        try:
            data, sig = b.read_signed(meta_dir)
            b.check_signature(self.public_key, data, sig)
        except UpdateRefused:
            return False
        return b.tree_matches(self.root / slot, meta)

    def _switch(self, slot: str) -> None:
        """Point ``current`` at ``slot`` atomically (rename of a temporary symlink)."""
        tmp = self.root / f".current.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        os.symlink(slot, tmp)
        os.replace(tmp, self.current_link)
        _fsync_dir(self.root)

    # ------------------------------------------------------------------ recovery

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One update command at a time on this root (refused, not queued)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "update.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UpdateStateError("busy", "another update command is running") from None
            yield
        finally:
            os.close(fd)

    def recover(self, *, start: bool = False) -> str | None:
        """Finish an interrupted install so ``current`` is a complete slot; say what was done.

        ``start``: start the version left in place when an update was undone after the switch
        (off when systemd starts the gateway next, as in ``ExecStartPre``).
        """
        with self.lock():
            return self._recover(start)

    def _recover(self, start: bool) -> str | None:
        state = self.load_state()
        step = state["step"]
        for leftover in self.root.glob(".current.tmp-*"):
            leftover.unlink(missing_ok=True)
        if step == "idle":
            return None
        target = state.get("target") or {}
        previous = state.get("previous_slot")
        new_slot = target.get("slot")
        done: str
        packaged = self.root / PACKAGED_DIR
        if (
            step not in BEFORE_SWITCH
            and previous is None
            and (packaged / "bin" / "compound-gw").is_file()
        ):
            # A first update cut off after its switch, before it was confirmed: back to the
            # version packaging installed (the unit starts it when there is no ``current``).
            self.runner.stop()
            self.current_link.unlink(missing_ok=True)
            _fsync_dir(self.root)
            if start:
                self.runner.start(packaged)
            done = "switched_back"
        elif step in BEFORE_SWITCH or previous is None:
            if previous is not None and self.current_slot() != previous:
                self._switch(previous)
            if step in BEFORE_SWITCH and new_slot in SLOTS and new_slot != previous:
                shutil.rmtree(self.root / new_slot, ignore_errors=True)
            done = "discarded"
        else:
            self.runner.stop()
            if self.slot_metadata(previous) is None:
                raise UpdateStateError("broken", f"previous slot {previous} is not complete")
            self._switch(previous)
            if start:
                self.runner.start(self.root / previous)
            done = "switched_back"
        shutil.rmtree(self.staging, ignore_errors=True)
        state.update(
            step="idle",
            target=None,
            last_result={
                "result": "interrupted",
                "step": step,
                "release": target.get("release"),
                "version": target.get("version"),
                "action": done,
                "time": self.clock(),
            },
        )
        self._save(state)
        self.record(
            "update.interrupted",
            {
                "step": step,
                "action": done,
                "release": target.get("release"),
                "version": target.get("version"),
            },
        )
        return done

    # ------------------------------------------------------------------ install

    def verify(self, bundle: Path) -> Metadata:
        """Verify a bundle's metadata against the trusted state; journal a refusal."""
        state = self.load_state()
        try:
            data, sig = b.read_signed(bundle)
            return b.verify_metadata(
                data,
                sig,
                self.public_key,
                now=self.clock(),
                hardware=self.hardware,
                installed_release=int(state["installed_release"]),
                failed_releases=frozenset(int(r) for r in state["failed_releases"]),
            )
        except UpdateRefused as exc:
            self._refused(exc, bundle)
            raise

    def _refused(self, exc: UpdateRefused, bundle: Path) -> None:
        payload = {"code": exc.code, "reason": exc.reason, "bundle": bundle.name}
        payload.update({k: v for k, v in exc.fields.items() if k != "code"})
        log.warning("update refused: %s (%s)", exc.code, exc.reason)
        self.record("update.refused", payload)

    def install(self, bundle: Path) -> Outcome:
        """Verify, stage, unpack, switch, start and confirm, or roll back. See the module doc."""
        with self.lock():
            return self._install(bundle)

    def _install(self, bundle: Path) -> Outcome:
        self._recover(start=True)
        meta = self.verify(bundle)
        state = self.load_state()
        previous = self.current_slot()
        if previous is not None and self.slot_metadata(previous) is None:
            previous = None  # a hand-made "current": nothing verified to go back to
        slot = "b" if previous == "a" else "a"
        state.update(
            target={"release": meta.release, "version": meta.version, "slot": slot},
            previous_slot=previous,
        )
        self.record(
            "update.started",
            {"release": meta.release, "version": meta.version, "slot": slot},
        )
        try:
            self._step(state, "downloading")
            self._download(bundle, meta)
            self._step(state, "downloaded")
            self._step(state, "unpacking")
            self._unpack(slot, meta)
            self._step(state, "unpacked")
        except UpdateRefused as exc:
            self._refused(exc, bundle)
            shutil.rmtree(self.root / slot, ignore_errors=True)
            shutil.rmtree(self.staging, ignore_errors=True)
            state.update(step="idle", target=None)
            self._save(state)
            raise
        self.runner.stop()
        self._step(state, "switching")
        self._switch(slot)
        self._step(state, "switched")
        self._step(state, "starting")
        result = self.runner.start(self.root / slot)
        if result.ok:
            state.update(
                step="idle",
                target=None,
                installed_release=meta.release,
                installed_version=meta.version,
                last_result={
                    "result": "installed",
                    "release": meta.release,
                    "version": meta.version,
                    "time": self.clock(),
                },
            )
            self._save(state)
            self.record(
                "update.installed",
                {"release": meta.release, "version": meta.version, "slot": slot},
            )
            return Outcome("installed", meta.release, meta.version, slot)
        return self._roll_back(state, meta, slot, previous, result.reason, result.detail)

    def _roll_back(
        self,
        state: dict[str, Any],
        meta: Metadata,
        slot: str,
        previous: str | None,
        reason: str,
        detail: str,
    ) -> Outcome:
        self.runner.stop()
        failed = sorted({*(int(r) for r in state["failed_releases"]), meta.release})[-100:]
        payload = {
            "release": meta.release,
            "version": meta.version,
            "reason": reason,
            "detail": detail,
        }
        if previous is None:
            # No earlier slot: the version packaging installed (``<root>/venv``, which the
            # unit starts when there is no ``current``) is what goes back into service.
            packaged = self.root / PACKAGED_DIR
            fall_back = (packaged / "bin" / "compound-gw").is_file()
            if fall_back:
                self.current_link.unlink(missing_ok=True)
                _fsync_dir(self.root)
            state.update(step="idle", target=None, failed_releases=failed)
            state["last_result"] = {"result": "failed", **payload, "time": self.clock()}
            self._save(state)
            if fall_back:
                payload["previous_started"] = self.runner.start(packaged).ok
            self.record("update.failed", payload)
            return Outcome("failed", meta.release, meta.version, slot, reason, detail)
        self._switch(previous)
        state.update(step="idle", target=None, failed_releases=failed)
        state["last_result"] = {"result": "rolled_back", **payload, "time": self.clock()}
        self._save(state)
        back = self.runner.start(self.root / previous)
        payload["previous_started"] = back.ok
        self.record("update.rolled_back", payload)
        return Outcome("rolled_back", meta.release, meta.version, previous, reason, detail)

    def _download(self, bundle: Path, meta: Metadata) -> None:
        """Copy the verified metadata and every named file into staging/ (capped, hashed)."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        data, sig = b.read_signed(bundle)
        b.check_signature(self.public_key, data, sig)
        if b.decode_metadata(data) != meta:  # the file changed since it was verified
            raise UpdateRefused("bad_signature", "metadata changed during the download")
        (self.staging / b.METADATA_NAME).write_bytes(data)
        (self.staging / b.SIGNATURE_NAME).write_bytes(sig or b"")
        for entry in meta.files:
            b.copy_verified(
                bundle / b.FILES_DIR / entry.path, self.staging / b.FILES_DIR / entry.path, entry
            )

    def _unpack(self, slot: str, meta: Metadata) -> None:
        """Build the slot from staging; the ``complete`` marker is written last."""
        dest = self.root / slot
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for entry in meta.files:
            b.copy_verified(self.staging / b.FILES_DIR / entry.path, dest / entry.path, entry)
        self._build_venv(dest, meta)
        marker = dest / MARKER_DIR
        marker.mkdir()
        for name in (b.METADATA_NAME, b.SIGNATURE_NAME):
            shutil.copyfile(self.staging / name, marker / name)
        for dirpath, _dirs, _files in os.walk(dest):
            _fsync_dir(Path(dirpath))
        with open(marker / "complete", "w") as f:
            f.write(f"{meta.release}\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(marker)
        shutil.rmtree(self.staging, ignore_errors=True)

    def _build_venv(self, dest: Path, meta: Metadata) -> None:
        """A release that carries ``wheels/*.whl`` gets ``<slot>/venv`` built from exactly
        those wheels, offline: ``python -m venv`` then ``pip install --no-index --find-links
        <slot>/wheels``. The venv is built at the path it runs from (a venv is not
        relocatable), before the ``complete`` marker, so a power cut here leaves a half-made
        slot that recovery discards. A wheel set that does not install refuses the bundle
        (``venv_failed``)."""
        wheels = sorted(
            e.path
            for e in meta.files
            if e.path.startswith(WHEELS_DIR + "/")
            and e.path.count("/") == 1
            and e.path.endswith(".whl")
        )
        if not wheels:
            return
        venv = dest / VENV_DIR
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PIP_NO_INDEX": "1",
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_NO_INPUT": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        steps = [
            [self.python, "-m", "venv", str(venv)],
            [
                str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index",
                "--no-cache-dir", "--find-links", str(dest / WHEELS_DIR),
                *(str(dest / w) for w in wheels),
            ],
        ]  # fmt: skip
        for cmd in steps:
            try:
                done = subprocess.run(
                    cmd, env=env, cwd=dest, capture_output=True, text=True,
                    timeout=VENV_TIMEOUT_S, check=False,
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise UpdateRefused("venv_failed", f"{cmd[2]}: {type(exc).__name__}") from None
            if done.returncode != 0:
                tail = (done.stderr or done.stdout)[-VENV_LOG_MAX:]
                log.warning("venv build failed (%s): %s", cmd[2], tail)
                raise UpdateRefused(
                    "venv_failed", f"{cmd[2]} exited {done.returncode}", detail=tail[-400:]
                )

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        state = self.load_state()
        slots = {}
        for slot in SLOTS:
            meta = self.slot_metadata(slot)
            slots[slot] = (
                {"release": meta.release, "version": meta.version} if meta is not None else None
            )
        return {
            "current": self.current_slot(),
            "installed_release": state["installed_release"],
            "installed_version": state["installed_version"],
            "step": state["step"],
            "failed_releases": state["failed_releases"],
            "last_result": state["last_result"],
            "slots": slots,
        }
