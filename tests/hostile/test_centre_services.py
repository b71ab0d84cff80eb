"""Issue 14, centre side: hostile input sent to a real centre (real TLS on loopback) never
crashes a service, never answers 500, and leaves exactly one clear warning line, no traceback.

Each service (enroll, ingest, the command channel WebSocket, the bulletins) gets its hostile
input and must then still serve a good request; a walker sends malformed bodies, headers and
parameters to every route the centre serves. Requests go out as raw bytes over TLS so that
non-UTF-8 header bytes reach the server exactly as a hostile client would send them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from centre.bulletins.auth import OPERATORS_FILE, add_operator
from centre.commands.issue import issue, load_command_key
from gateway.sync.config import SyncPaths, SyncSection
from gateway.sync.provision import load_private_key
from gateway.sync.tls import client_ssl_context, pinned_ca_context
from tests.sync import conftest as sync_rig
from tests.sync.conftest import Centre, enroll
from wire import BATCH_TYPE, Batch, decode, encode, seal
from wire.commands import BroadcastStop

GW = "gw-rose-01"
TIMEOUT_S = 20.0

# The real centre on loopback TLS that tests/sync runs (one CA per session, a fresh database
# per test), bound here as this module's fixtures.
centre_dir = sync_rig.centre_dir
centre = sync_rig.centre


# -- raw HTTP over real TLS -----------------------------------------------------------------


def request_bytes(
    method: str,
    target: bytes,
    headers: list[bytes] = (),
    body: bytes = b"",  # type: ignore[assignment]
) -> bytes:
    head = [
        method.encode() + b" " + target + b" HTTP/1.1",
        b"Host: 127.0.0.1",
        b"Connection: close",
        b"Content-Length: " + str(len(body)).encode(),
        *headers,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def raw(
    centre: Centre, data: bytes, ctx: ssl.SSLContext | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` on a fresh TLS connection; (status, headers, body) of the reply."""
    ctx = ctx or pinned_ca_context(centre.paths.ca_cert.read_text())
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", centre.running.port, ssl=ctx), TIMEOUT_S
    )
    try:
        writer.write(data)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    finally:
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 5)
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), f"no HTTP reply: {reply[:200]!r}"
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def json_error(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """The documented error body: JSON with ``error`` and ``reason``."""
    assert headers.get("content-type", "").startswith("application/json"), (status, body[:200])
    err = decode(body)
    assert isinstance(err, dict) and isinstance(err.get("error"), str), err
    assert isinstance(err.get("reason"), str) and err["reason"], err
    return err


# -- logs ------------------------------------------------------------------------------------


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("centre", "aiohttp"))]


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    for r in ours(caplog):
        assert r.exc_info is None, f"traceback logged: {r.name} {r.getMessage()}"
        assert r.levelno < logging.ERROR, f"error logged: {r.name} {r.getMessage()}"
        assert "Traceback" not in r.getMessage()


def warnings_with(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [
        r.getMessage()
        for r in ours(caplog)
        if r.levelno == logging.WARNING and fragment in r.getMessage()
    ]


def assert_one_warning(caplog: pytest.LogCaptureFixture, fragment: str) -> None:
    found = warnings_with(caplog, fragment)
    assert len(found) == 1, (fragment, found, [r.getMessage() for r in ours(caplog)])
    assert_no_traceback(caplog)


async def wait_warning(caplog: pytest.LogCaptureFixture, fragment: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not warnings_with(caplog, fragment):
        if time.monotonic() > deadline:
            raise AssertionError(f"no warning with {fragment!r}: {ours(caplog)}")
        await asyncio.sleep(0.02)


# -- what a gateway and an operator hold ------------------------------------------------------


async def gateway(centre: Centre, data: Path) -> tuple[ssl.SSLContext, Ed25519PrivateKey]:
    await enroll(centre, data, gateway_id=GW)
    p = SyncPaths.from_section(SyncSection(), data)
    return client_ssl_context(p.ca, p.cert, p.key), load_private_key(p.key)


def batch_bytes(key: Ed25519PrivateKey, seq: int = 1) -> bytes:
    ev = {
        "seq": seq,
        "kind": "tap",
        "cls": "evidence",
        "payload": {"n": seq},
        "wall_time": 1_790_000_000.0 + seq,
        "mono_time": 5.0 + seq,
        "boot_id": "b",
        "clock_synced": True,
    }
    b = Batch.build(GW, f"b-{seq}", [ev], head_seq=seq, created_at=1.0)
    return seal(BATCH_TYPE, b.to_dict(), key)


def operator(centre: Centre) -> str:
    return add_operator(centre.paths.root / OPERATORS_FILE, "duty")


def csr_pem(key: Any, cn: str = GW) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    algo = None if isinstance(key, Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, algo)
    return csr.public_bytes(serialization.Encoding.PEM)


def with_der(pem: bytes, edit: Any) -> bytes:
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    import base64

    body = base64.encodebytes(edit(der))
    return b"-----BEGIN CERTIFICATE REQUEST-----\n" + body + b"-----END CERTIFICATE REQUEST-----\n"


def bad_key_csr() -> bytes:
    """A well-formed CSR whose Ed25519 key bytes are cut: cryptography raises 'Invalid key'."""
    pem = csr_pem(Ed25519PrivateKey.generate())
    key_raw = (
        x509.load_pem_x509_csr(pem)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )

    # BIT STRING of 33 bytes (0 unused bits + 32 key bytes) -> 32 bytes: lengths all shrink by 1.
    def edit(der: bytes) -> bytes:
        i = der.index(b"\x03\x21\x00" + key_raw)
        # SubjectPublicKeyInfo: SEQUENCE(30 2a) { AlgorithmIdentifier(30 05 06 03 2b 65 70),
        # BIT STRING(03 21 00 key) }; rebuilt one key byte short, every length one less.
        assert der[i - 9 : i - 7] == b"\x30\x2a", der[i - 9 : i]
        new_spki = b"\x30\x29" + der[i - 7 : i] + b"\x03\x20\x00" + key_raw[:31]
        return _shrink_lengths(der[: i - 9] + new_spki + der[i + 35 :])

    return with_der(pem, edit)


def _shrink_lengths(der: bytearray | bytes) -> bytes:
    d = bytearray(der)
    # CertificateRequest ::= SEQUENCE { info SEQUENCE, algo, sig }: both lengths drop by one.
    assert d[0] == 0x30
    if d[1] & 0x80:
        n = d[1] & 0x7F
        total = int.from_bytes(d[2 : 2 + n], "big") - 1
        d[2 : 2 + n] = total.to_bytes(n, "big")
        j = 2 + n
    else:
        d[1] -= 1
        j = 2
    assert d[j] == 0x30
    if d[j + 1] & 0x80:
        n = d[j + 1] & 0x7F
        total = int.from_bytes(d[j + 2 : j + 2 + n], "big") - 1
        d[j + 2 : j + 2 + n] = total.to_bytes(n, "big")
    else:
        d[j + 1] -= 1
    return bytes(d)


def bad_version_csr() -> bytes:
    """A CSR with version 5 (only v1 = 0 exists): cryptography raises InvalidVersion."""
    pem = csr_pem(Ed25519PrivateKey.generate())
    return with_der(pem, lambda der: der.replace(b"\x02\x01\x00", b"\x02\x01\x05", 1))


def enroll_body(token: str, csr: bytes | str, gateway_id: str = GW) -> bytes:
    text = csr.decode() if isinstance(csr, bytes) else csr
    return encode(
        {"token": token, "gateway_id": gateway_id, "compound": "Rose Garden", "csr": text}
    )


async def good_enroll(centre: Centre, caplog: pytest.LogCaptureFixture, gateway_id: str) -> None:
    token = await centre.token()
    status, _, body = await raw(
        centre,
        request_bytes(
            "POST",
            b"/api/v1/enroll",
            [b"Content-Type: application/json"],
            enroll_body(token, csr_pem(Ed25519PrivateKey.generate(), gateway_id), gateway_id),
        ),
    )
    assert status == 201, body[:300]
    assert decode(body)["gateway_id"] == gateway_id


# -- enroll -----------------------------------------------------------------------------------


GZIP_HEADER = gzip.compress(b"x")[:10]  # a real gzip header, then a corrupt deflate stream

ENROLL_HOSTILE = [
    # issue 14 item 1: an integer literal over Python's 4300-digit limit
    ("bigint", [b"Content-Type: application/json"], b"7" * 4301, 400, "bad_request"),
    ("bigint-field", [], b'{"token":' + b"9" * 5000 + b"}", 400, "bad_request"),
    ("deep", [], b"[" * 100_000, 400, "bad_request"),
    ("not-utf8", [], b'{"token":"\xff\xfe"}', 400, "bad_request"),
    ("truncated", [], b'{"token":"cgt-abc","gateway_id":"gw-', 400, "bad_request"),
    # item 5: corrupt compressed bodies
    ("deflate", [b"Content-Encoding: deflate"], b"\x78\x9cgarbage!", 400, "bad_body"),
    ("gzip", [b"Content-Encoding: gzip"], GZIP_HEADER + b"\xff" * 20, 400, "bad_body"),
]


@pytest.mark.parametrize(("name", "headers", "body", "status", "code"), ENROLL_HOSTILE)
async def test_enroll_survives_hostile_bodies(
    centre: Centre,
    caplog: pytest.LogCaptureFixture,
    name: str,
    headers: list[bytes],
    body: bytes,
    status: int,
    code: str,
) -> None:
    got, h, reply = await raw(centre, request_bytes("POST", b"/api/v1/enroll", headers, body))
    assert got == status, (name, got, reply[:200])
    assert json_error(got, h, reply)["error"] == code
    assert_one_warning(caplog, f"-> {status} {code}")
    caplog.clear()
    await good_enroll(centre, caplog, "gw-after")
    assert_no_traceback(caplog)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("invalid-key", bad_key_csr),  # item 3: ValueError: Invalid key
        ("bad-version", bad_version_csr),  # item 3: InvalidVersion
        ("p256-key", lambda: csr_pem(ec.generate_private_key(ec.SECP256R1()))),
        ("garbage-der", lambda: with_der(csr_pem(Ed25519PrivateKey.generate()), lambda d: d[:40])),
        ("not-pem", lambda: b"-----BEGIN CERTIFICATE REQUEST-----\n\xc3\xa9\n"),
    ],
)
async def test_enroll_survives_hostile_csrs(
    centre: Centre, caplog: pytest.LogCaptureFixture, name: str, make: Any
) -> None:
    token = await centre.token()
    got, h, reply = await raw(
        centre, request_bytes("POST", b"/api/v1/enroll", [], enroll_body(token, make()))
    )
    assert got == 400, (name, got, reply[:300])
    assert json_error(got, h, reply)["error"] == "bad_csr"
    assert_one_warning(caplog, "-> 400 bad_csr")
    caplog.clear()
    await good_enroll(centre, caplog, "gw-after")
    assert_no_traceback(caplog)


# -- ingest -----------------------------------------------------------------------------------


def huge_created_at(raw_batch: bytes, literal: bytes) -> bytes:
    assert b'"created_at":1.0' in raw_batch
    return raw_batch.replace(b'"created_at":1.0', b'"created_at":' + literal)


@pytest.mark.parametrize(
    ("name", "make", "headers", "code"),
    [
        ("bigint", lambda k: b"7" * 4301, [], "bad_encoding"),  # item 1
        # item 2: a huge integer in a float field (below Python's digit limit)
        ("created_at-400-digits", lambda k: huge_created_at(batch_bytes(k), b"1" + b"0" * 400),
         [], "bad_encoding"),
        ("created_at-1e400", lambda k: huge_created_at(batch_bytes(k), b"1e400"), [],
         "bad_encoding"),
        ("arabic-digits", lambda k: huge_created_at(batch_bytes(k), "\u0661".encode()), [],
         "bad_encoding"),
        ("truncated", lambda k: batch_bytes(k)[:-7], [], "bad_encoding"),
        ("deflate", lambda k: b"\x78\x9c" + b"\x00garbage" * 10,
         [b"Content-Encoding: deflate"], "bad_body"),  # item 5
        ("deep", lambda k: b"[" * 100_000, [], "bad_encoding"),
    ],
)  # fmt: skip
async def test_ingest_survives_hostile_batches(
    centre: Centre,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
    make: Any,
    headers: list[bytes],
    code: str,
) -> None:
    ctx, key = await gateway(centre, tmp_path)
    caplog.clear()
    got, h, reply = await raw(
        centre, request_bytes("POST", b"/api/v1/ingest", headers, make(key)), ctx
    )
    assert got == 400, (name, got, reply[:300])
    assert json_error(got, h, reply)["error"] == code
    assert_one_warning(caplog, f"-> 400 {code}")
    got, _, reply = await raw(
        centre, request_bytes("POST", b"/api/v1/ingest", [], batch_bytes(key)), ctx
    )
    assert got == 200, reply[:300]
    assert decode(reply)["stored"] == 1
    assert_no_traceback(caplog)


async def test_gateway_dropping_mid_upload_is_one_warning_line(
    centre: Centre, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 16 (centre part): routine on 4G; no traceback, one line, and the next upload works."""
    ctx, key = await gateway(centre, tmp_path)
    caplog.clear()
    body = batch_bytes(key)
    head = request_bytes("POST", b"/api/v1/ingest", [], body).replace(
        f"Content-Length: {len(body)}".encode(), b"Content-Length: 100000"
    )
    _, writer = await asyncio.open_connection("127.0.0.1", centre.running.port, ssl=ctx)
    writer.write(head)  # 100000 announced, a few hundred sent
    await writer.drain()
    # The handler is reading the body once the centre has counted this gateway in progress.
    deadline = time.monotonic() + TIMEOUT_S
    while GW not in centre.running.service._busy_gateways:
        assert time.monotonic() < deadline, "the centre never started reading the upload"
        await asyncio.sleep(0.01)
    writer.transport.abort()
    await wait_warning(caplog, "went away mid-request")
    got, _, reply = await raw(centre, request_bytes("POST", b"/api/v1/ingest", [], body), ctx)
    assert got == 200, reply[:300]
    assert_one_warning(caplog, "went away mid-request")


async def test_repeated_drops_are_rate_limited(
    centre: Centre, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx, key = await gateway(centre, tmp_path)
    caplog.clear()
    body = batch_bytes(key)
    head = request_bytes("POST", b"/api/v1/ingest", [], body).replace(
        f"Content-Length: {len(body)}".encode(), b"Content-Length: 100000"
    )
    for _ in range(5):
        _, writer = await asyncio.open_connection("127.0.0.1", centre.running.port, ssl=ctx)
        writer.write(head)
        await writer.drain()
        deadline = time.monotonic() + TIMEOUT_S
        while GW not in centre.running.service._busy_gateways:
            assert time.monotonic() < deadline, "the centre never started reading the upload"
            await asyncio.sleep(0.01)
        writer.transport.abort()
        while GW in centre.running.service._busy_gateways:
            assert time.monotonic() < deadline, "the centre never finished the dropped upload"
            await asyncio.sleep(0.01)
    assert_one_warning(caplog, "went away mid-request")


# -- command channel --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def channel(centre: Centre, ctx: ssl.SSLContext) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{centre.url}/api/v1/commands", ssl=ctx, heartbeat=None) as ws,
    ):
        yield ws


HOSTILE_ACKS = [
    '{"command_id":"","stage":[],"type":"ack"}',  # item 6: unhashable stage
    '{"command_id":"","stage":{},"type":"ack"}',
    '{"command_id":' + "7" * 4000 + ',"stage":"received","type":"ack"}',
    '{"command_id":"x","stage":"received","type":"ack","digest":' + "1" * 400 + "}",
    "[" * 3000,
    '{"command_id":"x","stage":"received","type":"ack"',
    '{"command_id":"x","stage":"received","type":"ack","extra":1}',
    '"ack"',
]


async def test_command_channel_survives_hostile_acks(
    centre: Centre, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx, _ = await gateway(centre, tmp_path)
    caplog.clear()
    async with channel(centre, ctx) as ws:
        for text in HOSTILE_ACKS:
            await ws.send_str(text)
        # Still served: a command queued now arrives, and its ack is recorded.
        (rec,) = await issue(
            centre.running.commands.store,
            [GW],
            load_command_key(centre.paths),
            BroadcastStop(),
            ttl_s=120,
            now=time.time(),
            issued_by="test",
        )
        centre.running.commands.wake()
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT_S)
        assert msg.type == aiohttp.WSMsgType.BINARY, msg
        assert msg.data == rec.envelope
        await ws.send_str(
            json.dumps({"type": "ack", "command_id": rec.command_id, "stage": "received"})
        )
        deadline = time.monotonic() + TIMEOUT_S
        while (rec.command_id, "received") not in [
            a[:2] for a in await centre.running.commands.store.acks(GW)
        ]:
            assert time.monotonic() < deadline, "the good ack was never recorded"
            await asyncio.sleep(0.02)
    # One line for the first bad ack, the rest held back by the rate limit.
    assert_one_warning(caplog, "sent an unreadable ack")
    assert "stage must be one of" in warnings_with(caplog, "unreadable ack")[0]


async def test_command_channel_binary_frame_is_one_warning_and_a_close(
    centre: Centre, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ctx, _ = await gateway(centre, tmp_path)
    caplog.clear()
    async with channel(centre, ctx) as ws:
        await ws.send_bytes(b"\xff" * 100)
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT_S)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1003, msg
    await wait_warning(caplog, "closing")
    async with channel(centre, ctx) as ws:  # it may dial again at once
        await ws.send_str('{"type":"ack","command_id":"nope","stage":"received"}')
        await ws.close()
    assert_one_warning(caplog, "closing")


# -- bulletins --------------------------------------------------------------------------------


async def test_bulletins_survive_a_non_utf8_bearer_token(
    centre: Centre, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 4: ``Bearer cop-`` + a non-UTF-8 byte was a 500 on every bulletin endpoint."""
    token = operator(centre)
    for target in (b"/bulletins", b"/bulletins/daily", b"/bulletins/monthly"):
        got, h, body = await raw(
            centre, request_bytes("GET", target, [b"Authorization: Bearer cop-\xff"])
        )
        assert got == 401, (target, got, body[:200])
        assert h["content-type"].startswith("text/html")  # the sign-in page, by design
    got, h, body = await raw(
        centre,
        request_bytes("GET", b"/bulletins/daily?format=csv", [b"Authorization: Bearer cop-\xff"]),
    )
    assert got == 401 and json_error(got, h, body)["error"] == "operator_token_required"
    got, h, body = await raw(
        centre,
        request_bytes(
            "POST", b"/bulletins/explanations", [b"Authorization: Bearer cop-\xfe\xff"], b"{}"
        ),
    )
    assert got == 401 and json_error(got, h, body)["error"] == "operator_token_required"
    got, _, body = await raw(
        centre,
        request_bytes(
            "GET", b"/bulletins/daily?date=2026-11-02", [f"Authorization: Bearer {token}".encode()]
        ),
    )
    assert got == 200, body[:300]
    # One line per refused request (the sign-in pages are not refusals worth a line).
    assert len(warnings_with(caplog, "-> 401 operator_token_required")) == 2
    assert_no_traceback(caplog)


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        (b"/bulletins/daily?date=9999-12-31", "9999-12-31"),  # item 4: OverflowError
        (b"/bulletins/daily?date=0001-01-01", "0001-01-01"),
        (b"/bulletins/monthly?month=9999-12", "9999-12"),
        (
            (
                "/bulletins/daily?date="
                + quote("\u0662\u0660\u0662\u0666-\u0661\u0661-\u0660\u0662")
            ).encode(),
            "date like",
        ),
        (
            ("/bulletins/monthly?month=" + quote("\u00b2\uff10\uff12\uff16-11")).encode(),
            "month like",
        ),
        (b"/bulletins/daily?date=%FF%FE%FD%FC%FB%FA%F9%F8%F7%F6", "date like"),
        (b"/bulletins/daily?date=2026-11-02&format=%FF", "format"),
    ],
)
async def test_bulletins_survive_hostile_dates(
    centre: Centre, caplog: pytest.LogCaptureFixture, target: bytes, fragment: str
) -> None:
    auth = f"Authorization: Bearer {operator(centre)}".encode()
    got, h, body = await raw(centre, request_bytes("GET", target, [auth]))
    assert got == 400, (target, got, body[:300])
    assert fragment in json_error(got, h, body)["reason"]
    assert_one_warning(caplog, "-> 400 bad_request")
    got, _, body = await raw(
        centre, request_bytes("GET", b"/bulletins/monthly?month=2026-10", [auth])
    )
    assert got == 200, body[:300]
    assert_no_traceback(caplog)


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ([b"Content-Encoding: deflate"], b"\x78\x9cgarbage!", "bad_body"),  # item 5
        ([], b'{"compound":"Rose Garden","round":"n@9999-12-31T23:00","text":"x"}', "bad_request"),
        ([], b'{"compound":"Rose Garden","round":"n@0001-01-01T00:00","text":"x"}', "bad_request"),
        ([], b'{"compound":' + b"1" * 4301 + b"}", "bad_request"),
        ([], b'{"compound":"a","round":"n@2026-11-02T02:00","text":"\\u0000"}', "bad_request"),
    ],
)
async def test_explanations_survive_hostile_bodies(
    centre: Centre,
    caplog: pytest.LogCaptureFixture,
    headers: list[bytes],
    body: bytes,
    code: str,
) -> None:
    auth = f"Authorization: Bearer {operator(centre)}".encode()
    got, h, reply = await raw(
        centre, request_bytes("POST", b"/bulletins/explanations", [auth, *headers], body)
    )
    assert got == 400, (got, reply[:300])
    assert json_error(got, h, reply)["error"] == code
    assert_one_warning(caplog, f"-> 400 {code}")
    got, _, reply = await raw(centre, request_bytes("GET", b"/bulletins", [auth]))
    assert got == 200, reply[:300]
    assert_no_traceback(caplog)


# -- every route, malformed -------------------------------------------------------------------


ARABIC_DATE_QUERY = (
    "?date="
    + quote("\u0662\u0660\u0662\u0666-\u0661\u0661-\u0660\u0662")
    + "&month="
    + quote("\u00b2\u0660\u0662\u0666-11")
).encode()

MALFORMED: list[tuple[str, bytes, list[bytes], bytes]] = [
    # (name, query, headers, body)
    ("bigint", b"", [b"Content-Type: application/json"], b"7" * 4301),
    ("huge-float", b"", [], b'{"created_at":1e400,"v":' + b"1" * 400 + b"}"),
    ("deep", b"", [], b"[" * 100_000),
    ("not-utf8", b"", [], b'{"token":"\xff\xfe\xfd"}'),
    ("truncated", b"", [], b'{"token":"cgt-x","csr":"-----BEGIN'),
    ("deflate", b"", [b"Content-Encoding: deflate"], b"\x78\x9c\x00garbage"),
    ("gzip", b"", [b"Content-Encoding: gzip"], GZIP_HEADER + b"\xfe" * 20),
    ("bearer-ff", b"", [b"Authorization: Bearer cop-\xff\xfe"], b""),
    ("cookie-ff", b"", [b"Cookie: cb_session=\xff\xfe.\x80; x=\"\\\""], b""),
    ("cookie-forged", b"", [b"Cookie: cb_session=ZHV0eXw5OTk5OTk5OTk5OTk5OTk5OTk5.AAAA"], b""),
    ("content-type", b"", [b"Content-Type: application/x-www-form-urlencoded; charset=\xff"],
     b"token=%FF%FE&token=" + b"9" * 5000),
    ("query-dates", b"?date=9999-12-31&month=9999-12&format=csv&table=%00", [], b""),
    ("query-digits", ARABIC_DATE_QUERY, [], b""),
    ("query-bytes", b"?date=%FF%FE&month=%C0%80&format=%FF&table=%FF", [], b""),
    ("upgrade-junk", b"", [b"Upgrade: websocket", b"Connection: Upgrade",
                          b"Sec-WebSocket-Key: \xff", b"Sec-WebSocket-Version: 99"], b""),
]  # fmt: skip


