"""Refusals, each with a clear error: tokens, fingerprint, client certificate, revocation,
signatures, gateway mismatch, conflicting resends, malformed bodies."""

from __future__ import annotations

import gzip
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from centre.tokens import hash_token, new_token
from gateway.errors import SyncError
from gateway.sync.config import SyncPaths, SyncSection
from gateway.sync.provision import load_private_key, provision
from gateway.sync.tls import client_ssl_context, pinned_ca_context
from tests.pg_cluster import BACKENDS
from tests.sync.conftest import Centre, enroll
from wire import BATCH_TYPE, Batch, decode, encode, seal


@pytest.fixture(params=BACKENDS)
def centre_backend(request: pytest.FixtureRequest) -> str:
    """Every test here runs against the centre on SQLite and on PostgreSQL."""
    return str(request.param)


async def test_reused_token_refused(centre: Centre, tmp_path: Path) -> None:
    token = await centre.token("Rose Garden")
    await provision(
        centre.url,
        token,
        data_dir=tmp_path / "a",
        gateway_id="gw-a",
        compound="Rose Garden",
        ca_fingerprint=centre.fingerprint,
    )
    with pytest.raises(SyncError) as info:
        await provision(
            centre.url,
            token,
            data_dir=tmp_path / "b",
            gateway_id="gw-b",
            compound="Rose Garden",
            ca_fingerprint=centre.fingerprint,
        )
    assert info.value.fields["code"] == "token_used"
    assert "already used" in info.value.reason
    assert not (tmp_path / "b" / "sync" / "gateway-cert.pem").exists()


async def test_expired_token_refused(centre: Centre, tmp_path: Path) -> None:
    token = new_token()
    now = time.time()
    await centre.running.repo.create_token(hash_token(token), "Rose Garden", "", now - 60, now - 1)
    with pytest.raises(SyncError) as info:
        await provision(
            centre.url,
            token,
            data_dir=tmp_path,
            gateway_id="gw-a",
            compound="Rose Garden",
            ca_fingerprint=centre.fingerprint,
        )
    assert info.value.fields["code"] == "token_expired"


async def test_other_compound_token_refused_and_not_consumed(
    centre: Centre, tmp_path: Path
) -> None:
    token = await centre.token("Lily Court")
    with pytest.raises(SyncError) as info:
        await provision(
            centre.url,
            token,
            data_dir=tmp_path / "a",
            gateway_id="gw-a",
            compound="Rose Garden",
            ca_fingerprint=centre.fingerprint,
        )
    assert info.value.fields["code"] == "token_wrong_compound"
    assert "Lily Court" in info.value.reason
    # The right compound can still use it.
    r = await provision(
        centre.url,
        token,
        data_dir=tmp_path / "b",
        gateway_id="gw-b",
        compound="Lily Court",
        ca_fingerprint=centre.fingerprint,
    )
    assert r.compound == "Lily Court"


async def test_unknown_token_refused(centre: Centre, tmp_path: Path) -> None:
    with pytest.raises(SyncError) as info:
        await provision(
            centre.url,
            "cgt-made-up",
            data_dir=tmp_path,
            gateway_id="gw-a",
            ca_fingerprint=centre.fingerprint,
        )
    assert info.value.fields["code"] == "token_unknown"


async def test_wrong_fingerprint_refused_before_the_token_is_sent(
    centre: Centre, tmp_path: Path
) -> None:
    token = await centre.token()
    with pytest.raises(SyncError, match="does not match the fingerprint") as info:
        await provision(
            centre.url,
            token,
            data_dir=tmp_path,
            gateway_id="gw-a",
            ca_fingerprint="sha256:" + "ab" * 32,
        )
    assert info.value.fields["got"] == centre.fingerprint
    # The token was never presented to the impostor, so it is still good.
    await provision(
        centre.url,
        token,
        data_dir=tmp_path / "b",
        gateway_id="gw-a",
        ca_fingerprint=centre.fingerprint.upper(),
    )


async def test_key_is_private_and_never_in_output(
    centre: Centre, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await enroll(centre, tmp_path)
    key_path = tmp_path / "sync" / "gateway-key.pem"
    assert key_path.stat().st_mode & 0o777 == 0o600
    secret = key_path.read_text().splitlines()[1]
    assert secret not in caplog.text


async def test_existing_gateway_id_refused(centre: Centre, tmp_path: Path) -> None:
    await enroll(centre, tmp_path / "a", gateway_id="gw-twin")
    with pytest.raises(SyncError) as info:
        await enroll(centre, tmp_path / "b", gateway_id="gw-twin")
    assert info.value.fields["code"] == "gateway_exists"
    assert info.value.fields["status"] == 409


# -- ingest -----------------------------------------------------------------------------------


def events(seqs: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "seq": s,
            "kind": "tap",
            "cls": "evidence",
            "payload": {"n": s},
            "wall_time": 1_790_000_000.0 + s,
            "mono_time": 5.0 + s,
            "boot_id": "b",
            "clock_synced": True,
        }
        for s in seqs
    ]


async def post(
    url: str, body: bytes, ctx: ssl.SSLContext, gz: bool = True
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{url}/api/v1/ingest", data=body, headers=headers, ssl=ctx) as r,
    ):
        return r.status, decode(await r.read())


