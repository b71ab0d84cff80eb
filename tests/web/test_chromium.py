"""The status page in a real browser: headless Chromium takes a phone-sized screenshot (saved
under artifacts/) and dumps the DOM it built."""

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

from tests.web.conftest import PLANTED, Site

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 412, 915  # a common phone viewport

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium missing: apt-get install -y chromium (Debian package)"
)


async def chromium(url: str, profile: Path, *mode: str, timeout: float = 90.0) -> bytes:
    """Run headless Chromium once; returns its stdout. The whole process group dies after."""
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
        f"--window-size={WIDTH},{HEIGHT}",
        *mode,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its zygote and renderers share the group: one kill ends all
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


def png_facts(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the decoded scanlines) of a PNG file."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    pixels = zlib.decompress(idat)
    return size[0], size[1], len(set(pixels))


async def test_phone_screenshot_and_dom(site: Site, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status-page-phone.png"
    shot.unlink(missing_ok=True)
    await chromium(f"{site.url}/", tmp_path / "profile", f"--screenshot={shot}")
    data = shot.read_bytes()
    width, height, distinct = png_facts(data)
    assert (width, height) == (WIDTH, HEIGHT)
    # A blank or error page decodes to a handful of values; the dashboard has text, badges,
    # borders and anti-aliasing.
    assert distinct > 64 and len(data) > 20_000, (distinct, len(data))

    dom = (await chromium(f"{site.url}/", tmp_path / "profile2", "--dump-dom")).decode()
    for panel in ("alerts", "rounds", "taps", "readers", "devices", "link", "broadcast"):
        assert f'id="{panel}"' in dom, panel
    for expected in ("Lotus Garden", "north-gate", "Wang Wei", "missed_checkpoint", "weak signal"):
        assert expected in dom
    for name, value in PLANTED.items():
        assert value not in dom, f"{name} reached the browser"


async def test_login_page_renders_in_the_browser(site: Site, tmp_path: Path) -> None:
    dom = (await chromium(f"{site.url}/login", tmp_path / "profile", "--dump-dom")).decode()
    assert "No password is set" in dom
    assert "<form" not in dom
