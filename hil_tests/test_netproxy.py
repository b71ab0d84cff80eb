"""FaultProxy: each mode against plain asyncio streams and an aiohttp client and server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web

from hil_tests.line.leakcheck import no_leaks
from hil_tests.netproxy import FaultProxy, ThreadedFaultProxy


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    with no_leaks():
        yield


class Target:
    """A loopback TCP server that records what it receives and answers as told."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.connections = 0
        self.reply = b""  # sent once per connection, right after accept
        self.echo = True
        self.server: asyncio.Server | None = None
        self.port = 0
        self.handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.handlers):
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.connections += 1
        try:
            if self.reply:
                writer.write(self.reply)
                await writer.drain()
            while data := await reader.read(65536):
                self.received += data
                if self.echo:
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self.handlers.discard(task)


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = Target()
    await t.start()
    yield t
    await t.stop()


@pytest.fixture
async def proxy(target: Target) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(listen=("127.0.0.1", 0), target=("127.0.0.1", target.port)) as p:
        yield p


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


async def _read_n(reader: asyncio.StreamReader, n: int, timeout: float = 5.0) -> bytes:
    return await asyncio.wait_for(reader.readexactly(n), timeout)


# -- pass ------------------------------------------------------------------------------------


async def test_pass_forwards_a_megabyte_both_ways_intact(proxy: FaultProxy, target: Target) -> None:
    payload = os.urandom(1_000_000)  # opaque bytes: TLS records pass the same way
    reader, writer = await _connect(proxy)
    writer.write(payload)
    echoed = await _read_n(reader, len(payload))
    await _close(writer)
    assert echoed == payload
    assert bytes(target.received) == payload
    stats = proxy.stats
    assert stats.bytes_upstream == stats.bytes_downstream == len(payload)
    assert stats.accepted == 1 and stats.resets == 0


async def test_half_close_is_passed_on(proxy: FaultProxy, target: Target) -> None:
    target.echo = False
    target.reply = b"bye"
    reader, writer = await _connect(proxy)
    writer.write(b"last words")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5.0) == b"bye"  # then EOF from the target
    await _close(writer)
    assert bytes(target.received) == b"last words"


# -- delay and bandwidth ---------------------------------------------------------------------


async def test_delay_adds_latency_each_way_without_throttling_a_stream(
    proxy: FaultProxy,
) -> None:
    proxy.set_mode("delay", delay_s=0.15)
    reader, writer = await _connect(proxy)
    start = time.monotonic()
    writer.write(b"ping")
    assert await _read_n(reader, 4) == b"ping"
    rtt = time.monotonic() - start
    assert 0.3 <= rtt < 1.0, rtt
    # A stream of many chunks pays the latency once, not once per chunk.
    start = time.monotonic()
    for _ in range(50):
        writer.write(os.urandom(20_000))
        await writer.drain()
    await _read_n(reader, 1_000_000, timeout=10.0)
    assert time.monotonic() - start < 2.0
    await _close(writer)


async def test_bandwidth_limit_paces_a_transfer(proxy: FaultProxy, target: Target) -> None:
    proxy.set_mode("throttle", bandwidth_bps=800_000)  # 100 kB/s each way
    target.echo = False
    _reader, writer = await _connect(proxy)
    start = time.monotonic()
    writer.write(os.urandom(50_000))
    await writer.drain()
    deadline = time.monotonic() + 30.0
    while len(target.received) < 50_000 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - start
    await _close(writer)
    assert len(target.received) == 50_000
    # Throttled means never faster than the limit; a loaded machine may only be slower.
    # The achieved rate is a figure: bench/netproxy_throttle.py.
    assert elapsed >= 0.4, f"50 kB at 100 kB/s took {elapsed:.2f} s: the limit is not applied"
    assert elapsed <= 10.0, f"50 kB at 100 kB/s took {elapsed:.2f} s: the proxy stalls"


# -- blackhole -------------------------------------------------------------------------------


async def test_blackhole_makes_clients_time_out_then_heals_intact(
    proxy: FaultProxy, target: Target
) -> None:
    reader, writer = await _connect(proxy)
    writer.write(b"before ")
    assert await _read_n(reader, 7) == b"before "
    proxy.blackhole()
    writer.write(b"during the outage")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.readexactly(1), 0.4)
    assert bytes(target.received) == b"before "

    # A new client is accepted (the kernel does that) but the target never hears of it.
    r2, w2 = await _connect(proxy)
    w2.write(b"hello?")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(r2.readexactly(1), 0.3)
    assert target.connections == 1

    proxy.heal()  # the route comes back: TCP delivers what was held, in order
    assert await _read_n(reader, 17) == b"during the outage"
    assert await _read_n(r2, 6) == b"hello?"
    assert target.connections == 2
    await _close(writer)
    await _close(w2)


# -- cut and refuse --------------------------------------------------------------------------


async def test_cut_resets_open_connections_and_new_ones(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    writer.write(b"x")
    assert await _read_n(reader, 1) == b"x"
    proxy.cut()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 5.0)
    await _close(writer)

    r2, w2 = await _connect(proxy)  # the port still accepts...
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(r2.read(1), 5.0)  # ...and resets at once
    await _close(w2)
    assert proxy.stats.refused == 1

    proxy.heal()
    r3, w3 = await _connect(proxy)
    w3.write(b"again")
    assert await _read_n(r3, 5) == b"again"
    await _close(w3)


