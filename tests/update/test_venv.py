"""A release that carries wheels gets its venv built inside the inactive slot, offline, from
exactly those wheels (``python -m venv`` + ``pip install --no-index``); the new version then
starts from that venv. A wheel set that does not install refuses the bundle and leaves the
running version alone."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.update.bundle import UpdateRefused

from .conftest import build
from .fakes import LAUNCHER
from .test_install import Gateway

pytestmark = pytest.mark.timeout(600)

WRAPPER = b'#!/bin/sh\nexec "$(dirname "$0")/../venv/bin/python" -m fakegw "$@"\n'


def wheel(name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = ()) -> bytes:
    """A minimal pure-Python wheel, made by hand (no build tools, no network)."""
    dist = f"{name}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    content = dict(files) | {
        f"{dist}/METADATA": meta,
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in content.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    content[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, text in content.items():
            z.writestr(path, text)
    return buf.getvalue()


def release_files(
    version: str, behaviour: str = "good", requires: tuple[str, ...] = ()
) -> dict[str, bytes]:
    launcher = LAUNCHER.format(python="unused", behaviour=behaviour, version=version)
    module = launcher.split("\n", 1)[1]  # the launcher's body runs as ``python -m fakegw``
    whl = wheel("fakegw", "1.0", {"fakegw/__init__.py": "", "fakegw/__main__.py": module}, requires)
    return {
        "bin/compound-gw": WRAPPER,
        "wheels/fakegw-1.0-py3-none-any.whl": whl,
        "VERSION": version.encode() + b"\n",
    }


def test_the_new_version_runs_from_a_venv_built_offline_in_its_slot(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    gw = Gateway(tmp_path, key)
    try:
        outcome = gw.installer.install(build(tmp_path, key, 1, release_files("v1")))
        assert outcome.result == "installed", outcome
        slot = gw.root / outcome.slot
        assert (slot / "venv" / "bin" / "python").exists()
        # the venv was built where it runs, and the package came from the bundle's wheel
        cfg = (slot / "venv" / "pyvenv.cfg").read_text()
        assert "home" in cfg
        found = list((slot / "venv").glob("lib/python*/site-packages/fakegw/__main__.py"))
        assert len(found) == 1
        assert gw.started() == ["v1"]  # started through venv/bin/python -m fakegw
        assert gw.installer.slot_verified(outcome.slot)

        # a wheel that needs a package the bundle lacks: refused offline, v1 keeps running
        bad = build(tmp_path, key, 2, release_files("v2", requires=("not-in-bundle>=1",)))
        with pytest.raises(UpdateRefused) as refused:
            gw.installer.install(bad)
        assert refused.value.code == "venv_failed"
        assert os.readlink(gw.root / "current") == outcome.slot
        assert not (gw.root / ("b" if outcome.slot == "a" else "a")).exists()
        kinds = [k for k, _ in gw.events()]
        assert kinds[-1] == "update.refused"
        assert gw.events()[-1][1]["code"] == "venv_failed"
    finally:
        gw.runner.stop()
