"""The console over HTTP against a real centre: the audit record of each action, CSRF, sessions,
security headers, and hostile requests (a hypothesis walker) that never get a 500.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centre.web.audit import AuditRecord, verify
from centre.web.permissions import Role
from tests.console.district import District, running_district, tone_wav, wait_until
from tests.pg_cluster import BACKENDS

ROSE = ("gw-rose-01", "North", "Rose Garden")
pytestmark = pytest.mark.timeout(600)


def _ssl(district: District) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(district.paths.ca_cert))


class Browser:
    """A cookie-keeping HTTP client, like a browser without JavaScript."""

    def __init__(self, district: District) -> None:
        self.district = district
        self.session = aiohttp.ClientSession(
            district.url,
            connector=aiohttp.TCPConnector(ssl=_ssl(district)),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            headers={"Accept": "text/html,application/xhtml+xml"},  # what a browser sends
        )

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(path, allow_redirects=False) as r:
            return r.status, await r.text()

    async def post(self, path: str, form: dict[str, Any]) -> tuple[int, str, str]:
        async with self.session.post(path, data=form, allow_redirects=False) as r:
            return r.status, r.headers.get("Location", ""), await r.text()

    async def login(self, name: str, password: str) -> int:
        _, page = await self.get("/console/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page)
        assert token is not None
        status, _, _ = await self.post(
            "/console/login",
            {"login_token": token.group(1), "name": name, "password": password},
        )
        return status

    async def csrf(self) -> str:
        status, page = await self.get("/console/board")
        assert status == 200
        found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
        assert found is not None
        return found.group(1)


@pytest.fixture(params=BACKENDS)
async def district(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[District]:
    # Every console test here on both backends: the console store (accounts, sessions, audit)
    # follows the main repository onto PostgreSQL when a DSN is configured.
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    async with running_district(tmp_path, [ROSE], dsn=dsn) as d:
        want = "PostgresConsoleStore" if dsn else "SqliteConsoleStore"
        assert d.running.console is not None
        assert type(d.running.console.console.store).__name__ == want
        yield d


async def audit(district: District) -> list[AuditRecord]:
    assert district.running.console is not None
    return await district.running.console.console.store.audit_records()


async def one_record(district: District, before: int, t0: float) -> AuditRecord:
    records = await audit(district)
    new = records[before:]
    assert len(new) == 1, [(r.user, r.action, r.target, r.outcome) for r in new]
    assert t0 <= new[0].at <= time.time()
    return new[0]


def missed(round_id: str) -> dict[str, Any]:
    day = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    return {"round": round_id, "day": day, "verdict": "missed", "checkpoints": {"gate": 0}}


async def test_each_action_leaves_exactly_one_audit_record(district: District) -> None:
    officer = await district.user("zhang.wei", Role.OFFICER)
    viewer = await district.user("li.na", Role.TOWNSHIP_VIEWER, township="North")
    clerk = await district.user("wang.fang", Role.CLERK)
    await district.gateways["gw-rose-01"].journal.append("patrol.round", missed("r-1"))

    async def alert_stored() -> bool:
        return bool(await district.running.repo.events(kind="patrol.round"))

    await wait_until(alert_stored, "the missed round at the centre")
    b = Browser(district)
    try:
        # login
        n, t0 = len(await audit(district)), time.time()
        assert await b.login("zhang.wei", officer) == 303
        rec = await one_record(district, n, t0)
        assert (rec.user, rec.action, rec.target, rec.outcome) == (
            "zhang.wei",
            "login",
            "user:zhang.wei",
            "ok",
        )
        # broadcast
        csrf = await b.csrf()
        n, t0 = len(await audit(district)), time.time()
        status, where, _ = await b.post(
            "/console/broadcast",
            {
                "csrf": csrf,
                "scope": "township",
                "township": "North",
                "zones": "1,2",
                "seconds": "3",
                "clip": "fire-drill",
                "status": "Test",
            },
        )
        assert (status, where) == (303, "/console/broadcast")
        rec = await one_record(district, n, t0)
        assert (rec.user, rec.action, rec.target) == ("zhang.wei", "broadcast", "township:North")
        assert rec.outcome.startswith("ok:Test:cmd-")
        # acknowledgement
        n, t0 = len(await audit(district)), time.time()
        status, where, _ = await b.post(
            "/console/alerts/ack",
            {"csrf": csrf, "alert_id": "round:gw-rose-01:r-1", "comment": "补巡已安排"},
        )
        assert (status, where) == (303, "/console/alerts")
        rec = await one_record(district, n, t0)
        assert (rec.user, rec.action, rec.target, rec.outcome) == (
            "zhang.wei",
            "alert.ack",
            "alert:round:gw-rose-01:r-1",
            "ok",
        )
        # a second acknowledgement of the same alert is refused (the first one stands)
        n, t0 = len(await audit(district)), time.time()
        status, _, page = await b.post(
            "/console/alerts/ack",
            {"csrf": csrf, "alert_id": "round:gw-rose-01:r-1", "comment": "again"},
        )
        assert status == 409 and "已被他人确认" in page
        rec = await one_record(district, n, t0)
        assert rec.outcome == "refused:already_acknowledged"
        # a script (no text/html in Accept) gets the centre's JSON error for the same refusal
        async with b.session.post(
            "/console/alerts/ack",
            data={"csrf": csrf, "alert_id": "round:gw-rose-01:r-1", "comment": "x"},
            headers={"Accept": "application/json"},
        ) as r:
            assert r.status == 409 and r.content_type == "application/json"
            assert (await r.json())["error"] == "already_acknowledged"
        n = len(await audit(district))
        # a POST without the session's CSRF token changes nothing and is refused
        n = len(await audit(district))
        status, _, _ = await b.post(
            "/console/broadcast", {"csrf": "0" * 64, "scope": "all", "zones": "1"}
        )
        assert status == 403
        assert len(await audit(district)) == n
        # logout
        n, t0 = len(await audit(district)), time.time()
        status, where, _ = await b.post("/console/logout", {"csrf": csrf})
        assert (status, where) == (303, "/console/login")
        rec = await one_record(district, n, t0)
        assert (rec.user, rec.action, rec.target) == ("zhang.wei", "logout", "user:zhang.wei")
        assert (await b.get("/console/board"))[0] == 303  # signed out for real
    finally:
        await b.close()

    for name, password in (("li.na", viewer), ("wang.fang", clerk)):
        b = Browser(district)
        try:
            assert await b.login(name, password) == 303
            csrf = await b.csrf()
            queued = len(await district.running.commands.store.commands(limit=1000))
            n, t0 = len(await audit(district)), time.time()
            status, _, _ = await b.post(
                "/console/broadcast",
                {
                    "csrf": csrf,
                    "scope": "all",
                    "zones": "1",
                    "seconds": "3",
                    "clip": "x",
                    "status": "Exercise",
                },
            )
            assert status == 403
            rec = await one_record(district, n, t0)
            assert (rec.user, rec.action, rec.target, rec.outcome) == (
                name,
                "broadcast",
                "compounds:?",
                "refused:forbidden",
            )
            assert len(await district.running.commands.store.commands(limit=1000)) == queued
        finally:
            await b.close()
    report = verify(await audit(district))
    assert report.problems == () and report.records == len(await audit(district))


async def test_actual_needs_confirmation_and_is_marked(district: District) -> None:
    officer = await district.user("zhang.wei", Role.OFFICER)
    b = Browser(district)
    try:
        await b.login("zhang.wei", officer)
        csrf = await b.csrf()
        form = {
            "csrf": csrf,
            "scope": "compounds",
            "compound": "North/Rose Garden",
            "zones": "1",
            "seconds": "2",
            "clip": "evacuate",
            "status": "Actual",
        }
        status, _, page = await b.post("/console/broadcast", form)
        assert status == 400 and "确认" in page
        assert await district.running.commands.store.commands() == []
        for bad in ({"seconds": "601"}, {"seconds": "nan"}, {"zones": "0"}, {"clip": "<b>"}):
            status, _, _ = await b.post(
                "/console/broadcast", form | {"confirm_actual": "yes"} | bad
            )
            assert status == 400, bad
        assert await district.running.commands.store.commands() == []
        status, _, _ = await b.post("/console/broadcast", form | {"confirm_actual": "yes"})
        assert status == 303
        _, page = await b.get("/console/broadcast/part")
        assert 'class="actual stage-' in page and "实战" in page
    finally:
        await b.close()


async def test_pages_carry_a_strict_csp_and_sessions_expire(district: District) -> None:
    officer = await district.user("zhang.wei", Role.OFFICER)
    b = Browser(district)
    try:
        async with b.session.get("/console/login") as r:
            csp = r.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp
            assert "unsafe-inline" not in csp
            page = await r.text()
        assert "<script>" not in page and "style=" not in page  # nothing inline to allow
        assert "https://" not in page and "http://" not in page  # no CDN
        assert "登录" in page and "Sign in" not in page  # Chinese by default
        status, english = await b.get("/console/login?lang=en")
        assert status == 200 and "Sign in" in english and "登录" not in english
        status, kept = await b.get("/console/login")  # the choice is kept in a cookie
        assert "Sign in" in kept
        await b.get("/console/login?lang=zh-CN")
        assert await b.login("zhang.wei", "not-the-password") == 401
        assert await b.login("zhang.wei", officer) == 303
        async with b.session.get("/console/board/part") as r:
            assert r.status == 200
        assert district.running.console is not None
        console = district.running.console.console
        console.idle = 0.0  # the operator walked away (a setting, not a patch)
        await asyncio.sleep(0.05)
        async with b.session.get("/console/board", allow_redirects=False) as r:
            assert (r.status, r.headers["Location"]) == (303, "/console/login?expired=1")
        async with b.session.get("/console/board/part") as r:
            assert r.status == 401
    finally:
        await b.close()


# -- hostile requests: never a 500 -----------------------------------------------------------


class ThreadCentre:
    """The district on its own loop in a thread, so hypothesis can drive it synchronously."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.district: District | None = None
        self.cookie = ""
        self.csrf = ""
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        async with running_district(self.tmp_path, [ROSE]) as d:
            self.district = d
            password = await d.user("zhang.wei", Role.OFFICER)
            b = Browser(d)
            await b.login("zhang.wei", password)
            self.csrf = await b.csrf()
            self.cookie = next(c.value for c in b.session.cookie_jar if c.key == "console_session")
            await b.close()
            self.ready.set()
            await self.stop.wait()

    def __enter__(self) -> ThreadCentre:
        self.thread.start()
        assert self.ready.wait(120), "the centre did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(60)

    def request(self, method: str, target: bytes, headers: list[bytes], body: bytes) -> int:
        assert self.district is not None
        ctx = _ssl(self.district)
        import socket

        host, port = self.district.running.host, self.district.running.port
        head = [method.encode() + b" " + target + b" HTTP/1.1", f"Host: {host}".encode()]
        head += [*headers, f"Content-Length: {len(body)}".encode(), b"Connection: close"]
        raw = b"\r\n".join(head) + b"\r\n\r\n" + body
        with (
            socket.create_connection((host, port), 30) as s,
            ctx.wrap_socket(s, server_hostname=host) as tls,
        ):
            tls.sendall(raw)
            reply = b""
            while b"\r\n" not in reply:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                reply += chunk
        status_line = reply.split(b"\r\n", 1)[0]
        return int(status_line.split(b" ")[1])


