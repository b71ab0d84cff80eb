"""The daemon's local control socket: ``compound-gw selftest`` works *through* the running daemon.

The daemon owns the serial ports and the journal; a second process opening them would fight
it. So the daemon listens on a Unix socket in its run-time folder (``<runtime_dir>/control.sock``,
mode 0660, owned by the daemon's user, in a 0750 folder) and does the work for the caller::

    async with ControlClient(runtime_dir / CONTROL_SOCKET) as ctl:
        status = await ctl.call("status")
        clicks = await ctl.call("zones.click", zones=[1, 2], seconds=1.0)

Protocol: one JSON object per line each way (UTF-8, ``\\n``-terminated, at most
``MAX_LINE_BYTES``). A request is ``{"verb": "...", "args": {...}}`` (``args`` optional); the
reply is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"code": ..., "reason":
...}}``. Several requests may follow one another on a connection. Verbs:

| verb | args | result |
|---|---|---|
| ``ping`` | | ``pid``, ``version`` |
| ``status`` | | readers (online, Secure Channel), clock (synchronised), services |
| ``reader.blink`` | ``reader`` ("bus/address"), ``ok`` (bool) | green+beep or red+long beep |
| ``zones.click`` | ``zones`` (list of int), ``seconds`` | per zone: on/off verified by read-back |
| ``report`` | ``envelope`` (a signed ``commissioning.report``) | the journal sequence it got |
| ``reload`` | | patrol data re-read (SIGHUP to itself) |

The request parser (:func:`parse_request`) is pure and raises :class:`ControlRequestError`, and
only that, on any hostile input; the server answers it with ``ok: false`` and the error's
``code``, logs one warning line without a traceback, and goes on serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import GatewayError, RemoteProtocolError

log = logging.getLogger("gateway.control")

CONTROL_SOCKET = "control.sock"
SOCKET_MODE = 0o660
MAX_LINE_BYTES = 64 * 1024
MAX_CONNECTIONS = 4
MAX_SOCKET_PATH = 107  # bytes: sun_path is 108 with its NUL
IDLE_TIMEOUT_S = 60.0  # a connection that sends nothing for this long is closed
CLICK_MAX_SECONDS = 10.0
CLICK_MAX_ZONES = 64
REPORT_KIND = "commissioning.report"

VERBS = ("ping", "status", "reader.blink", "zones.click", "report", "reload")


# ============================================================================ protocol (pure)


class ControlRequestError(RemoteProtocolError):
    """A control request that cannot be served; ``code`` names why (the reply's error code).

    The one error type :func:`parse_request` and the verbs' argument checks raise.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason, code=code)
        self.code = code


class ControlError(GatewayError):
    """The client side: no daemon answers on the socket, or it refused the request."""

    def __init__(self, reason: str, code: str = "unavailable") -> None:
        super().__init__(reason, code=code)
        self.code = code


@dataclass(frozen=True, slots=True)
class ControlRequest:
    verb: str
    args: Mapping[str, Any] = field(default_factory=dict)


def parse_request(line: bytes) -> ControlRequest:
    """One request line -> :class:`ControlRequest`; ControlRequestError for anything else."""
    if len(line) > MAX_LINE_BYTES:
        raise ControlRequestError("too_long", f"a request is at most {MAX_LINE_BYTES} bytes")
    try:
        data = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ControlRequestError("bad_json", "a request is one JSON object per line") from exc
    if not isinstance(data, dict):
        raise ControlRequestError("bad_request", "a request is a JSON object")
    verb = data.get("verb")
    if not isinstance(verb, str):
        raise ControlRequestError("bad_request", "the request has no verb")
    if verb not in VERBS:
        raise ControlRequestError("unknown_verb", f"unknown verb (known: {', '.join(VERBS)})")
    args = data.get("args", {})
    if not isinstance(args, dict):
        raise ControlRequestError("bad_args", "args is a JSON object")
    unknown = set(data) - {"verb", "args"}
    if unknown:
        raise ControlRequestError("bad_request", "unknown keys in the request")
    return ControlRequest(verb, args)


def encode_reply(result: Any) -> bytes:
    return json.dumps({"ok": True, "result": result}, default=str).encode() + b"\n"


def encode_error(code: str, reason: str) -> bytes:
    body = {"ok": False, "error": {"code": code, "reason": reason}}
    return json.dumps(body).encode() + b"\n"


def _arg(args: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = args.get(name)
    # bool is an int in Python: a "zones": [true] must not pass for zone 1.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise ControlRequestError("bad_args", f"args.{name} is missing or of the wrong type")
    return value


def parse_reader(text: Any) -> tuple[str, int]:
    """``"bus/address"`` -> (bus, address)."""
    if not isinstance(text, str) or text.count("/") != 1:
        raise ControlRequestError("bad_args", "args.reader is 'bus/address'")
    bus, _, address = text.partition("/")
    if not bus or not address.isdigit() or len(address) > 3:
        raise ControlRequestError("bad_args", "args.reader is 'bus/address'")
    return bus, int(address)


def parse_click(args: Mapping[str, Any]) -> tuple[list[int], float]:
    zones = _arg(args, "zones", list)
    if not zones or len(zones) > CLICK_MAX_ZONES:
        raise ControlRequestError("bad_args", f"args.zones holds 1..{CLICK_MAX_ZONES} zones")
    if not all(isinstance(z, int) and not isinstance(z, bool) and 0 < z < 1000 for z in zones):
        raise ControlRequestError("bad_args", "args.zones are zone numbers")
    seconds = args.get("seconds", 1.0)
    if (
        not isinstance(seconds, int | float)
        or isinstance(seconds, bool)
        or not 0.05 <= seconds <= CLICK_MAX_SECONDS
    ):
        raise ControlRequestError("bad_args", f"args.seconds is 0.05..{CLICK_MAX_SECONDS}")
    return list(zones), float(seconds)


# ============================================================================ server


Handler = Callable[[Mapping[str, Any]], Awaitable[Any]]


class ControlServer:
    """Supervised service ``control``: the socket and the verbs (see the module doc).

    It finds what it drives among the daemon's services (the checkpoint service's buses, the
    broadcast service's controller) and never opens a device itself.
    """

    name = "control"

    def __init__(
        self,
        path: Path,
        *,
        services: Iterable[Any],
        journal: Any,
        clock: Any,
        version: str = "",
        reload: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.path = Path(path)
        self.services = list(services)
        self.journal = journal
        self.clock = clock
        self.version = version
        self._reload = reload
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._click_lock = asyncio.Lock()
        self.handlers: dict[str, Handler] = {
            "ping": self._ping,
            "status": self._status,
            "reader.blink": self._blink,
            "zones.click": self._click,
            "report": self._report,
            "reload": self._reload_verb,
        }
        self.refused = 0  # requests answered with an error (for tests and the log)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        if len(os.fsencode(self.path)) > MAX_SOCKET_PATH:
            # Only a test's deep temporary folder gets here (the field's is /run/compound-gw).
            # Without the socket, selftest says the daemon does not answer: no crash loop.
            log.warning("control socket path too long for AF_UNIX, not listening: %s", self.path)
            await asyncio.Event().wait()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a leftover of a daemon that was killed
        server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=MAX_LINE_BYTES
        )
        try:
            os.chmod(self.path, SOCKET_MODE)
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._slots.locked():
                writer.write(encode_error("busy", "too many control connections"))
                await writer.drain()
                return
            async with self._slots:
                while True:
                    try:
                        line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_S)
                    except (ValueError, asyncio.LimitOverrunError):
                        # Longer than the limit: the rest of the line cannot be told apart
                        # from the next request, so answer and hang up.
                        self._refuse(ControlRequestError("too_long", "request line too long"))
                        writer.write(encode_error("too_long", "request line too long"))
                        await writer.drain()
                        return
                    if not line:
                        return
                    if not line.strip():
                        continue
                    writer.write(await self.answer(line))
                    await writer.drain()
        except (TimeoutError, ConnectionError, OSError):
            pass  # the caller went away or idled out: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _refuse(self, exc: GatewayError) -> None:
        self.refused += 1
        log.warning("control request refused: %s", exc.reason)

    async def answer(self, line: bytes) -> bytes:
        """The reply line to one request line (never raises)."""
        try:
            request = parse_request(line.rstrip(b"\r\n"))
            return encode_reply(await self.handlers[request.verb](request.args))
        except ControlRequestError as exc:
            self._refuse(exc)
            return encode_error(exc.code, exc.reason)
        except GatewayError as exc:
            self._refuse(exc)
            return encode_error("failed", exc.reason)
        except Exception as exc:  # a verb's own bug must not take the daemon down
            self.refused += 1
            log.warning("control request failed: %s: %s", type(exc).__name__, exc)
            return encode_error("internal", f"{type(exc).__name__}")

    # ------------------------------------------------------------------ what it drives

    def _checkpoints(self) -> Any:
        """The checkpoint service: it publishes the reader table and holds the buses."""
        for s in self.services:
            if callable(getattr(s, "snapshot", None)) and isinstance(
                getattr(s, "buses", None), list
            ):
                return s
        return None

    def _controller(self) -> Any:
        """The broadcast controller (other services, like the command channel, may hold a
        reference to it too: any of them leads to the same one)."""
        for s in self.services:
            controller = getattr(s, "controller", None)
            if controller is not None and hasattr(controller, "layout"):
                return controller
        return None

    # ------------------------------------------------------------------ verbs

    async def _ping(self, args: Mapping[str, Any]) -> Any:
        return {"pid": os.getpid(), "version": self.version}

    async def _status(self, args: Mapping[str, Any]) -> Any:
        checkpoints = self._checkpoints()
        readers = []
        if checkpoints is not None:
            for row in checkpoints.snapshot()["readers"]:
                readers.append(
                    {
                        "checkpoint": row["checkpoint"],
                        "reader": row["reader"],
                        "online": bool(row["online"]),
                        "secure_channel": bool(row["online"] and row["sc_active"]),
                        "reason": row.get("reason"),
                    }
                )
        controller = self._controller()
        return {
            "pid": os.getpid(),
            "version": self.version,
            "readers": readers,
            "broadcast": None if controller is None else {"ready": controller.ready.is_set()},
            "clock": {"synchronised": bool(self.clock.synced()), "wall": self.clock.wall()},
            "journal": {"last_seq": self.journal.last_seq},
        }

    async def _blink(self, args: Mapping[str, Any]) -> Any:
        from drivers.checkpoints import Feedback

        bus_name, address = parse_reader(args.get("reader"))
        ok = args.get("ok", True)
        if not isinstance(ok, bool):
            raise ControlRequestError("bad_args", "args.ok is true or false")
        checkpoints = self._checkpoints()
        bus = None
        if checkpoints is not None:
            bus = next((b for b in checkpoints.buses if b.name == bus_name), None)
        if bus is None:
            raise ControlRequestError("not_found", "no such reader bus in this daemon")
        sent = await bus.feedback(address, Feedback.ACCEPTED if ok else Feedback.REFUSED)
        return {"sent": bool(sent)}

    async def _click(self, args: Mapping[str, Any]) -> Any:
        from gateway.setup.checks import click_with_controller

        zones, seconds = parse_click(args)
        controller = self._controller()
        if controller is None:
            raise ControlRequestError("not_found", "this daemon drives no broadcast relays")
        if not set(zones) <= set(controller.layout.zones):
            raise ControlRequestError("not_found", "no such zone in this daemon's config")
        if self._click_lock.locked():
            raise ControlRequestError("busy", "a click test is already running")
        async with self._click_lock:
            if not controller.ready.is_set():
                raise ControlRequestError("busy", "the relay boards are not ready")
            clicks = await click_with_controller(controller, zones, seconds)
        return [
            {"zone": c.zone, "on": c.on_verified, "off": c.off_verified, "detail": c.detail}
            for c in clicks
        ]

    async def _report(self, args: Mapping[str, Any]) -> Any:
        envelope = _arg(args, "envelope", dict)
        if envelope.get("type") != REPORT_KIND or not isinstance(envelope.get("body"), dict):
            raise ControlRequestError("bad_args", f"args.envelope is a {REPORT_KIND} envelope")
        if set(envelope) - {"type", "body", "key_id", "sig"}:
            raise ControlRequestError("bad_args", "args.envelope has unknown keys")
        event = await self.journal.append(REPORT_KIND, envelope)
        return {"seq": event.seq}

    async def _reload_verb(self, args: Mapping[str, Any]) -> Any:
        if self._reload is not None:
            return {"reloaded": True, "detail": await self._reload()}
        # The daemon's SIGHUP handler re-reads the patrol data. With no handler installed,
        # SIGHUP would kill the daemon: refuse instead.
        if signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise ControlRequestError("unsupported", "this daemon cannot reload (no SIGHUP)")
        os.kill(os.getpid(), signal.SIGHUP)
        return {"reloaded": True, "detail": "SIGHUP"}


# ============================================================================ client


class ControlClient:
    """One connection to the daemon's control socket (see the module doc)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> ControlClient:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.path), limit=4 * MAX_LINE_BYTES),
                self.timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise ControlError(f"no daemon answers on {self.path}: {exc}") from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def call(self, verb: str, timeout: float | None = None, **args: Any) -> Any:
        """Send one request; the result, or ControlError with the daemon's code and reason."""
        assert self._reader is not None and self._writer is not None, "use async with"
        started = time.monotonic()
        try:
            self._writer.write(json.dumps({"verb": verb, "args": args}).encode() + b"\n")
            await self._writer.drain()
            line = await asyncio.wait_for(self._reader.readline(), timeout or self.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            waited = time.monotonic() - started
            raise ControlError(f"the daemon did not answer {verb} ({waited:.0f} s): {exc}") from exc
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise ControlError(f"the daemon's reply to {verb} is not JSON", "bad_reply") from exc
        if not isinstance(reply, dict):
            raise ControlError(f"the daemon's reply to {verb} is not an object", "bad_reply")
        if reply.get("ok") is True:
            return reply.get("result")
        error = reply.get("error")
        if not isinstance(error, dict):
            error = {}
        raise ControlError(str(error.get("reason", "refused")), str(error.get("code", "refused")))


def socket_path(runtime_dir: Path) -> Path:
    return Path(runtime_dir) / CONTROL_SOCKET
