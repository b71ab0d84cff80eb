"""The status page in a real browser: headless Chromium takes a phone-sized screenshot (saved
under artifacts/) and dumps the DOM it built."""

from __future__ import annotations

from pathlib import Path

from tests.chromium import HEIGHT, WIDTH, needs_chromium, png_facts, run_chromium, screenshot
from tests.web.conftest import PLANTED, Site

pytestmark = needs_chromium


async def test_phone_screenshot_and_dom(site: Site, tmp_path: Path) -> None:
    data = await screenshot(f"{site.url}/", "status-page-phone.png", tmp_path / "profile")
    width, height, distinct = png_facts(data)
    assert (width, height) == (WIDTH, HEIGHT)
    # A blank or error page decodes to a handful of values; the dashboard has text, badges,
    # borders and anti-aliasing.
    assert distinct > 64 and len(data) > 20_000, (distinct, len(data))

    dom = (await run_chromium(f"{site.url}/", tmp_path / "profile2", "--dump-dom")).decode()
    for panel in ("alerts", "rounds", "taps", "readers", "devices", "link", "broadcast"):
        assert f'id="{panel}"' in dom, panel
    for expected in ("Lotus Garden", "north-gate", "Wang Wei", "missed_checkpoint", "weak signal"):
        assert expected in dom
    for name, value in PLANTED.items():
        assert value not in dom, f"{name} reached the browser"


async def test_login_page_renders_in_the_browser(site: Site, tmp_path: Path) -> None:
    dom = (await run_chromium(f"{site.url}/login", tmp_path / "profile", "--dump-dom")).decode()
    assert "No password is set" in dom
    assert "<form" not in dom
