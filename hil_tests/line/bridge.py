"""The bridge thread shared by :class:`SerialLine` and :class:`Rs485Bus`.

One thread per line polls the pty masters and a wake-up pipe, feeds what the transmitters wrote
into the line's :class:`~hil_tests.line.wire.Wire` objects, and writes what has arrived to the
receivers' masters. It is a plain thread with ``poll()``, independent of any asyncio loop, so
a simulator, the daemon under test and the test itself may each use their own.

Every change of state (faults, unplug, replug, stop) runs *on* the bridge thread through a
small command queue: nothing closes a descriptor another thread is polling, and ``unplug()``
returns only once the master is really closed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import math
import os
import queue
import random
import select
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hil_tests.line.pty import MAX_OUTPUT_BACKLOG, PtyEnd
from hil_tests.line.wire import NOISE, Faults, LineStats, Wire, char_time

T = TypeVar("T")

READ_CHUNK = 4096
# Characters a transmitter may have in flight before we stop reading it: past this its writes
# fill the pty buffer and block, as a UART driver's would.
MAX_TX_BACKLOG = 4096
OUT_HIGH_WATER = 16 * 1024  # unpaced mode: stop reading a transmitter while a receiver lags
COMMAND_TIMEOUT_S = 10.0
HOST = 0


@dataclass(frozen=True, slots=True)
class _Route:
    """Which wire a port transmits on and which wires it hears."""

    tx: str
    rx: tuple[str, ...]


class LineBridge:
    """Base of the line emulators: ptys, wires, the thread and the fault API.

    Subclasses say which ports exist and how they are wired (:meth:`_layout`).
    """

    def __init__(
        self,
        *,
        host_link: str | os.PathLike[str] | None,
        baud: int,
        paced: bool,
        seed: int | None,
        device_count: int,
    ) -> None:
        char_time(baud)  # validates
        self._baud = baud
        self._paced = paced
        self._rng = random.Random(seed)
        self._host_link = Path(host_link) if host_link is not None else None
        self._device_count = device_count
        self._routes = self._layout()
        self._wires: dict[str, Wire] = {
            name: Wire(self._byte_time(), random.Random(self._rng.getrandbits(64)))
            for name in sorted({r.tx for r in self._routes.values()})
        }
        self._ports: dict[int, PtyEnd | None] = {}
        self._extra: dict[str, dict[str, int]] = {
            name: {"overruns": 0, "lost_unplugged": 0} for name in self._wires
        }
        self._unplugs = 0
        self._replugs = 0
        self._commands: queue.SimpleQueue[
            tuple[Callable[[], Any], concurrent.futures.Future[Any]]
        ] = queue.SimpleQueue()
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._stopped = False
        self._error: BaseException | None = None

    # -- layout, given by subclasses --------------------------------------------------------

    def _layout(self) -> Mapping[int, _Route]:
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> LineBridge:
        """Open the ptys (and the host symlink) and start the bridge thread; idempotent."""
        if self._stopped:
            raise RuntimeError(f"{type(self).__name__} was stopped; make a new one")
        if self._thread is not None:
            return self
        try:
            for port in self._routes:
                link = self._host_link if port == HOST else None
                self._ports[port] = PtyEnd.open(link)
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
        except BaseException:
            self._close_all()
            raise
        self._thread = threading.Thread(
            target=self._run, name=f"{type(self).__name__}-bridge", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread, close every descriptor, remove the symlink; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None and self._thread.is_alive():
            self._stopping = True
            self._wake()
            self._thread.join(COMMAND_TIMEOUT_S)
            if self._thread.is_alive():  # pragma: no cover - a bug, shout about it
                raise RuntimeError("line bridge thread did not stop")
        self._close_all()
        if self._error is not None:
            raise RuntimeError("line bridge thread crashed") from self._error

    def __enter__(self: T) -> T:
        self.start()  # type: ignore[attr-defined]
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- paths ------------------------------------------------------------------------------

    @property
    def host_path(self) -> str:
        """What the gateway opens: the stable symlink (or the raw pty when no link was given)."""
        if self._host_link is not None:
            return str(self._host_link)
        return self._port(HOST).slave_path

    def _port(self, port: int) -> PtyEnd:
        if self._thread is None:
            raise RuntimeError(
                f"{type(self).__name__} is not started: call start() or use it in a with block"
            )
        end = self._ports.get(port)
        if end is None:
            raise RuntimeError("the host side is unplugged")
        return end

    # -- pacing and faults ------------------------------------------------------------------

    @property
    def baud(self) -> int:
        return self._baud

    @property
    def paced(self) -> bool:
        return self._paced

    def set_pacing(self, *, baud: int | None = None, paced: bool | None = None) -> None:
        """Change the baud rate and/or switch pacing on or off (takes effect for new bytes)."""
        if baud is not None:
            char_time(baud)

        def apply() -> None:
            if baud is not None:
                self._baud = baud
            if paced is not None:
                self._paced = paced
            for wire in self._wires.values():
                wire.byte_time = self._byte_time()

        self._call(apply)

    def _byte_time(self) -> float:
        return char_time(self._baud) if self._paced else 0.0

    def _set_faults(self, wires: list[str], faults: Faults) -> None:
        def apply() -> None:
            for name in wires:
                self._wires[name].faults = faults

        self._call(apply)

    def _inject(self, wire: str, data: bytes) -> None:
        def apply() -> None:
            w = self._wires[wire]
            w.send(NOISE, data, time.monotonic())
            w.count_garbage(len(data))

        self._call(apply)

    def stall(self, seconds: float) -> None:
        """The line passes nothing for ``seconds`` (returns at once); held bytes follow after."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")

        def apply() -> None:
            now = time.monotonic()
            for wire in self._wires.values():
                wire.stall(now, seconds)

        self._call(apply)

    # -- unplug / replug --------------------------------------------------------------------

    @property
    def plugged(self) -> bool:
        return self._ports.get(HOST) is not None

    def unplug(self) -> None:
        """Pull the host's adapter: its pty master closes (pyserial raises SerialException on
        the next read or write) and the symlink disappears. Bytes toward it are lost."""

        def apply() -> None:
            end = self._ports.get(HOST)
            if end is None:
                return
            self._ports[HOST] = None
            end.close()
            self._unplugs += 1

        self._call(apply)

    def replug(self) -> None:
        """Plug the adapter back: a new pty, the same symlink path (as udev's by-id gives)."""

        def apply() -> None:
            if self._ports.get(HOST) is not None:
                return
            self._ports[HOST] = PtyEnd.open(self._host_link)
            self._replugs += 1

        self._call(apply)

    # -- statistics -------------------------------------------------------------------------

    def _wire_stats(self, name: str) -> LineStats:
        c = self._wires[name].counters
        e = self._extra[name]
        return LineStats(
            received=c.received,
            forwarded=c.forwarded,
            flipped_bits=c.flipped_bits,
            corrupted=c.corrupted,
            dropped=c.dropped,
            garbage=c.garbage,
            collisions=c.collisions,
            overruns=e["overruns"],
            lost_unplugged=e["lost_unplugged"],
            stalls=c.stalls,
        )

    @property
    def stats(self) -> LineStats:
        """Counters of the whole line (every direction), a snapshot."""

        def snap() -> LineStats:
            total = LineStats(unplugs=self._unplugs, replugs=self._replugs)
            for name in self._wires:
                total = total + self._wire_stats(name)
            return total

        return self._call(snap)

    # -- the thread -------------------------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the bridge thread (or right here when it is not running)."""
        thread = self._thread
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return fn()
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._commands.put((fn, fut))
        self._wake()
        return fut.result(COMMAND_TIMEOUT_S)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"!")

    def _run_commands(self) -> None:
        while True:
            try:
                fn, fut = self._commands.get_nowait()
            except queue.Empty:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # handed to the caller, who re-raises it
                fut.set_exception(exc)

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._run_commands()
                now = time.monotonic()
                self._deliver(now)
                self._flush()
                poller = select.poll()
                poller.register(self._wake_r, select.POLLIN)
                fd_port: dict[int, int] = {}
                for port, end in self._ports.items():
                    if end is None:
                        continue
                    mask = 0
                    if self._may_read(port):
                        mask |= select.POLLIN
                    if end.out:
                        mask |= select.POLLOUT
                    if mask:
                        poller.register(end.master, mask)
                        fd_port[end.master] = port
                poller_timeout = self._poll_timeout_ms(now)
                for fd, events in poller.poll(poller_timeout):
                    if fd == self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 4096)
                        continue
                    port = fd_port[fd]
                    if events & select.POLLIN:
                        self._read(port)
        except BaseException as exc:  # kept for stop() to re-raise in the test's thread
            self._error = exc
        finally:
            # Unblock anyone waiting on a command that will never run.
            while True:
                try:
                    _fn, fut = self._commands.get_nowait()
                except queue.Empty:
                    break
                if fut.set_running_or_notify_cancel():
                    fut.set_exception(RuntimeError("line bridge stopped"))

    def _may_read(self, port: int) -> bool:
        wire = self._routes[port].tx
        if self._wires[wire].backlog(port) >= MAX_TX_BACKLOG:
            return False
        if self._paced:
            return True  # a real line has no flow control: a receiver that does not read overruns
        # Unpaced mode is for speed, and nobody wants bulk transfers to lose bytes there: hold
        # the transmitter while a receiver is behind.
        return not any(
            end is not None and len(end.out) >= OUT_HIGH_WATER and wire in self._routes[p].rx
            for p, end in self._ports.items()
        )

    def _poll_timeout_ms(self, now: float) -> int | None:
        dues = [d for w in self._wires.values() if (d := w.next_due()) is not None]
        if any(end is not None and end.out for end in self._ports.values()):
            dues.append(now + 0.002)  # a full receiver: retry soon even without POLLOUT news
        if not dues:
            return None
        return max(0, math.ceil((min(dues) - now) * 1000))

    def _read(self, port: int) -> None:
        end = self._ports[port]
        assert end is not None
        try:
            data = os.read(end.master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # cannot happen while we hold the slave; be safe
                return
            raise
        if data:
            self._wires[self._routes[port].tx].send(port, data, time.monotonic())

    def _deliver(self, now: float) -> None:
        for name, wire in self._wires.items():
            for delivery in wire.take_due(now):
                for port, route in self._routes.items():
                    if name not in route.rx or port in delivery.origins:
                        continue
                    end = self._ports.get(port)
                    if end is None:
                        self._extra[name]["lost_unplugged"] += len(delivery.data)
                        continue
                    room = MAX_OUTPUT_BACKLOG - len(end.out)
                    if room < len(delivery.data):
                        self._extra[name]["overruns"] += len(delivery.data) - max(room, 0)
                    end.out += delivery.data[: max(room, 0)]

    def _flush(self) -> None:
        for end in self._ports.values():
            if end is None or not end.out:
                continue
            try:
                n = os.write(end.master, end.out)
            except BlockingIOError:
                continue
            del end.out[:n]

    def _close_all(self) -> None:
        for port, end in list(self._ports.items()):
            if end is not None:
                end.close()
            self._ports[port] = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
