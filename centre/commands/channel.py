"""The centre's end of the command channel: ``GET /api/v1/commands``, a WebSocket per gateway.

The gateway opens it over mTLS (the same client certificate as ingest; unknown or revoked
certificates get the same 401/403 JSON before any upgrade). Then:

* centre → gateway: one **binary** frame per command, exactly the signed canonical envelope
  bytes stored at issue time (the centre never re-encodes what it signed);
* gateway → centre: **text** frames, strict JSON acks
  ``{"type": "ack", "command_id": "cmd-…",
  "stage": "received"|"on"|"sound"|"done"|"failed"|"refused", "reason": "…", "code": "…",
  "digest": "<sha256 hex of the envelope>"}`` — ``code`` is the gateway's refusal code (for
  ``sound``: confirmed, no_sound or not_checked); ``digest`` lets the centre match an
  envelope the gateway could not even read an id from (a damaged one). A frame that is not
  such an ack (:func:`read_ack` raises :class:`AckError`) is logged once, rate-limited, and
  ignored; a binary or unreadable frame closes the channel (1003) with one warning line.

On SQLite, commands are polled from the queue every :data:`POLL_S` (the CLI queues them from
another process). On PostgreSQL the store wakes the channel instead: queuing a command
NOTIFYs every centre process, and the one holding that gateway's WebSocket sends it at once
(:mod:`centre.commands.pg_store`); each connection then looks at its queue only every
:data:`IDLE_POLL_S` besides, a safety net. Commands whose ``expires_at`` passed are marked
``expired`` and never sent. A newer
connection from the same gateway replaces the older one. Heartbeats (WebSocket ping/pong every
:data:`HEARTBEAT_S`) find a dead link on both sides::

    channel = CommandChannel(service, store)
    channel.install(app)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from aiohttp import WSMsgType, web

from centre.app import API, CentreService
from centre.commands.store import ACK_STAGES, REFUSED, CommandRepository
from centre.errors import BadRequest
from centre.faults import RateLimitedLog, database_down_errors, fault_text
from wire import EncodingError, decode

log = logging.getLogger("centre.commands")

PATH: Final = f"{API}/commands"
POLL_S: Final = 0.2
IDLE_POLL_S: Final = 5.0  # with a store that wakes the channel (PostgreSQL's NOTIFY)
HEARTBEAT_S: Final = 15.0
REAUTH_S: Final = 5.0  # a gateway revoked while connected is dropped within this long
MAX_ACK_BYTES: Final = 4096
# Gateways read frames up to this size (gateway.commands.channel.MAX_FRAME_BYTES; a test
# checks they agree) and refuse anything above 16 KiB themselves, journaled and acked.
MAX_SEND_BYTES: Final = 256 * 1024
REPLACED: Final = 4000  # WebSocket close code: a newer connection of this gateway took over
DB_RETRY_S: Final = 1.0  # the database out of reach (a restart): look again this often
ACK_PATIENCE_S: Final = 120.0  # an ack waits this long for the database, then the link closes
TRY_AGAIN_LATER: Final = 1013  # WebSocket close code: the gateway reconnects after its backoff
_DB_DOWN: Final = database_down_errors()
ACK_KEYS: Final = frozenset({"type", "command_id", "stage", "reason", "code", "digest"})


class CommandChannel:
    """Serves the WebSocket; the queue is :class:`~centre.commands.store.CommandRepository`."""

    def __init__(
        self,
        service: CentreService,
        store: CommandRepository,
        *,
        wall: Callable[[], float] = time.time,
        poll_s: float | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        reauth_s: float = REAUTH_S,
    ) -> None:
        self.service = service
        self.store = store
        self.wall = wall
        self.notified = bool(getattr(store, "wakes_by_notify", False))
        self.poll_s = poll_s if poll_s is not None else IDLE_POLL_S if self.notified else POLL_S
        self.heartbeat_s = heartbeat_s
        self.reauth_s = reauth_s
        self.connections: dict[str, web.WebSocketResponse] = {}
        self._faults = RateLimitedLog(log)
        self._wakes: dict[str, asyncio.Event] = {}  # per connected gateway
        self._listener: asyncio.Task[None] | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.get(PATH, self.handle)]

    def install(self, app: web.Application) -> None:
        """Add the route, and close every channel when the app shuts down (a WebSocket would
        otherwise hold the shutdown for its whole timeout)."""
        app.add_routes(self.routes())
        app.on_startup.append(self._start_listening)
        app.on_shutdown.append(self._close_all)

    async def _start_listening(self, app: web.Application) -> None:
        listen = getattr(self.store, "listen", None)
        if self.notified and listen is not None:
            self._listener = asyncio.create_task(listen(self.wake), name="commands-listen")

    async def _close_all(self, app: web.Application) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        for ws in list(self.connections.values()):
            await ws.close(code=1001, message=b"centre shutting down")

    def wake(self, gateway_id: str | None = None) -> None:
        """Look at a gateway's queue now (``None``: every connected gateway's), instead of at
        the next poll: after an in-process enqueue, or a NOTIFY from another process."""
        if gateway_id is None:
            for each in self._wakes.values():
                each.set()
        elif (one := self._wakes.get(gateway_id)) is not None:
            one.set()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        record = await self.service._authenticated_gateway(request)  # 401/403 before upgrading
        gw = record.gateway_id
        ws = web.WebSocketResponse(heartbeat=self.heartbeat_s, max_msg_size=MAX_ACK_BYTES)
        await ws.prepare(request)
        previous = self.connections.get(gw)
        self.connections[gw] = ws
        if previous is not None:
            await previous.close(code=REPLACED, message=b"replaced by a newer connection")
        log.info("command channel: %s connected", gw)
        sender = asyncio.create_task(self._send_loop(gw, ws), name=f"commands-{gw}")
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        await self._on_ack(gw, msg.data)
                    except _DB_DOWN:  # out of reach for ACK_PATIENCE_S: come back later
                        await ws.close(code=TRY_AGAIN_LATER, message=b"database unavailable")
                        break
                    continue
                # A binary frame, or one aiohttp could not read (not UTF-8, too large, bad
                # framing): the gateway's fault, one line, and the channel is closed.
                why = f"{msg.type.name} frame" if msg.type != WSMsgType.ERROR else "bad frame"
                if isinstance(msg.data, BaseException):
                    why += f" ({fault_text(msg.data)})"
                self._faults.warning(
                    (gw, "frame"), "command channel: %s sent a %s, closing", gw, why
                )
                await ws.close(code=1003, message=b"text acks only")
                break
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await sender
            if self.connections.get(gw) is ws:
                del self.connections[gw]
            log.info("command channel: %s disconnected", gw)
        return ws

    async def _send_loop(self, gw: str, ws: web.WebSocketResponse) -> None:
        sent: set[str] = set()  # per connection: a reconnect sends unacknowledged ones again
        wake = self._wakes[gw] = asyncio.Event()
        try:
            await self._sending(gw, ws, sent, wake)
        finally:
            if self._wakes.get(gw) is wake:
                del self._wakes[gw]

    async def _sending(
        self, gw: str, ws: web.WebSocketResponse, sent: set[str], wake: asyncio.Event
    ) -> None:
        checked = asyncio.get_running_loop().time()
        while not ws.closed:
            try:
                if asyncio.get_running_loop().time() - checked >= self.reauth_s:
                    checked = asyncio.get_running_loop().time()
                    record = await self.service.repo.gateway(gw)
                    if record is None or record.revoked_at is not None:
                        log.warning("command channel: %s was revoked, closing its channel", gw)
                        await ws.close(code=1008, message=b"gateway revoked")
                        return
                wake.clear()  # before reading: a wake-up during the read is kept for the wait
                await self._send_deliverable(gw, ws, sent)
            except _DB_DOWN as exc:
                # A database restart must not end this sender (the WebSocket would stay open
                # with nobody sending on it): look again shortly; what was queued meanwhile
                # is still deliverable, and ``sent`` keeps what already went out.
                self._faults.warning(
                    (gw, "database"),
                    "command channel: %s: the database is out of reach (%s); trying again",
                    gw,
                    fault_text(exc),
                )
                await asyncio.sleep(DB_RETRY_S)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self.poll_s)

    async def _send_deliverable(self, gw: str, ws: web.WebSocketResponse, sent: set[str]) -> None:
        for rec in await self.store.deliverable(gw, now=self.wall()):
            if rec.command_id in sent:
                continue
            if len(rec.envelope) > MAX_SEND_BYTES:
                # The gateway would close the socket unread (1009) and this command would
                # be sent again on every reconnect, holding up the queue: refuse it here.
                sent.add(rec.command_id)
                await self.store.record_ack(
                    gw,
                    rec.command_id,
                    REFUSED,
                    f"bad_encoding: envelope is {len(rec.envelope)} bytes, above the "
                    f"{MAX_SEND_BYTES} a gateway reads; never sent",
                    now=self.wall(),
                )
                log.warning("command %s is too large to send; refused", rec.command_id)
                continue
            await ws.send_bytes(rec.envelope)
            sent.add(rec.command_id)
            await self.store.mark_delivered(rec.command_id, now=self.wall())
            log.info("command %s (seq %d) sent to %s", rec.command_id, rec.seq, gw)

    async def _on_ack(self, gw: str, text: str) -> None:
        try:
            ack = read_ack(text)
        except AckError as exc:
            self._faults.warning(
                (gw, "ack"), "command channel: %s sent an unreadable ack: %s", gw, exc.reason
            )
            return
        reason = ack.get("reason", "")
        if ack.get("code"):
            reason = f"{ack['code']}: {reason}"
        # The database out of reach (a restart): the ack waits for it (the gateway sent it
        # once and will not again), reading the socket no further meanwhile.
        deadline = asyncio.get_running_loop().time() + ACK_PATIENCE_S
        while True:
            try:
                rec = await self.store.record_ack(
                    gw,
                    ack["command_id"],
                    ack["stage"],
                    reason,
                    now=self.wall(),
                    digest=ack.get("digest", ""),
                )
                break
            except _DB_DOWN as exc:
                self._faults.warning(
                    (gw, "database"),
                    "command channel: %s: the database is out of reach (%s); ack waits",
                    gw,
                    fault_text(exc),
                )
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(DB_RETRY_S)
        if rec is None:
            log.warning("command channel: %s acked unknown command %r", gw, ack["command_id"])
        else:
            log.info("command %s on %s: %s %s", rec.command_id, gw, ack["stage"], reason)


class AckError(BadRequest):
    """A gateway's ack frame that is not a strict ack (the only error :func:`read_ack` raises)."""

    code = "bad_ack"


