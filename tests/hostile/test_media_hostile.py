# ruff: noqa: F811 - the centre fixtures are imported by name, then requested as arguments
"""Issue 17, the media uplink under hostile input: each parser raises its one documented error
type, and the centre's media endpoints answer every malformed request with a 4xx JSON error,
never a 500, then still take a good upload.

| parser | documented outcome for bad input |
|---|---|
| ``centre.media.parse_media_request`` (sha256 path, ``offset`` query) | ``BadRequest`` |
| ``gateway.sync.media.queued_from`` (a ``camera.snapshot`` payload) | None (never raises) |
| ``gateway.sync.media._received`` (the centre's ``received`` offset) | ``SyncError`` |
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centre.errors import BadRequest
from centre.media import MAX_MEDIA_BYTES, SHA256_RE, parse_media_request
from gateway.clock import ManualClock
from gateway.errors import SyncError
from gateway.health.evidence import EvidenceStore
from gateway.journal import Journal
from gateway.sync.config import SyncPaths, SyncSection
from gateway.sync.media import _received, queued_from
from gateway.sync.tls import client_ssl_context
from gateway.sync.uploader import Uploader
from tests.hostile.test_centre_services import raw, request_bytes
from tests.sync.conftest import Centre, centre, centre_dir, enroll  # noqa: F401 - fixtures
from wire import decode

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GW = "gw-rose-01"
HEX = "0123456789abcdef"


def timed(fn: Callable[[], Any]) -> Any:
    start = time.thread_time()
    try:
        return fn()
    finally:
        assert time.thread_time() - start < 1.0


texts = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=HEX + "ABCDEF\u0661\uff10 ", min_size=60, max_size=70),
    st.just("7" * 4301),
    st.sampled_from(["-1", "+5", " 5", "5 ", "0x10", "1e3", "\u00b2", "\u0661\u0662", "33554432"]),
)


@SETTINGS
@given(
    sha=texts,
    query=st.none() | st.dictionaries(st.sampled_from(["offset", "x", "OFFSET", ""]), texts),
)
def test_parse_media_request_raises_only_bad_request(sha: str, query: Any) -> None:
    try:
        req = timed(lambda: parse_media_request(sha, query))
    except BadRequest:
        return
    assert SHA256_RE.fullmatch(req.sha256)
    if query is None:
        assert req.offset is None
    else:
        assert set(query) == {"offset"} and query["offset"].isascii()
        assert req.offset is not None and 0 <= req.offset < MAX_MEDIA_BYTES


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@SETTINGS
@given(
    payload=json_values
    | st.fixed_dictionaries(
        {
            "sha256": st.text(alphabet=HEX, min_size=63, max_size=65) | json_values,
            "file": st.just("1790000000000-gate-0123456789abcdef.jpg") | json_values,
            "bytes": st.integers() | json_values,
        }
    )
)
def test_queued_from_never_raises(payload: Any) -> None:
    image = timed(lambda: queued_from(7, payload))
    if image is not None:
        assert len(image.sha256) == 64 and image.size > 0 and image.file.endswith(".jpg")


@SETTINGS
@given(reply=st.dictionaries(st.sampled_from(["received", "x"]), json_values), size=st.integers(1))
def test_received_raises_only_sync_error(reply: dict[str, Any], size: int) -> None:
    try:
        got = timed(lambda: _received(reply, size))
    except SyncError:
        return
    assert isinstance(got, int) and 0 <= got <= size


async def test_media_endpoints_answer_malformed_requests_4xx_and_still_work(
    centre: Centre, tmp_path: Path
) -> None:
    data_dir = tmp_path / "gw"
    await enroll(centre, data_dir)
    clock = ManualClock()
    journal = await Journal.open(data_dir / "journal.db", gateway_id=GW, clock=clock)
    image = b"\xff\xd8" + bytes(range(256)) * 300 + b"\xff\xd9"
    saved = EvidenceStore(data_dir / "media", 1 << 24).save("gate", image, clock.wall())
    await journal.append(
        "camera.snapshot",
        {"camera": "gate", "sha256": saved.sha256, "bytes": saved.size, "file": saved.name},
    )
    section = SyncSection(first_delay_max_s=0.0, idle_poll_s=0.05, backoff_initial_s=0.05)
    task = asyncio.create_task(Uploader(journal, clock, section, data_dir=data_dir).run())
    try:
        repo = centre.running.repo
        for _ in range(600):
            g = await repo.gateway(GW)
            if g is not None and g.watermark >= journal.last_seq:
                break
            await asyncio.sleep(0.05)
        paths = SyncPaths.from_section(SyncSection(), data_dir)
        ctx: ssl.SSLContext = client_ssl_context(paths.ca, paths.cert, paths.key)
        sha = saved.sha256
        other = hashlib.sha256(b"not announced").hexdigest()
        base = b"/api/v1/media/"
        hostile: list[tuple[str, bytes, list[bytes], bytes]] = [
            ("GET", base + b"ABC", [], b""),
            ("GET", base + sha.upper().encode(), [], b""),
            ("GET", base + b"%FF%FE" * 20, [], b""),
            ("GET", base + other.encode(), [], b""),
            ("PUT", base + sha.encode(), [], b"x"),
            ("PUT", base + sha.encode() + b"?offset=", [], b"x"),
            ("PUT", base + sha.encode() + b"?offset=-1", [], b"x"),
            ("PUT", base + sha.encode() + b"?offset=%D9%A1", [], b"x"),
            ("PUT", base + sha.encode() + b"?offset=" + b"9" * 400, [], b"x"),
            ("PUT", base + sha.encode() + b"?offset=0&offset=0", [], b"x"),
            ("PUT", base + sha.encode() + b"?offset=0&junk=1", [], b"x"),
            ("PUT", base + sha.encode() + b"?offset=5", [], b"x"),  # not where the centre is
            ("PUT", base + sha.encode() + b"?offset=0", [], b""),  # empty chunk
            ("PUT", base + sha.encode() + b"?offset=0", [], b"x" * (len(image) + 1)),
            ("PUT", base + sha.encode() + b"?offset=0", [], b"x" * (1024 * 1024 + 1)),
            ("PUT", base + other.encode() + b"?offset=0", [], b"x"),
            ("PUT", base + sha.encode() + b"?offset=0", [b"Content-Encoding: gzip"], b"\x1f\x8b?"),
        ]
        for method, target, headers, body in hostile:
            status, h, reply = await raw(centre, request_bytes(method, target, headers, body), ctx)
            where = (method, target[:80], status, reply[:200])
            assert 400 <= status < 500, where
            assert h.get("content-type", "").startswith("application/json"), where
            assert isinstance(decode(reply).get("error"), str), where
        # No certificate: 401 before anything else is looked at.
        status, _, _ = await raw(centre, request_bytes("GET", base + sha.encode()))
        assert status == 401
        # Nothing above left a partial behind; a good upload still works, once.
        assert not list((centre.paths.root / "media" / "partial").glob("*.part"))
        good = request_bytes("PUT", base + sha.encode() + b"?offset=0", [], image)
        status, _, reply = await raw(centre, good, ctx)
        assert status == 201 and decode(reply)["complete"] is True, reply
        status, _, reply = await raw(centre, good, ctx)
        assert status == 200 and decode(reply)["complete"] is True  # never stored twice
        held = centre.paths.root / "media" / sha[:2] / f"{sha}.jpg"
        assert hashlib.sha256(held.read_bytes()).hexdigest() == sha
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()
