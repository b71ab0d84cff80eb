"""Rollouts against a real centre and enrolled gateways (tests.console.district): the console
form (officers only, CSRF, each publish one audit record, bad input a page in words and never
a 500), each gateway's stage from the update events it uploads, the automatic stop at N+1
rollbacks, and a gateway fetching an offered release by hash over mTLS and verifying it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre.rollout import machine
from centre.rollout.service import RolloutService
from centre.web.permissions import Role
from gateway.update.bundle import UpdateRefused
from gateway.update.fetch import ReleaseFetcher
from gateway.update.outbox import OUTBOX_NAME, Outbox, UpdateEventsService
from tests.console.district import District, running_district, wait_until
from tests.console.test_http import Browser
from tests.pg_cluster import BACKENDS
from tests.rollout.rig import HW, gateway_dir, gateway_ssl, place_release

pytestmark = pytest.mark.timeout(600)
GATEWAYS = [
    ("gw-rose-01", "North", "Rose Garden"),
    ("gw-pine-01", "North", "Pine Court"),
    ("gw-lake-01", "South", "Lake View"),
    ("gw-hill-01", "South", "Hill Top"),
]
PAYLOAD = {"bin/compound-gw": b"#!/bin/sh\nexit 0\n", "lib/app.py": b"print('new')\n" * 4000}


@pytest.fixture(params=BACKENDS)
async def district(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[District]:
    # Both backends: with a DSN the rollouts, like the console and the events they follow,
    # are in the centre's PostgreSQL.
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    async with running_district(tmp_path, GATEWAYS, dsn=dsn) as d:
        want = "PostgresRolloutStore" if dsn else "SqliteRolloutStore"
        assert type(rollouts(d).store).__name__ == want
        yield d


def rollouts(district: District) -> RolloutService:
    assert district.running.rollouts is not None
    return district.running.rollouts


async def audit_tail(district: District, before: int) -> list[tuple[str, str, str]]:
    assert district.running.console is not None
    records = await district.running.console.console.store.audit_records()
    return [(r.action, r.target, r.outcome) for r in records[before:]]


async def audit_len(district: District) -> int:
    assert district.running.console is not None
    return len(await district.running.console.console.store.audit_records())


async def page_csrf(b: Browser) -> str:
    status, page = await b.get("/console/rollouts")
    assert status == 200, page[:300]
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert found is not None
    return found.group(1)


async def stages(district: District, rollout_id: str) -> dict[str, str]:
    targets = await rollouts(district).store.targets(rollout_id=rollout_id)
    return {t.gateway_id: t.stage for t in targets}


def fetcher(
    district: District, tmp: Path, gateway_id: str, key: Ed25519PrivateKey
) -> ReleaseFetcher:
    outbox = Outbox(gateway_dir(tmp, gateway_id) / OUTBOX_NAME)
    return ReleaseFetcher(
        district.url,
        gateway_ssl(tmp, gateway_id),
        gateway_dir(tmp, gateway_id) / "update-download",
        public_key=key.public_key(),
        hardware=HW,
        record=outbox.record,
        rate_bytes_s=0,  # unpaced here; pacing is the Pacer's
    )


async def test_the_console_form_publishes_for_officers_only_and_refuses_bad_input_in_words(
    district: District, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    name = place_release(district, tmp_path, key, 7, PAYLOAD)
    officer = await district.user("zhang.wei", Role.OFFICER)
    clerk = await district.user("li.na", Role.CLERK)

    b = Browser(district)
    try:
        assert await b.login("li.na", clerk) == 303
        status, page = await b.get("/console/rollouts")
        assert status == 403 and 'href="/console/rollouts"' not in page
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
        assert csrf is not None
        n = await audit_len(district)
        status, _, page = await b.post(
            "/console/rollouts",
            {"csrf": csrf.group(1), "release": name, "scope": "all", "max_rollbacks": "0"},
        )
        assert status == 403 and 'role="alert"' in page
        assert await audit_tail(district, n) == [
            ("rollout.publish", "release:?", "refused:forbidden")
        ]
        assert await rollouts(district).store.rollouts() == []
    finally:
        await b.close()

    b = Browser(district)
    try:
        assert await b.login("zhang.wei", officer) == 303
        status, page = await b.get("/console/rollouts")
        assert status == 200 and "软件更新" in page and "发布" in page
        assert 'href="/console/rollouts"' in page  # in the officer's menu
        csrf = await page_csrf(b)
        good = {"csrf": csrf, "release": name, "scope": "township", "township": "North",
                "max_rollbacks": "1", "percent": "10", "gateway": "gw-rose-01"}  # fmt: skip

        # a stale token: refused, nothing published
        status, _, _ = await b.post("/console/rollouts", good | {"csrf": "0" * 64})
        assert status == 403
        # bad input: a page in words (4xx), one audit record each, nothing published
        cases = [
            (good | {"release": "../../etc"}, 404, "no_release"),
            (good | {"release": "nope"}, 404, "no_release"),
            (good | {"max_rollbacks": "-1"}, 400, "bad_max_rollbacks"),
            (good | {"max_rollbacks": "1e3"}, 400, "bad_max_rollbacks"),
            (good | {"max_rollbacks": "\u0661"}, 400, "bad_max_rollbacks"),
            (good | {"scope": "percent", "percent": "0"}, 400, "bad_percent"),
            (good | {"scope": "percent", "percent": "101"}, 400, "bad_percent"),
            (good | {"scope": "everywhere"}, 400, "bad_form"),
            (good | {"scope": "one", "gateway": "gw-nowhere"}, 400, "no_gateways"),
            (good | {"township": "East"}, 400, "no_gateways"),
            (good | {"release": "x" * 5000}, 400, "bad_form"),
        ]
        for form, want, code in cases:
            n = await audit_len(district)
            status, _, page = await b.post("/console/rollouts", form)
            assert status == want, (form, status, page[:300])
            assert 'role="alert"' in page and "<form" in page, (code, page[:1000])
            ((action, _target, outcome),) = await audit_tail(district, n)
            assert (action, outcome) == ("rollout.publish", f"refused:{code}")
        status, _, page = await b.post("/console/rollouts", {"csrf": csrf, "release": name})
        assert status == 400 and "<form" in page  # fields missing: still a page, not a 500
        assert await rollouts(district).store.rollouts() == []

        # a good one: the North township's two gateways, audited, shown in Chinese
        n = await audit_len(district)
        status, where, _ = await b.post("/console/rollouts", good)
        assert status == 303 and where.startswith("/console/rollouts?published=r-")
        (ro,) = await rollouts(district).store.rollouts()
        assert (ro.release, ro.version, ro.max_rollbacks, ro.state) == (7, "1.7.0", 1, "active")
        assert await stages(district, ro.rollout_id) == {
            "gw-rose-01": "pending",
            "gw-pine-01": "pending",
        }
        ((action, target, outcome),) = await audit_tail(district, n)
        assert (action, target) == ("rollout.publish", f"release:{name}:township:North")
        assert outcome == f"ok:{ro.rollout_id}:gateways=2:max_rollbacks=1"
        status, page = await b.get(where)
        assert status == 200 and f'data-rollout="{ro.rollout_id}"' in page
        assert "等待下发" in page and "Rose Garden" in page
        assert "pending" not in re.sub(r'data-[a-z]+="[^"]*"', "", page)  # no internal names

        # a percentage: a stable share, at least one
        status, _, _ = await b.post(
            "/console/rollouts", good | {"scope": "percent", "percent": "50"}
        )
        assert status == 303
        newest = (await rollouts(district).store.rollouts())[0]
        assert len(await stages(district, newest.rollout_id)) == 2

        # stop by hand: once; a second stop is refused in words
        n = await audit_len(district)
        form = {"csrf": csrf, "rollout": newest.rollout_id}
        status, _, _ = await b.post("/console/rollouts/stop", form)
        assert status == 303
        status, _, page = await b.post("/console/rollouts/stop", form)
        assert status == 404 and 'role="alert"' in page
        assert [o for _a, _t, o in await audit_tail(district, n)] == [
            "ok",
            "refused:no_such_rollout",
        ]
        assert (await rollouts(district).store.rollout(newest.rollout_id)).state == "stopped"  # type: ignore[union-attr]
    finally:
        await b.close()


async def test_stages_follow_uploaded_events_and_the_rollout_halts_at_n_plus_one_rollbacks(
    district: District, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    name = place_release(district, tmp_path, key, 7, PAYLOAD)
    service = rollouts(district)
    release = service.releases.get(name)
    ids = [g[0] for g in GATEWAYS]
    ro = await service.publish(
        release, ids, scope="all", max_rollbacks=1, created_by="test", healthy_after_s=0.0
    )
    # three gateways ask and are offered; the fourth has not asked yet
    for gw in ids[:3]:
        offer = await fetcher(district, tmp_path, gw, key).offer()
        assert offer is not None and offer["rollout"] == ro.rollout_id and offer["release"] == 7
    assert await stages(district, ro.rollout_id) == dict.fromkeys(ids[:3], "offered") | {
        ids[3]: "pending"
    }

    async def stage_is(gw: str, want: str) -> bool:
        return (await stages(district, ro.rollout_id))[gw] == want

    gws = district.gateways
    # another release's events mean nothing to this rollout
    await gws[ids[0]].journal.append("update.rolled_back", {"release": 6, "reason": "no_ready"})
    await gws[ids[0]].journal.append("update.downloaded", {"release": 7, "version": "1.7.0"})
    await wait_until(lambda: stage_is(ids[0], "downloaded"), "gateway 1 downloaded")
    await gws[ids[0]].journal.append("update.installed", {"release": 7, "version": "1.7.0"})
    # installed, then healthy at its next upload (healthy_after 0 here)
    await gws[ids[0]].journal.append("patrol.heartbeat", {})
    await wait_until(lambda: stage_is(ids[0], "healthy"), "gateway 1 healthy")

    # one rollback: within the limit of 1, the rollout goes on
    await gws[ids[1]].journal.append(
        "update.rolled_back", {"release": 7, "version": "1.7.0", "reason": "no_ready"}
    )
    await wait_until(lambda: stage_is(ids[1], "rolled_back"), "gateway 2 rolled back")
    assert (await service.store.rollout(ro.rollout_id)).state == machine.ACTIVE  # type: ignore[union-attr]
    # the second (N+1): halted on its own, no new offers
    await gws[ids[2]].journal.append(
        "update.failed", {"release": 7, "version": "1.7.0", "reason": "exited"}
    )

    async def halted() -> bool:
        r = await service.store.rollout(ro.rollout_id)
        return r is not None and r.state == machine.HALTED

    await wait_until(halted, "rollout halted")
    assert await fetcher(district, tmp_path, ids[3], key).offer() is None
    assert await stages(district, ro.rollout_id) == {
        ids[0]: "healthy", ids[1]: "rolled_back", ids[2]: "rolled_back", ids[3]: "pending",
    }  # fmt: skip

    officer = await district.user("zhang.wei", Role.OFFICER)
    b = Browser(district)
    try:
        assert await b.login("zhang.wei", officer) == 303
        status, page = await b.get("/console/rollouts")
        assert status == 200 and 'data-state="halted"' in page
        assert "已回退" in page and "运行正常" in page and "自动停止" in page
    finally:
        await b.close()


async def test_a_gateway_fetches_and_verifies_an_offered_release_over_mtls(
    district: District, tmp_path: Path
) -> None:
    key = Ed25519PrivateKey.generate()
    name = place_release(district, tmp_path, key, 7, PAYLOAD)
    service = rollouts(district)
    gw = GATEWAYS[0][0]
    ro = await service.publish(
        service.releases.get(name), [gw], scope=f"gateway:{gw}", max_rollbacks=0,
        created_by="test",
    )  # fmt: skip

    # the by-hash route needs the gateway's certificate; hostile hashes are 4xx
    release = service.releases.get(name)
    some_hash = next(iter(release.files.values()))[0]
    b = Browser(district)
    try:
        status, _ = await b.get(f"/api/v1/updates/by-hash/{some_hash}")
        assert status in (401, 403)
        status, _ = await b.get("/api/v1/updates/offer")
        assert status in (401, 403)
    finally:
        await b.close()
    async with aiohttp.ClientSession() as s:
        ctx = gateway_ssl(tmp_path, gw)
        for path, want in (("0" * 64, 404), ("ZZ", 400), ("../../etc/passwd", 404)):
            async with s.get(f"{district.url}/api/v1/updates/by-hash/{path}", ssl=ctx) as r:
                assert r.status == want, (path, r.status)

    # the right key: every file fetched by hash, checked, a bundle folder the installer takes
    good = fetcher(district, tmp_path, gw, key)
    offer = await good.offer()
    assert offer is not None and offer["rollout"] == ro.rollout_id
    assert set(offer["files"]) == set(PAYLOAD)
    bundle = await good.fetch(offer, installed_release=6)
    for rel, data in PAYLOAD.items():
        assert (bundle / "files" / rel).read_bytes() == data
    outbox = gateway_dir(tmp_path, gw) / OUTBOX_NAME
    journal = district.gateways[gw].journal
    events = UpdateEventsService(journal, outbox)
    assert await events.drain_once() == 1  # update.downloaded, journaled and uploaded

    async def stage_is(want: str) -> bool:
        return (await stages(district, ro.rollout_id))[gw] == want

    await wait_until(lambda: stage_is("downloaded"), "the centre shows downloaded")

    # an older-or-equal installed release: refused as rollback, before any payload
    with pytest.raises(UpdateRefused) as refused:
        await good.fetch(offer, installed_release=7)
    assert refused.value.code == "rollback"
    # a key the release was not signed with: refused before any payload is fetched
    wrong = fetcher(district, tmp_path, gw, Ed25519PrivateKey.generate())
    with pytest.raises(UpdateRefused) as refused:
        await wrong.fetch(offer, installed_release=6)
    assert refused.value.code == "bad_signature"
    assert not (gateway_dir(tmp_path, gw) / "update-download" / ro.rollout_id).exists()
    assert await events.drain_once() == 2
    await wait_until(lambda: stage_is("refused"), "the centre shows refused")

    # a payload file changed at the centre after signing: refused, journaled, nothing kept
    name8 = place_release(district, tmp_path, key, 8, PAYLOAD)
    tampered = district.paths.root / "releases" / name8 / "files" / "lib" / "app.py"
    tampered.write_bytes(b"print('evil')\n" * 4000)
    ro8 = await service.publish(
        service.releases.get(name8), [gw], scope="one", max_rollbacks=0, created_by="test"
    )
    offer8 = await good.offer()
    assert offer8 is not None and offer8["rollout"] == ro8.rollout_id
    with pytest.raises(UpdateRefused) as refused:
        await good.fetch(offer8, installed_release=7)
    assert refused.value.code == "hash_mismatch"
    assert not (gateway_dir(tmp_path, gw) / "update-download" / ro8.rollout_id).exists()
    taken = Outbox(outbox).take()
    assert taken is not None
    ((kind, payload),) = Outbox.parse(taken)
    assert (kind, payload["code"], payload["release"]) == ("update.refused", "hash_mismatch", 8)
