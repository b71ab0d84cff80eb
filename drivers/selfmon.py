"""The gateway looking at itself: temperature, load, memory, disk, writes, uptime, clock, power.

Everything is read from the kernel's files (``/sys``, ``/proc``), ``statvfs``, ``adjtimex(2)``
through ctypes, and, on a Raspberry Pi, the firmware's throttling flags (sysfs ``get_throttled``,
the ``rpi_volt`` hwmon alarm, or ``vcgencmd get_throttled``). Whatever this machine does not
expose is ``None`` ("unknown"), never an error. Reads block briefly: call :meth:`SelfProbe.read`
through ``asyncio.to_thread``. The roots are parameters so tests can point at a fake tree.

    probe = SelfProbe(journal_dir=Path("/var/lib/compound-gw"))
    sample = probe.read()          # SelfSample(cpu_temp_c=48.3, load1=0.12, ...)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

# adjtimex(2)
TIME_ERROR: Final = 5
STA_UNSYNC: Final = 0x0040
# Raspberry Pi firmware get_throttled bits.
THROTTLE_UNDERVOLT_NOW: Final = 1 << 0
THROTTLE_FREQ_CAPPED_NOW: Final = 1 << 1
THROTTLE_THROTTLED_NOW: Final = 1 << 2
THROTTLE_SOFT_TEMP_NOW: Final = 1 << 3
THROTTLE_UNDERVOLT_SEEN: Final = 1 << 16
VCGENCMD_TIMEOUT_S: Final = 2.0


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; ctypes inserts the same padding the C compiler does.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """The kernel's view of the wall clock: synchronised, and its error bound in microseconds."""

    synced: bool
    state: int
    maxerror_us: int
    esterror_us: int


