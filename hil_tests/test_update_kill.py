"""Power cut during an update: SIGKILL ``compound-gw update install`` at each step, in a loop.

After each kill (of the updater and of whatever gateway it had started, as a power cut would),
the "next boot" runs recovery and then checks that ``current`` points to a complete slot whose
files verify against its signed metadata, and that this version starts (READY + self-check).

Two ways to pick the moment:
- at each persisted step: with COMPOUND_GW_UPDATE_STEP_PAUSE=<step> the updater prints
  ``STEP <name>`` for each step and pauses after persisting the named one; it is killed there;
- at random moments of an unpaused install with a few-MB payload (lands inside copies too).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.update.install import STEP_PAUSE_ENV, Installer
from gateway.update.runner import SpawnRunner
from tests.update.conftest import HW, build
from tests.update.fakes import version_files

STEPS = (
    "downloading",
    "downloaded",
    "unpacking",
    "unpacked",
    "switching",
    "switched",
    "starting",
)
RANDOM_KILLS = int(os.environ.get("UPDATE_KILL_LOOPS", "12"))


class Box:
    """One gateway's update root, key and config; release numbers keep rising."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.key = Ed25519PrivateKey.generate()
        self.root = tmp / "opt"
        self.pub = tmp / "update-key.pub"
        self.pub.write_text(self.key.public_key().public_bytes_raw().hex() + "\n")
        self.cfg = tmp / "gateway.toml"
        self.cfg.write_text('[gateway]\nid = "gw-kill"\ncompound = "Lotus"\ndata_dir = "data"\n')
        self.release = 0
        self.runner = SpawnRunner(
            self.root / "run.pid",
            ready_timeout_s=30,
            settle_s=0.2,
            stop_timeout_s=5,
            env={"FAKE_GW_LIFETIME": "60"},
        )
        self.installer = Installer(
            self.root,
            public_key=self.key.public_key(),
            hardware=HW,
            runner=self.runner,
            record=lambda kind, payload: None,
        )

    def bundle(self, payload_bytes: int = 0, behaviour: str = "good") -> Path:
        self.release += 1
        files = version_files(f"v{self.release}", behaviour, payload_bytes)
        return build(self.tmp, self.key, self.release, files)

    def install_cmd(self, bundle: Path) -> list[str]:
        return [
            sys.executable, "-m", "gateway.cli", "update", "install", str(bundle),
            "--config", str(self.cfg), "--root", str(self.root), "--trusted-key", str(self.pub),
            "--hardware", HW, "--ready-timeout", "30", "--settle", "0.2",
        ]  # fmt: skip

    def power_cut(self, proc: subprocess.Popen[str]) -> None:
        proc.kill()
        proc.wait(timeout=30)
        pid = self.runner.running_pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while self.runner.running_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.02)

    def boot_and_check(self) -> str:
        """Recovery, then: current is complete and verified, and it starts."""
        self.installer.recover()
        current = self.installer.current_slot()
        assert current is not None, "no current link"
        assert self.installer.slot_verified(current), f"slot {current} incomplete or altered"
        assert self.installer.status()["step"] == "idle"
        self.runner.stop()
        result = self.runner.start(self.root / current)
        assert result.ok, result
        self.runner.stop()
        return current


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    b = Box(tmp_path)
    first = b.installer.install(b.bundle())
    assert first.result == "installed"
    yield b
    b.runner.stop()


def _wait_for(proc: subprocess.Popen[str], line: str, timeout: float = 60) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = proc.stdout.readline()
        if not got:
            raise AssertionError(f"updater ended before {line!r}")
        if got.strip() == line:
            return
    raise AssertionError(f"no {line!r} within {timeout} s")


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_leaves_a_version_that_starts(box: Box, step: str) -> None:
    before = box.installer.current_slot()
    proc = subprocess.Popen(
        box.install_cmd(box.bundle(payload_bytes=200_000)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, STEP_PAUSE_ENV: step},
        start_new_session=True,
    )
    try:
        _wait_for(proc, f"STEP {step}")
        box.power_cut(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert box.boot_and_check() == before  # an unconfirmed update is undone
    # The gateway still takes the next update after the cut.
    outcome = box.installer.install(box.bundle())
    assert outcome.result == "installed" and outcome.slot != before


def test_sigkill_at_random_moments(box: Box) -> None:
    rng = random.Random(int(os.environ.get("UPDATE_KILL_SEED", "22")))
    # One unpaused install measures how long an install takes here.
    start = time.monotonic()
    proc = subprocess.run(
        box.install_cmd(box.bundle(4_000_000)), capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    span = time.monotonic() - start
    box.runner.stop()
    landed = set()
    for _ in range(RANDOM_KILLS):
        running = subprocess.Popen(
            box.install_cmd(box.bundle(4_000_000)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0, span))  # when to cut, not a proof of anything
        state = box.installer.load_state()["step"]
        box.power_cut(running)
        landed.add(state)
        box.boot_and_check()
    print(f"random kills landed in steps: {sorted(landed)} (install takes ~{span:.1f} s here)")
    assert box.installer.status()["step"] == "idle"
