"""The suite holds wherever the repository is cloned, including under a private folder.

``mktemp -d`` makes 0700 folders: a checkout inside one cannot be walked into by any other user,
so a test that runs something from the checkout as another user fails there (bash answers
"Permission denied" before the script starts). Tests that switch users carry the ``other_user``
marker; here they run again from a copy of this checkout under a private folder.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def checkout_files() -> list[str]:
    """What a fresh clone holds (tracked files) plus new files not ignored, as they are now."""
    proc = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        pytest.skip(f"not a git checkout: {proc.stderr.strip()}")
    return [name for name in proc.stdout.split("\0") if name and (REPO / name).is_file()]


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("git") is None,
    reason="switching users needs root and setpriv; the copy needs git",
)
def test_tests_that_switch_users_pass_from_a_checkout_in_a_private_folder(
    tmp_path: Path,
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)  # whatever the umask says
    checkout = private / "p"
    for name in checkout_files():
        dest = checkout / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest)
    assert not stat.S_IMODE(private.stat().st_mode) & 0o077
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "other_user",
            "-p",
            "no:cacheprovider",
            "-rA",
            "tests",
            "hil_tests",
        ],
        cwd=checkout,
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert " passed" in out and " skipped" not in out and " failed" not in out, out[-4000:]
    # The inner run used the copy, not this checkout.
    assert f"rootdir: {checkout}" in out, out[-4000:]