@pytest.fixture(scope="module")
def thread_centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadCentre]:
    with ThreadCentre(tmp_path_factory.mktemp("console-hostile")) as c:
        yield c


PATHS = [
    "/console",
    "/console/login",
    "/console/logout",
    "/console/board",
    "/console/board/part",
    "/console/compound",
    "/console/compound/part",
    "/console/alerts",
    "/console/alerts/part",
    "/console/alerts/ack",
    "/console/alerts/assign",
    "/console/announcements",
    "/console/announcements/audio",
    "/console/announcements/upload",
    "/console/announcements/preview",
    "/console/announcements/preview/audio",
    "/console/announcements/save",
    "/console/announcements/discard",
    "/console/push",
    "/console/broadcast",
    "/console/broadcast/part",
    "/console/broadcast/stop",
    "/console/look-now",
    "/console/look-now/part",
    "/console/images/" + "0" * 64,
    "/console/images/zz",
    "/console/static/console.css",
]
FIELDS = ["csrf", "login_token", "name", "password", "scope", "compound", "township", "zones",
          "seconds", "clip", "status", "confirm_actual", "alert_id", "comment", "title", "text",
          "draft", "id", "language", "camera"]  # fmt: skip
text = st.text(max_size=40)
form_body = st.one_of(
    st.binary(max_size=300),
    st.lists(st.tuples(st.sampled_from(FIELDS), text), max_size=8).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    ),
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    path=st.sampled_from(PATHS),
    query=st.binary(max_size=60),
    body=form_body,
    signed_in=st.booleans(),
    good_csrf=st.booleans(),
    junk_cookie=st.binary(max_size=60),
)
def test_malformed_requests_to_console_endpoints_never_get_a_500(
    thread_centre: ThreadCentre,
    method: str,
    path: str,
    query: bytes,
    body: bytes,
    signed_in: bool,
    good_csrf: bool,
    junk_cookie: bytes,
) -> None:
    safe_query = bytes(b if 0x21 <= b < 0x7F and b not in b"# " else 0x5F for b in query)
    target = path.encode() + (b"?" + safe_query if safe_query else b"")
    cookie = thread_centre.cookie.encode() if signed_in else junk_cookie.replace(b"\r", b"")
    headers = [
        b"Cookie: console_session=" + cookie.replace(b"\n", b""),
        b"Content-Type: application/x-www-form-urlencoded",
    ]
    if good_csrf and method == "POST":
        body = b"csrf=" + thread_centre.csrf.encode() + b"&" + body
    status = thread_centre.request(method, target, headers, body)
    assert status < 500, (method, target, body[:80])