async def test_refuse_refuses_connects_and_heal_listens_on_the_same_port(
    proxy: FaultProxy,
) -> None:
    port = proxy.port
    proxy.refuse()
    await asyncio.sleep(0)
    with pytest.raises(ConnectionRefusedError):
        await _connect(proxy)
    proxy.heal()
    assert proxy.port == port
    reader, writer = await _connect(proxy)  # at once: the socket listens before heal() returns
    writer.write(b"up")
    assert await _read_n(reader, 2) == b"up"
    await _close(writer)


async def test_a_dead_target_resets_the_client(proxy: FaultProxy, target: Target) -> None:
    await target.stop()
    target.server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # for stop()
    reader, writer = await _connect(proxy)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 5.0)
    await _close(writer)


# -- resets mid-stream -----------------------------------------------------------------------


async def test_reset_mid_stream_upstream_passes_exactly_n_bytes(
    proxy: FaultProxy, target: Target
) -> None:
    target.echo = False
    proxy.reset_mid_stream(after_bytes=1000, direction="upstream")
    reader, writer = await _connect(proxy)
    writer.write(os.urandom(5000))
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 5.0)
    await _close(writer)
    await asyncio.sleep(0.05)
    assert len(target.received) == 1000
    assert proxy.stats.resets == 1


async def test_reset_mid_stream_downstream_cuts_a_reply_short(
    proxy: FaultProxy, target: Target
) -> None:
    target.echo = False
    target.reply = os.urandom(10_000)
    proxy.reset_mid_stream(after_bytes=3000)
    reader, writer = await _connect(proxy)
    got = bytearray()
    with pytest.raises(ConnectionResetError):
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), 5.0)
            if not chunk:
                break
            got += chunk
    await _close(writer)
    assert bytes(got) == target.reply[:3000]


# -- with aiohttp: the reset that hides the outcome of a processed request -------------------


@pytest.fixture
async def http_target() -> AsyncIterator[tuple[int, list[bytes]]]:
    processed: list[bytes] = []

    async def upload(request: web.Request) -> web.Response:
        processed.append(await request.read())
        return web.json_response({"acked": len(processed)})

    app = web.Application()
    app.router.add_post("/batches", upload)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield port, processed
    await runner.cleanup()


async def test_reset_before_response_after_the_request_was_processed(
    http_target: tuple[int, list[bytes]],
) -> None:
    port, processed = http_target
    async with FaultProxy(target=("127.0.0.1", port)) as proxy:
        url = f"http://127.0.0.1:{proxy.port}/batches"
        proxy.reset_before_response(once=True)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientError):
                async with session.post(url, data=b"batch-1") as resp:
                    await resp.read()
            # The centre did the work; the gateway cannot know it: it must retry idempotently.
            assert processed == [b"batch-1"]
            assert proxy.mode == "pass", "once=True disarms after the first reset"
            async with session.post(url, data=b"batch-1") as resp:
                assert (await resp.json()) == {"acked": 2}
        assert proxy.stats.resets == 1


async def test_http_through_each_shaping_mode(http_target: tuple[int, list[bytes]]) -> None:
    port, processed = http_target
    async with FaultProxy(target=("127.0.0.1", port)) as proxy, aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{proxy.port}/batches"
        for mode, params in [
            ("pass", {}),
            ("delay", {"delay_s": 0.05}),
            ("throttle", {"bandwidth_bps": 200_000}),
        ]:
            proxy.set_mode(mode, **params)  # type: ignore[arg-type]
            async with s.post(url, data=mode.encode()) as resp:
                assert resp.status == 200
        proxy.heal()
        proxy.blackhole()
        with pytest.raises(TimeoutError):
            async with s.post(url, data=b"lost", timeout=aiohttp.ClientTimeout(total=0.4)):
                pass
    assert processed == [b"pass", b"delay", b"throttle"]


# -- configuration errors --------------------------------------------------------------------


def test_only_loopback_is_allowed() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy(target=("192.0.2.1", 443))
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy(listen=("0.0.0.0", 0))
    FaultProxy(target=("localhost", 443))


def test_bad_mode_parameters_are_refused() -> None:
    proxy = FaultProxy()
    with pytest.raises(ValueError, match="unknown mode"):
        proxy.set_mode("flaky")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay_s"):
        proxy.set_mode("delay")
    with pytest.raises(ValueError, match="after_bytes"):
        proxy.set_mode("reset_mid_stream")
    with pytest.raises(ValueError, match="direction"):
        proxy.reset_mid_stream(10, direction="sideways")  # type: ignore[arg-type]


# -- from synchronous code -------------------------------------------------------------------


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


def test_threaded_proxy_for_synchronous_tests() -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    try:
        with ThreadedFaultProxy(target=server.server_address) as proxy:  # type: ignore[arg-type]
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
                sock.sendall(b"sync")
                assert sock.recv(4) == b"sync"
                proxy.cut()
                with pytest.raises(ConnectionResetError):
                    sock.recv(1)
            proxy.heal()
            proxy.set_shaping(delay_s=0.1)
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
                start = time.monotonic()
                sock.sendall(b"slow")
                assert sock.recv(4) == b"slow"
                assert time.monotonic() - start >= 0.2
            assert proxy.stats.resets == 1
    finally:
        server.shutdown()
        server.server_close()
        serving.join()
