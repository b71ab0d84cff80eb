"""Issue 16 acceptance: the console in Debian's Chromium (Playwright) against a real centre with
two enrolled simulated gateways.

An officer signs in, sees both compounds live, sends an Exercise broadcast to one and watches it
reach "finished" on the page; a missed round journaled by a simulated gateway appears in the
alerts inbox without a reload; the officer acknowledges it. A township viewer cannot send a
broadcast: the server refuses the POST itself (403, audited). Typed text is previewed in the
announcement library (audio element and level words) and discarded. Every page is photographed in
zh-CN at 390x844 and 1280x800 under artifacts/console-*.png.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from centre.announce.library import AnnouncementLibrary
from centre.web.permissions import Role
from tests.chromium import ARTIFACTS, CHROMIUM, png_facts
from tests.console.district import WAIT_S, District, running_district, tone_wav

playwright_api = pytest.importorskip("playwright.async_api")

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium missing: apt-get install chromium"),
    pytest.mark.timeout(600),
]

ROSE = ("gw-rose-01", "North", "Rose Garden")
LOTUS = ("gw-lotus-01", "South", "Lotus Court")
PHONE = {"width": 390, "height": 844}
DESK = {"width": 1280, "height": 800}
MS = int(WAIT_S * 1000)


def today() -> str:
    return dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()


def missed_round(round_id: str) -> dict[str, Any]:
    return {
        "round": round_id,
        "day": today(),
        "route": "east-loop",
        "verdict": "missed",
        "local_start": "02:00",
        "local_end": "03:00",
        "checkpoints": {"gate": 0, "bike-shed": 0},
        "required_taps": 1,
        "reasons": ["no tap"],
    }


async def seed_devices(district: District) -> None:
    """What a running gateway reports about its devices, journaled and uploaded."""
    for gw in district.gateways.values():
        await gw.journal.append(
            "reader.state", {"reader": "r1", "checkpoint": "gate", "state": "online"}
        )
        await gw.journal.append(
            "health.state", {"device": "cam-1", "kind": "camera", "state": "ok"}
        )
        await gw.journal.append(
            "patrol.round",
            {**missed_round("r-0800"), "verdict": "completed", "checkpoints": {"gate": 1}},
        )
        await gw.journal.append("tap", {"checkpoint": "gate", "card": "04a1b2c3d4"})


async def login(page: Any, url: str, name: str, password: str) -> None:
    await page.goto(f"{url}/console", wait_until="domcontentloaded")
    await page.wait_for_selector('input[name="name"]', timeout=MS)
    await page.fill('input[name="name"]', name)
    await page.fill('input[name="password"]', password)
    await page.click('button[type="submit"]')
    await page.wait_for_url("**/console/board", timeout=MS)


async def shoot(page: Any, name: str) -> None:
    """Both sizes of the page now shown, as artifacts/console-<name>-<w>x<h>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    for size in (PHONE, DESK):
        await page.set_viewport_size(size)
        shot = ARTIFACTS / f"console-{name}-{size['width']}x{size['height']}.png"
        await page.screenshot(path=str(shot))
        width, height, distinct = png_facts(shot.read_bytes())
        assert (width, height) == (size["width"], size["height"])
        assert distinct > 8, f"{shot.name} looks blank"
    await page.set_viewport_size(PHONE)


