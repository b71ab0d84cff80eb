"""TLS contexts and small HTTP helpers the gateway's link uses (aiohttp client side)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Final

import aiohttp

from gateway.errors import SyncError

MAX_REPLY_BYTES: Final = 1024 * 1024


def client_ssl_context(
    ca_file: Path, cert_file: Path | None, key_file: Path | None
) -> ssl.SSLContext:
    """Verify the centre against the pinned CA only (never the system store); present our
    client certificate when given."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=str(ca_file))
    if cert_file is not None and key_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def pinned_ca_context(ca_pem: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=ca_pem)
    return ctx


def unverified_context() -> ssl.SSLContext:
    """Only for fetching the CA certificate whose fingerprint we then compare ourselves."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def read_limited(resp: aiohttp.ClientResponse, limit: int = MAX_REPLY_BYTES) -> bytes:
    """The reply body, refusing more than ``limit`` bytes (a captive portal can send anything)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise SyncError("reply is larger than expected", limit=limit, status=resp.status)
        chunks.append(chunk)
    return b"".join(chunks)
