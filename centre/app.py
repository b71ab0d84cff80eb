"""The centre's HTTPS service (aiohttp): enrollment without a client certificate, ingest with one.

    app = CentreService(repo, paths).make_app()
    ctx = server_ssl_context(paths)
    # web.TCPSite(runner, "0.0.0.0", 8443, ssl_context=ctx)

One TLS listener with ``CERT_OPTIONAL``: the handshake verifies any client certificate offered
against our CA; enrollment (and the CA bootstrap) accept clients without one, everything under
``/api/v1/ingest`` refuses them with 401. Every error is JSON ``{"error": code, "reason": ...}``
(docs/centre-api.md lists them all); :func:`centre.faults.error_boundary` makes sure of it, so
no malformed request is ever answered 500.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import ssl
import time
from collections.abc import Callable
from typing import Any, Final

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from centre.antifraud.monitor import AntifraudMonitor
from centre.errors import BadRequest, CentreError, Forbidden, NotAuthenticated, json_object
from centre.faults import error_boundary
from centre.pki import (
    CentrePaths,
    check_csr,
    der_fingerprint,
    fingerprint,
    issue_client_certificate,
    load_ca,
)
from centre.store import GatewayRecord, IngestResult, Repository, TokenGrant
from centre.tokens import hash_token
from wire import (
    BATCH_TYPE,
    Ack,
    Batch,
    check_key_id,
    encode,
    key_id,
    load_public_key_pem,
    split_sealed,
    verify_signed,
)
from wire.envelopes import BATCH_ID_RE, GATEWAY_ID_RE

log = logging.getLogger("centre.app")

API: Final = "/api/v1"
MAX_INGEST_BODY: Final = 32 * 1024 * 1024  # after gzip is undone (aiohttp counts decoded bytes)
MAX_ENROLL_BODY: Final = 64 * 1024
DEFAULT_MAX_CONCURRENT_INGEST: Final = 8
DEFAULT_RETRY_AFTER_S: Final = 5
DEFAULT_INGEST_QUEUE_WAIT_S: Final = 2.0
"""How long a batch may wait in the centre for an ingest slot before it is sent away with 503."""
INGEST_QUEUE_PER_SLOT: Final = 4  # batches that may wait, per ingest slot
JSON: Final = "application/json"


def server_ssl_context(paths: CentrePaths) -> ssl.SSLContext:
    """TLS 1.2+ server context: our cert, client certificates optional but verified if sent."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths.server_cert, paths.server_key)
    ctx.load_verify_locations(cafile=str(paths.ca_cert))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(body=encode(data), status=status, content_type=JSON, headers=headers)