async def test_officer_runs_the_district_and_a_viewer_cannot_broadcast(tmp_path: Path) -> None:
    async with running_district(tmp_path, [ROSE, LOTUS]) as district:
        officer = await district.user("zhang.wei", Role.OFFICER)
        viewer = await district.user("li.na", Role.TOWNSHIP_VIEWER, township="North")
        await seed_devices(district)
        stored: dict[str, float] = {}
        district.running.service.ingest_listeners.append(
            lambda gw: stored.setdefault(f"batch-{len(stored)}", time.monotonic())
        )
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            try:
                context = await browser.new_context(
                    ignore_https_errors=True, viewport=PHONE, locale="zh-CN"
                )
                page = await context.new_page()
                page.set_default_timeout(MS)

                # -- sign in; the sign-in page is in Chinese by default
                await page.goto(f"{district.url}/console/login")
                assert "登录" in await page.content()
                await shoot(page, "login")
                await login(page, district.url, "zhang.wei", officer)

                # -- both compounds on the board, link up, devices counted
                for _, township, compound in (ROSE, LOTUS):
                    tile = f'.tile[data-compound="{compound}"][data-township="{township}"]'
                    await page.wait_for_selector(f"{tile} .link-up", timeout=MS)
                await page.wait_for_function(
                    "() => [...document.querySelectorAll('.tile dd')]"
                    ".some(d => d.textContent.trim() === '1/1')",
                    timeout=MS,
                )
                await shoot(page, "board")

                # -- live: a new missed round on Lotus reaches the board without a reload
                await page.evaluate("window.__same_page = 'yes'")
                stored.clear()
                await district.gateways["gw-lotus-01"].journal.append(
                    "patrol.round", missed_round("r-0200")
                )
                await page.wait_for_selector(
                    '.tile[data-compound="Lotus Court"] .missed', timeout=MS
                )
                shown = time.monotonic()
                assert await page.evaluate("window.__same_page") == "yes"
                assert stored, "the centre never reported storing the batch"
                lag = shown - min(stored.values())
                print(f"board updated {lag:.2f} s after the centre stored the event")
                assert lag < 10.0  # the 2 s goal, with room for a loaded machine

                # -- the compound page
                await page.click('.tile[data-compound="Rose Garden"] h2 a')
                await page.wait_for_selector("text=设备", timeout=MS)
                await page.wait_for_selector("text=最近刷卡", timeout=MS)
                taps = await page.inner_text("section.card:has(h2:text('最近刷卡'))")
                assert "gate" in taps and "04a1b2c3d4" not in taps
                await shoot(page, "compound")

                # -- Exercise broadcast to Rose Garden only, watched until finished
                await page.goto(f"{district.url}/console/broadcast")
                await page.check('input[name="compound"][value="North/Rose Garden"]')
                await page.fill('input[name="seconds"]', "1")
                await page.fill('input[name="zones"]', "1")
                await page.check('input[name="status"][value="Exercise"]')
                await page.click("button.primary")
                await page.wait_for_url("**/console/broadcast", timeout=MS)
                await page.wait_for_selector(
                    'tr[data-compound="Rose Garden"][data-stage="finished"]', timeout=MS
                )
                rows = await page.query_selector_all("tr[data-command]")
                assert len(rows) == 1  # Lotus Court was not chosen
                assert "已完成" in await page.inner_text('tr[data-compound="Rose Garden"] .stage')
                assert district.gateways["gw-rose-01"].board.changes, "the relays never moved"
                assert district.gateways["gw-lotus-01"].board.changes == []
                await shoot(page, "broadcast")

                # -- a missed round on Rose Garden appears in the inbox without a reload
                await page.goto(f"{district.url}/console/alerts")
                await page.wait_for_selector('li.alert[data-kind="missed_round"]', timeout=MS)
                await page.evaluate("window.__same_page = 'yes'")
                await district.gateways["gw-rose-01"].journal.append(
                    "patrol.round", missed_round("r-0230")
                )
                new_alert = 'li.alert[data-alert="round:gw-rose-01:r-0230"]'
                await page.wait_for_selector(new_alert, timeout=MS)
                assert await page.evaluate("window.__same_page") == "yes"
                # unacknowledged Actual-priority alerts are on top
                first = await page.get_attribute("li.alert", "class")
                assert first is not None and "actual" in first and "open" in first

                # -- acknowledge it with a comment
                await page.fill(f'{new_alert} input[name="comment"]', "已电话联系保安，补巡")
                await page.click(f'{new_alert} form.ack button[type="submit"]')
                await page.wait_for_selector(f"{new_alert} .acked", timeout=MS)
                assert "zhang.wei" in await page.inner_text(f"{new_alert} .acked")
                await shoot(page, "alerts")

                # -- the announcement library, with a player per announcement
                await asyncio.to_thread(
                    AnnouncementLibrary(district.paths.root).add_bytes,
                    tone_wav(), ".wav", title="防诈骗提醒", ann_id="fraud-warning",
                )  # fmt: skip
                await page.goto(f"{district.url}/console/announcements")
                await page.wait_for_selector('li[data-announcement="fraud-warning"] audio')
                assert "防诈骗提醒" in await page.inner_text("main")
                await shoot(page, "announcements")

                # -- typed text: a preview heard in the page with its level, then discarded
                await page.fill('form.tts-form input[name="title"]', "转账提醒")
                await page.fill('form.tts-form textarea[name="text"]', "请勿向陌生人转账。")
                await page.click("form.tts-form button[type=submit]")
                await page.wait_for_selector("section.draft audio", timeout=MS)
                assert "音量正常" in await page.inner_text("section.draft .level")
                await page.wait_for_function(
                    "() => document.querySelector('section.draft audio').duration > 0.5",
                    timeout=MS,
                )  # the browser loaded and decoded the preview's audio
                await shoot(page, "announcement-preview")
                await page.click("form.discard button[type=submit]")
                await page.wait_for_url("**/console/announcements", timeout=MS)
                assert await page.query_selector("section.draft") is None
                await page.goto(f"{district.url}/bulletins/daily?lang=zh-CN")
                await page.wait_for_selector("main, body")
                assert "通报" in await page.inner_text("body")
                await shoot(page, "bulletins")

                # -- sign out
                await page.goto(f"{district.url}/console/board")
                await page.click("header button.link")
                await page.wait_for_url("**/console/login", timeout=MS)
                await context.close()

                # -- a township viewer: no broadcast link, and the server refuses the POST
                context = await browser.new_context(
                    ignore_https_errors=True, viewport=PHONE, locale="zh-CN"
                )
                page = await context.new_page()
                await login(page, district.url, "li.na", viewer)
                await page.wait_for_selector('.tile[data-compound="Rose Garden"]', timeout=MS)
                assert await page.query_selector('.tile[data-compound="Lotus Court"]') is None
                assert await page.query_selector('a[href="/console/broadcast"]') is None
                csrf = await page.get_attribute('input[name="csrf"]', "value")
                before = len(await district.running.commands.store.commands(limit=1000))
                reply = await context.request.post(
                    f"{district.url}/console/broadcast",
                    form={
                        "csrf": csrf or "",
                        "scope": "compounds",
                        "compound": "North/Rose Garden",
                        "zones": "1",
                        "seconds": "5",
                        "clip": "fire-drill",
                        "status": "Exercise",
                    },
                    headers={"Accept": "text/html"},  # as the browser's own form post
                    max_redirects=0,
                )
                assert reply.status == 403
                assert "无权" in await reply.text()
                after = len(await district.running.commands.store.commands(limit=1000))
                assert after == before
                await context.close()
            finally:
                await browser.close()

        # -- the record: one audit line per action, with user, time and target
        assert district.running.console is not None
        records = await district.running.console.console.store.audit_records()
        broadcasts = [r for r in records if r.action == "broadcast"]
        assert [(r.user, r.outcome.split(":")[0]) for r in broadcasts] == [
            ("zhang.wei", "ok"),
            ("li.na", "refused"),
        ]
        assert broadcasts[0].target == "compounds:North/Rose Garden"
        assert broadcasts[1].outcome == "refused:forbidden"
        acks = [r for r in records if r.action == "alert.ack"]
        assert [(r.user, r.target, r.outcome) for r in acks] == [
            ("zhang.wei", "alert:round:gw-rose-01:r-0230", "ok")
        ]


