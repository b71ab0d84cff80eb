"""The libosdp build the gateway runs: drivers/libosdp/build.sh, run by `make bootstrap`."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "drivers" / "libosdp"
SCRIPT = HERE / "build.sh"


def _setting(name: str) -> str:
    m = re.search(rf"^{name}=(\S+)$", SCRIPT.read_text(), re.M)
    assert m is not None, f"{name} not set in {SCRIPT}"
    return m.group(1)


def test_the_venv_runs_the_carried_build() -> None:
    # The published wheel lacks the patch (tests/checkpoints/test_feedback_first.py shows the
    # difference on the wire); `make bootstrap` swaps it for ours.
    want = f"{_setting('LIBOSDP_VERSION')}+{_setting('LOCAL_LABEL')}"
    assert importlib.metadata.version("libosdp") == want


def test_the_source_is_pinned_by_hash_and_every_patch_is_described() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", _setting("LIBOSDP_SHA256"))
    readme = (HERE / "README.md").read_text()
    patches = sorted(p.name for p in HERE.glob("*.patch"))
    assert patches, "no patch carried"
    for name in patches:
        assert name in readme, f"{name} is not described in drivers/libosdp/README.md"
        text = (HERE / name).read_text()
        assert text.startswith("diff ") or text.startswith("--- "), name
        assert "+++ b/vendor/src/" in text, f"{name} patches outside libosdp's C sources"


def test_shellcheck_is_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck missing: apt-get install shellcheck (Debian package 'shellcheck')")
    proc = subprocess.run(
        ["shellcheck", "--severity=style", "--shell=bash", str(SCRIPT)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout
