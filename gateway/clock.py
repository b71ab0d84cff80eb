"""Time as the gateway sees it, injectable so engines and tests can run on any clock.

clock = SystemClock()
clock.wall(), clock.boottime(), clock.synced(), clock.boot_id
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
import uuid
from pathlib import Path
from typing import Protocol

_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
_TIME_ERROR = 5  # adjtimex() return value: clock not synchronised


class Clock(Protocol):
    """What the gateway needs to know about time."""

    boot_id: str

    def wall(self) -> float:
        """Unix seconds."""
        ...

    def boottime(self) -> float:
        """CLOCK_BOOTTIME seconds (keeps counting through suspend)."""
        ...

    def monotonic(self) -> float:
        """For timers and deadlines."""
        ...

    def synced(self) -> bool:
        """Whether the wall clock is synchronised (NTP/GNSS) right now."""
        ...


def read_boot_id() -> str:
    try:
        return _BOOT_ID_PATH.read_text().strip()
    except OSError:
        return "unknown-" + uuid.uuid4().hex


class _Timex(ctypes.Structure):
    # Only ``modes`` is read by the kernel for a query; the rest is room for it to fill in.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 508)]


@functools.cache
def _libc() -> ctypes.CDLL:
    """libc, looked up once: ``find_library`` runs ``ldconfig -p`` (a fork and exec) per call,
    which cost the idle daemon a subprocess every ``sync_ttl_s``."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def clock_synchronised() -> bool:
    """True when the kernel says the clock is synchronised (adjtimex state is not TIME_ERROR)."""
    try:
        libc = _libc()
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return False
    return bool(state >= 0 and state != _TIME_ERROR)


class SystemClock:
    """The real clocks. The synchronised flag is re-read at most every ``sync_ttl_s``."""

    def __init__(self, sync_ttl_s: float = 10.0) -> None:
        self.boot_id = read_boot_id()
        self._sync_ttl_s = sync_ttl_s
        self._sync_checked = -1e18
        self._sync = False

    def wall(self) -> float:
        return time.time()

    def boottime(self) -> float:
        return time.clock_gettime(time.CLOCK_BOOTTIME)

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        now = time.monotonic()
        if now - self._sync_checked >= self._sync_ttl_s:
            self._sync = clock_synchronised()
            self._sync_checked = now
        return self._sync


class ManualClock:
    """A clock tests move by hand: ``clock.advance(60)``."""

    def __init__(
        self, wall: float = 1_790_000_000.0, *, synced: bool = True, boot_id: str = "boot-test"
    ) -> None:
        self.boot_id = boot_id
        self._wall = wall
        self._mono = 1000.0
        self._synced = synced

    def wall(self) -> float:
        return self._wall

    def boottime(self) -> float:
        return self._mono

    def monotonic(self) -> float:
        return self._mono

    def synced(self) -> bool:
        return self._synced

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    def set_wall(self, wall: float) -> None:
        """Step the wall clock (as NTP might); monotonic time does not move."""
        self._wall = wall

    def set_synced(self, synced: bool) -> None:
        self._synced = synced


class AcceleratedClock:
    """Simulated wall time for benches: ``start`` at real time ``anchor``, running ``rate``x.

    ``compound-gw run --sim-clock START@ANCHOR --sim-rate 600`` lets a HIL bench play a night of
    patrols in a minute: the daemon and the test derive the same simulated time from the same
    real wall clock, so the test knows exactly when "02:40" is. Events then carry simulated
    times and the clock counts as synchronised; timers and deadlines (``monotonic``) stay real.
    Never for a gateway in the field.
    """

    def __init__(self, start: float, anchor: float, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.boot_id = read_boot_id()
        self.start = start
        self.anchor = anchor
        self.rate = rate

    def wall(self) -> float:
        return self.start + (time.time() - self.anchor) * self.rate

    def boottime(self) -> float:
        return time.clock_gettime(time.CLOCK_BOOTTIME)

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        return True

    def real_time_of(self, simulated: float) -> float:
        """The real Unix time at which the simulated clock shows ``simulated``."""
        return self.anchor + (simulated - self.start) / self.rate