part_name = st.sampled_from(["csrf", "title", "language", "id", "file", "other", ""])
multipart_part = st.tuples(
    part_name,
    st.one_of(st.none(), st.sampled_from(["a.wav", "b.mp3", "c.m4a", "d.txt", "", "../e.wav"])),
    st.one_of(
        st.binary(max_size=200),
        st.sampled_from([b"RIFF\x24\x00\x00\x00WAVEfmt ", b"ID3\x03", b"\x00\x00\x00\x18ftypM4A "]),
    ),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.filterwarnings("ignore::aiohttp.multipart.BadContentDispositionHeader")
@given(
    parts=st.lists(multipart_part, max_size=10),
    boundary=st.sampled_from([b"XyZ", b"", b"a" * 80, b"\xff\xfe"]),
    truncate=st.integers(min_value=0, max_value=40),
    good_csrf=st.booleans(),
)
def test_hostile_uploads_to_the_console_never_get_a_500(
    thread_centre: ThreadCentre,
    parts: list[tuple[str, str | None, bytes]],
    boundary: bytes,
    truncate: int,
    good_csrf: bool,
) -> None:
    if good_csrf:
        parts = [("csrf", None, thread_centre.csrf.encode()), *parts]
    body = b""
    for name, filename, data in parts:
        disposition = b'form-data; name="' + name.encode() + b'"'
        if filename is not None:
            disposition += b'; filename="' + filename.encode() + b'"'
        body += b"--" + boundary + b"\r\nContent-Disposition: " + disposition + b"\r\n\r\n"
        body += data + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    body = body[: len(body) - truncate]
    headers = [
        b"Cookie: console_session=" + thread_centre.cookie.encode(),
        b"Content-Type: multipart/form-data; boundary=" + boundary,
        b"Accept: text/html",
    ]
    status = thread_centre.request("POST", b"/console/announcements/upload", headers, body)
    assert status < 500, body[:200]


async def test_each_role_sees_only_its_own_area(district: District) -> None:
    viewer = await district.user("li.na", Role.TOWNSHIP_VIEWER, township="South")
    manager = await district.user(
        "zhou.min", Role.COMPOUND_MANAGER, township="North", compound="Rose Garden"
    )
    b = Browser(district)
    try:
        assert await b.login("li.na", viewer) == 303
        status, page = await b.get("/console/board")
        assert status == 200 and "Rose Garden" not in page  # another township's compound
        status, _ = await b.get("/console/compound?township=North&name=Rose+Garden")
        assert status == 403
        status, page = await b.get("/console/broadcast")
        assert status == 403 and "无权" in page
        async with b.session.get("/console/broadcast/part") as r:
            assert r.status == 403 and r.content_type == "application/json"
    finally:
        await b.close()
    b = Browser(district)
    try:
        assert await b.login("zhou.min", manager) == 303
        async with b.session.get("/console/board", allow_redirects=False) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/console/compound?township=North&name=Rose+Garden"
        status, page = await b.get("/console/compound?township=North&name=Rose+Garden")
        assert status == 200 and "Rose Garden" in page
        status, _ = await b.get("/console/alerts")
        assert status == 303
    finally:
        await b.close()


async def test_a_running_broadcast_can_be_stopped(district: District) -> None:
    officer = await district.user("zhang.wei", Role.OFFICER)
    store = district.running.commands.store
    board = district.gateways["gw-rose-01"].board
    b = Browser(district)
    try:
        await b.login("zhang.wei", officer)
        csrf = await b.csrf()
        status, _, _ = await b.post(
            "/console/broadcast",
            {
                "csrf": csrf,
                "scope": "all",
                "zones": "1",
                "seconds": "300",
                "clip": "fire-drill",
                "status": "Exercise",
            },
        )
        assert status == 303
        (start,) = await store.commands()

        async def status_of(command_id: str) -> str:
            return next(c.status for c in await store.commands() if c.command_id == command_id)

        async def relays_on() -> bool:
            return await status_of(start.command_id) == "on" and any(board.coils)

        await wait_until(relays_on, "the broadcast's relays on")
        _, page = await b.get("/console/broadcast/part")
        assert 'action="/console/broadcast/stop"' in page
        # the history filters
        for query, shown in (
            ("phase=running", True),
            ("phase=ended", False),
            ("status=Exercise&where=North/Rose+Garden", True),
            ("status=Actual", False),
            ("where=South/Lotus+Court", False),
        ):
            _, page = await b.get(f"/console/broadcast/part?{query}")
            assert (start.command_id in page) is shown, query
        n, t0 = len(await audit(district)), time.time()
        status, where, _ = await b.post(
            "/console/broadcast/stop", {"csrf": csrf, "command_id": start.command_id}
        )
        assert (status, where) == (303, "/console/broadcast")
        rec = await one_record(district, n, t0)
        assert (rec.user, rec.action, rec.target) == (
            "zhang.wei",
            "broadcast.stop",
            f"command:{start.command_id}",
        )

        async def stopped() -> bool:
            return await status_of(start.command_id) == "done" and not any(board.coils)

        await wait_until(stopped, "the broadcast stopped and its relays off")
        # stopping what is no longer running is refused, and says so
        status, _, page = await b.post(
            "/console/broadcast/stop", {"csrf": csrf, "command_id": start.command_id}
        )
        assert status == 404 and "已不在进行中" in page
    finally:
        await b.close()


async def test_board_filters_by_township_and_state(district: District) -> None:
    officer = await district.user("zhang.wei", Role.OFFICER)
    b = Browser(district)
    try:
        async with b.session.get("/console/events") as r:
            assert r.status == 401  # the event stream needs a session too
        await b.login("zhang.wei", officer)
        status, page = await b.get("/console/board")
        assert status == 200 and 'data-compound="Rose Garden"' in page
        shown = {
            query: 'data-compound="Rose Garden"' in (await b.get(f"/console/board/part?{query}"))[1]
            for query in ("township=North", "township=South", "state=ok", "state=down")
        }
        assert shown == {
            "township=North": True,
            "township=South": False,
            "state=ok": True,  # link up (its command channel is open), nothing open
            "state=down": False,
        }
        async with b.session.get("/console/events") as r:
            assert r.status == 200 and r.content_type == "text/event-stream"
            first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 30)
            assert first.startswith(b"retry:")
            data = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 30)
            assert data.startswith(b"data: ")
    finally:
        await b.close()


