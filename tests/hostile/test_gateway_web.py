# ruff: noqa: F811 - the site fixture is imported by name, then requested as an argument
"""The status page against hostile requests, sent as raw bytes on a real socket: every route,
malformed bodies, headers and cookies. None may answer 500 or log a traceback; each is a 4xx,
logged at warning level within a budget, and the page still serves a good request after."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import pytest

from gateway.web import app as web_app
from tests.web.conftest import Site, site  # noqa: F401 - fixture used by name
from tests.web.test_app import set_password

# (read this way so the regression tests also run, and fail, on code without the budget)
BAD_REQUEST_WARNINGS_PER_MINUTE = getattr(web_app, "BAD_REQUEST_WARNINGS_PER_MINUTE", 10)

ROUTES = [
    ("GET", "/"),
    ("GET", "/status.json"),
    ("GET", "/style.css"),
    ("GET", "/healthz"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("POST", "/alerts/ack"),
]


async def raw(site: Site, request: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """Send ``request`` as is; (status, whole reply)."""
    url = urlsplit(site.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(request)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        await writer.wait_closed()
    assert reply.startswith(b"HTTP/1."), reply[:100]
    return int(reply.split(b" ", 2)[1]), reply


def req(method: str, path: str, body: bytes = b"", *headers: bytes) -> bytes:
    head = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    if method == "POST":
        head.append(f"Content-Length: {len(body)}".encode())
    else:
        body = b""  # a GET with a body is a framing error aiohttp answers itself
    return b"\r\n".join([*head, *headers]) + b"\r\n\r\n" + body


MULTIPART_PARTS = (
    b'--XyZ\r\nContent-Disposition: form-data; name="csrf"\r\n\r\nabc\r\n'
    b'--XyZ\r\nContent-Disposition: form-data; name="password"\r\n'
    b"Content-Type: text/plain; charset=%s\r\n\r\n%s\r\n--XyZ--\r\n"
)
COOKIE_CSRF = b"Cookie: cgw_login=\xff\xfe; cgw_session=\xff\xfe"

HOSTILE: dict[str, tuple[bytes, bytes, tuple[bytes, ...]]] = {
    "multipart without a boundary": (
        b"csrf=abc&password=x",
        b"",
        (b"Content-Type: multipart/form-data",),
    ),
    "multipart with non-UTF-8 bytes": (
        MULTIPART_PARTS % (b"utf-8", b"\xff\xfe\xfd"),
        b"",
        (b"Content-Type: multipart/form-data; boundary=XyZ", COOKIE_CSRF),
    ),
    "multipart with an unknown charset": (
        MULTIPART_PARTS % (b"klingon-42", b"x"),
        b"",
        (b"Content-Type: multipart/form-data; boundary=XyZ",),
    ),
    "cookie of non-UTF-8 bytes with a csrf field": (
        b"csrf=%FF%FE&password=x&alert=a",
        b"",
        (b"Content-Type: application/x-www-form-urlencoded", COOKIE_CSRF),
    ),
    "urlencoded form in an unknown charset": (
        b"csrf=abc&password=x",
        b"",
        (b"Content-Type: application/x-www-form-urlencoded; charset=klingon-42", COOKIE_CSRF),
    ),
    "urlencoded form of non-UTF-8 bytes": (
        b"csrf=\xff\xfe&password=\xc3",
        b"",
        (b"Content-Type: application/x-www-form-urlencoded", COOKIE_CSRF),
    ),
    "truncated multipart": (
        (MULTIPART_PARTS % (b"utf-8", b"x"))[:40],
        b"",
        (b"Content-Type: multipart/form-data; boundary=XyZ",),
    ),
    "odd Unicode digits and a long csrf": (
        ("csrf=" + "\u0661" * 3000 + "&password=\u00b2").encode(),
        b"",
        (b"Content-Type: application/x-www-form-urlencoded",),
    ),
    "body above the limit": (
        b"a=" + b"x" * 20_000,
        b"",
        (b"Content-Type: application/x-www-form-urlencoded",),
    ),
    "hostile headers": (
        b"csrf=abc",
        b"?a=%ff%fe&b=\xff",
        (
            b"Content-Type: application/x-www-form-urlencoded",
            b"Origin: \xff\xfe",
            b"Sec-Fetch-Site: \xff",
            b"Cookie: " + b"cgw_session=" + b"\xff" * 3000,
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_no_route_answers_500_to_a_malformed_request(
    case: str, site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    set_password(site)
    body, query, headers = HOSTILE[case]
    caplog.set_level(logging.DEBUG)
    for method, path in ROUTES:
        status, reply = await raw(site, req(method, path + query.decode("latin-1"), body, *headers))
        assert status < 500, (method, path, reply[:600])
        if method == "POST":
            assert 400 <= status < 500, (method, path, reply[:300])
    tracebacks = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    # Still serving: a good request after all that.
    status, _ = await raw(site, req("GET", "/healthz"))
    assert status == 200


async def test_item7_regressions_are_400_with_a_json_error_and_one_warning(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 14, item 7: each of these answered 500 with an ERROR traceback."""
    set_password(site)
    caplog.set_level(logging.INFO, logger="aiohttp")
    caplog.set_level(logging.INFO, logger="gateway.web")
    for case in (
        "multipart without a boundary",
        "multipart with non-UTF-8 bytes",
        "multipart with an unknown charset",
        "cookie of non-UTF-8 bytes with a csrf field",
    ):
        caplog.clear()
        body, _, headers = HOSTILE[case]
        status, reply = await raw(site, req("POST", "/login", body, *headers))
        assert status in (400, 403), (case, reply[:400])
        if status == 400:
            assert b'"error": "bad_request"' in reply, reply
        warned = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], case
        assert all(r.exc_info is None for r in caplog.records), case
        if status == 400:
            assert len(warned) == 1, (case, [r.getMessage() for r in warned])


async def test_a_flood_of_malformed_requests_logs_a_bounded_number_of_lines(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.web")
    body, _, headers = HOSTILE["multipart without a boundary"]
    for _ in range(3 * BAD_REQUEST_WARNINGS_PER_MINUTE):
        status, _ = await raw(site, req("POST", "/login", body, *headers))
        assert status == 400
    lines = [r for r in caplog.records if r.name == "gateway.web"]
    assert len(lines) == BAD_REQUEST_WARNINGS_PER_MINUTE  # the rest counted, not written
    site.clock.advance(61.0)
    await raw(site, req("POST", "/login", body, *headers))
    said = [r.getMessage() for r in caplog.records if r.name == "gateway.web"]
    assert any(f"{2 * BAD_REQUEST_WARNINGS_PER_MINUTE} more malformed" in m for m in said), said
