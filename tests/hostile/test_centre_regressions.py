"""Issue 14, one regression test per reported centre defect (items 1-6 and 16's centre part).

Each asserts first exactly what the defect broke (a 500, an exception of the wrong type, a
dropped channel, a logged traceback), so on the old code it fails for that reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre.commands.channel import AckError, parse_ack, read_ack
from centre.errors import CentreError
from centre.pki import check_csr
from tests.hostile.test_centre_services import (
    GW,
    TIMEOUT_S,
    Centre,
    bad_key_csr,
    bad_version_csr,
    batch_bytes,
    channel,
    enroll_body,
    gateway,
    huge_created_at,
    json_error,
    operator,
    raw,
    request_bytes,
    sync_rig,
)
from wire import EncodingError, EnvelopeError, decode
from wire.commands import Limits, Refused, check_command, peek_identity

centre_dir = sync_rig.centre_dir
centre = sync_rig.centre

PUB = Ed25519PrivateKey.generate().public_key()


# -- item 1: integer literals over 4300 digits -------------------------------------------------


def test_item1_huge_integer_literal_is_an_encoding_error() -> None:
    with pytest.raises(EncodingError):
        decode(b"7" * 4301)
    verdict = check_command(b"7" * 4301, PUB, GW, 0, time.time(), Limits(max_bytes=10_000))
    assert isinstance(verdict, Refused) and verdict.code == "bad_encoding"
    assert peek_identity(b'{"body":' + b"7" * 4301 + b"}", max_bytes=10_000) == ("", 0)


async def test_item1_enroll_with_a_huge_integer_is_400(centre: Centre) -> None:
    status, h, body = await raw(centre, request_bytes("POST", b"/api/v1/enroll", [], b"7" * 4301))
    assert status == 400, (status, body[:200])
    assert json_error(status, h, body)["error"] == "bad_request"


# -- item 2: huge integers in float fields -----------------------------------------------------


def test_item2_huge_integer_in_a_float_field_is_an_envelope_error() -> None:
    from wire import Batch
    from wire.commands import Command

    ev = {
        "seq": 1, "kind": "tap", "cls": "evidence", "payload": {}, "wall_time": 10**400,
        "mono_time": 1.0, "boot_id": "b", "clock_synced": True,
    }  # fmt: skip
    with pytest.raises(EnvelopeError):
        Batch.build(GW, "b-1", [ev], head_seq=1, created_at=1.0)
    good = dict(ev, wall_time=1.0)
    with pytest.raises(EnvelopeError):
        Batch.build(GW, "b-1", [good], head_seq=1, created_at=10**400)  # type: ignore[arg-type]
    body = {
        "v": 1, "command_id": "c-1", "gateway": GW, "seq": 1, "issued_at": 10**400,
        "expires_at": 10**401, "key_id": "0" * 16, "action": "broadcast.stop", "args": {},
    }  # fmt: skip
    with pytest.raises(EnvelopeError):
        Command.from_dict(body)


async def test_item2_ingest_with_a_huge_created_at_is_400(centre: Centre, tmp_path: Path) -> None:
    ctx, key = await gateway(centre, tmp_path)
    hostile = huge_created_at(batch_bytes(key), b"1" + b"0" * 400)
    status, h, body = await raw(centre, request_bytes("POST", b"/api/v1/ingest", [], hostile), ctx)
    assert status == 400, (status, body[:200])
    assert json_error(status, h, body)["error"] == "bad_encoding"


# -- item 3: cryptography's own exceptions from check_csr --------------------------------------


@pytest.mark.parametrize("make", [bad_key_csr, bad_version_csr])
def test_item3_check_csr_raises_only_enrollment_refused(make: object) -> None:
    with pytest.raises(CentreError) as info:
        check_csr(make(), GW)  # type: ignore[operator]
    assert info.value.code == "bad_csr" and info.value.status == 400


@pytest.mark.parametrize("make", [bad_key_csr, bad_version_csr])
async def test_item3_enroll_with_a_broken_csr_is_400(centre: Centre, make: object) -> None:
    token = await centre.token()
    data = request_bytes("POST", b"/api/v1/enroll", [], enroll_body(token, make()))  # type: ignore[operator]
    status, h, body = await raw(centre, data)
    assert status == 400, (status, body[:200])
    assert json_error(status, h, body)["error"] == "bad_csr"


# -- item 4: bulletins' bearer header and far dates --------------------------------------------


async def test_item4_non_utf8_bearer_is_not_a_500(centre: Centre) -> None:
    for target in (b"/bulletins", b"/bulletins/daily", b"/bulletins/monthly?format=csv"):
        data = request_bytes("GET", target, [b"Authorization: Bearer cop-\xff"])
        status, _, body = await raw(centre, data)
        assert status == 401, (target, status, body[:200])


async def test_item4_year_9999_is_400(centre: Centre) -> None:
    auth = f"Authorization: Bearer {operator(centre)}".encode()
    for target in (b"/bulletins/daily?date=9999-12-31", b"/bulletins/monthly?month=9999-12"):
        status, h, body = await raw(centre, request_bytes("GET", target, [auth]))
        assert status == 400, (target, status, body[:200])
        assert json_error(status, h, body)["error"] == "bad_request"


# -- item 5: corrupt deflate bodies ------------------------------------------------------------


@pytest.mark.parametrize("target", [b"/api/v1/enroll", b"/bulletins/explanations"])
async def test_item5_corrupt_deflate_body_is_400(centre: Centre, target: bytes) -> None:
    headers = [b"Content-Encoding: deflate", f"Authorization: Bearer {operator(centre)}".encode()]
    status, h, body = await raw(centre, request_bytes("POST", target, headers, b"\x78\x9cgarbage!"))
    assert status == 400, (status, body[:200])
    assert json_error(status, h, body)["error"] == "bad_body"


# -- item 6: an ack whose stage is a list ------------------------------------------------------


def test_item6_unhashable_stage_is_an_ack_error() -> None:
    text = '{"command_id":"","stage":[],"type":"ack"}'
    with pytest.raises(AckError):
        read_ack(text)
    assert parse_ack(text) is None


async def test_item6_channel_stays_up_after_an_unhashable_stage(
    centre: Centre, tmp_path: Path
) -> None:
    ctx, _ = await gateway(centre, tmp_path)
    async with channel(centre, ctx) as ws:
        await ws.send_str('{"command_id":"","stage":[],"type":"ack"}')
        await ws.send_str('{"command_id":"nope","stage":"received","type":"ack"}')
        # The second ack is handled (logged as unknown) only if the first did not kill the loop.
        deadline = time.monotonic() + TIMEOUT_S
        while ("nope", "received") not in [
            a[:2] for a in await centre.running.commands.store.acks(GW)
        ]:
            assert not ws.closed, f"the channel was closed: {ws.close_code}"
            assert time.monotonic() < deadline, "the good ack was never recorded"
            await asyncio.sleep(0.02)
        assert GW in centre.running.commands.connections


# -- item 16 (centre part): a gateway dropping mid-upload --------------------------------------


async def test_item16_drop_mid_upload_logs_no_traceback(
    centre: Centre, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    ctx, key = await gateway(centre, tmp_path)
    body = batch_bytes(key)
    head = request_bytes("POST", b"/api/v1/ingest", [], body).replace(
        f"Content-Length: {len(body)}".encode(), b"Content-Length: 100000"
    )
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
    # The next upload on a new connection: whatever the drop logged is in by then.
    async with aiohttp.ClientSession() as s, s.get(f"{centre.url}/api/v1/health", ssl=ctx) as r:
        assert r.status == 200
    logged = [r for r in caplog.records if r.name.startswith(("centre", "aiohttp"))]
    assert not [r for r in logged if r.exc_info or r.levelno >= logging.ERROR], [
        (r.name, r.levelname, r.getMessage()) for r in logged
    ]
    assert [r for r in logged if "went away mid-request" in r.getMessage()]
