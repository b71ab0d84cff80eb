"""A TCP fault proxy between the gateway and the centre, on loopback, scriptable from tests.

The gateway is pointed at the proxy instead of the centre; the proxy forwards bytes both ways
(TLS passes through untouched: it never looks inside) and misbehaves on demand::

    proxy = FaultProxy(listen=("127.0.0.1", 0), target=("127.0.0.1", centre_port))
    await proxy.start()                      # gateway config: https://127.0.0.1:{proxy.port}
    proxy.delay_s = 0.3                      # one-way latency, each direction
    proxy.bandwidth_bps = 64_000             # a poor 4G uplink (bits per second, per direction)
    proxy.blackhole()                        # nothing moves; TCP stays up, timeouts must fire
    proxy.cut()                              # every connection reset now, new ones reset at once
    proxy.refuse()                           # centre down: connects refused
    proxy.reset_before_response(once=True)   # request reaches the centre, the reply never comes
    proxy.reset_mid_stream(after_bytes=4096, direction="upstream")
    proxy.heal()                             # back to a clean pass-through
    await proxy.stop()

Modes (:meth:`FaultProxy.set_mode`): ``pass``, ``delay`` and ``throttle`` (pass with shaping),
``blackhole``, ``cut``, ``refuse``, ``reset_mid_stream`` and ``reset_before_response``.
Shaping (``delay_s``, ``bandwidth_bps``) is independent of the mode and applies whenever bytes
move. ``upstream`` is client to target (requests), ``downstream`` target to client (replies).

A black hole pauses forwarding instead of discarding: the kernel keeps the bytes, so when the
route "comes back" (:meth:`heal`) the TCP streams resume intact, as a real outage that TCP
survives does. New connections during a black hole are accepted (the kernel does that) but the
target is not contacted until it ends. Resets are real RSTs (SO_LINGER 0), so the client sees
``ConnectionResetError`` / aiohttp's ``ServerDisconnectedError``, not a clean close.

Call the control methods from the event loop's thread (any test coroutine); for a proxy run
from synchronous code see :class:`ThreadedFaultProxy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal, get_args

Mode = Literal[
    "pass",
    "delay",
    "throttle",
    "blackhole",
    "cut",
    "refuse",
    "reset_mid_stream",
    "reset_before_response",
]
Direction = Literal["upstream", "downstream"]
MODES: tuple[str, ...] = get_args(Mode)

READ_CHUNK = 64 * 1024
QUEUE_CHUNKS = 16  # chunks read ahead per direction: bounded, so a slow side pushes back
SHAPING_SLICE_S = 0.02  # throttled data goes out in slices this long, not one burst per chunk
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class ProxyStats:
    """Counters since start: connections accepted and still open, bytes forwarded each way,
    connections reset by a fault, connections refused or reset on accept."""

    accepted: int
    active: int
    bytes_upstream: int
    bytes_downstream: int
    resets: int
    refused: int


@dataclass(slots=True)
class _ResetRule:
    after_bytes: int
    direction: Direction
    once: bool


def _check_loopback(host: str, what: str) -> None:
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{what} must be a loopback address, got {host!r}")


def _numeric(host: str) -> str:
    return "127.0.0.1" if host == "localhost" else host


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST, as a dead link or a crashed peer does, not with a polite FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Connection:
    """One proxied client connection: two pumps, each a reader task and a writer task."""

    def __init__(
        self,
        proxy: FaultProxy,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.client_r, self.client_w = client_r, client_w
        self.target_w: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.forwarded_since_arm: dict[str, int] = {"upstream": 0, "downstream": 0}
        self.done = asyncio.Event()
        self.was_reset = False

    def reset(self, *, fault: bool = True) -> None:
        """Tear both sides down with RSTs; ``fault``: counted as a reset the proxy caused."""
        if self.was_reset:
            return
        self.was_reset = True
        if fault:
            self.proxy._resets += 1
        _reset(self.client_w)
        if self.target_w is not None:
            _reset(self.target_w)
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self.done.set()

    async def run(self) -> None:
        proxy = self.proxy
        await proxy._flowing.wait()  # a black hole: the target never hears of this client
        if proxy._mode in ("cut", "refuse"):
            self.reset()
            return
        try:
            target_r, target_w = await asyncio.wait_for(
                asyncio.open_connection(*proxy.target), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            self.reset(fault=False)  # the target is down: the client sees its connection reset
            return
        self.target_w = target_w
        up: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
        down: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)
        self.tasks = [
            asyncio.create_task(self._read(self.client_r, up)),
            asyncio.create_task(self._write(up, target_w, "upstream")),
            asyncio.create_task(self._read(target_r, down)),
            asyncio.create_task(self._write(down, self.client_w, "downstream")),
        ]
        finished: asyncio.Future[Any] = asyncio.gather(
            self.tasks[1], self.tasks[3], return_exceptions=True
        )
        done_wait: asyncio.Future[Any] = asyncio.ensure_future(self.done.wait())
        try:
            # Over when both directions have finished (FINs passed on) or on a reset.
            await asyncio.wait([finished, done_wait], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (finished, done_wait):
                fut.cancel()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, finished, done_wait, return_exceptions=True)
            for w in (self.client_w, self.target_w):
                if w is not None and not w.transport.is_closing():
                    w.close()

    async def _read(
        self, reader: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes]]
    ) -> None:
        try:
            while True:
                await self.proxy._flowing.wait()
                data = await reader.read(READ_CHUNK)
                await queue.put((time.monotonic(), data))
                if not data:
                    return
        except (ConnectionError, OSError):
            await queue.put((time.monotonic(), b""))

    async def _write(
        self,
        queue: asyncio.Queue[tuple[float, bytes]],
        writer: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        try:
            await self._pump_out(queue, writer, direction)
        except (ConnectionError, OSError):
            self.reset(fault=False)  # one side died: the other learns it the same hard way

    async def _pump_out(
        self,
        queue: asyncio.Queue[tuple[float, bytes]],
        writer: asyncio.StreamWriter,
        direction: Direction,
    ) -> None:
        proxy = self.proxy
        while True:
            arrived, data = await queue.get()
            if not data:
                if writer.can_write_eof() and not writer.transport.is_closing():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            wait = arrived + proxy.delay_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await proxy._flowing.wait()
            rule = proxy._reset_rule
            if rule is not None and rule.direction == direction:
                room = rule.after_bytes - self.forwarded_since_arm[direction]
                if len(data) >= room:  # this chunk reaches the limit: pass up to it, then RST
                    if room > 0:
                        await self._send(writer, data[:room], direction)
                    proxy._reset_fired()
                    self.reset()
                    return
            await self._send(writer, data, direction)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes, direction: Direction) -> None:
        proxy = self.proxy
        view = memoryview(data)
        while view:
            bps = proxy.bandwidth_bps
            n = len(view) if not bps else max(1, int(bps / 8 * SHAPING_SLICE_S))
            piece, view = view[:n], view[n:]
            if bps:
                now = time.monotonic()
                start = max(now, proxy._link_free_at[direction])
                proxy._link_free_at[direction] = start + len(piece) * 8 / bps
                if proxy._link_free_at[direction] > now:
                    await asyncio.sleep(proxy._link_free_at[direction] - now)
            writer.write(piece)
            await writer.drain()
            self.forwarded_since_arm[direction] += len(piece)
            if direction == "upstream":
                proxy._bytes_up += len(piece)
            else:
                proxy._bytes_down += len(piece)


class FaultProxy:
    """Loopback TCP proxy with scriptable faults; see the module docstring for the modes.

        proxy = FaultProxy(target=("127.0.0.1", 8443)); await proxy.start(); proxy.port
    """

    def __init__(
        self,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        target: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        listen = (_numeric(listen[0]), listen[1])
        target = (_numeric(target[0]), target[1])
        _check_loopback(listen[0], "listen")
        _check_loopback(target[0], "target")
        self.listen = listen
        self.target = target
        self.delay_s = 0.0
        self.bandwidth_bps: int | None = None
        self._mode: Mode = "pass"
        self._reset_rule: _ResetRule | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._sock: socket.socket | None = None
        self._closing_servers: list[asyncio.Server] = []
        self._port = listen[1]
        self._conns: set[_Connection] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._link_free_at: dict[str, float] = {"upstream": 0.0, "downstream": 0.0}
        self._accepted = self._resets = self._refused = 0
        self._bytes_up = self._bytes_down = 0
        self._reset_event = asyncio.Event()
        self._stopped = False

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> FaultProxy:
        """Listen (a port of 0 picks a free one, see :attr:`port`)."""
        self._listen()
        await asyncio.sleep(0)  # let the accept loop start
        return self

    async def stop(self) -> None:
        """Close the listener and every connection (with an RST); leaves no task behind."""
        self._stopped = True
        self._unlisten()
        for conn in list(self._conns):
            conn.reset(fault=False)
        self._flowing.set()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        for server in self._closing_servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._closing_servers.clear()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port the gateway connects to (stable across refuse/heal)."""
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.listen[0], self._port)

    # -- modes ------------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(
        self,
        mode: Mode,
        *,
        delay_s: float | None = None,
        bandwidth_bps: int | None = None,
        after_bytes: int | None = None,
        direction: Direction = "downstream",
        once: bool = False,
    ) -> None:
        """Switch fault mode; takes effect at once on open connections too.

        ``delay`` needs ``delay_s`` and ``throttle`` needs ``bandwidth_bps`` (both keep passing
        bytes); ``reset_mid_stream`` needs ``after_bytes`` (counted per connection from now, in
        ``direction``); ``once`` goes back to ``pass`` after the first reset it caused.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}")
        if direction not in ("upstream", "downstream"):
            raise ValueError(f"direction must be 'upstream' or 'downstream', not {direction!r}")
        if mode == "delay" and delay_s is None:
            raise ValueError("mode 'delay' needs delay_s")
        if mode == "throttle" and not bandwidth_bps:
            raise ValueError("mode 'throttle' needs bandwidth_bps")
        if mode == "reset_mid_stream" and (after_bytes is None or after_bytes < 0):
            raise ValueError("mode 'reset_mid_stream' needs after_bytes >= 0")
        if delay_s is not None:
            if delay_s < 0:
                raise ValueError("delay_s must not be negative")
            self.delay_s = delay_s
        if bandwidth_bps is not None:
            if bandwidth_bps <= 0:
                raise ValueError("bandwidth_bps must be positive")
            self.bandwidth_bps = bandwidth_bps

        was_refusing = self._mode == "refuse"
        self._mode = mode
        self._reset_rule = None
        if mode == "reset_mid_stream":
            assert after_bytes is not None
            self._reset_rule = _ResetRule(after_bytes, direction, once)
        elif mode == "reset_before_response":
            self._reset_rule = _ResetRule(0, "downstream", once)
        if self._reset_rule is not None:
            for conn in self._conns:
                conn.forwarded_since_arm = {"upstream": 0, "downstream": 0}

        if mode == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode in ("cut", "refuse"):
            for conn in list(self._conns):
                conn.reset()
        if mode == "refuse" and not was_refusing:
            self._unlisten()
        elif mode != "refuse" and was_refusing:
            self._listen()

    def heal(self) -> None:
        """Back to a clean pass-through: mode ``pass``, no delay, no bandwidth limit."""
        self.delay_s = 0.0
        self.bandwidth_bps = None
        self.set_mode("pass")

    def cut(self) -> None:
        """Reset every open connection now; new connections are reset on accept."""
        self.set_mode("cut")

    def blackhole(self) -> None:
        """Stop moving bytes both ways, connections stay open (timeouts must fire)."""
        self.set_mode("blackhole")

    def refuse(self) -> None:
        """The centre is down: open connections reset, new connects refused."""
        self.set_mode("refuse")

    def reset_mid_stream(
        self, after_bytes: int, direction: Direction = "downstream", *, once: bool = False
    ) -> None:
        """Reset each connection once ``after_bytes`` more bytes have gone ``direction``."""
        self.set_mode("reset_mid_stream", after_bytes=after_bytes, direction=direction, once=once)

    def reset_before_response(self, *, once: bool = False) -> None:
        """The request reaches the target (and is processed); the connection is reset the
        moment the first reply byte comes back, so the client never learns the outcome."""
        self.set_mode("reset_before_response", once=once)

    async def wait_for_reset(self, timeout: float = 5.0) -> None:
        """Wait until a fault rule resets a connection (after this call)."""
        self._reset_event.clear()
        await asyncio.wait_for(self._reset_event.wait(), timeout)

    # -- statistics -------------------------------------------------------------------------

    @property
    def stats(self) -> ProxyStats:
        return ProxyStats(
            accepted=self._accepted,
            active=len(self._conns),
            bytes_upstream=self._bytes_up,
            bytes_downstream=self._bytes_down,
            resets=self._resets,
            refused=self._refused,
        )

    # -- internals --------------------------------------------------------------------------

    def _reset_fired(self) -> None:
        self._reset_event.set()
        rule = self._reset_rule
        if rule is not None and rule.once:
            self._reset_rule = None
            self._mode = "pass"

    def _listen(self) -> None:
        # The socket listens before this returns, so a client connecting right after heal()
        # waits in the backlog instead of being refused; accepting starts on the next loop turn.
        if self._sock is not None or self._stopped:
            return
        family = socket.AF_INET6 if ":" in self.listen[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.listen[0], self._port))
            sock.listen(128)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._sock = sock
        self._spawn(self._serve(sock))

    async def _serve(self, sock: socket.socket) -> None:
        if sock.fileno() < 0:  # refused again before we got here
            return
        server = await asyncio.start_server(self._on_client, sock=sock)
        if self._sock is not sock:
            server.close()
            return
        self._server = server

    def _unlisten(self) -> None:
        server, sock = self._server, self._sock
        self._server = self._sock = None
        if server is not None:
            server.close()  # closes sock too
            self._closing_servers.append(server)
        elif sock is not None:
            sock.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._accepted += 1
        conn = _Connection(self, reader, writer)
        self._conns.add(conn)
        try:
            if self._mode in ("cut", "refuse") or self._stopped:
                self._refused += 1
                _reset(writer)
                return
            await conn.run()
        except asyncio.CancelledError:
            conn.reset()
            if not self._stopped:
                raise
            # Cancelled by stop(): end quietly. (Python 3.11's streams callback calls
            # task.exception() on a cancelled handler and logs a spurious traceback.)
        finally:
            self._conns.discard(conn)
            self._handlers.discard(task)


class ThreadedFaultProxy:
    """A :class:`FaultProxy` on its own event-loop thread, for synchronous tests and fixtures
    (a daemon under test runs as a subprocess; the test need not be async).

        with ThreadedFaultProxy(target=("127.0.0.1", 8443)) as proxy:
            proxy.port; proxy.cut(); proxy.heal(); proxy.stats
    """

    def __init__(
        self,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        target: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        self._listen, self._target = listen, target
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._proxy: FaultProxy | None = None

    def start(self) -> ThreadedFaultProxy:
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread

        async def make() -> FaultProxy:
            return await FaultProxy(self._listen, self._target).start()

        try:
            self._proxy = self._run(make())
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            if self._proxy is not None:
                self._run(self._proxy.stop())
        finally:
            self._shutdown_loop()

    def __enter__(self) -> ThreadedFaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _shutdown_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10.0)
        loop.close()

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None, "start() first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONNECT_TIMEOUT_S * 2)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            return fn(*args, **kwargs)

        return self._run(call())

    @property
    def proxy(self) -> FaultProxy:
        assert self._proxy is not None, "start() first"
        return self._proxy

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def address(self) -> tuple[str, int]:
        return self.proxy.address

    @property
    def mode(self) -> Mode:
        return self.proxy.mode

    @property
    def stats(self) -> ProxyStats:
        stats: ProxyStats = self._call(lambda: self.proxy.stats)
        return stats

    def set_shaping(
        self, *, delay_s: float | None = None, bandwidth_bps: int | None = None
    ) -> None:
        """Set latency and/or bandwidth (``bandwidth_bps=0`` removes the limit)."""

        def apply() -> None:
            if delay_s is not None:
                self.proxy.delay_s = delay_s
            if bandwidth_bps is not None:
                self.proxy.bandwidth_bps = bandwidth_bps or None

        self._call(apply)

    def set_mode(self, mode: Mode, **params: Any) -> None:
        self._call(self.proxy.set_mode, mode, **params)

    def heal(self) -> None:
        self._call(self.proxy.heal)

    def cut(self) -> None:
        self._call(self.proxy.cut)

    def blackhole(self) -> None:
        self._call(self.proxy.blackhole)

    def refuse(self) -> None:
        self._call(self.proxy.refuse)

    def reset_mid_stream(
        self, after_bytes: int, direction: Direction = "downstream", *, once: bool = False
    ) -> None:
        self._call(self.proxy.reset_mid_stream, after_bytes, direction, once=once)

    def reset_before_response(self, *, once: bool = False) -> None:
        self._call(self.proxy.reset_before_response, once=once)
