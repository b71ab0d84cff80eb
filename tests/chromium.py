"""Headless Chromium for the browser tests: run it once against a 127.0.0.1 page, take a
phone-sized screenshot (saved under artifacts/, gitignored), read back the PNG::

    pytestmark = needs_chromium
    data = await screenshot(f"{url}/", "status-page-phone.png", tmp_path / "profile")
    width, height, distinct = png_facts(data)
    dom = (await run_chromium(f"{url}/", tmp_path / "profile2", "--dump-dom")).decode()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import struct
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 412, 915  # a common phone viewport

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium missing: apt-get install -y chromium (Debian package)"
)


async def run_chromium(
    url: str,
    profile: Path,
    *mode: str,
    timeout: float = 90.0,
    size: tuple[int, int] = (WIDTH, HEIGHT),
) -> bytes:
    """Headless Chromium once with a fresh ``profile`` dir and a ``size`` window; returns stdout.
    Its whole process group is killed after."""
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}",
        *mode,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # zygote and renderers share the group: one kill ends all
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode is None:
            await proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


async def screenshot(
    url: str, name: str, profile: Path, size: tuple[int, int] = (WIDTH, HEIGHT)
) -> bytes:
    """A screenshot of ``url`` (phone-sized by default) saved as artifacts/``name``."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    await run_chromium(url, profile, f"--screenshot={shot}", size=size)
    return shot.read_bytes()


def png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the decoded scanlines); checks every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, size, seen_end = 8, b"", (0, 0), False
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            seen_end = True
        pos += 12 + length
    assert seen_end, "truncated PNG"
    return size[0], size[1], len(set(zlib.decompress(idat)))