async def test_console_accounts_open_the_bulletins_and_exports_are_audited(
    district: District,
) -> None:
    clerk = await district.user("wang.fang", Role.CLERK)
    viewer = await district.user("li.na", Role.TOWNSHIP_VIEWER, township="South")
    b = Browser(district)
    try:
        status, _ = await b.get("/bulletins/daily")
        assert status == 401  # no console session: the bulletins' own sign-in
        assert await b.login("wang.fang", clerk) == 303
        status, board_page = await b.get("/console/board")
        assert status == 200 and 'href="/bulletins/daily' in board_page
        status, page = await b.get("/bulletins/daily")
        assert status == 200 and "巡" in page
        before, t0 = len(await audit(district)), time.time()
        async with b.session.get("/bulletins/daily?format=csv", allow_redirects=False) as r:
            assert r.status == 200 and r.content_type == "text/csv"
        record = await one_record(district, before, t0)
        assert (record.user, record.action) == ("wang.fang", "bulletin.export")
        assert record.outcome == "ok"
        assert record.target.startswith("bulletin:/bulletins/daily")
    finally:
        await b.close()
    b = Browser(district)
    try:
        # A township viewer's area is one township: the district's bulletin is not theirs.
        assert await b.login("li.na", viewer) == 303
        status, board_page = await b.get("/console/board")
        assert status == 200 and "/bulletins/daily" not in board_page
        status, _ = await b.get("/bulletins/daily")
        assert status == 401
    finally:
        await b.close()


