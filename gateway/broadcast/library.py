"""Centre announcements on the gateway: a cache by sha256, fetched from the centre when missing.

A ``broadcast.start`` naming ``announcement_sha256`` is played from
``<data>/announcements/<sha256>.wav`` and nothing else. Before the broadcast starts,
:meth:`AnnouncementCache.ensure` makes sure the file is there *and* hashes to the named
sha256: a missing file is fetched from the centre over the mTLS link
(``GET /api/v1/announcements/by-hash/<sha256>``, resumed with ``Range`` from a partial
download), hashed, and only then renamed into place. A download or a cached file whose hash
differs is deleted and refused (:class:`AnnouncementUnavailable`, code
``announcement_tampered``); the broadcast is then refused with that reason, never played with
another file::

    cache = AnnouncementCache(data_dir / "announcements", fetcher=CentreFetcher(url, ssl_ctx))
    path = await cache.ensure("fraud-2026-49", "9cb2…")      # or AnnouncementUnavailable
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import aiohttp

SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
MAX_ANNOUNCEMENT_BYTES: Final = 24 * 1024 * 1024  # 600 s of 16 kHz mono s16 and headroom
FETCH_TIMEOUT_S: Final = 60.0
FETCH_PATH: Final = "/api/v1/announcements/by-hash/"
CHUNK: Final = 64 * 1024

# Refusal codes (journaled, acked to the centre as the command's refusal code).
UNAVAILABLE: Final = "announcement_unavailable"
TAMPERED: Final = "announcement_tampered"
UNKNOWN: Final = "announcement_unknown"

Recorder = Callable[[str, Mapping[str, Any]], Awaitable[None]]


class AnnouncementUnavailable(Exception):
    """The named announcement cannot be played here (the only error of this module)."""

    def __init__(self, reason: str, code: str = UNAVAILABLE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class Fetcher(Protocol):
    async def fetch(self, sha256: str, dest: Path, offset: int) -> None:
        """Append the announcement's bytes from ``offset`` to ``dest`` (rewrite from 0 if the
        source ignores the offset); AnnouncementUnavailable on any failure."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class CentreFetcher:
    """Fetches by hash from the centre with the gateway's client certificate (mTLS)."""

    def __init__(self, base_url: str, ssl_context: ssl.SSLContext) -> None:
        self.base_url = base_url.rstrip("/")
        self.ssl_context = ssl_context

    async def fetch(self, sha256: str, dest: Path, offset: int) -> None:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(
                    self.base_url + FETCH_PATH + sha256, headers=headers, ssl=self.ssl_context
                ) as r,
            ):
                if r.status == 404:
                    raise AnnouncementUnavailable(
                        "the centre has no announcement with this sha256", UNKNOWN
                    )
                if r.status == 416:  # our partial is already whole (or longer): start over
                    dest.unlink(missing_ok=True)
                    raise AnnouncementUnavailable("range not satisfiable; partial dropped")
                if r.status not in (200, 206):
                    raise AnnouncementUnavailable(f"the centre answered {r.status}")
                mode = "ab" if r.status == 206 else "wb"
                with open(dest, mode) as f:
                    async for chunk in r.content.iter_chunked(CHUNK):
                        f.write(chunk)
                        if f.tell() > MAX_ANNOUNCEMENT_BYTES:
                            raise AnnouncementUnavailable("the download is above the size cap")
                    f.flush()
                    os.fsync(f.fileno())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise AnnouncementUnavailable(f"fetch failed: {type(exc).__name__}: {exc}") from exc


class AnnouncementCache:
    def __init__(
        self, folder: Path, fetcher: Fetcher | None = None, record: Recorder | None = None
    ) -> None:
        self.folder = Path(folder)
        self.fetcher = fetcher
        self.record = record
        self._lock = asyncio.Lock()

    def path_for(self, sha256: str) -> Path:
        if not SHA256_RE.fullmatch(sha256):
            raise AnnouncementUnavailable("not a sha256", TAMPERED)
        return self.folder / f"{sha256}.wav"

    async def _note(self, kind: str, payload: Mapping[str, Any]) -> None:
        if self.record is not None:
            await self.record(kind, payload)

    async def verified(self, sha256: str) -> Path | None:
        """The cached file if it exists and hashes to ``sha256``; a mismatching one is
        deleted (and journaled) so it is fetched again."""
        path = self.path_for(sha256)
        if not path.exists():
            return None
        got = await asyncio.to_thread(sha256_of, path)
        if got == sha256:
            return path
        path.unlink(missing_ok=True)
        await self._note(
            "broadcast.announcement_tampered",
            {"sha256": sha256, "got": got, "where": "cache", "reason": "cached file changed"},
        )
        return None

    async def ensure(self, announcement: str, sha256: str) -> Path:
        """The verified local file for this announcement, fetching it first if need be."""
        async with self._lock:
            path = await self.verified(sha256)
            if path is not None:
                return path
            if self.fetcher is None:
                raise AnnouncementUnavailable("not cached and no link to the centre to fetch it")
            self.folder.mkdir(parents=True, exist_ok=True)
            part = self.folder / f"{sha256}.part"
            for attempt in (1, 2):  # a bad partial gets one clean retry from byte 0
                offset = part.stat().st_size if part.exists() else 0
                await self.fetcher.fetch(sha256, part, offset)
                got = await asyncio.to_thread(sha256_of, part)
                if got == sha256:
                    final = self.path_for(sha256)
                    os.replace(part, final)
                    await self._note(
                        "broadcast.announcement_fetched",
                        {
                            "announcement": announcement,
                            "sha256": sha256,
                            "bytes": final.stat().st_size,
                            "resumed_from": offset,
                        },
                    )
                    return final
                part.unlink(missing_ok=True)
                if offset == 0 or attempt == 2:
                    reason = f"downloaded file hashes to {got[:16]}…, not the named {sha256[:16]}…"
                    await self._note(
                        "broadcast.announcement_tampered",
                        {
                            "announcement": announcement,
                            "sha256": sha256,
                            "got": got,
                            "where": "download",
                            "reason": reason,
                        },
                    )
                    raise AnnouncementUnavailable(reason, TAMPERED)
            raise AnnouncementUnavailable("unreachable")  # pragma: no cover
