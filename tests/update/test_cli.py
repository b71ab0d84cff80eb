"""``compound-gw update`` end to end, as a release engineer and a gateway would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .fakes import version_files


def gw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FAKE_GW_LIFETIME": "30"},
        check=False,
    )


def make_src(tmp: Path, version: str, behaviour: str = "good") -> Path:
    src = tmp / f"src-{version}"
    for rel, data in version_files(version, behaviour).items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if rel.startswith("bin/"):
            p.chmod(0o755)
    return src


def test_release_engineer_and_gateway_commands(tmp_path: Path) -> None:
    key = tmp_path / "signing.key"
    r = gw("update", "keygen", "--key", str(key), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    pub = tmp_path / "update-key.pub"
    pub.write_text(r.stdout)
    assert gw("update", "keygen", "--key", str(key), cwd=tmp_path).returncode == 2  # no overwrite

    cfg = tmp_path / "gateway.toml"
    cfg.write_text('[gateway]\nid = "gw-up-01"\ncompound = "Lotus"\ndata_dir = "data"\n')
    common = ["--config", str(cfg), "--root", str(tmp_path / "opt"), "--trusted-key", str(pub)]
    common += ["--hardware", "rpi4", "--ready-timeout", "20", "--settle", "0.3"]

    def bundle(version: str, release: int, behaviour: str = "good", days: str = "30") -> Path:
        out = tmp_path / f"bundle-{version}"
        r = gw(
            "update", "make-bundle", str(make_src(tmp_path, version, behaviour)), str(out),
            "--key", str(key), "--version", version, "--release", str(release),
            "--hardware", "rpi4", "--expires-days", days, cwd=tmp_path,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return out

    try:
        r = gw("--lang", "zh-CN", "update", "install", str(bundle("1.0", 1)), *common, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "已安装并正在运行" in r.stdout
        r = gw("--lang", "zh-CN", "update", "install", str(bundle("2.0", 2, "crash")), *common,
               cwd=tmp_path)  # fmt: skip
        assert r.returncode == 1
        assert "已回退" in r.stderr and "启动过程中停止运行" in r.stderr
        r = gw("--lang", "zh-CN", "update", "verify", str(bundle("3.0", 3, days="-1")), *common,
               cwd=tmp_path)  # fmt: skip
        assert r.returncode == 1 and "更新包已过期" in r.stderr
        r = gw("--lang", "en", "update", "status", *common, cwd=tmp_path)
        assert r.returncode == 0
        assert "Installed version: 1.0 (release 1)" in r.stdout
        assert "rolled back" in r.stdout and "Running slot: a" in r.stdout
        r = gw("update", "status", "--json", *common, cwd=tmp_path)
        st = json.loads(r.stdout)
        assert st["current"] == "a" and st["failed_releases"] == [2]
        events = [
            json.loads(line)["kind"]
            for line in (tmp_path / "data" / "update-events.jsonl").read_text().splitlines()
        ]
        assert events == [
            "update.started", "update.installed", "update.started", "update.rolled_back",
            "update.refused",
        ]  # fmt: skip
    finally:
        pid_file = tmp_path / "opt" / "run.pid"
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text()), 9)
            except ProcessLookupError:
                pass


def test_bad_trusted_key_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('[gateway]\nid = "gw-up-01"\ncompound = "Lotus"\ndata_dir = "data"\n')
    pub = tmp_path / "pub"
    pub.write_text("not a key")
    r = gw(
        "update", "status", "--config", str(cfg), "--root", str(tmp_path / "opt"),
        "--trusted-key", str(pub), "--hardware", "rpi4", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 2 and "--trusted-key" in r.stderr
    assert "Traceback" not in r.stderr
