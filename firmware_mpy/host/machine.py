# Host stand-in for MicroPython's `machine` module, for tests under the WebAssembly
# MicroPython (which has no `machine`) and CPython.  Never copied to a node.
#
# UART is backed by an injectable byte backend: BytesBackend (tests push bytes in and
# read what was sent) or FdBackend (a pty / pipe file descriptor, CPython only).  Pin
# records every change with a microsecond timestamp so tests can check RS-485 timing;
# WDT counts feeds; reset() raises ResetRequested so a test can "power-cycle".

import time

try:
    _ticks_us = time.ticks_us
except AttributeError:  # CPython
    def _ticks_us():
        return int(time.monotonic() * 1000000)


class ResetRequested(Exception):
    pass


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self._v = 0 if value is None else (1 if value else 0)
        self.history = []

    def init(self, mode=-1, pull=-1, value=None):
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        self.history.append((_ticks_us(), self._v))
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class BytesBackend:
    """In-memory wire end: push(b) makes bytes readable; sent collects what was written."""

    def __init__(self, on_write=None):
        self.rx = bytearray()
        self.sent = bytearray()
        self.on_write = on_write

    def push(self, data):
        self.rx.extend(data)

    def any(self):
        return len(self.rx)

    def read(self, n):
        n = min(n, len(self.rx))
        if n == 0:
            return None
        b = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return b

    def write(self, data):
        self.sent.extend(data)
        if self.on_write is not None:
            self.on_write(bytes(data))
        return len(data)


class FdBackend:
    """A non-blocking file descriptor (pty master/slave, pipe) as the wire (CPython)."""

    def __init__(self, rfd, wfd=None):
        import os
        self._os = os
        self.rfd = rfd
        self.wfd = rfd if wfd is None else wfd
        os.set_blocking(rfd, False)
        self._pending = b""

    def any(self):
        if not self._pending:
            try:
                self._pending = self._os.read(self.rfd, 512)
            except (BlockingIOError, OSError):
                self._pending = b""
        return len(self._pending)

    def read(self, n):
        self.any()
        b, self._pending = self._pending[:n], self._pending[n:]
        return b or None

    def write(self, data):
        view = memoryview(bytes(data))
        while view:
            try:
                k = self._os.write(self.wfd, view)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            view = view[k:]
        return len(data)


class UART:
    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, tx=None, rx=None,
                 timeout=0, backend=None, **kw):
        self.id = id
        self.baudrate = baudrate
        self.backend = backend if backend is not None else BytesBackend()
        self.tx_log = []  # (ticks_us, bytes)

    def init(self, baudrate=None, **kw):
        if baudrate is not None:
            self.baudrate = baudrate

    def any(self):
        return self.backend.any()

    def read(self, n=None):
        return self.backend.read(self.backend.any() if n is None else n)

    def write(self, data):
        self.tx_log.append((_ticks_us(), bytes(data)))
        return self.backend.write(data)

    def flush(self):
        pass

    def deinit(self):
        pass


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0

    def feed(self):
        self.feeds += 1


def reset():
    raise ResetRequested()


def soft_reset():
    raise ResetRequested()


def unique_id():
    return b"\x10\x32\x54\x76\x98\xba"


def freq(hz=None):
    return 160000000
