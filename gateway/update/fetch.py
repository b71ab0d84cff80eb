"""Fetching a release the centre offers: the offer, then every part by hash over mTLS.

The centre's rollout (``centre/rollout``) offers a release to this gateway
(``GET /api/v1/updates/offer``); the fetch works like the announcement cache
(``gateway/broadcast/library.py``): each part is fetched by sha256
(``GET /api/v1/updates/by-hash/<sha256>``) into a ``.part`` file, resumed with ``Range``
after a cut, hashed, and only then renamed into place. Order matters for the threat model:

1. ``metadata.json`` and ``metadata.sig`` are fetched (capped) and the signature is checked
   against the pinned update key, with expiry, hardware and rollback, *before* any payload is
   asked for (``bundle.verify_metadata``); a refusal is journaled as ``update.refused``;
2. the payload files are the ones the *signed* metadata names (the offer's own list is never
   trusted), each read at most its signed size and checked against its signed sha256;
3. the finished folder is a bundle ``compound-gw update install`` takes as is, and
   ``update.downloaded`` is journaled (through the updater's outbox), which the centre shows
   as "downloaded".

Downloads are paced to ``rate_bytes_s`` (the link's bandwidth budget for updates), so a
release does not crowd out the journal's uploads on a slow mobile link::

    fetcher = ReleaseFetcher(url, ssl_ctx, data_dir / "update-download", public_key=key,
                             hardware="rpi4", record=outbox.record, rate_bytes_s=32768)
    offer = await fetcher.offer()               # None: nothing offered
    bundle = await fetcher.fetch(offer, installed_release=41)   # or UpdateRefused / FetchFailed
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.update.bundle import (
    FILES_DIR,
    METADATA_MAX_BYTES,
    METADATA_NAME,
    SIGNATURE_NAME,
    UpdateRefused,
    verify_metadata,
)

OFFER_PATH: Final = "/api/v1/updates/offer"
FETCH_PATH: Final = "/api/v1/updates/by-hash/"
OFFER_MAX_BYTES: Final = 1024 * 1024
CHUNK: Final = 16 * 1024
TIMEOUT_S: Final = 600.0
DEFAULT_RATE: Final = 64 * 1024
_SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
_ROLLOUT_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,40}")

Recorder = Callable[[str, dict[str, Any]], None]


class FetchFailed(Exception):
    """The link failed or the centre answered oddly; nothing is refused, try again later."""


class Pacer:
    """Keeps the average rate at or below ``rate`` bytes a second (sleeps, never spins)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.start = clock()
        self.sent = 0

    def delay(self, n: int) -> float:
        """Count ``n`` more bytes; the seconds to wait before the next read (0: none)."""
        self.sent += n
        if self.rate <= 0:
            return 0.0
        return max(0.0, self.sent / self.rate - (self.clock() - self.start))

    async def took(self, n: int) -> None:
        wait = self.delay(n)
        if wait > 0:
            await asyncio.sleep(wait)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(65536):
            h.update(chunk)
    return h.hexdigest()