async def test_an_alert_is_assigned_to_a_township_audited_and_shown(district: District) -> None:
    clerk = await district.user("wang.fang", Role.CLERK)
    viewer = await district.user("li.na", Role.TOWNSHIP_VIEWER, township="North")
    await district.gateways["gw-rose-01"].journal.append("patrol.round", missed("r-9"))

    async def alert_stored() -> bool:
        return bool(await district.running.repo.events(kind="patrol.round"))

    await wait_until(alert_stored, "the missed round at the centre")
    alert = "round:gw-rose-01:r-9"
    b = Browser(district)
    try:
        assert await b.login("wang.fang", clerk) == 303
        csrf = await b.csrf()
        status, page = await b.get("/console/alerts")
        assert status == 200 and 'action="/console/alerts/assign"' in page
        n, t0 = len(await audit(district)), time.time()
        status, where, _ = await b.post(
            "/console/alerts/assign", {"csrf": csrf, "alert_id": alert, "township": "North"}
        )
        assert (status, where) == (303, "/console/alerts")
        rec = await one_record(district, n, t0)
        assert (rec.user, rec.action, rec.target, rec.outcome) == (
            "wang.fang", "alert.assign", f"alert:{alert}>North", "ok",
        )  # fmt: skip
        status, page = await b.get("/console/alerts")
        assert "已指派给 North" in page and "wang.fang" in page
        # a township that is not the district's is refused, and recorded as refused
        n, t0 = len(await audit(district)), time.time()
        status, _, page = await b.post(
            "/console/alerts/assign", {"csrf": csrf, "alert_id": alert, "township": "Atlantis"}
        )
        assert status == 400
        assert (await one_record(district, n, t0)).outcome == "refused:bad_township"
    finally:
        await b.close()
    b = Browser(district)
    try:
        # the township viewer sees who handed it to them, and may not assign (server-side)
        assert await b.login("li.na", viewer) == 303
        status, page = await b.get("/console/alerts")
        assert status == 200 and "已指派给 North" in page
        assert 'action="/console/alerts/assign"' not in page
        csrf = await b.csrf()
        n, t0 = len(await audit(district)), time.time()
        status, _, _ = await b.post(
            "/console/alerts/assign", {"csrf": csrf, "alert_id": alert, "township": "North"}
        )
        assert status == 403
        assert (await one_record(district, n, t0)).outcome == "refused:forbidden"
    finally:
        await b.close()