async def _sign_in(context: Any, url: str, name: str, password: str) -> Any:
    page = await context.new_page()
    page.set_default_timeout(MS)
    await page.goto(f"{url}/console/login")
    await page.fill('input[name="name"]', name)
    await page.fill('input[name="password"]', password)
    await page.click('button[type="submit"]')
    await page.wait_for_load_state("domcontentloaded")
    return page


async def test_look_now_puts_the_duty_room_picture_on_screen_and_only_its_compound_sees_it(
    tmp_path: Path,
) -> None:
    """Issue 17, look now: click, the picture on screen with its capture time; its bytes hash to
    the sha256 of the gateway's camera.snapshot event; the view is audited; another compound's
    manager is refused the image, its own compound's manager sees it."""
    async with running_district(tmp_path, [ROSE, LOTUS], cameras=True) as district:
        officer = await district.user("zhang.wei", Role.OFFICER)
        own = await district.user(
            "zhou.min", Role.COMPOUND_MANAGER, township="North", compound="Rose Garden"
        )
        other = await district.user(
            "wang.fang", Role.COMPOUND_MANAGER, township="South", compound="Lotus Court"
        )
        assert district.running.console is not None
        store = district.running.console.console.store
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )
            try:
                context = await browser.new_context(
                    ignore_https_errors=True, viewport=DESK, locale="zh-CN"
                )
                page = await _sign_in(context, district.url, "zhang.wei", officer)
                compound = f"{district.url}/console/compound?township=North&name=Rose+Garden"
                deadline = time.monotonic() + WAIT_S
                while True:  # the button appears once the gateway's camera poller reported
                    await page.goto(compound)
                    if await page.locator("#look-now-button").count():
                        break
                    assert time.monotonic() < deadline, "no look-now button"
                    await asyncio.sleep(0.3)
                button = page.locator("#look-now-button")
                assert (await button.inner_text()).strip() == "立即查看值班室画面"
                await button.click()
                image = page.locator("#look-now-image")
                await image.wait_for(state="visible", timeout=MS)
                await page.wait_for_function(
                    "() => { const i = document.getElementById('look-now-image');"
                    " return i && i.complete && i.naturalWidth > 0; }",
                    timeout=MS,
                )
                src = await image.get_attribute("src")
                assert src is not None and src.startswith("/console/images/")
                sha = src.rsplit("/", 1)[1]
                # the bytes on screen are the image the gateway announced in its event
                (event,) = await district.running.repo.events(kind="camera.snapshot")
                assert event["payload"]["sha256"] == sha
                assert event["payload"]["reason"] == "look_now"
                assert event["gateway_id"] == "gw-rose-01"
                got = await context.request.get(f"{district.url}{src}")
                assert got.status == 200
                assert hashlib.sha256(await got.body()).hexdigest() == sha
                # the capture time, in the district's time and words, never an epoch number
                caption = await page.locator(".look-now figcaption").inner_text()
                taken = dt.datetime.fromtimestamp(event["wall_time"], ZoneInfo("Asia/Shanghai"))
                assert "拍摄于" in caption and taken.strftime("%H:%M:%S") in caption, caption
                assert str(int(event["wall_time"])) not in await page.content()
                views = [r for r in await store.audit_records() if r.action == "image.view"]
                assert views and all(r.user == "zhang.wei" for r in views)
                assert views[0].target == f"image:{sha}@North/Rose Garden"
                assert views[0].outcome == "ok"
                await shoot(page, "look-now")
                await context.close()

                for name, password, status in (("wang.fang", other, 403), ("zhou.min", own, 200)):
                    context = await browser.new_context(ignore_https_errors=True, locale="zh-CN")
                    page = await _sign_in(context, district.url, name, password)
                    got = await context.request.get(f"{district.url}{src}")
                    assert got.status == status, (name, got.status)
                    if status == 200:
                        assert hashlib.sha256(await got.body()).hexdigest() == sha
                    (last,) = [
                        r for r in await store.audit_records()
                        if r.action == "image.view" and r.user == name
                    ]  # fmt: skip
                    assert last.outcome == ("ok" if status == 200 else "refused:forbidden")
                    await context.close()
            finally:
                await browser.close()