class ReleaseFetcher:
    def __init__(
        self,
        base_url: str,
        ssl_context: ssl.SSLContext,
        folder: Path,
        *,
        public_key: Ed25519PublicKey,
        hardware: str,
        record: Recorder,
        rate_bytes_s: float = DEFAULT_RATE,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ssl_context = ssl_context
        self.folder = Path(folder)
        self.public_key = public_key
        self.hardware = hardware
        self.record = record
        self.rate = rate_bytes_s
        self.wall = wall

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))

    async def offer(self) -> dict[str, Any] | None:
        """The centre's current offer for this gateway, checked for shape; None if none."""
        try:
            async with (
                self._session() as session,
                session.get(self.base_url + OFFER_PATH, ssl=self.ssl_context) as r,
            ):
                if r.status != 200:
                    raise FetchFailed(f"the centre answered {r.status} to the offer")
                raw = await r.content.read(OFFER_MAX_BYTES + 1)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise FetchFailed(f"offer: {type(exc).__name__}: {exc}") from exc
        if len(raw) > OFFER_MAX_BYTES:
            raise FetchFailed("the offer is too large")
        try:
            body = json.loads(raw)
        except ValueError:
            raise FetchFailed("the offer is not JSON") from None
        offer = body.get("offer") if isinstance(body, dict) else None
        if offer is None:
            return None
        if (
            not isinstance(offer, dict)
            or not isinstance(offer.get("rollout"), str)
            or not _ROLLOUT_RE.fullmatch(offer["rollout"])
            or not isinstance(offer.get("release"), int)
            or not all(
                isinstance(offer.get(k), dict)
                and isinstance(offer[k].get("sha256"), str)
                and _SHA256_RE.fullmatch(offer[k]["sha256"])
                for k in ("metadata", "signature")
            )
        ):
            raise FetchFailed("the offer is malformed")
        return offer

    async def _get(
        self, session: aiohttp.ClientSession, sha256: str, dest: Path, cap: int, pacer: Pacer
    ) -> None:
        """``dest`` holds the bytes hashing to ``sha256`` (at most ``cap``), or an error."""
        part = dest.with_name(dest.name + ".part")
        for attempt in (1, 2):  # a bad partial gets one clean retry from byte 0
            offset = part.stat().st_size if part.exists() else 0
            if offset > cap:
                part.unlink()
                offset = 0
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            try:
                async with session.get(
                    self.base_url + FETCH_PATH + sha256, headers=headers, ssl=self.ssl_context
                ) as r:
                    if r.status == 416:
                        part.unlink(missing_ok=True)
                        continue
                    if r.status not in (200, 206):
                        raise FetchFailed(f"the centre answered {r.status} for a part")
                    with open(part, "ab" if r.status == 206 else "wb") as f:
                        async for chunk in r.content.iter_chunked(CHUNK):
                            f.write(chunk)
                            if f.tell() > cap:
                                break
                            await pacer.took(len(chunk))
                        f.flush()
                        os.fsync(f.fileno())
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise FetchFailed(f"fetch: {type(exc).__name__}: {exc}") from exc
            got = await asyncio.to_thread(_sha256_file, part)
            if got == sha256 and part.stat().st_size <= cap:
                os.replace(part, dest)
                return
            part.unlink(missing_ok=True)
            if offset == 0 or attempt == 2:
                raise UpdateRefused(
                    "hash_mismatch", f"{dest.name}: the download does not hash to the named sha256"
                )
        raise FetchFailed("the centre refused the range twice")

    def _refused(self, exc: UpdateRefused, offer: Mapping[str, Any]) -> None:
        payload: dict[str, Any] = {
            "code": exc.code, "reason": str(exc), "bundle": str(offer["rollout"]),
            "rollout": offer["rollout"], "release": offer["release"],
        }  # fmt: skip
        self.record("update.refused", payload)

    async def fetch(
        self,
        offer: Mapping[str, Any],
        *,
        installed_release: int,
        failed_releases: frozenset[int] = frozenset(),
    ) -> Path:
        """Download and verify the offered release into ``<folder>/<rollout>/``: a bundle
        folder. UpdateRefused (journaled) if it must not be installed here; FetchFailed if the
        link failed (nothing journaled: the next poll resumes)."""
        bundle = self.folder / str(offer["rollout"])
        bundle.mkdir(parents=True, exist_ok=True)
        pacer = Pacer(self.rate)
        try:
            async with self._session() as session:
                await self._get(
                    session, offer["metadata"]["sha256"], bundle / METADATA_NAME,
                    METADATA_MAX_BYTES, pacer,
                )  # fmt: skip
                await self._get(
                    session, offer["signature"]["sha256"], bundle / SIGNATURE_NAME, 64, pacer
                )
                data = (bundle / METADATA_NAME).read_bytes()
                meta = verify_metadata(
                    data, (bundle / SIGNATURE_NAME).read_bytes(), self.public_key,
                    now=self.wall(), hardware=self.hardware,
                    installed_release=installed_release, failed_releases=failed_releases,
                )  # fmt: skip
                for entry in meta.files:  # the signed list, not the offer's
                    dest = bundle / FILES_DIR / entry.path
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    if (
                        dest.exists()
                        and await asyncio.to_thread(_sha256_file, dest) == entry.sha256
                    ):
                        continue  # kept from an earlier, interrupted fetch
                    await self._get(session, entry.sha256, dest, entry.size, pacer)
                    if dest.stat().st_size != entry.size:
                        dest.unlink()
                        raise UpdateRefused("hash_mismatch", f"{entry.path}: wrong size")
                    if entry.executable:
                        dest.chmod(0o755)
        except UpdateRefused as exc:
            shutil.rmtree(bundle, ignore_errors=True)
            self._refused(exc, offer)
            raise
        self.record(
            "update.downloaded",
            {
                "rollout": offer["rollout"], "release": meta.release, "version": meta.version,
                "bytes": meta.total_size,
            },
        )  # fmt: skip
        return bundle
