"""The status page in a real browser: headless Chromium takes screenshots (phone 390x844 and
desktop 1280x800, in Chinese and English; saved under artifacts/) and dumps the DOM it built."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from tests.chromium import needs_chromium, png_facts, run_chromium, screenshot
from tests.web.conftest import PLANTED, Site, rich_board
from tests.web.visible import visible_text, what_should_not_be_seen

pytestmark = needs_chromium

PHONE = (390, 844)
DESKTOP = (1280, 800)


def cjk_fonts() -> str:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return ""
    out = subprocess.run(
        [fc_list, ":lang=zh", "family"], capture_output=True, text=True, timeout=60, check=False
    )
    return out.stdout.strip()


def test_a_chinese_font_is_installed() -> None:
    assert cjk_fonts(), (
        "no CJK font: Chinese renders as boxes in Chromium. `make bootstrap` installs one "
        "(Debian fonts-wqy-zenhei) when `fc-list :lang=zh` is empty."
    )


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize(("size", "label"), [(PHONE, "phone"), (DESKTOP, "desktop")])
async def test_screenshots(
    site: Site, tmp_path: Path, lang: str, size: tuple[int, int], label: str
) -> None:
    if lang == "zh-CN" and not cjk_fonts():
        pytest.fail(
            "no CJK font for the Chinese screenshots (see test_a_chinese_font_is_installed)"
        )
    await rich_board(site)
    name = f"status-page-{lang}-{label}-{size[0]}x{size[1]}.png"
    data = await screenshot(f"{site.url}/?lang={lang}", name, tmp_path / "profile", size=size)
    width, height, distinct = png_facts(data)
    assert (width, height) == size
    # A blank or error page decodes to a handful of values; the dashboard has text, badges,
    # borders and anti-aliasing.
    assert distinct > 64 and len(data) > 20_000, (distinct, len(data))


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("zh-CN", ("警报", "今天的巡逻", "读卡器", "离线", "摄像头", "时钟未同步", "漏打卡")),
        ("en", ("Alerts", "Today's rounds", "Readers", "offline", "camera", "Checkpoint missed")),
    ],
)
async def test_dom_in_each_language(
    site: Site, tmp_path: Path, lang: str, words: tuple[str, ...]
) -> None:
    site.clock.set_synced(False)
    await rich_board(site)
    dom = (
        await run_chromium(f"{site.url}/?lang={lang}", tmp_path / "profile", "--dump-dom")
    ).decode()
    assert f'<html lang="{lang}"' in dom
    for panel in ("alerts", "rounds", "taps", "readers", "devices", "link", "broadcast"):
        assert f'id="{panel}"' in dom, panel
    text = visible_text(dom)
    for expected in ("Lotus Garden", "north-gate", "Wang Wei", "weak signal" if lang == "en"
                     else "信号弱", *words):  # fmt: skip
        assert expected in text, expected
    assert what_should_not_be_seen(dom) == []
    for name, value in PLANTED.items():
        assert value not in dom, f"{name} reached the browser"


# Headless Chromium lays out --dump-dom at 500 px at least, so the page is measured inside a
# 390 px frame, by a script in the framing page (the page itself allows no scripts).
FRAME = (
    "<!doctype html><html><body style='margin:0'>"
    "<iframe id='f' src='/page' style='border:0;width:{w}px;height:{h}px'></iframe>"
    "<script>"
    "document.getElementById('f').addEventListener('load', () => {{"
    "  const d = document.getElementById('f').contentDocument;"
    "  const t = d.querySelector('#readers table');"
    "  document.body.dataset.readersRight = Math.ceil(t.getBoundingClientRect().right);"
    "  document.body.dataset.pageWidth = d.documentElement.scrollWidth;"
    "  document.body.dataset.viewport = d.documentElement.clientWidth;"
    "}});"
    "</script></body></html>"
)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_readers_table_fits_a_phone(site: Site, tmp_path: Path, lang: str) -> None:
    """At 390 px the readers table, and the page, are no wider than the screen."""
    await rich_board(site)
    async with site.session() as http:
        async with http.get(f"/?lang={lang}") as resp:
            page = await resp.text()
        async with http.get("/style.css") as resp:
            css = await resp.read()

    async def frame(request: web.Request) -> web.Response:
        return web.Response(text=FRAME.format(w=PHONE[0], h=PHONE[1]), content_type="text/html")

    async def inner(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def style(request: web.Request) -> web.Response:
        return web.Response(body=css, content_type="text/css")

    app = web.Application()
    app.add_routes([web.get("/", frame), web.get("/page", inner), web.get("/style.css", style)])
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        server = web.TCPSite(runner, "127.0.0.1", 0)
        await server.start()
        port = runner.addresses[0][1]
        dom = (
            await run_chromium(
                f"http://127.0.0.1:{port}/", tmp_path / "profile", "--dump-dom", size=PHONE
            )
        ).decode()
    finally:
        await runner.cleanup()
    facts = dict(re.findall(r'data-([a-z-]+)="(\d+)"', dom))
    assert facts.get("viewport") == str(PHONE[0]), f"the frame is not {PHONE[0]} px: {facts}"
    assert int(facts["readers-right"]) <= PHONE[0], f"readers table too wide: {facts}"
    assert int(facts["page-width"]) <= PHONE[0], f"the page scrolls sideways: {facts}"


async def test_login_page_renders_in_the_browser(site: Site, tmp_path: Path) -> None:
    dom = (await run_chromium(f"{site.url}/login", tmp_path / "profile", "--dump-dom")).decode()
    assert "No password is set" in dom
    assert "<form" not in dom
