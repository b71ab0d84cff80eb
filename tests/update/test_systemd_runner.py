"""SystemdRunner against a fake ``systemctl`` (the process boundary): a Type=notify unit that
starts ``<root>/current/bin/compound-gw run`` and answers start, stop, is-active and show."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.update.install import Installer
from gateway.update.runner import SystemdRunner

from .conftest import HW, build
from .fakes import version_files

FAKE_SYSTEMCTL = r"""#!{python}
import json, os, signal, socket, subprocess, sys, tempfile, time
root = os.environ["FAKE_SYSTEMCTL_ROOT"]
state_path = os.path.join(root, "fake-unit.json")
def load():
    try:
        with open(state_path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {{}}
def save(**kw):
    st = {{**load(), **kw}}
    with open(state_path, "w") as f:
        json.dump(st, f)
def alive(pid):
    try:
        with open(f"/proc/{{pid}}/stat", "rb") as f:
            return f.read().split(b") ", 1)[-1][:1] != b"Z"
    except OSError:
        return False
cmd = sys.argv[1]
if cmd == "start":
    path = os.path.join(tempfile.mkdtemp(), "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    p = subprocess.Popen([os.path.join(root, "current", "bin", "compound-gw"), "run"],
        env={{**os.environ, "NOTIFY_SOCKET": path}}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    save(pid=p.pid)
    deadline = time.monotonic() + float(os.environ.get("FAKE_START_TIMEOUT", "20"))
    while time.monotonic() < deadline:
        if p.poll() is not None:
            save(result="exit-code")
            sys.exit(1)
        try:
            if b"READY=1" in s.recv(4096):
                save(result="success")
                sys.exit(0)
        except TimeoutError:
            pass
    p.kill()
    save(result="timeout")
    sys.exit(1)
if cmd == "stop":
    pid = load().get("pid")
    if pid and alive(pid):
        os.killpg(pid, signal.SIGTERM)
        while alive(pid):
            time.sleep(0.05)
    sys.exit(0)
if cmd == "is-active":
    pid = load().get("pid")
    ok = bool(pid) and alive(pid)
    print("active" if ok else "failed")
    sys.exit(0 if ok else 3)
if cmd == "show":
    print(load().get("result", ""))
    sys.exit(0)
sys.exit(2)
"""


@pytest.fixture
def setup(tmp_path: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch) -> Iterator[
    tuple[Installer, SystemdRunner, Path]
]:  # fmt: skip
    root = tmp_path / "opt"
    root.mkdir()
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(FAKE_SYSTEMCTL.format(python=sys.executable))
    systemctl.chmod(0o755)
    monkeypatch.setenv("FAKE_SYSTEMCTL_ROOT", str(root))
    monkeypatch.setenv("FAKE_GW_LIFETIME", "60")
    monkeypatch.setenv("FAKE_START_TIMEOUT", "3")
    runner = SystemdRunner(systemctl=str(systemctl), ready_timeout_s=30, settle_s=0.5)
    inst = Installer(
        root, public_key=key.public_key(), hardware=HW, runner=runner, record=lambda k, p: None
    )
    yield inst, runner, tmp_path
    runner.stop()


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [("crash", "exited"), ("ready_then_crash", "exited"), ("silent", "no_ready"),
     ("bad_selfcheck", "selfcheck_failed")],
)  # fmt: skip
def test_systemd_runner_installs_and_rolls_back(
    setup: tuple[Installer, SystemdRunner, Path],
    key: Ed25519PrivateKey,
    behaviour: str,
    reason: str,
) -> None:
    inst, runner, tmp = setup
    first = inst.install(build(tmp, key, 1, version_files("v1")))
    assert first.result == "installed"
    assert runner.is_active()
    outcome = inst.install(build(tmp, key, 2, version_files("v2", behaviour)))
    assert (outcome.result, outcome.reason) == ("rolled_back", reason)
    assert os.readlink(inst.root / "current") == "a"
    assert runner.is_active()  # the old version runs again under the unit
    assert inst.install(build(tmp, key, 3, version_files("v3"))).result == "installed"
    assert os.readlink(inst.root / "current") == "b"
