"""Camera images in the console (issue 17): look now through the shared helper, the image route
with its permission check per compound, and the audit record of every view and refusal.

A real centre, two real gateways (journal, uploader, command channel, verifier, snapshot
service, media uplink) each with a simulated duty-room camera (tests/console/district.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from centre.commands.issue import load_command_key
from centre.commands.looknow import STORED, look_now_result, request_look_now
from centre.web.permissions import Role
from gateway.sync.config import SyncSection
from gateway.sync.media import MediaUplink
from tests.console.district import District, running_district, wait_until
from tests.console.test_http import Browser, audit

ROSE = ("gw-rose-01", "North", "Rose Garden")
PLUM = ("gw-plum-01", "South", "Plum Court")
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
async def district(tmp_path: Path) -> AsyncIterator[District]:
    async with running_district(tmp_path, [ROSE, PLUM], cameras=True) as d:
        yield d


async def look_now(district: District, gateway_id: str) -> str:
    """Order a picture with the console's helper; the sha256 once the centre stores it."""
    running = district.running
    store = running.commands.store
    rec = await request_look_now(
        store, running.repo, load_command_key(district.paths), gateway_id=gateway_id,
        camera="duty-room", now=time.time(), issued_by="test",
    )  # fmt: skip
    found = {}

    async def stored() -> bool:
        result = await look_now_result(store, running.repo, rec.command_id, now=time.time())
        assert result is not None and result.stage != "failed", result
        found["r"] = result
        return result.stage == STORED

    await wait_until(stored, "the look-now image stored", check=district.gateways[gateway_id].check)
    result = found["r"]
    assert result.camera == "duty-room" and result.gateway_id == gateway_id
    assert result.captured_at is not None and rec.issued_at - 5 <= result.captured_at
    assert result.stored_at is not None and result.stored_at >= result.captured_at - 5
    cam = district.gateways[gateway_id].camera
    assert cam is not None and result.sha256 in cam.served
    assert result.sha256 is not None
    return result.sha256


async def fetch(browser: Browser, path: str) -> tuple[int, bytes]:
    async with browser.session.get(path, allow_redirects=False) as r:
        return r.status, await r.read()


async def test_an_image_is_shown_only_within_the_viewers_area_and_every_view_is_audited(
    district: District,
) -> None:
    sha = await look_now(district, "gw-rose-01")
    url = f"/console/images/{sha}"
    people = {
        "li.wei": (Role.OFFICER, None, None),
        "zhou.min": (Role.COMPOUND_MANAGER, "North", "Rose Garden"),
        "wang.fang": (Role.COMPOUND_MANAGER, "South", "Plum Court"),
        "chen.jie": (Role.TOWNSHIP_VIEWER, "North", None),
    }
    expected = {"li.wei": 200, "zhou.min": 200, "wang.fang": 403, "chen.jie": 403}
    for name, (role, township, compound) in people.items():
        password = await district.user(name, role, township=township, compound=compound)
        browser = Browser(district)
        try:
            assert await browser.login(name, password) == 303
            before = len(await audit(district))
            t0 = time.time()
            status, body = await fetch(browser, url)
            assert status == expected[name], (name, status, body[:200])
            if status == 200:
                assert hashlib.sha256(body).hexdigest() == sha
            records = (await audit(district))[before:]
            (rec,) = [r for r in records if r.action == "image.view"]
            assert rec.user == name and t0 <= rec.at <= time.time()
            assert rec.target == f"image:{sha}@North/Rose Garden"
            assert rec.outcome == ("ok" if status == 200 else "refused:forbidden")
        finally:
            await browser.close()


async def test_malformed_and_unknown_images_are_4xx_and_audited(district: District) -> None:
    password = await district.user("li.wei", Role.OFFICER)
    browser = Browser(district)
    try:
        assert await browser.login("li.wei", password) == 303
        for path, status, target in [
            ("/console/images/not-a-hash", 400, "image:?"),
            ("/console/images/" + "A" * 64, 400, "image:?"),
            ("/console/images/" + "0" * 64, 404, "image:" + "0" * 64),
            ("/console/images/" + "0" * 63 + "%00", 400, "image:?"),
        ]:
            before = len(await audit(district))
            got, body = await fetch(browser, path)
            assert got == status, (path, got, body[:200])
            (rec,) = (await audit(district))[before:]
            assert rec.action == "image.view" and rec.target == target
            assert rec.outcome.startswith("refused:")
        # a script (no text/html) gets the centre's JSON error, still 4xx
        async with browser.session.get(
            "/console/images/" + "0" * 64, headers={"Accept": "image/*"}
        ) as r:
            assert r.status == 404
            assert (await r.json())["error"] == "no_such_image"
    finally:
        await browser.close()
    # not signed in: 401, nothing served
    anonymous = Browser(district)
    try:
        status, _ = await fetch(anonymous, "/console/images/" + "0" * 64)
        assert status == 401
    finally:
        await anonymous.close()


