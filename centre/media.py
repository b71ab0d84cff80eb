"""Evidence images from the gateways: chunked, resumable uploads by sha256, then retention.

Theory of operation
-------------------
A gateway journals ``camera.snapshot`` {sha256, bytes, ...} and, once the centre has
acknowledged that event, uploads the image itself (gateway/sync/media.py). Over the same mTLS
listener as ingest (same client-certificate check)::

    GET /api/v1/media/<sha256>              -> {"sha256", "size", "received", "complete"}
    PUT /api/v1/media/<sha256>?offset=N     body: the bytes [N, N+len) of the image
        200 {"received": M, "complete": false}     more to come (M = N + len)
        201 {"received": size, "complete": true}   the hash matched; stored
        409 offset_mismatch {"received": M}        resume from M (what the centre holds)
        422 hash_mismatch                          partial discarded; send again from 0

The centre takes bytes for a hash only if a stored ``camera.snapshot`` event *of the sending
gateway* names it (404 ``not_announced`` otherwise) and never more than that event's
``bytes``. Chunks append to ``partial/<gateway>-<sha256>.part`` at the offset the centre holds
(so a cut link resumes where the bytes stopped). When the partial reaches the announced size it
is hashed: a match is moved to its content-addressed path ``<sha[:2]>/<sha256>.jpg`` (a hash
stored already, from any gateway, is never stored twice); a mismatch is deleted and refused so
the gateway sends it again. Every malformed request is a 4xx (``parse_media_request`` is the
one parser of the request's own fields; it raises :class:`~centre.errors.BadRequest` only).

Retention: images stored longer than ``retention_s`` (default 30 days) are deleted, each
deletion recorded in ``media_deletions`` (store.py) with the reason. An image *held* by any of
``holds`` (async callables giving sets of hashes: a video patrol finding's picture, see
centre/web/video_patrol.py) is kept however old it is.

    media = MediaService(repo, paths.root / "media", authenticate=service._authenticated_gateway)
    app.add_routes(media.routes())
    await media.expire(now=time.time())     # hourly, from :meth:`run_retention`
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from centre.errors import BadRequest, CentreError
from centre.store import GatewayRecord, MediaRecord, SqlRepository
from wire import encode

log = logging.getLogger("centre.media")

MEDIA_PATH: Final = "/api/v1/media"
MAX_CHUNK_BYTES: Final = 1024 * 1024  # the gateway sends 64 KiB by default
MAX_MEDIA_BYTES: Final = 32 * 1024 * 1024  # an evidence JPEG is a few hundred KiB
MAX_OFFSET_DIGITS: Final = 12
DEFAULT_RETENTION_DAYS: Final = 30.0
RETENTION_ENV: Final = "COMPOUND_CENTRE_MEDIA_RETENTION_DAYS"
RETENTION_INTERVAL_S: Final = 3600.0
RETENTION_REASON: Final = "retention"
PARTIAL_DIR: Final = "partial"
SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
HASH_BLOCK: Final = 1024 * 1024

Authenticate = Callable[[web.Request], Awaitable[GatewayRecord]]
Hold = Callable[[], Awaitable[set[str]]]


class MediaRefused(CentreError):
    """An upload the centre will not take; ``code`` names the rule, ``status`` is 4xx."""

    def __init__(self, status: int, code: str, reason: str, **fields: Any) -> None:
        super().__init__(reason, **fields)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class MediaRequest:
    """The checked fields of a media request: the hash, and for a PUT the offset."""

    sha256: str
    offset: int | None = None


def parse_media_request(sha_text: str, query: Mapping[str, str] | None) -> MediaRequest:
    """Check a status (``query`` None) or upload request's own fields; raises
    :class:`~centre.errors.BadRequest` and nothing else for anything malformed.

    ``parse_media_request("ab…", {"offset": "65536"}).offset == 65536``
    """
    if not isinstance(sha_text, str) or not SHA256_RE.fullmatch(sha_text):
        raise BadRequest("the image is named by its sha256: 64 lowercase hex digits")
    if query is None:
        return MediaRequest(sha_text)
    unknown = set(query) - {"offset"}
    if unknown:
        raise BadRequest(f"unknown query parameter(s) {sorted(unknown)[:5]}")
    text = query.get("offset")
    if not isinstance(text, str) or not text:
        raise BadRequest("offset is required: where this chunk starts in the image")
    if len(text) > MAX_OFFSET_DIGITS or not text.isascii() or not text.isdigit():
        raise BadRequest("offset must be a decimal byte offset (ASCII digits)")
    offset = int(text)
    if offset >= MAX_MEDIA_BYTES:
        raise BadRequest(f"offset is beyond the largest image ({MAX_MEDIA_BYTES} bytes)")
    return MediaRequest(sha_text, offset)


def media_path(sha256: str) -> str:
    """The content-addressed place of an image, relative to the media folder."""
    return f"{sha256[:2]}/{sha256}.jpg"


def retention_from_env(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds to keep images (``COMPOUND_CENTRE_MEDIA_RETENTION_DAYS``, default 30 days)."""
    text = environ.get(RETENTION_ENV, "")
    if not text:
        return DEFAULT_RETENTION_DAYS * 86400
    try:
        days = float(text)
    except ValueError:
        raise ValueError(f"{RETENTION_ENV}: {text!r} is not a number of days") from None
    if not 0 < days <= 3650:
        raise ValueError(f"{RETENTION_ENV}: {text!r} is outside 0..3650 days")
    return days * 86400