@functools.cache
def _libc() -> ctypes.CDLL:
    """libc, looked up once (``find_library`` forks ``ldconfig -p`` on every call)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def read_clock_status() -> ClockStatus | None:
    """adjtimex(2) in read-only mode (modes = 0, allowed without privileges); None if absent."""
    try:
        libc = _libc()
        tx = _Timex()
        state = int(libc.adjtimex(ctypes.byref(tx)))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    synced = state != TIME_ERROR and not (tx.status & STA_UNSYNC)
    return ClockStatus(synced, state, int(tx.maxerror), int(tx.esterror))


@dataclass(frozen=True, slots=True)
class SelfSample:
    """One reading. Counters (``*_write_bytes``) are cumulative; the service makes rates."""

    cpu_temp_c: float | None
    load1: float | None
    load5: float | None
    mem_total_bytes: int | None
    mem_available_bytes: int | None
    disk_free_bytes: int | None
    disk_total_bytes: int | None
    uptime_s: float | None
    process_write_bytes: int | None
    device_write_bytes: int | None
    clock: ClockStatus | None
    throttled: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def under_voltage_now(self) -> bool | None:
        return None if self.throttled is None else bool(self.throttled & THROTTLE_UNDERVOLT_NOW)

    @property
    def throttled_now(self) -> bool | None:
        if self.throttled is None:
            return None
        mask = THROTTLE_FREQ_CAPPED_NOW | THROTTLE_THROTTLED_NOW | THROTTLE_SOFT_TEMP_NOW
        return bool(self.throttled & mask)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


# Numbers in kernel files are ASCII. int() and float() would also take other scripts' digits,
# "1_000", "inf" or "nan", and int() of 5000 digits raises; str.isdigit() lets "²" through to
# an int() that then fails. Whatever does not match is unknown (None), never an error.
_INT = re.compile(r"-?[0-9]{1,20}")
_HEX = re.compile(r"(?:0[xX])?[0-9a-fA-F]{1,16}")
_FLOAT = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]{1,15})?")


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if _INT.fullmatch(text) else None


def _hex(text: str) -> int | None:
    text = text.strip()
    return int(text, 16) if _HEX.fullmatch(text) else None


def _float(text: str) -> float | None:
    text = text.strip()
    return float(text) if _FLOAT.fullmatch(text) else None


class SelfProbe:
    """Reads the gateway's own health. Blocking: call :meth:`read` from a worker thread."""

    def __init__(
        self,
        journal_dir: Path,
        *,
        sys_root: Path = Path("/sys"),
        proc_root: Path = Path("/proc"),
        vcgencmd: str | None = "auto",
        pid: int | str = "self",
    ) -> None:
        self.journal_dir = journal_dir
        self.sys_root = sys_root
        self.proc_root = proc_root
        self.pid = pid
        self.vcgencmd = shutil.which("vcgencmd") if vcgencmd == "auto" else vcgencmd

    def read(self) -> SelfSample:
        mem_total, mem_avail = self.memory()
        disk_free, disk_total = self.disk()
        load = self.load()
        return SelfSample(
            cpu_temp_c=self.cpu_temp_c(),
            load1=None if load is None else load[0],
            load5=None if load is None else load[1],
            mem_total_bytes=mem_total,
            mem_available_bytes=mem_avail,
            disk_free_bytes=disk_free,
            disk_total_bytes=disk_total,
            uptime_s=self.uptime_s(),
            process_write_bytes=self.process_write_bytes(),
            device_write_bytes=self.device_write_bytes(),
            clock=read_clock_status(),
            throttled=self.throttled(),
        )

    def cpu_temp_c(self) -> float | None:
        """The first thermal zone that reads (the SoC on a Pi), in degrees Celsius."""
        zones = sorted((self.sys_root / "class/thermal").glob("thermal_zone*"))
        for zone in zones:
            text = _read(zone / "temp")
            millidegrees = None if text is None else _int(text)
            if millidegrees is not None:
                return millidegrees / 1000.0
        return None

    def load(self) -> tuple[float, float] | None:
        parts = (_read(self.proc_root / "loadavg") or "").split()
        values = [_float(p) for p in parts[:2]]
        if len(values) < 2 or values[0] is None or values[1] is None:
            return None
        return values[0], values[1]

    def memory(self) -> tuple[int | None, int | None]:
        text = _read(self.proc_root / "meminfo") or ""
        vals: dict[str, int] = {}
        for line in text.splitlines():
            name, _, rest = line.partition(":")
            fields = rest.split()
            kib = _int(fields[0]) if fields else None
            if kib is not None:
                vals[name] = kib * 1024
        return vals.get("MemTotal"), vals.get("MemAvailable")

    def disk(self) -> tuple[int | None, int | None]:
        try:
            st = os.statvfs(self.journal_dir)
        except OSError:
            return None, None
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

    def uptime_s(self) -> float | None:
        parts = (_read(self.proc_root / "uptime") or "").split()
        return _float(parts[0]) if parts else None

    def process_write_bytes(self) -> int | None:
        """Bytes this process caused to be written to storage (``write_bytes`` in proc io)."""
        text = _read(self.proc_root / str(self.pid) / "io")
        for line in (text or "").splitlines():
            if line.startswith("write_bytes:"):
                return _int(line.partition(":")[2])
        return None

    def device_write_bytes(self) -> int | None:
        """Bytes written to the journal's block device since boot (all processes: SD wear)."""
        try:
            dev = os.stat(self.journal_dir).st_dev
        except OSError:
            return None
        major, minor = os.major(dev), os.minor(dev)
        text = _read(self.proc_root / "diskstats") or ""
        for line in text.splitlines():
            f = line.split()
            # major minor name reads merged sectors ms writes merged sectors_written ...
            if len(f) >= 10 and f[0] == str(major) and f[1] == str(minor):
                sectors = _int(f[9])
                return None if sectors is None else sectors * 512
        return None

    def throttled(self) -> int | None:
        """Pi firmware throttling flags; None where the machine does not say (not a Pi)."""
        text = _read(self.sys_root / "devices/platform/soc/soc:firmware/get_throttled")
        flags = None if text is None else _hex(text)
        if flags is not None:
            return flags
        for hwmon in sorted((self.sys_root / "class/hwmon").glob("hwmon*")):
            if (_read(hwmon / "name") or "").strip() == "rpi_volt":
                alarm = _int(_read(hwmon / "in0_lcrit_alarm") or "")
                if alarm is not None:
                    return THROTTLE_UNDERVOLT_NOW if alarm else 0
        if self.vcgencmd:
            try:
                out = subprocess.run(
                    [self.vcgencmd, "get_throttled"],
                    capture_output=True,
                    text=True,
                    timeout=VCGENCMD_TIMEOUT_S,
                    check=False,
                ).stdout
            except (OSError, subprocess.SubprocessError, ValueError):
                return None
            return _hex(out.strip().partition("=")[2])
        return None
