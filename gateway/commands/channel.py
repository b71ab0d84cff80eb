"""The command channel: a WebSocket to the centre (mTLS), commands in, acknowledgements out.

Theory of operation
-------------------
The gateway dials ``wss://<centre>/api/v1/commands`` with its provisioned client certificate,
trusting only the pinned CA, and keeps the socket alive with WebSocket pings every
``commands.heartbeat_s`` (a peer that stops answering is dropped within about two intervals).
The link is a small state machine::

    WAITING ──(provisioned)──► CONNECTING ──(upgraded)──► CONNECTED
                                   ▲   │                      │ (closed, error, missed pong)
                                   │   └──(failed)──┐         ▼
                                   └──(delay over)── BACKOFF ◄┘

BACKOFF waits a full-jitter delay, uniform(0, ceiling), the ceiling doubling from
``backoff_initial_s`` to ``backoff_max_s``; a connection that stayed up ``stable_after_s``
resets it. Each binary frame is one signed envelope:

1. journal ``command.received`` (digest, size, the id/seq it *claims*), ack ``received``;
2. verify (:class:`~gateway.commands.verifier.ChannelVerifier`: every rule of
   :func:`wire.commands.check_command`, the new sequence fsynced before it returns);
   refused → journal ``command.refused`` (code, reason), ack ``refused``; nothing moves;
3. journal ``command.accepted`` (seq, action, zones, ...), hand the command to the broadcast
   controller; when it reports the relays verified on, journal ``command.on`` and ack ``on``;
   when it ends, journal ``command.finished`` and ack ``done`` or ``failed`` with why.

``camera.snapshot`` (look now) never reaches the broadcast controller: a camera this gateway
does not have is refused in step 2 (``unknown_camera``); otherwise, after ``command.accepted``,
the snapshot service's "take now" (handed over by the daemon with :meth:`attach_snapshots`)
takes, stores and journals the picture with ``request`` = the command id, and the channel
journals ``command.finished`` and acks ``done`` (reason: camera, sha256, bytes) or ``failed``
with the code (``camera_unreachable``, ``camera_fault``, ``storage``) and why.

Acks that cannot be sent (link down) wait in a bounded outbox and go out first on the next
connection; the journal has the same facts anyway and reaches the centre with the next batch::

    channel = CommandChannel(journal, clock, sync_section, CommandsSection(), data_dir=d,
                             trigger=runtime.remote(verifier))
    await channel.run()      # under the supervisor
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp

from gateway.broadcast.controller import Ticket
from gateway.broadcast.library import CentreFetcher
from gateway.broadcast.remote import RemoteTrigger, VerifiedCommand, digest
from gateway.clock import Clock
from gateway.commands.config import CommandsSection
from gateway.commands.state import StateError
from gateway.commands.verifier import ChannelVerifier
from gateway.errors import CommandRefused, JournalError
from gateway.journal import Journal
from gateway.sync.config import SyncPaths, SyncSection
from gateway.sync.policy import Backoff
from gateway.sync.provision import read_enrollment
from gateway.sync.tls import client_ssl_context
from wire import WireError, encode, load_public_key_pem
from wire.commands import BAD_ENCODING, MAX_COMMAND_BYTES, Limits, peek_identity

log = logging.getLogger("gateway.commands")

COMMANDS_PATH: Final = "/api/v1/commands"
NOT_PROVISIONED_POLL_S: Final = 60.0
# Checked every minute until provisioned, but said at start and then hourly: a warning line a
# minute is SD writes (journald, or the bench's log file) and says nothing new.
NOT_PROVISIONED_LOG_EVERY: Final = 60
OUTBOX_MAX: Final = 1000  # acks kept while offline (the journal keeps everything anyway)
STATUS_SECTION: Final = "commands"
# Frames are read up to this size, 16x the largest valid command (MAX_COMMAND_BYTES), so an
# oversized command is read, refused as bad_encoding, journaled and acked like any other bad
# command instead of the socket closing (1009) and the centre sending it again on every
# reconnect. The centre never sends a frame above it (centre.commands.channel.MAX_SEND_BYTES).
MAX_FRAME_BYTES: Final = 16 * MAX_COMMAND_BYTES
SOUND_WAIT_S: Final = 90.0  # above capture_delay_s (<= 30) + capture_s (<= 30) + 10 s grace

Publish = Callable[[str, Any], None]
# Look now: (camera, request id) -> {"ok": True, sha256, bytes, file} or {"ok": False, code,
# reason}; gateway.health.services.SnapshotService.take_now is the real one.
TakeSnapshot = Callable[[str, str], Awaitable[Mapping[str, Any]]]
SNAPSHOT_ACTION: Final = "camera.snapshot"
UNKNOWN_CAMERA: Final = "unknown_camera"


class Phase(enum.Enum):
    WAITING = "waiting"  # not provisioned yet
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"


class CommandChannel:
    """Service ``commands`` (see the module doc)."""

    name = "commands"

    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        sync: SyncSection,
        section: CommandsSection,
        *,
        data_dir: Path,
        trigger: RemoteTrigger,
        publish: Publish | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.journal = journal
        self.clock = clock
        self.sync = sync
        self.section = section
        self.paths = SyncPaths.from_section(sync, Path(data_dir))
        self.trigger = trigger
        self.publish = publish
        self.backoff = Backoff(
            section.backoff_initial_s, section.backoff_max_s, rng or random.Random()
        )
        self.phase = Phase.WAITING
        self.last_error = ""
        self.connects = 0
        self.counters = {"received": 0, "accepted": 0, "refused": 0}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._outbox: collections.deque[dict[str, str]] = collections.deque(maxlen=OUTBOX_MAX)
        self._followers: set[asyncio.Task[None]] = set()
        self._verifier_args: tuple[str, Path, Limits] | None = None
        self._cameras: frozenset[str] = frozenset()
        self._take_snapshot: TakeSnapshot | None = None

    def attach_snapshots(self, cameras: Iterable[str], take: TakeSnapshot) -> None:
        """Let ``camera.snapshot`` commands take a picture now from one of ``cameras``."""
        self._cameras = frozenset(cameras)
        self._take_snapshot = take

    def configure_verifier(self, *, gateway_id: str, state_path: Path, limits: Limits) -> None:
        """Load a :class:`ChannelVerifier` (pinned key, state file) into the trigger once
        provisioned, replacing whatever placeholder it holds."""
        self._verifier_args = (gateway_id, state_path, limits)

    async def _load_verifier(self) -> None:
        if self._verifier_args is None or isinstance(self.trigger.verifier, ChannelVerifier):
            return
        gateway_id, state_path, limits = self._verifier_args
        try:
            pub = load_public_key_pem(self.paths.command_key.read_bytes())
        except (OSError, WireError) as exc:
            raise CommandRefused(
                "no usable pinned command key", path=str(self.paths.command_key), why=str(exc)
            ) from exc
        self.trigger.verifier = await ChannelVerifier.open(
            pub, gateway_id, state_path, self.clock, limits
        )

    # -- the service --------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            for task in list(self._followers):
                task.cancel()
            await asyncio.gather(*self._followers, return_exceptions=True)

    async def _run(self) -> None:
        polls = 0
        while not self.paths.provisioned():
            self._move(Phase.WAITING)
            if polls % NOT_PROVISIONED_LOG_EVERY == 0:
                log.warning("commands: not provisioned (no %s)", self.paths.cert)
            polls += 1
            await asyncio.sleep(NOT_PROVISIONED_POLL_S)
        await self._load_verifier()
        enrollment = read_enrollment(self.paths)
        base = (self.sync.centre_url or str(enrollment["centre_url"])).rstrip("/")
        url = "wss://" + base.removeprefix("https://") + COMMANDS_PATH
        ctx = await asyncio.to_thread(
            client_ssl_context, self.paths.ca, self.paths.cert, self.paths.key
        )
        if self.trigger.cache is not None and self.trigger.cache.fetcher is None:
            self.trigger.cache.fetcher = CentreFetcher(base, ctx)
        connector = aiohttp.TCPConnector(ssl=ctx, limit=1)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.section.connect_timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            while True:
                self._move(Phase.CONNECTING)
                up_since: float | None = None
                try:
                    async with session.ws_connect(
                        url,
                        heartbeat=self.section.heartbeat_s,
                        timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                        max_msg_size=MAX_FRAME_BYTES,
                        autoping=True,
                        ssl=ctx,
                    ) as ws:
                        up_since = self.clock.monotonic()
                        why = await self._serve(ws)
                except (aiohttp.ClientError, ssl.SSLError, OSError, TimeoutError) as exc:
                    why = f"{type(exc).__name__}: {exc}"
                finally:
                    self._ws = None
                self.last_error = why
                if up_since is not None and (
                    self.clock.monotonic() - up_since >= self.section.stable_after_s
                ):
                    self.backoff.reset()
                delay = self.backoff.next_delay()
                log.info("commands: link down (%s); reconnecting in %.1f s", why, delay)
                self._move(Phase.BACKOFF, retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """Serve one connection; returns why it ended, saying which side closed it."""
        self._ws = ws
        self.connects += 1
        self._move(Phase.CONNECTED)
        log.info("commands: connected to the centre")
        while self._outbox:
            await ws.send_str(encode(self._outbox[0]).decode())
            self._outbox.popleft()
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await self.handle_envelope(bytes(msg.data))
            elif msg.type == aiohttp.WSMsgType.TEXT:
                log.debug("commands: ignoring a text frame from the centre")
            elif msg.type == aiohttp.WSMsgType.ERROR:
                return await self._closed_by_us(ws, msg.data)
            else:
                break
        return f"closed by the centre (code {ws.close_code})"

    async def _closed_by_us(self, ws: aiohttp.ClientWebSocketResponse, error: Any) -> str:
        """aiohttp closed the socket itself: a frame above :data:`MAX_FRAME_BYTES` (close
        1009), a broken frame, or a missed pong. A frame too large to read is still a refused
        command: journaled, and acked (without an id: nothing of it was read) so the record
        says what happened; the centre itself never sends such a frame (docs/commands.md)."""
        detail = f"{type(error).__name__}: {str(error)[:200]}"
        if ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
            self.counters["received"] += 1
            self.counters["refused"] += 1
            reason = f"frame above {MAX_FRAME_BYTES} bytes, closed unread"
            await self._record(
                "command.refused",
                {"digest": "", "command_id": "", "seq": 0, "code": BAD_ENCODING, "reason": reason},
            )
            log.warning("commands: refused a command frame: %s", reason)
            await self._ack("", "refused", reason, BAD_ENCODING)
        return f"closed by the gateway (code {ws.close_code}: {detail})"

    # -- one command --------------------------------------------------------------------------

    async def handle_envelope(self, envelope: bytes) -> Ticket | None:
        """Verify and run one envelope; returns the broadcast ticket of an accepted start."""
        self.counters["received"] += 1
        # Read the claimed id up to the frame limit, so even an oversized envelope (refused
        # below as bad_encoding) is acked under the id the centre's queue knows it by.
        claimed_id, claimed_seq = peek_identity(envelope, max_bytes=MAX_FRAME_BYTES)
        dig = digest(envelope)
        await self._record(
            "command.received",
            {"digest": dig, "bytes": len(envelope), "command_id": claimed_id, "seq": claimed_seq},
        )
        await self._ack(claimed_id, "received", digest=dig)
        try:
            cmd = await self._verify(envelope)
            if cmd.action == SNAPSHOT_ACTION:
                self._check_camera(cmd)
            else:
                await self.trigger.prepare(cmd)  # a centre announcement: fetched, verified first
        except CommandRefused as exc:
            self.counters["refused"] += 1
            code = str(exc.fields.get("code", "refused"))
            await self._record(
                "command.refused",
                {
                    "digest": dig,
                    "command_id": claimed_id,
                    "seq": claimed_seq,
                    "code": code,
                    "reason": exc.reason,
                },
            )
            log.warning("commands: refused %s (seq %d): %s", claimed_id, claimed_seq, exc.reason)
            await self._ack(claimed_id, "refused", exc.reason, code, dig)
            return None
        self.counters["accepted"] += 1
        await self._record("command.accepted", _accepted_payload(cmd))
        if cmd.action == SNAPSHOT_ACTION:  # look now: the camera, never the relays
            self._spawn(self._look(cmd), f"look-{cmd.command_id}")
            return None
        ticket = await self.trigger.execute(cmd)
        if ticket is None:  # a stop: queued to the controller, nothing to follow
            await self._record(
                "command.finished", {"command_id": cmd.command_id, "outcome": "done"}
            )
            await self._ack(cmd.command_id, "done")
            return None
        self._spawn(self._follow(cmd, ticket), f"command-{cmd.command_id}")
        return ticket

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._followers.add(task)
        task.add_done_callback(self._followers.discard)

    def _check_camera(self, cmd: VerifiedCommand) -> None:
        if self._take_snapshot is None or cmd.camera not in self._cameras:
            known = ", ".join(sorted(self._cameras)) or "none"
            raise CommandRefused(
                f"no camera named {cmd.camera!r} on this gateway (cameras: {known})"[:300],
                code=UNKNOWN_CAMERA,
            )

    async def _look(self, cmd: VerifiedCommand) -> None:
        """Look now: take the picture, then journal command.finished and ack done/failed."""
        cid = cmd.command_id
        take = self._take_snapshot
        assert take is not None  # _check_camera refused the command otherwise
        try:
            result = await take(cmd.camera, cid)
        except Exception as exc:  # the snapshot service promises not to; still answer
            log.exception("commands: look-now %s failed", cid)
            result = {"ok": False, "code": "camera_fault", "reason": type(exc).__name__}
        if result.get("ok") is True:
            await self._record(
                "command.finished",
                {
                    "command_id": cid,
                    "outcome": "done",
                    "camera": cmd.camera,
                    "sha256": str(result.get("sha256", "")),
                    "file": str(result.get("file", "")),
                },
            )
            await self._ack(
                cid,
                "done",
                f"camera {cmd.camera} sha256 {result.get('sha256', '')} "
                f"bytes {result.get('bytes', 0)}",
            )
            return
        code = str(result.get("code", "camera_fault"))
        why = str(result.get("reason", "")) or code
        await self._record(
            "command.finished",
            {
                "command_id": cid,
                "outcome": "failed",
                "camera": cmd.camera,
                "code": code,
                "why": why,
            },
        )
        await self._ack(cid, "failed", why, code)

    async def _verify(self, envelope: bytes) -> VerifiedCommand:
        """The verifier's verdict; CommandRefused for anything it cannot judge. The envelope
        is the centre's (hostile until checked): whatever else reading it raises is a refusal
        too (defence in depth behind wire's own errors), never a crashed channel."""
        try:
            return await self.trigger.verifier.verify(envelope)
        except (CommandRefused, StateError):
            raise
        except Exception as exc:  # the trust boundary: any failure here refuses the command
            raise CommandRefused(
                f"envelope could not be checked: {type(exc).__name__}: {str(exc)[:200]}",
                code=BAD_ENCODING,
            ) from exc

    async def _follow(self, cmd: VerifiedCommand, ticket: Ticket) -> None:
        """Report the broadcast's stages back: on (verified), then done or failed."""
        cid = cmd.command_id
        on = await ticket.wait("on")
        if on.get("verified") is True:
            await self._record(
                "command.on", {"command_id": cid, "zones": on.get("zones", []), "verified": True}
            )
            await self._ack(cid, "on")
            # the fourth step: proof of sound (confirmed, no_sound, or not_checked)
            sound = asyncio.create_task(self._sound(cid, ticket), name=f"sound-{cid}")
            self._followers.add(sound)
            sound.add_done_callback(self._followers.discard)
            end = await ticket.wait("done")
        else:
            end = on
        failure = ticket.outcome("failed") or ticket.outcome("refused")
        if failure is not None or end.get("stage") in ("failed", "refused"):
            why = _why(failure or end)
            await self._record(
                "command.finished", {"command_id": cid, "outcome": "failed", "why": why}
            )
            await self._ack(cid, "failed", why)
        else:
            await self._record(
                "command.finished",
                {"command_id": cid, "outcome": "done", "cause": str(end.get("cause", ""))},
            )
            await self._ack(cid, "done", str(end.get("cause", "")))

    async def _sound(self, cid: str, ticket: Ticket) -> None:
        try:
            sound = await ticket.wait("sound", SOUND_WAIT_S)
        except TimeoutError:
            sound = {"result": "not_checked", "reason": "no sound check reported"}
        result = str(sound.get("result", "not_checked"))
        why = str(sound.get("reason", "")) or (
            f"rms {sound['rms_dbfs']} dBFS" if "rms_dbfs" in sound else ""
        )
        await self._ack(cid, "sound", why, result)

    # -- plumbing -----------------------------------------------------------------------------

    async def _ack(
        self, command_id: str, stage: str, reason: str = "", code: str = "", digest: str = ""
    ) -> None:
        ack = {"type": "ack", "command_id": command_id, "stage": stage, "reason": reason[:300]}
        if code:
            ack["code"] = code
        if digest:
            ack["digest"] = digest
        ws = self._ws
        if ws is not None and not ws.closed:
            try:
                await ws.send_str(encode(ack).decode())
                return
            except (aiohttp.ClientError, ConnectionError) as exc:
                log.info("commands: ack %s/%s kept for later: %s", command_id, stage, exc)
        self._outbox.append(ack)

    async def _record(self, kind: str, payload: Mapping[str, Any]) -> None:
        try:
            await self.journal.append(kind, payload)
        except JournalError as exc:  # the relays' own fail-safes do not depend on the journal
            log.error("commands: could not journal %s: %s", kind, exc)

    def _move(self, phase: Phase, **extra: Any) -> None:
        self.phase = phase
        if self.publish is not None:
            with contextlib.suppress(Exception):
                self.publish(STATUS_SECTION, self.status() | extra)

    def status(self) -> dict[str, Any]:
        state = getattr(self.trigger.verifier, "state", None)
        return {
            "link": self.phase.value,
            "last_error": self.last_error,
            "connects": self.connects,
            "last_seq": getattr(state, "last_seq", None),
            "acks_waiting": len(self._outbox),
            **self.counters,
        }


def _accepted_payload(cmd: VerifiedCommand) -> dict[str, Any]:
    if cmd.action == SNAPSHOT_ACTION:
        return {
            "command_id": cmd.command_id,
            "seq": cmd.seq,
            "action": cmd.action,
            "camera": cmd.camera,
            "issued_at": cmd.issued_at,
            "expires_at": cmd.expires_at,
            "key_id": cmd.key_id,
            "digest": cmd.digest,
        }
    return {
        "command_id": cmd.command_id,
        "seq": cmd.seq,
        "action": cmd.action,
        "zones": list(cmd.zones),
        "seconds": cmd.duration_s,
        "announcement": cmd.announcement,
        "status": cmd.status,
        "issued_at": cmd.issued_at,
        "expires_at": cmd.expires_at,
        "key_id": cmd.key_id,
        "digest": cmd.digest,
    }


def _why(detail: Mapping[str, Any]) -> str:
    parts = [f"{k}={detail[k]}" for k in ("stage", "reason", "cause", "errors") if detail.get(k)]
    return "; ".join(parts)[:300] or "failed"
