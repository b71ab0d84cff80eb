"""The media uplink: evidence images to the centre, after their events, chunked, resumable.

Theory of operation
-------------------
The snapshot service stores a JPEG (fsynced) and then journals ``camera.snapshot`` {sha256,
bytes, file}. The event travels with the uploader like any other evidence; the image follows,
from this service, over its own connection to the same centre (same pinned CA, same client
certificate). Rules:

1. **After its event, never ahead of evidence.** An image is sent only once the journal marks
   its ``camera.snapshot`` event synced (the centre acknowledged it), and only while no
   evidence event at all waits unsynced: images never delay taps, alerts or commands. The
   centre refuses an image no stored event of ours names (``not_announced``).
2. **Look-now first, then oldest first, by sha256, in chunks.** An image whose event carries a
   ``request`` (a centre's ``camera.snapshot`` command, issue 17) goes before the backlog, and
   before images recovered from disk; within each group the oldest goes first. A backlog image
   being sent yields at its next evidence check (every :data:`EVIDENCE_CHECK_CHUNKS` chunks),
   since the look-now event is evidence, and resumes from the centre's offset afterwards.
   ``GET /api/v1/media/<sha256>`` says how many bytes the centre holds; the rest goes as
   ``PUT ...?offset=N`` chunks of ``media_chunk_bytes``.
   After a cut link the next attempt asks again and sends only what is missing: finished
   chunks are never sent twice. A ``409 offset_mismatch`` names the centre's offset: we resume
   there. A ``422 hash_mismatch`` (the centre's copy did not hash to the sha256) means the
   centre threw its partial away: if our file still hashes right we send it again from 0
   (counted ``resent``), else the file is damaged on our side (counted ``corrupt``, kept on
   disk, logged) and not sent again.
3. **A daily byte budget** (``media_daily_budget_bytes``, per local calendar day): a chunk that
   would pass it is not sent. What is over budget waits for the next day, counted and reported
   in ``compound-gw status`` (``media`` section: images and bytes waiting, whether the budget
   is spent). Bytes are counted when a chunk is sent, whether or not its reply arrives.
4. **Nothing is dropped while on disk.** An image leaves the queue only when the centre holds
   it, or when its file is gone (the evidence folder's own budget pruned it: counted
   ``pruned_before_upload``; the snapshot service journals ``media.pruned``), or when the
   centre refuses it for good (``refused``, logged). Uploaded images are deleted by the
   evidence folder's budget only, as before.
5. **Few SD writes.** Progress lives at the centre (it holds the partial). On disk we keep one
   small JSON file (``sync/media-uplink.json``: the highest event seq whose image is settled,
   and today's bytes), rewritten at most every :data:`STATE_SAVE_INTERVAL_S` and at stop; after
   a crash the worst case is a few status requests and up to that long of budget uncounted.

    uplink = MediaUplink(journal, clock, SyncSection(), data_dir=d, media_dir=d / "media")
    await uplink.run()     # under the supervisor, beside the uploader
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from gateway.clock import Clock
from gateway.errors import SyncError
from gateway.events import EVIDENCE
from gateway.journal import Journal
from gateway.sync.config import SyncPaths, SyncSection
from gateway.sync.policy import Backoff, parse_retry_after
from gateway.sync.provision import read_enrollment
from gateway.sync.replies import reply_error, reply_json
from gateway.sync.tls import client_ssl_context, read_limited

log = logging.getLogger("gateway.sync.media")

MEDIA_PATH: Final = "/api/v1/media"
SNAPSHOT_KIND: Final = "camera.snapshot"
STATUS_SECTION: Final = "media"
STATE_FILE: Final = "media-uplink.json"
STATE_SAVE_INTERVAL_S: Final = 600.0
SCAN_ROWS: Final = 500
LOOK_NOW_POLL_S: Final = 0.1  # while a look-now image waits for its event's ack
LOOK_NOW_FAST_S: Final = 120.0  # ... for at most this long after it was queued (a link down)
EVIDENCE_CHECK_CHUNKS: Final = 16  # look for waiting evidence again every this many chunks
MAX_RESENDS: Final = 3  # hash mismatches in a row with a good file before backing off
MAX_MEDIA_REPLY: Final = 64 * 1024
NOT_PROVISIONED_POLL_S: Final = 60.0
_SHA = re.compile(r"[0-9a-f]{64}")
_FILE = re.compile(r"\d{13}-[a-z0-9._-]+-[0-9a-f]{16}\.jpg")

Publish = Callable[[str, Any], None]


def local_day(wall: float) -> str:
    """The budget's day: the gateway's local calendar date."""
    return time.strftime("%Y-%m-%d", time.localtime(wall))


class OverBudget(SyncError):
    """Today's image bytes are spent; the image waits for tomorrow."""


