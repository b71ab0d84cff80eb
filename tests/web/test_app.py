"""The status page over real HTTP: read-only view, login with backoff, CSRF, acknowledgement,
and no page that leaks a secret."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import pwd
import re
import stat
import sys
from http.cookies import SimpleCookie
from pathlib import Path

import aiohttp
import pytest

from gateway.config import write_secret_file
from gateway.errors import ConfigError
from gateway.journal import read_events
from gateway.web.auth import hash_password, verify_password
from gateway.web.cli import add_cli
from gateway.web.config import WebSection
from tests.web.conftest import PASSWORD, PLANTED, Site

PAGES = ("/", "/status.json", "/login", "/style.css", "/healthz")


def set_password(site: Site, password: str = PASSWORD) -> str:
    line = hash_password(password)
    write_secret_file(site.password_path, (line + "\n").encode(), hex_text=False)
    return line


async def login_token(http: aiohttp.ClientSession) -> str:
    async with http.get("/login") as resp:
        text = await resp.text()
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found, text
    return found.group(1)


async def login(http: aiohttp.ClientSession, password: str) -> aiohttp.ClientResponse:
    token = await login_token(http)
    async with http.post(
        "/login", data={"csrf": token, "password": password}, allow_redirects=False
    ) as resp:
        await resp.read()
        return resp


def session_csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no form with a CSRF token on the page"
    return found.group(1)


async def test_read_only_page_shows_the_compound(site: Site) -> None:
    async with site.session() as http, http.get("/") as resp:
        assert resp.status == 200
        page = await resp.text()
        headers = resp.headers
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"
    assert "<script" not in page.lower()
    for expected in ("Lotus Garden", "gw-test", "north-gate", "Wang Wei", "Li Na", "bike-shed",
                     "Checkpoint missed", "reader back online", "weak signal", "r-0800",
                     "centre.district:8443", "DeviceError: bus0 gone", "requested"):  # fmt: skip
        assert expected in page, expected
    assert "r-yesterday" not in page, "only today's rounds"
    # The newest revision of a round wins: r-0800 is ok now, no longer late.
    rounds = page.split('id="rounds"')[1].split("</section>")[0]
    assert "OK" in rounds and "late start" not in rounds
    assert "Acknowledge" not in page, "no change without login"
    assert "Log in to make changes" in page


async def test_a_uid_only_band_is_marked_unverified_credential(site: Site) -> None:
    async with site.session() as http, http.get("/") as resp:
        page = await resp.text()
    taps = page.split('id="taps"')[1].split("</section>")[0]
    rows = {row.split("</td><td>")[1]: row for row in taps.split("<tr>")[2:]}
    assert "unverified credential" in rows["east-gate"]
    assert "unverified credential" not in rows["bike-shed"] + rows["north-gate"]
    async with site.session() as http, http.get("/?lang=zh_CN") as resp:
        assert "未验证凭证" in await resp.text()


async def test_status_json_carries_the_same_view(site: Site) -> None:
    async with site.session() as http, http.get("/status.json") as resp:
        view = await resp.json()
    assert [t["checkpoint"] for t in view["taps"]] == ["east-gate", "bike-shed", "north-gate"]
    assert {r["reader"]: r["state"] for r in view["readers"]} == {
        "bus0/1": "online",
        "bus0/2": "offline",
    }
    alerts = {a["alert"]: a for a in view["alerts"]}
    assert alerts["a-2"]["resolved"] == "reader back online"
    assert alerts["a-1"]["resolved"] == "" and alerts["a-1"]["acknowledged"] == ""
    assert view["sections"]["sync"]["token"] == "(hidden)"


async def test_without_a_password_nobody_can_log_in(site: Site) -> None:
    async with site.session() as http:
        async with http.get("/login") as resp:
            page = await resp.text()
        assert "No password is set" in page
        assert 'type="password"' not in page
        token = http.cookie_jar.filter_cookies(http._base_url)["cgw_login"].value  # type: ignore[arg-type]
        async with http.post(
            "/login", data={"csrf": token, "password": "anything at all"}, allow_redirects=False
        ) as resp:
            assert resp.status == 403
            assert "No password is set" in await resp.text()
        async with http.get("/") as resp:
            assert "Acknowledge" not in await resp.text()


async def attempt(http: aiohttp.ClientSession, password: str) -> aiohttp.ClientResponse:
    """One login POST with a valid form token (so only the password and the throttle decide)."""
    return await login(http, password)


async def test_wrong_passwords_back_off_and_the_right_one_works(site: Site) -> None:
    set_password(site)
    async with site.session() as http:
        assert (await attempt(http, "wrong password!")).status == 403, "a first typo is free"
        waits = []
        for _ in range(4):
            assert (await attempt(http, "wrong password!")).status == 403
            # Straight away again, even with the right password: refused unchecked.
            early = await attempt(http, PASSWORD)
            assert early.status == 429
            assert SESSION_COOKIE_NAME not in early.cookies
            waits.append(int(early.headers["Retry-After"]))
            site.clock.advance(waits[-1])
        assert waits == [1, 2, 4, 8], "the wait doubles with each failure"
        resp = await attempt(http, PASSWORD)
        assert resp.status == 303
        morsel = SimpleCookie(resp.headers["Set-Cookie"])[SESSION_COOKIE_NAME]
        assert morsel["httponly"] and morsel["samesite"] == "Strict"
        assert len(morsel.value) >= 40, "a random token, not a counter"
        async with http.get("/") as page_resp:
            page = await page_resp.text()
        assert "Acknowledge" in page and "Log out" in page
        async with http.post(
            "/logout", data={"csrf": session_csrf(page)}, allow_redirects=False
        ) as out:
            assert out.status == 303
        # A success cleared the client's count: after a typo, the next try is checked at once.
        assert (await attempt(http, "wrong password!")).status == 403
        assert (await attempt(http, "wrong password!")).status == 403
    events = read_events(site.journal.path)
    failed = [e for e in events if e.kind == "web.login_failed"]
    assert len(failed) == 7 and all(e.cls == "telemetry" for e in failed)
    assert [e.cls for e in events if e.kind == "web.login"] == ["evidence"]


SESSION_COOKIE_NAME = "cgw_session"


async def test_login_needs_its_csrf_token_and_same_origin(site: Site) -> None:
    set_password(site)
    async with site.session() as http:
        await login_token(http)
        async with http.post("/login", data={"password": PASSWORD}, allow_redirects=False) as r:
            assert r.status == 403
        token = await login_token(http)
        async with http.post(
            "/login",
            data={"csrf": token, "password": PASSWORD},
            headers={"Origin": "http://evil.example"},
            allow_redirects=False,
        ) as r:
            assert r.status == 403
        async with http.get("/") as r:
            assert "Log out" not in await r.text()


async def test_acknowledging_an_alert_is_journaled_and_needs_csrf(site: Site) -> None:
    set_password(site)
    async with site.session() as http:
        assert (await login(http, PASSWORD)).status == 303
        async with http.get("/") as r:
            csrf = session_csrf(await r.text())
        before = site.journal.last_seq
        async with http.post("/alerts/ack", data={"alert": "a-1"}, allow_redirects=False) as r:
            assert r.status == 403, "CSRF token missing"
        async with http.post(
            "/alerts/ack", data={"alert": "a-1", "csrf": "x" * 43}, allow_redirects=False
        ) as r:
            assert r.status == 403, "CSRF token wrong"
        assert site.journal.last_seq == before, "nothing journaled for refused requests"
        async with http.post(
            "/alerts/ack", data={"alert": "no-such", "csrf": csrf}, allow_redirects=False
        ) as r:
            assert r.status == 404
        async with http.post(
            "/alerts/ack", data={"alert": "a-1", "csrf": csrf}, allow_redirects=False
        ) as r:
            assert r.status == 303
        acks = [e for e in read_events(site.journal.path) if e.kind == "web.alert_ack"]
        assert len(acks) == 1 and acks[0].payload["alert"] == "a-1" and acks[0].cls == "evidence"
        async with http.get("/status.json") as r:
            alerts = {a["alert"]: a for a in (await r.json())["alerts"]}
        assert alerts["a-1"]["acknowledged"]
        # Logging out ends the session: the same cookie can no longer change anything.
        async with http.post("/logout", data={"csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303
    async with (
        site.session() as anon,
        anon.post("/alerts/ack", data={"alert": "a-1", "csrf": csrf}, allow_redirects=False) as r,
    ):
        assert r.status == 403


async def test_a_new_password_ends_old_sessions(site: Site) -> None:
    set_password(site)
    async with site.session() as http:
        assert (await login(http, PASSWORD)).status == 303
        async with http.get("/") as r:
            assert "Log out" in await r.text()
        set_password(site, "another long password")
        async with http.get("/") as r:
            assert "Log out" not in await r.text()


async def test_no_page_exposes_secrets(site: Site) -> None:
    line = set_password(site)
    bodies = []
    async with site.session() as http:
        for path in PAGES:
            async with http.get(path) as r:
                bodies.append(await r.text())
        assert (await login(http, PASSWORD)).status == 303
        for path in PAGES:
            async with http.get(path) as r:
                bodies.append(await r.text())
                bodies.append(str(r.headers))
        async with http.post("/login", data={"password": PASSWORD}) as r:
            bodies.append(await r.text())
    everything = "\n".join(bodies)
    assert "Lotus Garden" in everything and "north-gate" in everything  # the pages rendered
    secret_salt, secret_hash = line.split("$")[4:6]
    for name, value in [*PLANTED.items(), ("password", PASSWORD), ("salt", secret_salt),
                        ("hash", secret_hash)]:  # fmt: skip
        assert value not in everything, f"{name} leaked"
    assert "5eC7e7" not in everything


def test_set_password_cli_writes_a_0600_scrypt_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('[gateway]\nid = "gw-test"\ncompound = "Lotus Garden"\n')
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["web", "set-password", "--config", str(cfg), "--password-stdin"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert args.handler(args) == 0
    path = tmp_path / "web-password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text.startswith("scrypt$") and PASSWORD not in text
    assert verify_password(PASSWORD, text) and not verify_password(PASSWORD + "x", text)

    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    with pytest.raises(ConfigError, match="at least"):
        args.handler(args)
    assert verify_password(PASSWORD, path.read_text()), "a refused password changes nothing"

    args = parser.parse_args(["web", "clear-password", "--config", str(cfg)])
    assert args.handler(args) == 0
    assert not path.exists()


async def test_a_flood_of_telemetry_does_not_push_taps_off_the_page(site: Site) -> None:
    for _ in range(3):
        await asyncio.gather(
            *(
                site.journal.append("health.sample", {"device": "modem", "rssi": -70 - i % 9},
                                    cls="telemetry")
                for i in range(2500)
            )
        )  # fmt: skip
    site.ctx.section = WebSection(refresh_s=0, events_scanned=10_000)
    async with site.session() as http, http.get("/status.json") as resp:
        view = await resp.json()
    assert [t["checkpoint"] for t in view["taps"]] == ["east-gate", "bike-shed", "north-gate"]
    assert view["journal"]["events"] > 7500
    # Beyond the configured look-back they are gone: the window is honoured.
    site.ctx.section = WebSection(refresh_s=0, events_scanned=1000)
    async with site.session() as http, http.get("/status.json") as resp:
        assert (await resp.json())["taps"] == []


async def test_parallel_guesses_cannot_slip_past_the_backoff(site: Site) -> None:
    set_password(site)
    async with site.session() as http:
        token = await login_token(http)

        async def guess(n: int) -> int:
            async with http.post(
                "/login",
                data={"csrf": token, "password": f"wrong guess {n:04d}"},
                allow_redirects=False,
            ) as resp:
                return resp.status

        statuses = await asyncio.gather(*(guess(n) for n in range(12)))
    # Checked one at a time: the first failure is free, the second sets a wait, the rest wait.
    assert sorted(statuses) == [403, 403] + [429] * 10


async def test_build_services_serves_the_configured_page(tmp_path: Path) -> None:
    from gateway.clock import SystemClock
    from gateway.config import load_config
    from gateway.daemon import StatusBoard
    from gateway.journal import Journal
    from gateway.web import build_services

    base = '[gateway]\nid = "gw-web"\ncompound = "Factory Test"\ndata_dir = "data"\n'
    path = tmp_path / "gateway.toml"
    path.write_text(base + "[web]\nenabled = false\n")
    assert build_services(load_config(path), None, SystemClock()) == [], "disabled: no page"
    path.write_text(base)
    [default] = build_services(load_config(path), None, SystemClock())
    assert (default.host, default.port) == ("0.0.0.0", 8080), "on the LAN by default"

    path.write_text(base + '[web]\nhost = "127.0.0.1"\nport = 0\n')
    cfg = load_config(path)
    journal = await Journal.open(cfg.journal_path, gateway_id="gw-web")
    board = StatusBoard(None)
    board.publish("link", {"state": "up"})
    [service] = build_services(cfg, journal, SystemClock(), board)
    assert service.name == "web"
    assert service.ctx.password_path == tmp_path / "web-password", "relative to the config"
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), 10)
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{service.bound_port}/") as resp,
        ):
            page = await resp.text()
        assert "Factory Test" in page
        assert 'id="link"' in page and "up" in page.split('id="link"')[1]
        assert board.sections["web"] == {
            "listen": f"127.0.0.1:{service.bound_port}",
            "login": "no password set (read-only)",
        }
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await journal.close()


async def test_a_readable_password_file_disables_login(site: Site) -> None:
    set_password(site)
    site.password_path.chmod(0o644)
    async with site.session() as http:
        async with http.get("/login") as resp:
            page = await resp.text()
        assert "not safe to use" in page and 'type="password"' not in page
        token = http.cookie_jar.filter_cookies(http._base_url)["cgw_login"].value  # type: ignore[arg-type]
        async with http.post(
            "/login", data={"csrf": token, "password": PASSWORD}, allow_redirects=False
        ) as resp:
            assert resp.status == 403
    assert "scrypt" not in page


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another user needs root")
def test_set_password_as_root_hands_the_file_to_the_daemon_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('[gateway]\nid = "gw-test"\ncompound = "Lotus Garden"\n')
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="command"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    args = parser.parse_args(
        ["web", "set-password", "-c", str(cfg), "--password-stdin", "--owner", "nobody"]
    )
    assert args.handler(args) == 0
    st = (tmp_path / "web-password").stat()
    assert st.st_uid == pwd.getpwnam("nobody").pw_uid and stat.S_IMODE(st.st_mode) == 0o600
    args = parser.parse_args(
        ["web", "set-password", "-c", str(cfg), "--password-stdin", "--owner", "no-such-user"]
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    before = (tmp_path / "web-password").read_text()
    with pytest.raises(ConfigError, match="no user"):
        args.handler(args)
    assert (tmp_path / "web-password").read_text() == before, "nothing changed"