def html_sign_in(method: str, path: str, status: int, headers: dict[str, str]) -> bool:
    """The documented non-JSON refusals: a browser reading bulletins unsigned, or posting a
    wrong token to the sign-in form, gets the sign-in page (401, HTML), so an operator on a
    phone can sign in; a compound manager's explanation link that cannot be used gets a page
    saying why (4xx, HTML, docs/bulletins.md)."""
    html = headers.get("content-type", "").startswith("text/html")
    if path == "/bulletins/explain":
        return html and 400 <= status < 500
    return (
        (method == "GET" or path == "/bulletins/login")
        and path.startswith("/bulletins")
        and status == 401
        and html
    )


async def test_no_route_answers_500_to_malformed_requests(
    centre: Centre, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert centre.running.app is not None
    gw_ctx, _ = await gateway(centre, tmp_path)
    token = operator(centre)
    routes = sorted(
        {
            (r.method, r.resource.canonical)
            for r in centre.running.app.router.routes()
            if r.method != "HEAD" and r.resource is not None
        }
    )
    assert len(routes) >= 12, routes  # api (6) and bulletins (7) at least
    seen = 0
    for method, path in routes:
        creds: list[tuple[list[bytes], ssl.SSLContext | None]] = [([], None)]
        if path.startswith(
            ("/api/v1/ingest", "/api/v1/commands", "/api/v1/announcements/by", "/api/v1/media")
        ):
            creds.append(([], gw_ctx))
        if path.startswith(("/bulletins", "/api/v1/announcements")):
            creds.append(([f"Authorization: Bearer {token}".encode()], None))
        for extra, ctx in creds:
            for name, query, headers, body in MALFORMED:
                if name == "bearer-ff":
                    extra_now = [h for h in extra if not h.startswith(b"Authorization")]
                else:
                    extra_now = extra
                data = request_bytes(method, path.encode() + query, [*extra_now, *headers], body)
                status, h, reply = await raw(centre, data, ctx)
                seen += 1
                where = f"{method} {path} {name} cert={ctx is not None} auth={bool(extra)}"
                assert status < 500, (where, status, reply[:300])
                if status >= 400 and not html_sign_in(method, path, status, h):
                    json_error(status, h, reply)
    assert seen >= len(routes) * len(MALFORMED)
    assert_no_traceback(caplog)
    assert warnings_with(caplog, "-> 400")  # refusals were logged, at warning level


async def test_http_level_garbage_is_one_warning_without_traceback(
    centre: Centre, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed request line or header never reaches the app: aiohttp answers 400 itself;
    the log gets one warning line, no traceback, and the centre serves the next request."""
    for data in (
        b"GET /bulletins HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
        b"\x16\x03\x01garbage\r\n\r\n",
        b"POST /api/v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Content-Length: 6\r\n\r\n",
    ):
        status, _, _ = await raw(centre, data)
        assert 400 <= status < 500, (data, status)
    got, _, body = await raw(centre, request_bytes("GET", b"/api/v1/health"))
    assert got == 200 and decode(body) == {"ok": True}
    assert_no_traceback(caplog)


async def test_an_internal_fault_is_json_500_with_its_traceback(
    centre: Centre, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The boundary's last resort is for faults of ours, not of the input: here the centre's
    database has gone away under a well-formed request. JSON 500, the traceback at ERROR."""
    ctx, _ = await gateway(centre, tmp_path)
    await centre.running.repo.close()
    got, h, body = await raw(centre, request_bytes("GET", b"/api/v1/ingest/state"), ctx)
    assert got == 500
    assert json_error(got, h, body)["error"] == "internal_error"
    errors = [r for r in ours(caplog) if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None, errors


@pytest.fixture(autouse=True)
def _capture_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING)
    yield