@dataclass(frozen=True, slots=True)
class QueuedImage:
    """An image a ``camera.snapshot`` event announced: where, how big, which hash."""

    seq: int
    sha256: str
    file: str
    size: int
    request: str = ""  # the look-now command that asked for it: first in line


def queued_from(seq: int, payload: Any) -> QueuedImage | None:
    """The image a ``camera.snapshot`` payload names, or None when the payload is unusable."""
    if not isinstance(payload, Mapping):
        return None
    sha, name, size = payload.get("sha256"), payload.get("file"), payload.get("bytes")
    if not (isinstance(sha, str) and _SHA.fullmatch(sha)):
        return None
    if not (isinstance(name, str) and _FILE.fullmatch(name)):
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        return None
    request = payload.get("request", "")
    return QueuedImage(seq, sha, name, size, request if isinstance(request, str) else "")


class MediaUplink:
    """Uploads evidence images after their events (see module doc)."""

    name = "media-uplink"

    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        section: SyncSection,
        *,
        data_dir: Path,
        media_dir: Path,
        publish: Publish | None = None,
        rng: random.Random | None = None,
        day_of: Callable[[float], str] = local_day,
    ) -> None:
        self.journal = journal
        self.clock = clock
        self.section = section
        self.paths = SyncPaths.from_section(section, Path(data_dir))
        self.state_path = self.paths.enrollment.parent / STATE_FILE
        self.media_dir = media_dir
        self.publish = publish
        self.backoff = Backoff(
            section.backoff_initial_s, section.backoff_max_s, rng or random.Random()
        )
        self.day_of = day_of
        self.centre_url = section.centre_url
        self.budget = section.media_daily_budget_bytes
        self.chunk = section.media_chunk_bytes
        self.pending: dict[int, QueuedImage] = {}
        # Images whose events the journal's retention pruned before they were sent (found at
        # start, see :meth:`recover_orphans`); older than anything in ``pending``.
        self.orphans: list[QueuedImage] = []
        self.done_file = ""  # file of the newest image settled with everything before it
        self.scanned = 0  # camera.snapshot events up to here are in ``pending`` or settled
        self.day = ""
        self.day_bytes = 0
        self.over_budget = False
        self.waiting_for_evidence = False
        self.last_error: str | None = None
        self._saved_at: float | None = None
        self._dirty = False
        self._resends = 0
        self._idle = False  # the last step found nothing to send (not an error backoff)
        self._seen_seq = 0  # the journal's last seq when the last step began
        self._fast_until = -1.0  # monotonic: look-now images queued, poll quickly until then
        self.counters = {
            "uploaded": 0,
            "uploaded_bytes": 0,
            "already_held": 0,
            "chunks": 0,
            "wire_bytes": 0,
            "resumed": 0,
            "resent": 0,
            "corrupt": 0,
            "refused": 0,
            "pruned_before_upload": 0,
            "unusable_events": 0,
            "recovered": 0,
            "errors": 0,
        }

    # -- the service ----------------------------------------------------------------------

    async def run(self) -> None:
        while not self.paths.provisioned():
            self._publish(state="not provisioned")
            await asyncio.sleep(NOT_PROVISIONED_POLL_S)
        enrollment = read_enrollment(self.paths)
        self.centre_url = (self.section.centre_url or str(enrollment["centre_url"])).rstrip("/")
        ctx = await asyncio.to_thread(
            client_ssl_context, self.paths.ca, self.paths.cert, self.paths.key
        )
        await asyncio.to_thread(self._load_state)
        await self.scan()
        await self.recover_orphans()
        timeout = aiohttp.ClientTimeout(
            total=self.section.request_timeout_s, sock_connect=self.section.connect_timeout_s
        )
        connector = aiohttp.TCPConnector(ssl=ctx, limit=1)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                while True:
                    delay = await self.step(session)
                    self._publish()
                    await self._save_state_if_due()
                    if delay > 0:
                        await self._pause(delay)
        finally:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self._save_state)

    async def _pause(self, delay: float) -> None:
        """Wait ``delay`` before the next step. An idle wait ends early when the journal grows
        (a new ``camera.snapshot`` is queued at once), and while a look-now image waits for
        its event's ack (the uploader sends it within a round trip) it is cut to
        :data:`LOOK_NOW_POLL_S`, for at most :data:`LOOK_NOW_FAST_S`: an officer is looking
        at the page. A backoff after an error is slept in full."""
        if not self._idle:
            await asyncio.sleep(delay)
            return
        if self.clock.monotonic() < self._fast_until and any(
            i.request for i in self.pending.values()
        ):
            delay = min(delay, LOOK_NOW_POLL_S)
        await self.journal.wait_for_new(self._seen_seq, timeout=delay)

    async def step(self, session: aiohttp.ClientSession) -> float:
        """Send (part of) one image, or wait; returns the delay before the next step."""
        self._idle = True
        self._seen_seq = self.journal.last_seq
        await self.scan()
        self._roll_day()
        if await self._evidence_waiting():
            self.waiting_for_evidence = True
            return self.section.idle_poll_s
        self.waiting_for_evidence = False
        image = await self.next_ready()
        if image is None:
            return self.section.idle_poll_s
        self._idle = False
        try:
            await self.upload(session, image)
        except OverBudget:
            self.over_budget = True
            return self.section.idle_poll_s
        except SyncError as exc:
            self.counters["errors"] += 1
            self.last_error = exc.reason
            delay = float(exc.fields.get("delay_s", 0.0)) or self.backoff.next_delay()
            log.warning("media: %s %s; retry in %.1f s", exc.reason, exc.fields or "", delay)
            return delay
        self.backoff.reset()
        self.last_error = None
        return 0.0

    # -- the queue ------------------------------------------------------------------------

    async def scan(self) -> None:
        """Queue the images of ``camera.snapshot`` events journaled since the last scan."""
        while True:
            events = await self.journal.read_after(
                self.scanned, limit=SCAN_ROWS, kinds=[SNAPSHOT_KIND]
            )
            for ev in events:
                image = queued_from(ev.seq, ev.payload)
                if image is None:
                    self.counters["unusable_events"] += 1
                    log.warning("media: camera.snapshot seq %d names no usable image", ev.seq)
                else:
                    self.pending[ev.seq] = image
                    if image.request:  # look now: someone is waiting for this picture
                        self._fast_until = self.clock.monotonic() + LOOK_NOW_FAST_S
            if events:
                self.scanned = events[-1].seq
            if len(events) < SCAN_ROWS:
                return

    async def recover_orphans(self) -> None:
        """Queue the images whose events the journal's retention pruned before they were sent
        (a restart after a long backlog): files newer than the last settled one, older than the
        journal's oldest event and named by no queued event. Only synced events are pruned, so
        these are ready; their sha256 is read from the file (the name has 16 hex digits)."""
        first = await self.journal.read_after(0, limit=1)
        if not first:
            return
        named = {i.file for i in self.pending.values()}
        found = await asyncio.to_thread(
            _orphans, self.media_dir, self.done_file, first[0].wall_time, named
        )
        for image in found:
            if image is None:
                self.counters["corrupt"] += 1
            else:
                self.orphans.append(image)
                self.counters["recovered"] += 1
        if self.orphans:
            log.warning(
                "media: %d image(s) on disk whose events were pruned before upload: queued",
                len(self.orphans),
            )

    async def next_ready(self) -> QueuedImage | None:
        """The next image whose event the centre has acknowledged (and whose file is still
        there: one the evidence budget pruned is counted and dropped from the queue): the
        oldest look-now image, else the oldest recovered orphan, else the oldest queued."""
        asked = await self._ready(requested_only=True)
        if asked is not None:
            return asked
        while self.orphans:
            image = self.orphans[0]
            if await asyncio.to_thread((self.media_dir / image.file).exists):
                return image
            self.counters["pruned_before_upload"] += 1
            self._settle(image)
        return await self._ready(requested_only=False)

    async def _ready(self, *, requested_only: bool) -> QueuedImage | None:
        while True:
            queued = sorted(s for s, i in self.pending.items() if i.request or not requested_only)
            if not queued:
                return None
            unsynced = await self.journal.read_after(
                queued[0] - 1,
                limit=len(self.pending) + 1,
                unsynced_only=True,
                kinds=[SNAPSHOT_KIND],
            )
            waiting = {ev.seq for ev in unsynced}
            ready = [seq for seq in queued if seq not in waiting]
            if not ready:
                return None
            image = self.pending[ready[0]]
            if await asyncio.to_thread((self.media_dir / image.file).exists):
                return image
            self.counters["pruned_before_upload"] += 1
            log.warning("media: %s was pruned before it was uploaded", image.file)
            self._settle(image)

    async def _evidence_waiting(self) -> bool:
        return bool(
            await self.journal.read_after(0, limit=1, unsynced_only=True, classes=[EVIDENCE])
        )

    def _settle(self, image: QueuedImage) -> None:
        if image.seq == 0:
            with contextlib.suppress(ValueError):
                self.orphans.remove(image)
        else:
            self.pending.pop(image.seq, None)
        if not self.orphans and (not self.pending or image.seq < min(self.pending)):
            self.done_file = max(self.done_file, image.file)
        self._dirty = True

    def backlog(self) -> tuple[int, int]:
        """(images, bytes) queued and not yet at the centre."""
        queued = [*self.orphans, *self.pending.values()]
        return len(queued), sum(i.size for i in queued)

    # -- one image ------------------------------------------------------------------------

    async def upload(self, session: aiohttp.ClientSession, image: QueuedImage) -> None:
        """Bring one image to the centre, from the offset the centre holds."""
        url = f"{self.centre_url}{MEDIA_PATH}/{image.sha256}"
        status, reply = await self._request(session, "GET", url)
        if status == 404 and reply.get("error") == "not_announced":
            self._refused(image, reply)
            return
        if status != 200:
            raise self._refusal(status, reply)
        if reply.get("complete") is True:
            self.counters["already_held"] += 1
            self._settle(image)
            return
        offset = _received(reply, image.size)
        if offset:
            self.counters["resumed"] += 1
        path = self.media_dir / image.file
        sent_chunks = 0
        while True:
            n = min(self.chunk, image.size - offset)
            if n <= 0:  # the centre holds every byte yet says incomplete: ask again later
                raise SyncError("centre holds the whole image but did not complete it")
            self._roll_day()
            if self.day_bytes + n > self.budget:
                raise OverBudget("daily image budget spent", day=self.day)
            checkpoint = sent_chunks and sent_chunks % EVIDENCE_CHECK_CHUNKS == 0
            if checkpoint and await self._evidence_waiting():
                return  # evidence first; this image resumes from the centre's offset
            data = await asyncio.to_thread(_read_at, path, offset, n)
            if data is None or len(data) != n:
                self._corrupt(image, "file is missing or shorter than its event says")
                return
            self.day_bytes += n
            self._dirty = True
            self.counters["chunks"] += 1
            self.counters["wire_bytes"] += n
            sent_chunks += 1
            status, reply = await self._request(session, "PUT", f"{url}?offset={offset}", data=data)
            if status == 201:
                self.counters["uploaded"] += 1
                self.counters["uploaded_bytes"] += image.size
                self._resends = 0
                self._settle(image)
                log.info("media: %s at the centre (%d bytes)", image.file, image.size)
                return
            if status == 200 and reply.get("complete") is True:  # stored already (a retry)
                self.counters["already_held"] += 1
                self._settle(image)
                return
            if status == 200 or (status == 409 and reply.get("error") == "offset_mismatch"):
                offset = _received(reply, image.size)
                continue
            if status == 422 and reply.get("error") == "hash_mismatch":
                if not await asyncio.to_thread(_hashes_to, path, image.sha256):
                    self._corrupt(image, "file no longer hashes to its event's sha256")
                    return
                self._resends += 1
                self.counters["resent"] += 1
                if self._resends > MAX_RESENDS:
                    self._resends = 0
                    raise SyncError("centre refused the image's hash repeatedly", file=image.file)
                log.warning("media: centre refused %s's hash; sending it again", image.file)
                offset = 0
                continue
            if status == 404 and reply.get("error") == "not_announced":
                self._refused(image, reply)
                return
            raise self._refusal(status, reply)

    async def _request(
        self, session: aiohttp.ClientSession, method: str, url: str, data: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/octet-stream"} if data is not None else None
        try:
            async with session.request(method, url, data=data, headers=headers) as resp:
                body = await read_limited(resp, MAX_MEDIA_REPLY)
                status, ctype = resp.status, resp.content_type
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SyncError(f"media {method} failed: {type(exc).__name__}: {exc}") from exc
        if status in (429, 503):
            delay = parse_retry_after(retry_after, self.clock.wall())
            raise SyncError("centre busy", status=status, delay_s=delay or 0.0)
        if ctype != "application/json":
            raise reply_error(status, ctype, body)
        reply = reply_json(body, "media reply", MAX_MEDIA_REPLY)
        if not isinstance(reply, dict):
            raise SyncError("media reply is not a JSON object", status=status)
        return status, reply

    def _refusal(self, status: int, reply: dict[str, Any]) -> SyncError:
        return reply_error(status, "application/json", json.dumps(reply).encode())

    def _refused(self, image: QueuedImage, reply: dict[str, Any]) -> None:
        self.counters["refused"] += 1
        log.error(
            "media: centre refuses %s for good (%s); kept on disk, not sent again",
            image.file,
            str(reply.get("reason", ""))[:200],
        )
        self._settle(image)

    def _corrupt(self, image: QueuedImage, why: str) -> None:
        self.counters["corrupt"] += 1
        log.error("media: %s: %s; kept on disk, not sent", image.file, why)
        self._settle(image)

    # -- budget and the small state file --------------------------------------------------

    def _roll_day(self) -> None:
        today = self.day_of(self.clock.wall())
        if today != self.day:
            self.day, self.day_bytes, self.over_budget = today, 0, False
            self._dirty = True

    def _load_state(self) -> None:
        try:
            data = json.loads(self.state_path.read_text())
            done, day, spent = data["done_through"], data["day"], data["day_bytes"]
            done_file = data.get("done_file", "")
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return  # no state (or a damaged one): the centre's status answers tell the rest
        if isinstance(done, int) and isinstance(day, str) and isinstance(spent, int):
            self.scanned = max(0, done)
            self.day, self.day_bytes = day, max(0, spent)
            self.done_file = done_file if isinstance(done_file, str) else ""

    def _save_state(self) -> None:
        done = min(self.pending) - 1 if self.pending else self.scanned
        data = {
            "done_through": done,
            "done_file": self.done_file,
            "day": self.day,
            "day_bytes": self.day_bytes,
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.state_path)
        self._dirty = False

    async def _save_state_if_due(self) -> None:
        now = self.clock.monotonic()
        if not self._dirty:
            return
        if self._saved_at is not None and now - self._saved_at < STATE_SAVE_INTERVAL_S:
            return
        self._saved_at = now
        try:
            await asyncio.to_thread(self._save_state)
        except OSError as exc:
            log.warning("media: cannot save %s: %s", self.state_path, exc)

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        images, size = self.backlog()
        return {
            "centre": self.centre_url,
            "waiting_images": images,
            "waiting_bytes": size,
            "over_budget": self.over_budget,
            "budget_bytes": self.budget,
            "sent_today_bytes": self.day_bytes,
            "waiting_for_evidence": self.waiting_for_evidence,
            "last_error": self.last_error,
            **self.counters,
        }

    def _publish(self, **extra: Any) -> None:
        if self.publish is not None:
            self.publish(STATUS_SECTION, self.status() | extra)


def _received(reply: dict[str, Any], size: int) -> int:
    value = reply.get("received")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= size:
        raise SyncError("media reply has no usable 'received' offset", received=str(value)[:40])
    return value


def _orphans(
    folder: Path, after: str, before_wall: float, named: set[str]
) -> list[QueuedImage | None]:
    """Snapshot files named after ``after``, taken before ``before_wall`` and not in ``named``,
    with their sha256 (None for a file whose content no longer matches its name)."""
    out: list[QueuedImage | None] = []
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            name = entry.name
            if not _FILE.fullmatch(name) or name <= after or name in named:
                continue
            if int(name[:13]) / 1000 >= before_wall or entry.stat().st_size == 0:
                continue
            digest = _sha256_of(Path(entry.path))
            if digest is None or digest[:16] != name[-20:-4]:
                out.append(None)
                continue
            with contextlib.suppress(OSError):
                out.append(QueuedImage(0, digest, name, entry.stat().st_size))
    return out


def _sha256_of(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while block := f.read(1024 * 1024):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _read_at(path: Path, offset: int, n: int) -> bytes | None:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(n)
    except OSError:
        return None


def _hashes_to(path: Path, sha256: str) -> bool:
    return _sha256_of(path) == sha256
