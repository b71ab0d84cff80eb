"""The update path with the real daemon: a slot whose launcher runs this checkout's
``compound-gw``, installed by ``compound-gw update install``; READY and ``update selfcheck`` come
from the real daemon, and the updater's events reach the daemon's journal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.journal import read_events
from gateway.update.runner import SpawnRunner
from hil_tests.harness import minimal_config, write_config
from tests.update.conftest import HW, build

REAL = '#!/bin/sh\nexec {python} -m gateway.cli "$@"\n'
# A release whose daemon cannot start: it reads a config that does not exist.
BROKEN = '#!/bin/sh\n[ "$1" = run ] && exec {python} -m gateway.cli run --config /nonexistent\n'
BROKEN += 'exec {python} -m gateway.cli "$@"\n'


def launcher(text: str, version: str) -> dict[str, bytes]:
    return {
        "bin/compound-gw": text.format(python=sys.executable).encode(),
        "VERSION": version.encode(),
    }


def wait_for(predicate, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_real_daemon_installed_rolled_back_and_journaled(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "etc", minimal_config("gw-update"))
    key = Ed25519PrivateKey.generate()
    pub = tmp_path / "update-key.pub"
    pub.write_text(key.public_key().public_bytes_raw().hex())
    root = tmp_path / "opt"
    common = ["--config", str(cfg), "--root", str(root), "--trusted-key", str(pub)]
    common += ["--hardware", HW, "--ready-timeout", "90", "--settle", "1"]

    def update(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", "--lang", "en", "update", *args, *common],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    runner = SpawnRunner(root / "run.pid")
    try:
        r = update("install", str(build(tmp_path, key, 1, launcher(REAL, "v1"))))
        assert r.returncode == 0, r.stdout + r.stderr + (root / "run.log").read_text()
        assert runner.running_pid() is not None

        r = update("install", str(build(tmp_path, key, 2, launcher(BROKEN, "v2"))))
        assert r.returncode == 1 and "rolled back" in r.stderr, r.stderr
        assert os.readlink(root / "current") == "a"
        assert runner.running_pid() is not None  # the old version runs again

        expired = build(tmp_path, key, 3, launcher(REAL, "v3"), expires=1)
        assert update("verify", str(expired)).returncode == 1

        journal = cfg.parent / "data" / "journal.db"

        def kinds() -> list[str]:
            return [e.kind for e in read_events(journal) if e.kind.startswith("update.")]

        want = ["update.started", "update.installed", "update.started", "update.rolled_back",
                "update.refused"]  # fmt: skip
        assert wait_for(lambda: kinds() == want), kinds()
        refused = next(e for e in read_events(journal) if e.kind == "update.refused")
        assert refused.payload["code"] == "expired"
        rolled = next(e for e in read_events(journal) if e.kind == "update.rolled_back")
        assert rolled.payload["reason"] == "exited" and rolled.payload["previous_started"]
    finally:
        runner.stop()
