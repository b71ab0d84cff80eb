"""Evidence images to the centre (issue 17, media uplink): real TLS on loopback, the real centre,
the real uploader acknowledging the events, bytes counted on the wire by a TCP proxy.

(a) an image arrives with a matching hash, and never before its event is acknowledged;
(b) a link cut mid-upload resumes without re-sending finished chunks (bytes on the wire);
(c) a tampered chunk at the centre is refused (hash mismatch) and the image sent again;
(d) a 1 MB/day budget with 5 MB queued sends at most the budget, keeps and reports the rest.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import os
import random
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.clock import ManualClock
from gateway.health.evidence import EvidenceStore
from gateway.journal import Journal
from gateway.sync.config import SyncPaths, SyncSection
from gateway.sync.media import MediaUplink
from gateway.sync.tls import client_ssl_context
from gateway.sync.uploader import Uploader
from hil_tests.netproxy import FaultProxy
from tests.sync.conftest import Centre, enroll

GW = "gw-rose-01"
CHUNK = 64 * 1024
FAST: dict[str, Any] = {
    "first_delay_max_s": 0.0,
    "backoff_initial_s": 0.05,
    "backoff_max_s": 0.3,
    "idle_poll_s": 0.05,
    "request_timeout_s": 10.0,
}


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], *tasks: asyncio.Task[Any], timeout: float = 30.0
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        for task in tasks:
            if task.done():
                task.result()
                raise AssertionError("a service stopped")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


@dataclass
class Rig:
    centre: Centre
    data: Path
    journal: Journal
    clock: ManualClock
    store: EvidenceStore
    status: dict[str, Any]
    tasks: list[asyncio.Task[Any]]

    async def snapshot(self, data: bytes) -> str:
        """Store an image and journal its camera.snapshot event as the snapshot service does."""
        saved = await asyncio.to_thread(self.store.save, "gate", data, self.clock.wall())
        tap = await self.journal.append("tap", {"checkpoint": "gate", "card": "0a0b0c0d"})
        await self.journal.append(
            "camera.snapshot",
            {
                "camera": "gate",
                "trigger_seq": tap.seq,
                "trigger_kind": "tap",
                "sha256": saved.sha256,
                "bytes": saved.size,
                "file": saved.name,
                "fetch_ms": 12.5,
            },
        )
        self.clock.advance(0.01)  # distinct file names
        return saved.sha256

    def start_uploader(self) -> None:
        up = Uploader(
            self.journal,
            self.clock,
            SyncSection(**FAST),
            data_dir=self.data,
            rng=random.Random(1),
            publish=self.status.__setitem__,
        )
        self.tasks.append(asyncio.create_task(up.run()))

    def start_uplink(self, url: str | None = None, **section: Any) -> MediaUplink:
        uplink = MediaUplink(
            self.journal,
            self.clock,
            SyncSection(**(FAST | {"centre_url": url or ""} | section)),
            data_dir=self.data,
            media_dir=self.store.folder,
            rng=random.Random(2),
            publish=self.status.__setitem__,
            day_of=lambda wall: str(int(wall // 86400)),
        )
        self.tasks.append(asyncio.create_task(uplink.run()))
        return uplink

    async def events_acked(self) -> bool:
        g = await self.centre.running.repo.gateway(GW)
        return g is not None and g.watermark >= self.journal.last_seq

    async def stored(self, sha: str) -> bool:
        return await self.centre.running.repo.media(sha) is not None

    def centre_file(self, sha: str) -> Path:
        return self.centre.paths.root / "media" / sha[:2] / f"{sha}.jpg"


@pytest.fixture
async def rig(centre: Centre, tmp_path: Path) -> AsyncIterator[Rig]:
    data = tmp_path / "gw"
    await enroll(centre, data)
    clock = ManualClock()
    journal = await Journal.open(data / "journal.db", gateway_id=GW, clock=clock)
    r = Rig(centre, data, journal, clock, EvidenceStore(data / "media", 64 << 20), {}, [])
    try:
        yield r
    finally:
        for t in r.tasks:
            t.cancel()
        await asyncio.gather(*r.tasks, return_exceptions=True)
        await journal.close()


async def uploaded(uplink: MediaUplink, n: int) -> bool:
    return uplink.counters["uploaded"] >= n


def image(size: int, seed: int) -> bytes:
    return b"\xff\xd8" + random.Random(seed).randbytes(size - 4) + b"\xff\xd9"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_image_arrives_with_matching_hash_only_after_its_event(rig: Rig) -> None:
    data = image(200_000, 1)
    digest = await rig.snapshot(data)
    uplink = rig.start_uplink()

    # No uploader yet: the event is not acknowledged, so the image must not move.
    async def waiting() -> bool:
        media = rig.status.get("media") or {}
        return media.get("waiting_images") == 1 and media.get("waiting_for_evidence") is True

    await wait_for(waiting, *rig.tasks)
    assert not await rig.stored(digest)
    assert uplink.counters["chunks"] == 0

    rig.start_uploader()
    await wait_for(lambda: rig.stored(digest), *rig.tasks)
    await wait_for(lambda: uploaded(uplink, 1), *rig.tasks)  # the 201 read by the gateway
    assert await rig.events_acked()
    held = rig.centre_file(digest).read_bytes()
    assert sha(held) == digest == sha(data)
    assert uplink.counters["uploaded"] == 1 and uplink.counters["wire_bytes"] == len(data)
    record = await rig.centre.running.repo.media(digest)
    assert record is not None and record.gateway_id == GW and record.size == len(data)
    assert await rig.centre.running.repo.media_backlog(GW) == (0, 0)

    async def reported() -> bool:
        return (rig.status.get("media") or {}).get("waiting_images") == 0

    await wait_for(reported, *rig.tasks)


async def test_link_cut_mid_upload_resumes_without_resending_finished_chunks(rig: Rig) -> None:
    data = image(10 * CHUNK, 2)
    digest = await rig.snapshot(data)
    rig.start_uploader()
    await wait_for(rig.events_acked, *rig.tasks)
    async with FaultProxy(
        listen=("127.0.0.1", 0), target=("127.0.0.1", rig.centre.running.port)
    ) as proxy:
        # The link dies after ~300 kB of upload: mid-image, mid-chunk. It stays dead (every
        # connection reset, aiohttp's one silent retry too) until the uplink has seen it fail,
        # then comes back.
        proxy.reset_mid_stream(after_bytes=300_000, direction="upstream", once=True)
        reset = asyncio.create_task(proxy.wait_for_reset(timeout=30.0))
        uplink = rig.start_uplink(f"https://127.0.0.1:{proxy.port}")
        await reset
        proxy.cut()

        async def failed() -> bool:
            return uplink.counters["errors"] >= 1

        await wait_for(failed, *rig.tasks)
        assert not await rig.stored(digest)
        proxy.heal()
        await wait_for(lambda: rig.stored(digest), *rig.tasks)
        wire = proxy.stats
    assert wire.resets >= 1, wire
    assert uplink.counters["resumed"] == 1, (uplink.counters, wire)
    assert uplink.counters["chunks"] <= 10 + 1  # at most the chunk cut in flight, again
    assert sha(rig.centre_file(digest).read_bytes()) == digest
    # Without resuming, the retry would send the whole image again: >= 300 kB + 640 kB.
    # Resuming: the image once, plus at most the one chunk cut in flight, plus TLS and HTTP
    # overhead (well under a chunk for a dozen requests and two handshakes).
    assert len(data) < wire.bytes_upstream < len(data) + 2 * CHUNK
    assert rig.centre.running.media is not None
    assert rig.centre.running.media.counters["bytes"] == len(data)  # no chunk stored twice


async def test_tampered_chunk_is_refused_and_the_image_sent_again(rig: Rig) -> None:
    data = image(3 * CHUNK + 1000, 3)
    digest = await rig.snapshot(data)
    rig.start_uploader()
    await wait_for(rig.events_acked, *rig.tasks)
    # Someone with the gateway's certificate (or a broken middlebox) puts a tampered first
    # chunk at the centre. The uplink resumes after it, the centre finds the hash wrong,
    # refuses and discards, and the uplink sends the whole image again.
    tampered = bytes(b ^ 0x55 for b in data[:CHUNK])
    paths = SyncPaths.from_section(SyncSection(), rig.data)
    ctx = client_ssl_context(paths.ca, paths.cert, paths.key)
    url = f"{rig.centre.url}/api/v1/media/{digest}"
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s,
        s.put(f"{url}?offset=0", data=tampered) as resp,
    ):
        assert resp.status == 200 and (await resp.json())["received"] == CHUNK
    uplink = rig.start_uplink()
    await wait_for(lambda: rig.stored(digest), *rig.tasks)
    assert uplink.counters["resumed"] == 1  # it trusted the centre's offset first...
    assert uplink.counters["resent"] == 1  # ...was refused, and sent it all again
    assert rig.centre.running.media is not None
    assert rig.centre.running.media.counters["hash_mismatch"] == 1
    assert sha(rig.centre_file(digest).read_bytes()) == digest
    assert not list((rig.centre.paths.root / "media" / "partial").iterdir())


async def test_a_damaged_file_on_the_gateway_is_counted_not_sent_forever(rig: Rig) -> None:
    data = image(2 * CHUNK, 4)
    digest = await rig.snapshot(data)
    (name,) = [n for n, _ in rig.store.files()]
    path = rig.store.folder / name
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0xFF
    path.write_bytes(bytes(damaged))
    rig.start_uploader()
    uplink = rig.start_uplink()

    async def settled() -> bool:
        return uplink.counters["corrupt"] == 1 and not uplink.pending

    await wait_for(settled, *rig.tasks)
    assert not await rig.stored(digest)
    assert path.exists()  # kept on disk as it is
    assert uplink.counters["resent"] == 0


async def test_daily_budget_sends_at_most_the_budget_and_reports_the_rest(rig: Rig) -> None:
    budget = 1_000_000
    images = [image(1_000_000, 10 + i) for i in range(5)]
    digests = [await rig.snapshot(d) for d in images]
    rig.start_uploader()
    await wait_for(rig.events_acked, *rig.tasks)
    async with FaultProxy(
        listen=("127.0.0.1", 0), target=("127.0.0.1", rig.centre.running.port)
    ) as proxy:
        uplink = rig.start_uplink(
            f"https://127.0.0.1:{proxy.port}", media_daily_budget_bytes=budget
        )

        async def spent() -> bool:
            return (rig.status.get("media") or {}).get("over_budget") is True

        await wait_for(spent, *rig.tasks)
        first_day = proxy.stats.bytes_upstream
        report = dict(rig.status["media"])
        assert report["sent_today_bytes"] <= budget
        assert report["waiting_images"] == 4 and report["waiting_bytes"] == 4_000_000
        assert uplink.counters["wire_bytes"] <= budget
        # Image bytes plus request/TLS overhead: nowhere near a second megabyte.
        assert first_day < budget + 2 * CHUNK
        assert [await rig.stored(d) for d in digests] == [True, False, False, False, False]
        assert await rig.centre.running.repo.media_backlog(GW) == (4, 4_000_000)
        # ...and the centre's operators see it too (compound-centre gateways).
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "centre.cli", "--data", str(rig.centre.paths.root),
            "gateways", "--json", stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        (row,) = json.loads(out)
        assert (row["images_waiting"], row["image_bytes_waiting"]) == (4, 4_000_000)
        for d in digests:  # every waiting image is still on disk
            assert any(d[:16] in n for n, _ in rig.store.files())

        rig.clock.advance(86400)  # the next day: the next megabyte
        await wait_for(lambda: rig.stored(digests[1]), *rig.tasks)

        async def spent_again() -> bool:
            media = rig.status.get("media") or {}
            return media.get("over_budget") is True and media.get("waiting_images") == 3

        await wait_for(spent_again, *rig.tasks)
        assert [await rig.stored(d) for d in digests] == [True, True, False, False, False]
        assert rig.status["media"]["sent_today_bytes"] <= budget


async def test_the_centre_refuses_images_no_event_of_this_gateway_names(rig: Rig) -> None:
    data = image(10_000, 5)
    paths = SyncPaths.from_section(SyncSection(), rig.data)
    ctx = client_ssl_context(paths.ca, paths.cert, paths.key)
    url = f"{rig.centre.url}/api/v1/media/{sha(data)}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        async with s.put(f"{url}?offset=0", data=data) as resp:
            assert resp.status == 404 and (await resp.json())["error"] == "not_announced"
        async with s.get(url) as resp:
            assert resp.status == 404
    # Without a client certificate: 401, as for ingest.
    anon = ssl.create_default_context(cafile=str(paths.ca))
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=anon)) as s,
        s.get(url) as resp,
    ):
        assert resp.status == 401
    assert not (rig.centre.paths.root / "media" / "partial").exists()


async def test_retention_deletes_old_images_and_records_it(rig: Rig) -> None:
    data = image(5000, 6)
    digest = await rig.snapshot(data)
    rig.start_uploader()
    rig.start_uplink()
    await wait_for(lambda: rig.stored(digest), *rig.tasks)
    media = rig.centre.running.media
    assert media is not None
    assert await media.expire(now=os.path.getmtime(rig.centre_file(digest)) + 3600) == 0
    stale = rig.centre.paths.root / "media" / "partial" / f"{GW}-{'0' * 64}.part"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half an image")
    assert await media.expire(now=10**10) == 1
    assert not stale.exists()
    assert not rig.centre_file(digest).exists()
    assert not await rig.stored(digest)
    (row,) = await rig.centre.running.repo.media_deletions(GW)
    assert row["sha256"] == digest and row["reason"] == "retention"
    assert await rig.centre.running.repo.media_backlog(GW) == (0, 0)


async def test_an_image_whose_event_retention_pruned_is_still_sent_after_a_restart(
    rig: Rig,
) -> None:
    data = image(50_000, 7)
    digest = await rig.snapshot(data)
    rig.start_uploader()
    await wait_for(rig.events_acked, *rig.tasks)
    # The gateway was down (or over budget) for longer than the journal keeps synced events:
    # the camera.snapshot event is pruned, the file is still on disk.
    rig.clock.advance(10)
    await rig.journal.append("tap", {"checkpoint": "gate", "card": "0a0b0c0e"})
    await wait_for(rig.events_acked, *rig.tasks)
    assert await rig.journal.prune(1.0) >= 2
    assert not await rig.journal.read_after(0, kinds=["camera.snapshot"])
    uplink = rig.start_uplink()
    await wait_for(lambda: rig.stored(digest), *rig.tasks)
    assert uplink.counters["recovered"] == 1
    assert sha(rig.centre_file(digest).read_bytes()) == digest


async def test_a_restart_sends_nothing_twice_and_keeps_its_state_small(rig: Rig) -> None:
    first = image(30_000, 8)
    d1 = await rig.snapshot(first)
    rig.start_uploader()
    uplink = rig.start_uplink()
    await wait_for(lambda: rig.stored(d1), *rig.tasks)
    await wait_for(lambda: uploaded(uplink, 1), *rig.tasks)
    task = rig.tasks.pop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)  # a stop writes the state once
    state = rig.data / "sync" / "media-uplink.json"
    assert state.stat().st_size < 200
    assert uplink.counters["uploaded"] == 1

    d2 = await rig.snapshot(image(30_000, 9))
    again = rig.start_uplink()
    await wait_for(lambda: rig.stored(d2), *rig.tasks)
    await wait_for(lambda: uploaded(again, 1), *rig.tasks)
    assert again.counters["uploaded"] == 1 and again.counters["already_held"] == 0
    assert again.counters["wire_bytes"] == 30_000  # the first image was not looked at again


def test_status_shows_the_image_backlog_in_chinese() -> None:
    from gateway.cli import render_status
    from gateway.i18n import set_language

    status = {
        "gateway": GW,
        "compound": "Rose Garden",
        "daemon": {"running": False},
        "journal": {"events": 10, "last_seq": 10, "unsynced": 0, "bytes_on_disk": 0},
        "media": {
            "waiting_images": 4,
            "waiting_bytes": 4_000_000,
            "sent_today_bytes": 1_000_000,
            "over_budget": True,
        },
    }

    def render() -> str:  # in a copied context: the language choice stays in there
        set_language("zh-CN")
        return render_status(status, "Asia/Shanghai", now=1_790_000_000.0)

    text = contextvars.copy_context().run(render)
    assert "证据图片上传区中心：4 张待上传（4 MB），今日已发送 1 MB" in text, text
    assert "今日流量额度已用完" in text


# -- issue 17: look-now images first in line ---------------------------------------------------


async def test_a_look_now_image_goes_before_the_backlog_and_never_before_its_event(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    journal = await Journal.open(tmp_path / "journal.db", gateway_id=GW, clock=clock)
    store = EvidenceStore(tmp_path / "media", 64 << 20)
    uplink = MediaUplink(
        journal, clock, SyncSection(**FAST), data_dir=tmp_path, media_dir=store.folder
    )

    async def snap(seed: int, request: str = "") -> str:
        saved = await asyncio.to_thread(store.save, "duty-room", image(5_000, seed), clock.wall())
        payload = {"camera": "duty-room", "sha256": saved.sha256, "bytes": saved.size}
        payload |= {"file": saved.name} | (
            {"request": request, "reason": "look_now"} if request else {}
        )
        await journal.append("camera.snapshot", payload)
        clock.advance(0.01)
        return saved.sha256

    try:
        backlog = [await snap(i) for i in range(3)]
        asked = await snap(10, request="cmd-look-1")
        newer = await snap(11)
        await journal.mark_synced_through(journal.last_seq)
        later = await snap(12, request="cmd-look-2")  # its event not at the centre yet
        await uplink.scan()
        order = []
        while (ready := await uplink.next_ready()) is not None:
            order.append(ready.sha256)
            uplink._settle(ready)
        # the look-now image first; the one whose event is unsynced waits, the rest oldest first
        assert order == [asked, *backlog, newer]
        assert [i.sha256 for i in uplink.pending.values()] == [later]
        await journal.mark_synced_through(journal.last_seq)
        ready = await uplink.next_ready()
        assert ready is not None and (ready.sha256, ready.request) == (later, "cmd-look-2")
        uplink._settle(ready)
        assert uplink.done_file == max(n for n, _ in store.files())
    finally:
        await journal.close()