async def test_the_library_plays_in_the_console_and_broadcasts_carry_its_hash_and_sound(
    district: District,
) -> None:
    import hashlib

    from centre.announce.library import AnnouncementLibrary
    from centre.commands.store import FINAL

    library = AnnouncementLibrary(district.paths.root)
    ann = await asyncio.to_thread(
        library.add_bytes, tone_wav(), ".wav", title="防诈骗提醒", ann_id="fraud-warning"
    )
    officer = await district.user("zhang.wei", Role.OFFICER)
    viewer = await district.user("li.na", Role.TOWNSHIP_VIEWER, township="North")
    store = district.running.commands.store
    b = Browser(district)
    try:
        assert await b.login("zhang.wei", officer) == 303
        status, page = await b.get("/console/announcements")
        assert status == 200 and "防诈骗提醒" in page
        assert 'src="/console/announcements/audio?id=fraud-warning"' in page
        async with b.session.get("/console/announcements/audio?id=fraud-warning") as r:
            assert r.status == 200 and r.content_type == "audio/wav"
            assert hashlib.sha256(await r.read()).hexdigest() == ann.sha256
        async with b.session.get("/console/announcements/audio?id=nothing-here") as r:
            assert r.status == 400
        # a broadcast naming a library announcement carries its hash to the gateway
        csrf = await b.csrf()
        status, _, _ = await b.post(
            "/console/broadcast",
            {"csrf": csrf, "scope": "all", "zones": "1", "seconds": "3",
             "clip": "fraud-warning", "status": "Exercise"},
        )  # fmt: skip
        assert status == 303
        (cmd,) = await store.commands()
        assert ann.sha256.encode() in cmd.envelope

        async def final() -> bool:
            rec = next(c for c in await store.commands() if c.command_id == cmd.command_id)
            return rec.status in FINAL

        await wait_until(final, "the broadcast ended at the gateway")
        # the fourth step: what the gateway heard (here recorded as its ack would be)
        await store.record_ack(cmd.gateway_id, cmd.command_id, "sound", "no_sound:silence",
                               now=time.time())  # fmt: skip
        _, part = await b.get("/console/broadcast/part")
        assert 'data-sound="no_sound"' in part and "没有声音" in part
    finally:
        await b.close()
    b = Browser(district)
    try:
        assert await b.login("li.na", viewer) == 303
        status, _ = await b.get("/console/announcements")
        assert status == 403
        async with b.session.get("/console/announcements/audio?id=fraud-warning") as r:
            assert r.status == 403
    finally:
        await b.close()