def json_reply(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode(data), status=status, content_type="application/json")


class MediaService:
    """The media endpoints and retention (see module doc)."""

    def __init__(
        self,
        repo: SqlRepository,
        folder: Path,
        *,
        authenticate: Authenticate,
        retention_s: float = DEFAULT_RETENTION_DAYS * 86400,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self.folder = folder
        self.authenticate = authenticate
        self.retention_s = retention_s
        self.wall = wall
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.holds: list[Hold] = []  # hashes kept past the retention (findings' evidence)
        self.counters = {"chunks": 0, "bytes": 0, "stored": 0, "hash_mismatch": 0}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(MEDIA_PATH + "/{sha256}", self.status),
            web.put(MEDIA_PATH + "/{sha256}", self.upload),
        ]

    # -- handlers -------------------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        record = await self.authenticate(request)
        req = parse_media_request(request.match_info.get("sha256", ""), None)
        size = await self._announced_size(record.gateway_id, req.sha256)
        if await self.repo.media(req.sha256) is not None:
            return json_reply(_progress(req.sha256, size, size))
        received = await asyncio.to_thread(self._partial_size, record.gateway_id, req.sha256)
        return json_reply(_progress(req.sha256, size, received))

    async def upload(self, request: web.Request) -> web.Response:
        record = await self.authenticate(request)
        gw = record.gateway_id
        if len(set(request.query.keys())) != len(request.query):
            raise BadRequest("a query parameter is repeated")
        req = parse_media_request(request.match_info.get("sha256", ""), dict(request.query))
        assert req.offset is not None
        if request.content_length is not None and request.content_length > MAX_CHUNK_BYTES:
            raise MediaRefused(
                413, "chunk_too_large", f"a chunk is at most {MAX_CHUNK_BYTES} bytes"
            )
        size = await self._announced_size(gw, req.sha256)
        chunk = await _read_chunk(request)
        lock = self._locks.setdefault((gw, req.sha256), asyncio.Lock())
        try:
            async with lock:
                return await self._take_chunk(record, req.sha256, size, req.offset, chunk)
        finally:
            if not lock.locked():
                self._locks.pop((gw, req.sha256), None)

    async def _take_chunk(
        self, record: GatewayRecord, sha: str, size: int, offset: int, chunk: bytes
    ) -> web.Response:
        gw = record.gateway_id
        if await self.repo.media(sha) is not None:  # never stored twice
            await asyncio.to_thread(self._drop_partial, gw, sha)
            return json_reply(_progress(sha, size, size), status=200)
        held = await asyncio.to_thread(self._partial_size, gw, sha)
        if offset != held:
            raise MediaRefused(
                409,
                "offset_mismatch",
                f"the centre holds {held} bytes of this image: send from there",
                received=held,
            )
        if not chunk:
            raise BadRequest("empty chunk")
        if offset + len(chunk) > size:
            raise BadRequest(
                f"chunk ends at {offset + len(chunk)}, beyond the announced {size} bytes",
                size=size,
            )
        received = await asyncio.to_thread(self._append, gw, sha, offset, chunk)
        self.counters["chunks"] += 1
        self.counters["bytes"] += len(chunk)
        if received < size:
            return json_reply(_progress(sha, size, received))
        stored = await asyncio.to_thread(self._complete, gw, sha)
        if not stored:
            self.counters["hash_mismatch"] += 1
            log.warning("media %s from %s: hash mismatch, partial discarded", sha[:16], gw)
            raise MediaRefused(
                422,
                "hash_mismatch",
                "the bytes received do not hash to this sha256; discarded: send it again",
                received=0,
            )
        ann = await self.repo.snapshot_announcement(gw, sha)
        added = await self.repo.add_media(
            MediaRecord(sha, gw, ann.seq if ann else 0, size, media_path(sha), self.wall())
        )
        if added:
            self.counters["stored"] += 1
            log.info("media %s from %s stored (%d bytes)", sha[:16], gw, size)
        return json_reply(_progress(sha, size, size), status=201)

    async def _announced_size(self, gw: str, sha: str) -> int:
        ann = await self.repo.snapshot_announcement(gw, sha)
        if ann is None:
            raise MediaRefused(
                404,
                "not_announced",
                "no stored camera.snapshot event of this gateway names this sha256"
                " (send the event first)",
            )
        if ann.size is None or not 0 < ann.size <= MAX_MEDIA_BYTES:
            raise MediaRefused(
                422,
                "bad_announcement",
                f"the camera.snapshot event (seq {ann.seq}) gives no usable size in bytes",
                seq=ann.seq,
            )
        return ann.size

    # -- files (worker threads) ---------------------------------------------------------------

    def _partial(self, gw: str, sha: str) -> Path:
        return self.folder / PARTIAL_DIR / f"{gw}-{sha}.part"

    def _partial_size(self, gw: str, sha: str) -> int:
        try:
            return self._partial(gw, sha).stat().st_size
        except FileNotFoundError:
            return 0

    def _drop_partial(self, gw: str, sha: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._partial(gw, sha).unlink()

    def _append(self, gw: str, sha: str, offset: int, chunk: bytes) -> int:
        path = self._partial(gw, sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.lseek(fd, offset, os.SEEK_SET)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            os.ftruncate(fd, offset + len(chunk))
            os.fsync(fd)
        finally:
            os.close(fd)
        return offset + len(chunk)

    def _complete(self, gw: str, sha: str) -> bool:
        """Hash the finished partial: a match goes to its content-addressed path (True); a
        mismatch is deleted (False)."""
        partial = self._partial(gw, sha)
        digest = hashlib.sha256()
        with partial.open("rb") as f:
            while block := f.read(HASH_BLOCK):
                digest.update(block)
        if digest.hexdigest() != sha:
            partial.unlink()
            return False
        final = self.folder / media_path(sha)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            partial.unlink()
        else:
            os.replace(partial, final)
            dir_fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return True

    # -- retention ------------------------------------------------------------------------

    async def expire(self, now: float | None = None) -> int:
        """Delete images stored longer than the retention, recording each; returns how many."""
        now = self.wall() if now is None else now
        cutoff = now - self.retention_s
        await asyncio.to_thread(self._drop_stale_partials, cutoff)
        held: set[str] = set()
        for hold in self.holds:
            held |= await hold()
        deleted = 0
        kept = 0  # held images stay first in the oldest-first listing: read past them
        while True:
            listed = await self.repo.media_stored_before(cutoff, limit=500 + kept)
            old = [rec for rec in listed if rec.sha256 not in held]
            kept = len(listed) - len(old)
            if not old:
                return deleted
            for rec in old:
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread((self.folder / rec.path).unlink)
                if await self.repo.delete_media(rec.sha256, now, RETENTION_REASON):
                    deleted += 1
            log.info("media retention: %d image(s) deleted", deleted)

    def _drop_stale_partials(self, cutoff: float) -> None:
        """Partial uploads untouched for the whole retention: the gateway gave up or lost the
        file; nothing refers to them (the gateway asks again and starts from 0)."""
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folder / PARTIAL_DIR):
                with contextlib.suppress(FileNotFoundError):
                    if entry.name.endswith(".part") and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
                        log.info("media retention: stale partial %s removed", entry.name)

    async def run_retention(self, interval_s: float = RETENTION_INTERVAL_S) -> None:
        while True:
            try:
                await self.expire()
            except Exception:  # a bad sweep must not end the centre; the next one retries
                log.exception("media retention failed")
            await asyncio.sleep(interval_s)


def _progress(sha: str, size: int, received: int) -> dict[str, Any]:
    return {"sha256": sha, "size": size, "received": received, "complete": received >= size}


async def _read_chunk(request: web.Request) -> bytes:
    """The body, at most MAX_CHUNK_BYTES whatever the Content-Length said (or did not)."""
    data = bytearray()
    async for block in request.content.iter_chunked(64 * 1024):
        data += block
        if len(data) > MAX_CHUNK_BYTES:
            raise MediaRefused(
                413, "chunk_too_large", f"a chunk is at most {MAX_CHUNK_BYTES} bytes"
            )
    return bytes(data)