async def test_look_now_from_the_compound_page_over_http(district: District) -> None:
    """The form and the part the page polls, as a browser without JavaScript uses them."""
    password = await district.user("li.wei", Role.OFFICER)
    manager = await district.user(
        "zhou.min", Role.COMPOUND_MANAGER, township="North", compound="Rose Garden"
    )
    page_url = "/console/compound?township=North&name=Rose+Garden"
    browser = Browser(district)
    try:
        assert await browser.login("li.wei", password) == 303

        async def button_shown() -> bool:  # once the gateway's camera poller reported
            _, page = await browser.get(page_url)
            return "立即查看值班室画面" in page

        await wait_until(button_shown, "the look-now button on the compound page")
        _, page = await browser.get(page_url)
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
        assert csrf is not None
        form = {"csrf": csrf.group(1), "township": "North", "name": "Rose Garden",
                "camera": "gw-rose-01/duty-room"}  # fmt: skip
        before = len(await audit(district))
        status, location, _ = await browser.post("/console/look-now", form)
        assert status == 303 and "look=cmd-" in location, (status, location)
        (ordered,) = (await audit(district))[before:]
        command_id = location.split("look=")[1].split("#")[0]
        assert (ordered.user, ordered.action, ordered.outcome) == (
            "li.wei",
            "look_now",
            f"ok:{command_id}",
        )
        assert ordered.target == "compound:North/Rose Garden>gw-rose-01:duty-room"
        shown: dict[str, str] = {}

        async def picture() -> bool:
            got, part = await browser.get(f"/console/look-now/part?id={command_id}")
            assert got == 200 and 'data-stage="failed"' not in part, part
            shown["part"] = part
            return 'data-stage="stored"' in part

        await wait_until(picture, "the picture in the look-now part")
        sha = re.search(r'src="/console/images/([0-9a-f]{64})"', shown["part"])
        assert sha is not None
        assert "拍摄于" in shown["part"] and "1970" not in shown["part"]
        got, body = await fetch(browser, f"/console/images/{sha.group(1)}")
        assert got == 200 and hashlib.sha256(body).hexdigest() == sha.group(1)
        # a camera the compound never reported, or another compound's: refused, audited
        for bad in (
            {**form, "camera": "gw-rose-01/vault"},
            {**form, "camera": "gw-plum-01/duty-room"},
        ):
            before = len(await audit(district))
            status, _, _ = await browser.post("/console/look-now", bad)
            assert status == 400
            (rec,) = (await audit(district))[before:]
            assert rec.outcome == "refused:no_camera"
    finally:
        await browser.close()
    # a compound manager sees the picture but does not order one
    browser = Browser(district)
    try:
        assert await browser.login("zhou.min", manager) == 303
        _, page = await browser.get(page_url)
        assert "立即查看值班室画面" not in page
        got, body = await fetch(browser, f"/console/images/{sha.group(1)}")
        assert got == 200
        _, board = await browser.get(page_url)
        token = re.search(r'name="csrf" value="([0-9a-f]{64})"', board)
        assert token is not None
        status, _, _ = await browser.post("/console/look-now", {**form, "csrf": token.group(1)})
        assert status == 403
        got, part = await browser.get(f"/console/look-now/part?id={command_id}")
        assert got == 200 and 'data-stage="stored"' in part
    finally:
        await browser.close()


async def test_a_look_now_image_does_not_wait_for_the_uplinks_idle_poll(tmp_path: Path) -> None:
    """With hour-long idle polls (the uploader and the media uplink), a look-now picture still
    arrives: the uplink wakes for a new camera.snapshot and, while a look-now image waits for
    its event's ack, looks again quickly (before, it slept the whole idle poll)."""
    slow = SyncSection(
        first_delay_max_s=0.0, idle_poll_s=3600.0, backoff_initial_s=0.05, backoff_max_s=0.5
    )
    async with running_district(tmp_path, [ROSE], cameras=True, sync=slow) as district:
        (uplink,) = [s for s in district.gateways["gw-rose-01"].services
                     if isinstance(s, MediaUplink)]  # fmt: skip

        async def started() -> bool:
            return bool(uplink.centre_url)

        await wait_until(started, "the media uplink started")
        await asyncio.sleep(0.5)  # its first scan found nothing: it is in its idle wait
        sha = await look_now(district, "gw-rose-01")  # waits WAIT_S, far below the idle poll
        assert uplink.counters["uploaded"] >= 1
        assert await district.running.repo.media(sha) is not None