async def test_the_push_page_shows_each_part_sent_or_failed_and_why(district: District) -> None:
    from centre.push.outbox import ERRCODE, FILENAME, OK, Owed, PushOutbox

    clerk = await district.user("wang.fang", Role.CLERK)
    viewer = await district.user("li.na", Role.TOWNSHIP_VIEWER, township="North")
    b = Browser(district)
    try:
        assert await b.login("wang.fang", clerk) == 303
        status, page = await b.get("/console/push")
        assert status == 200 and "尚未推送" in page  # nothing pushed yet, and no file made
        assert not (district.paths.root / FILENAME).exists()
        now = time.time()
        async with await PushOutbox.open(district.paths.root / FILENAME) as outbox:
            assert await outbox.enqueue("2026-12-05", "district", ["一", "二"], now=now)
            one = await outbox.begin_attempt("2026-12-05", "district", 1, now=now)
            await outbox.finish_attempt(one, outcome=OK, errcode=None, detail="", give_up=False,
                                        now=now)  # fmt: skip
            two = await outbox.begin_attempt("2026-12-05", "district", 2, now=now)
            await outbox.finish_attempt(two, outcome=ERRCODE, errcode=93000,
                                        detail="invalid webhook url", give_up=True,
                                        now=now)  # fmt: skip
            owed = Owed("alert:tamper:a1", "district", "tamper", "玫瑰园小区", ["告警"])
            assert await outbox.commit_scan([owed], {}, now=now + 1) == 1
        status, page = await b.get("/console/push")
        assert status == 200
        assert 'data-part="1" data-state="sent"' in page and "已发送" in page
        assert "巡逻日报" in page and "防篡改告警" in page and "玫瑰园小区" in page
        assert "alert:tamper" not in page.replace('data-day="alert:tamper:a1"', "")
        assert page.index('data-kind="tamper"') < page.index('data-kind="daily"')  # newest first
        assert 'data-part="2" data-state="failed"' in page and "93000" in page
        assert "invalid webhook url" in page
    finally:
        await b.close()
    b = Browser(district)
    try:
        assert await b.login("li.na", viewer) == 303
        status, _ = await b.get("/console/push")
        assert status == 403
    finally:
        await b.close()
