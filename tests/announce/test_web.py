"""The announcement HTTP API on a real centre (loopback TLS): operators upload, speak, list and
preview; a gateway fetches by hash over mTLS, resuming with Range; bad requests are 4xx JSON."""

from __future__ import annotations

import hashlib
import shutil
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from centre.announce.library import AnnouncementLibrary
from centre.bulletins.auth import OPERATORS_FILE, add_operator
from gateway.sync.config import SyncPaths, SyncSection
from gateway.sync.tls import client_ssl_context, pinned_ca_context
from tests.announce.test_library import SENTENCE, tone
from tests.sync import conftest as sync_rig
from tests.sync.conftest import Centre, enroll

pytestmark = pytest.mark.skipif(
    not (shutil.which("ffmpeg") and shutil.which("espeak-ng")), reason="ffmpeg/espeak-ng missing"
)
centre_dir = sync_rig.centre_dir
centre = sync_rig.centre
API = "/api/v1/announcements"


async def call(
    centre: Centre, method: str, path: str, ctx: ssl.SSLContext | None = None, **kw: Any
) -> tuple[int, bytes, dict[str, str]]:
    ctx = ctx or pinned_ca_context(centre.paths.ca_cert.read_text())
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, centre.url + path, ssl=ctx, **kw) as r,
    ):
        return r.status, await r.read(), dict(r.headers)


async def test_operator_uploads_speaks_lists_previews_and_gateway_fetches(
    centre: Centre, tmp_path: Path
) -> None:
    token = add_operator(centre.paths.root / OPERATORS_FILE, "duty")
    auth = {"Authorization": f"Bearer {token}"}
    wav = tone(tmp_path / "t.wav", 1.0, amplitude=0.3).read_bytes()

    status, body, _ = await call(centre, "POST", f"{API}?format=wav&title=t", data=wav)
    assert status == 401  # no operator token

    status, body, _ = await call(
        centre, "POST", f"{API}?format=wav&title=%E6%B5%8B%E8%AF%95&id=t1", data=wav, headers=auth
    )
    assert status == 201, body
    import json

    up = json.loads(body)
    assert up["id"] == "t1" and up["title"] == "测试"
    status, body, _ = await call(
        centre, "POST", f"{API}/text", headers=auth, json={"text": SENTENCE, "title": "转账"}
    )
    assert status == 201, body
    said = json.loads(body)
    status, body, _ = await call(centre, "GET", API, headers=auth)
    assert [a["id"] for a in json.loads(body)["announcements"]] == ["t1", said["id"]]
    status, body, h = await call(centre, "GET", f"{API}/t1/audio", headers=auth)
    assert status == 200 and hashlib.sha256(body).hexdigest() == up["sha256"]

    # garbage and malformed requests: 4xx JSON, nothing stored
    for method, path, kw, code in [
        ("POST", f"{API}?format=mp3&title=x", {"data": b"garbage"}, 422),
        ("POST", f"{API}?format=exe&title=x", {"data": wav}, 400),
        ("POST", f"{API}?format=wav&title=x&id=bad%20id", {"data": wav}, 400),
        ("POST", f"{API}?format=wav&title=x&id=t1", {"data": wav}, 409),
        ("POST", f"{API}/text", {"data": b'{"text": 5}'}, 400),
        ("GET", f"{API}/nothing/audio", {}, 404),
    ]:
        status, body, h = await call(centre, method, path, headers=auth, **kw)
        assert status == code, (path, status, body)
        assert h["Content-Type"].startswith("application/json")
        assert json.loads(body)["reason"]
    status, body, _ = await call(centre, "GET", API, headers=auth)
    assert len(json.loads(body)["announcements"]) == 2

    # the gateway's fetch: only with its client certificate; by hash; resumable
    await enroll(centre, tmp_path / "gw")
    p = SyncPaths.from_section(SyncSection(), tmp_path / "gw")
    gw = client_ssl_context(p.ca, p.cert, p.key)
    status, _, _ = await call(centre, "GET", f"{API}/by-hash/{up['sha256']}")
    assert status == 401
    status, whole, _ = await call(centre, "GET", f"{API}/by-hash/{up['sha256']}", gw)
    assert status == 200 and hashlib.sha256(whole).hexdigest() == up["sha256"]
    status, tail, _ = await call(
        centre, "GET", f"{API}/by-hash/{up['sha256']}", gw, headers={"Range": "bytes=1000-"}
    )
    assert status == 206 and tail == whole[1000:]
    status, _, _ = await call(centre, "GET", f"{API}/by-hash/{'0' * 64}", gw)
    assert status == 404
    status, _, _ = await call(centre, "GET", f"{API}/by-hash/XYZ", gw)
    assert status == 400


async def test_the_gateway_fetcher_resumes_against_the_real_centre(
    centre: Centre, tmp_path: Path
) -> None:
    from gateway.broadcast.library import UNKNOWN, AnnouncementUnavailable, CentreFetcher

    lib = AnnouncementLibrary(centre.paths.root)
    ann = lib.add_upload(tone(tmp_path / "t.wav", 2.0, amplitude=0.3), title="t")
    whole = lib.playable(ann.id).read_bytes()
    await enroll(centre, tmp_path / "gw")
    p = SyncPaths.from_section(SyncSection(), tmp_path / "gw")
    fetcher = CentreFetcher(centre.url, client_ssl_context(p.ca, p.cert, p.key))
    part = tmp_path / "x.part"
    part.write_bytes(whole[:5000])  # an earlier attempt stopped here
    await fetcher.fetch(ann.sha256, part, 5000)
    assert part.read_bytes() == whole
    fresh = tmp_path / "y.part"
    await fetcher.fetch(ann.sha256, fresh, 0)
    assert fresh.read_bytes() == whole
    with pytest.raises(AnnouncementUnavailable) as exc:
        await fetcher.fetch("0" * 64, tmp_path / "z.part", 0)
    assert exc.value.code == UNKNOWN
    with pytest.raises(AnnouncementUnavailable):  # without its certificate: refused
        await CentreFetcher(centre.url, pinned_ca_context(centre.paths.ca_cert.read_text())).fetch(
            ann.sha256, tmp_path / "w.part", 0
        )