def read_ack(text: str) -> dict[str, Any]:
    """A strict ack dict from a text frame; :class:`AckError` (only) for anything else: bad
    JSON, unknown fields, a stage that is not one of the known strings, ill-typed fields."""
    try:
        ack = decode(text.encode("utf-8", "surrogatepass"), max_bytes=MAX_ACK_BYTES)
    except EncodingError as exc:
        raise AckError(f"not strict JSON: {exc.reason}") from None
    if not isinstance(ack, dict) or ack.get("type") != "ack":
        raise AckError('not an object with "type": "ack"')
    unknown = set(ack) - ACK_KEYS
    if unknown:
        raise AckError(f"unknown field(s) {sorted(unknown)[:5]}")
    stage = ack.get("stage")
    # A list or object is unhashable: test the type before asking the set.
    if not isinstance(stage, str) or stage not in ACK_STAGES:
        raise AckError(f"stage must be one of {sorted(ACK_STAGES)}")
    if not isinstance(ack.get("command_id"), str):
        raise AckError("command_id must be a string")
    if not all(isinstance(ack.get(k, ""), str) for k in ("reason", "code", "digest")):
        raise AckError("reason, code and digest must be strings")
    return ack


def parse_ack(text: str) -> dict[str, Any] | None:
    """:func:`read_ack`, or None for a frame it refuses (never raises)."""
    try:
        return read_ack(text)
    except AckError:
        return None