class CentreService:
    """Handlers and the state they share (repository, CA, command public key)."""

    def __init__(
        self,
        repo: Repository,
        paths: CentrePaths,
        *,
        wall: Callable[[], float] = time.time,
        max_concurrent_ingest: int = DEFAULT_MAX_CONCURRENT_INGEST,
        retry_after_s: int = DEFAULT_RETRY_AFTER_S,
        antifraud: AntifraudMonitor | None = None,
        ingest_queue_wait_s: float = DEFAULT_INGEST_QUEUE_WAIT_S,
    ) -> None:
        self.repo = repo
        # Impossible travel needs a walking table per gateway (docs/antifraud.md); without
        # one, buddy-tapping is still judged on every batch that brings taps.
        self.antifraud = antifraud or AntifraudMonitor(repo)
        self.paths = paths
        self.wall = wall
        self.ca_key, self.ca_cert = load_ca(paths)
        self.ca_pem = self.ca_cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        self.ca_fingerprint = fingerprint(self.ca_cert)
        self.command_pub_pem = paths.command_pub.read_bytes().decode("ascii")
        self.command_key_id = key_id(load_public_key_pem(paths.command_pub.read_bytes()))
        self.max_concurrent_ingest = max_concurrent_ingest
        self.retry_after_s = retry_after_s
        # Admission: at most max_concurrent_ingest batches are read, checked and stored at once;
        # when all slots are taken a batch waits in line (at most INGEST_QUEUE_PER_SLOT per
        # slot, for at most ingest_queue_wait_s) rather than being sent away at once, so a burst
        # costs the gateway a short wait here instead of a whole Retry-After. Past either bound:
        # 503 with Retry-After, as before. 0 s: no line (the first wave's behaviour).
        self.ingest_queue_wait_s = ingest_queue_wait_s
        self.max_ingest_waiting = INGEST_QUEUE_PER_SLOT * max_concurrent_ingest
        self._slots = asyncio.Semaphore(max_concurrent_ingest)
        self._waiting = 0
        self._busy_gateways: set[str] = set()
        # Called with the gateway id after each stored batch (the console's live board).
        self.ingest_listeners: list[Callable[[str], None]] = []

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[error_boundary()], client_max_size=MAX_INGEST_BODY)
        app.router.add_get(f"{API}/health", self.health)
        app.router.add_get(f"{API}/ca", self.ca)
        app.router.add_post(f"{API}/enroll", self.enroll)
        app.router.add_post(f"{API}/ingest", self.ingest)
        app.router.add_get(f"{API}/ingest/state", self.ingest_state)
        return app

    # -- open endpoints ---------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"ok": True})

    async def ca(self, request: web.Request) -> web.Response:
        """The CA certificate, for installers who compare its fingerprint before trusting it."""
        return json_response({"ca_certificate": self.ca_pem, "fingerprint": self.ca_fingerprint})

    async def enroll(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_ENROLL_BODY:
            raise BadRequest("enrollment request is too large")
        raw = await request.read()
        req = json_object(
            raw, max_bytes=MAX_ENROLL_BODY, fields={"token", "gateway_id", "compound", "csr"}
        )
        token, gateway_id, compound, csr_pem = (
            req.get("token"),
            req.get("gateway_id"),
            req.get("compound"),
            req.get("csr"),
        )
        if not isinstance(token, str) or not token:
            raise BadRequest("token is required (a string)")
        if not isinstance(gateway_id, str) or not GATEWAY_ID_RE.fullmatch(gateway_id):
            raise BadRequest(f"gateway_id must match {GATEWAY_ID_RE.pattern}")
        if compound is not None and not isinstance(compound, str):
            raise BadRequest("compound must be a string when given")
        if not isinstance(csr_pem, str):
            raise BadRequest("csr is required (PEM text)")
        csr = check_csr(csr_pem.encode("ascii", "replace"), gateway_id)
        now = self.wall()

        def issue(grant: TokenGrant) -> tuple[str, str, str, str]:
            cert = issue_client_certificate(
                self.ca_key,
                self.ca_cert,
                csr,
                gateway_id=gateway_id,
                compound=grant.compound,
                now=now,
            )
            pub = load_public_key_pem(cert.public_key_pem)
            return (
                cert.pem.decode("ascii"),
                cert.fingerprint,
                cert.public_key_pem.decode("ascii"),
                key_id(pub),
            )

        record = await self.repo.enroll(hash_token(token), gateway_id, compound, now, issue)
        log.info("enrolled %s for compound %r", gateway_id, record.compound)
        return json_response(
            {
                "gateway_id": record.gateway_id,
                "compound": record.compound,
                "township": record.township,
                "certificate": record.cert_pem,
                "ca_certificate": self.ca_pem,
                "ca_fingerprint": self.ca_fingerprint,
                "command_public_key": self.command_pub_pem,
                "command_key_id": self.command_key_id,
            },
            status=201,
        )

    # -- mTLS endpoints ---------------------------------------------------------------------

    async def _authenticated_gateway(self, request: web.Request) -> GatewayRecord:
        """The enrolled, unrevoked gateway whose client certificate this connection presented."""
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            raise NotAuthenticated("this endpoint needs the gateway's client certificate (mTLS)")
        record = await self.repo.gateway_by_fingerprint(der_fingerprint(der))
        if record is None:
            subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
            raise Forbidden(
                "unknown_certificate",
                "this client certificate is not in the registry",
                subject=subject,
            )
        if record.revoked_at is not None:
            raise Forbidden(
                "gateway_revoked",
                f"gateway {record.gateway_id} is revoked",
                revoked_at=record.revoked_at,
                why=record.revoke_reason or "",
            )
        return record

    async def ingest_state(self, request: web.Request) -> web.Response:
        record = await self._authenticated_gateway(request)
        state = await self.repo.state(record.gateway_id)
        return json_response(_ack(record.gateway_id, "state", state))

    async def ingest(self, request: web.Request) -> web.Response:
        record = await self._authenticated_gateway(request)
        gw = record.gateway_id
        if gw in self._busy_gateways:
            # One batch at a time per gateway: a second concurrent one is a client bug or a
            # retry racing its original; tell it to come back rather than interleave.
            return self._come_back(429, "this gateway already has a batch in progress", 1)
        self._busy_gateways.add(gw)
        try:
            if not await self._admit():
                return self._come_back(503, "centre busy, retry later", self.retry_after_s)
            try:
                raw = await request.read()
                batch, sig, kid = await asyncio.to_thread(_parse_and_verify, raw, record)
                result = await self.repo.ingest(
                    batch, envelope=raw, signature=sig, key_id=kid, now=self.wall()
                )
                if result.stored:
                    await self._judge_taps(gw, batch)
            finally:
                self._slots.release()
        finally:
            self._busy_gateways.discard(gw)
        if result.stored:
            for listener in self.ingest_listeners:
                listener(gw)
        log.debug(
            "ingest %s %s: +%d dup %d wm %d",
            gw,
            batch.batch_id,
            result.stored,
            result.duplicates,
            result.watermark,
        )
        return json_response(_ack(gw, batch.batch_id, result))

    async def _admit(self) -> bool:
        """Take an ingest slot, waiting in line for one if the line is not full; False when
        the batch must be sent away (line full, or no slot within the wait)."""
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: returns at once
            return True
        if self._waiting >= self.max_ingest_waiting or self.ingest_queue_wait_s <= 0:
            return False
        self._waiting += 1
        try:
            async with asyncio.timeout(self.ingest_queue_wait_s):
                await self._slots.acquire()
            return True
        except TimeoutError:
            return False
        finally:
            self._waiting -= 1

    async def _judge_taps(self, gw: str, batch: Batch) -> None:
        """Anti-fraud detectors over the new taps. The batch is stored already, so a failure
        here must not cost the ack: it is logged, and the next batch with taps judges the same
        window again (alerts are keyed, so nothing is recorded twice)."""
        try:
            await self.antifraud.after_ingest(gw, batch.events, now=self.wall())
        except (CentreError, sqlite3.Error) as exc:
            log.warning("anti-fraud check after %s %s failed: %s", gw, batch.batch_id, exc)
        except Exception:  # a detector bug must not turn a stored batch into a 500
            log.exception("anti-fraud check after %s %s failed", gw, batch.batch_id)

    def _come_back(self, status: int, reason: str, seconds: int) -> web.Response:
        code = "too_many_requests" if status == 429 else "unavailable"
        return json_response(
            {"error": code, "reason": reason, "retry_after": seconds},
            status=status,
            headers={"Retry-After": str(seconds)},
        )


def _parse_and_verify(raw: bytes, record: GatewayRecord) -> tuple[Batch, bytes, str]:
    """Decode the signed envelope, check its shape and sender, verify the signature (thread)."""
    if not raw:
        raise BadRequest("empty body: expected a signed batch envelope")
    body, kid, sig, signed = split_sealed(raw, BATCH_TYPE, max_bytes=MAX_INGEST_BODY)
    batch = Batch.from_dict(body)
    if batch.gateway_id != record.gateway_id:
        raise Forbidden(
            "gateway_mismatch",
            f"batch is for {batch.gateway_id!r} but the certificate is {record.gateway_id!r}",
        )
    public_key = load_public_key_pem(record.public_key_pem.encode("ascii"))
    check_key_id(kid, public_key)
    verify_signed(BATCH_TYPE, body, sig, signed, public_key)  # over the bytes as sent
    return batch, sig, kid


def _ack(gateway_id: str, batch_id: str, result: IngestResult) -> dict[str, Any]:
    assert BATCH_ID_RE.fullmatch(batch_id)
    return Ack(
        gateway_id=gateway_id,
        batch_id=batch_id,
        watermark=result.watermark,
        highest=result.highest,
        gaps=result.gaps,
        gaps_truncated=result.gaps_truncated,
        stored=result.stored,
        duplicates=result.duplicates,
    ).to_dict()