async def gateway_ctx(
    centre: Centre, data: Path, gateway_id: str = "gw-rose-01"
) -> tuple[ssl.SSLContext, Any]:
    await enroll(centre, data, gateway_id=gateway_id)
    p = SyncPaths.from_section(SyncSection(), data)
    return client_ssl_context(p.ca, p.cert, p.key), load_private_key(p.key)


def sealed(seqs: list[int], key: Any, gateway_id: str = "gw-rose-01") -> bytes:
    b = Batch.build(gateway_id, "b-x", events(seqs), head_seq=max(seqs), created_at=1.0)
    return seal(BATCH_TYPE, b.to_dict(), key)


async def test_ingest_without_client_certificate_is_401(centre: Centre) -> None:
    ctx = pinned_ca_context(centre.paths.ca_cert.read_text())
    status, body = await post(centre.url, b"{}", ctx)
    assert status == 401
    assert body["error"] == "client_certificate_required"


async def test_revoked_gateway_refused(centre: Centre, tmp_path: Path) -> None:
    ctx, key = await gateway_ctx(centre, tmp_path)
    status, _ = await post(centre.url, sealed([1], key), ctx)
    assert status == 200
    assert await centre.running.repo.revoke("gw-rose-01", time.time(), "stolen")
    status, body = await post(centre.url, sealed([2], key), ctx)
    assert status == 403
    assert body["error"] == "gateway_revoked" and body["why"] == "stolen"


async def test_tampered_signature_refused_and_nothing_stored(
    centre: Centre, tmp_path: Path
) -> None:
    ctx, key = await gateway_ctx(centre, tmp_path)
    env = decode(sealed([1, 2], key))
    env["body"]["events"][1]["payload"]["n"] = 666
    status, body = await post(centre.url, encode(env), ctx)
    assert status == 422
    assert body["error"] == "bad_signature"
    assert await centre.running.repo.event_seqs("gw-rose-01") == []


async def test_batch_for_another_gateway_refused(centre: Centre, tmp_path: Path) -> None:
    ctx, key = await gateway_ctx(centre, tmp_path)
    status, body = await post(centre.url, sealed([1], key, gateway_id="gw-other"), ctx)
    assert status == 403 and body["error"] == "gateway_mismatch"


async def test_resend_is_idempotent_and_conflict_refused(centre: Centre, tmp_path: Path) -> None:
    ctx, key = await gateway_ctx(centre, tmp_path)
    status, ack = await post(centre.url, sealed([1, 2, 3], key), ctx, gz=False)
    assert (status, ack["stored"], ack["watermark"]) == (200, 3, 3)
    status, ack = await post(centre.url, sealed([1, 2, 3], key), ctx)
    assert (status, ack["stored"], ack["duplicates"], ack["watermark"]) == (200, 0, 3, 3)
    other = events([3])
    other[0]["payload"] = {"n": "rewritten"}
    b = Batch.build("gw-rose-01", "b-y", other, head_seq=3, created_at=1.0)
    status, body = await post(centre.url, seal(BATCH_TYPE, b.to_dict(), key), ctx)
    assert status == 409 and body["error"] == "seq_conflict" and body["seq"] == 3
    assert await centre.running.repo.event_seqs("gw-rose-01") == [1, 2, 3]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "bad_encoding"),
        (b'{"a":1,"a":1}', "bad_encoding"),
        (b"{}", "bad_envelope"),
        (b"", "bad_request"),
    ],
)
async def test_malformed_bodies_are_400(
    centre: Centre, tmp_path: Path, body: bytes, error: str
) -> None:
    ctx, _ = await gateway_ctx(centre, tmp_path)
    status, reply = await post(centre.url, body, ctx)
    assert status == 400 and reply["error"] == error and reply["reason"]


async def test_gaps_and_evidence_ahead(centre: Centre, tmp_path: Path) -> None:
    ctx, key = await gateway_ctx(centre, tmp_path)
    status, ack = await post(centre.url, sealed([1, 2, 5, 9], key), ctx)
    assert status == 200
    assert ack["watermark"] == 2 and ack["highest"] == 9 and ack["gaps"] == [[3, 4], [6, 8]]
    # In-order batch declaring 5 (already held) and 7 (dropped at the gateway) as skipped.
    b = Batch.build(
        "gw-rose-01",
        "b-z",
        events([3, 4, 6, 8]),
        head_seq=9,
        created_at=1.0,
        skipped=[(5, 5), (7, 7)],
    )
    status, ack = await post(centre.url, seal(BATCH_TYPE, b.to_dict(), key), ctx)
    assert status == 200
    assert (ack["watermark"], ack["gaps"], ack["stored"]) == (9, [], 4)


async def test_gzip_bomb_is_413(centre: Centre, tmp_path: Path) -> None:
    ctx, _ = await gateway_ctx(centre, tmp_path)
    bomb = b"[" + b"0," * (20 * 1024 * 1024) + b"0]"  # 40 MiB of JSON, ~40 KiB gzipped
    status, body = await post(centre.url, bomb, ctx)
    assert status == 413 and body["error"] == "too_large"
