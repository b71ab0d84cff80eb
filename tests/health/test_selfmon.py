"""The self-probe on a fake /sys and /proc tree, and the self-monitor's judgement."""

from __future__ import annotations

import os
from pathlib import Path

from drivers.selfmon import (
    THROTTLE_UNDERVOLT_NOW,
    ClockStatus,
    SelfProbe,
    SelfSample,
    read_clock_status,
)
from gateway.clock import ManualClock
from gateway.health.config import SelfConfig
from gateway.health.hub import HealthHub
from gateway.health.model import State
from gateway.health.services import SelfMonitor


def _tree(root: Path, *, throttled: str | None = None, volt_alarm: str | None = None) -> None:
    (root / "sys/class/thermal/thermal_zone0").mkdir(parents=True)
    (root / "sys/class/thermal/thermal_zone0/temp").write_text("51234\n")
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/loadavg").write_text("0.52 0.40 0.30 1/200 1234\n")
    (root / "proc/meminfo").write_text(
        "MemTotal:        3884092 kB\nMemFree:  100 kB\nMemAvailable:    2000000 kB\n"
    )
    (root / "proc/uptime").write_text("12345.67 24000.00\n")
    (root / "proc/self/io").write_text("rchar: 1\nwchar: 2\nwrite_bytes: 40960\n")
    st = os.stat(root)
    (root / "proc/diskstats").write_text(
        f"   1 0 ram0 0 0 0 0 0 0 0 0 0 0 0\n"
        f" {os.major(st.st_dev)} {os.minor(st.st_dev)} mmcblk0p2 10 0 80 5 7 0 1000 9 0 0 0\n"
    )
    if throttled is not None:
        fw = root / "sys/devices/platform/soc/soc:firmware"
        fw.mkdir(parents=True)
        (fw / "get_throttled").write_text(throttled)
    if volt_alarm is not None:
        hw = root / "sys/class/hwmon/hwmon0"
        hw.mkdir(parents=True)
        (hw / "name").write_text("rpi_volt\n")
        (hw / "in0_lcrit_alarm").write_text(volt_alarm)


def _probe(root: Path) -> SelfProbe:
    return SelfProbe(root, sys_root=root / "sys", proc_root=root / "proc", vcgencmd=None)


def test_probe_reads_a_pi_like_tree(tmp_path: Path) -> None:
    _tree(tmp_path, throttled="50005\n")
    s = _probe(tmp_path).read()
    assert s.cpu_temp_c == 51.234
    assert (s.load1, s.load5) == (0.52, 0.40)
    assert (s.mem_total_bytes, s.mem_available_bytes) == (3884092 * 1024, 2000000 * 1024)
    assert s.uptime_s == 12345.67
    assert s.process_write_bytes == 40960
    assert s.device_write_bytes == 1000 * 512
    assert s.disk_free_bytes is not None and s.disk_free_bytes > 0
    assert s.throttled == 0x50005 and s.under_voltage_now and s.throttled_now


def test_hwmon_under_voltage_alarm_and_absent_is_unknown(tmp_path: Path) -> None:
    _tree(tmp_path / "a", volt_alarm="1\n")
    assert _probe(tmp_path / "a").read().throttled == THROTTLE_UNDERVOLT_NOW
    empty = tmp_path / "b"
    empty.mkdir()
    s = _probe(empty).read()
    assert s.cpu_temp_c is None and s.load1 is None and s.throttled is None
    assert s.under_voltage_now is None and s.uptime_s is None and s.device_write_bytes is None


def test_adjtimex_answers_on_this_machine() -> None:
    status = read_clock_status()
    assert status is not None and status.maxerror_us >= 0


def _sample(**kw: object) -> SelfSample:
    base: dict[str, object] = dict(
        cpu_temp_c=50.0, load1=0.1, load5=0.1, mem_total_bytes=1, mem_available_bytes=1,
        disk_free_bytes=10 << 30, disk_total_bytes=32 << 30, uptime_s=1.0,
        process_write_bytes=0, device_write_bytes=0, clock=ClockStatus(True, 0, 1, 1),
        throttled=0,
    )  # fmt: skip
    base.update(kw)
    return SelfSample(**base)  # type: ignore[arg-type]


def test_judgement_names_every_finding(tmp_path: Path) -> None:
    hub = HealthHub(None, ManualClock())  # type: ignore[arg-type]  # judge() never touches it
    mon = SelfMonitor(SelfConfig(), _probe(tmp_path), hub)
    assert mon.judge(_sample())[0] is State.OK
    assert mon.judge(_sample(cpu_temp_c=None, throttled=None))[0] is State.OK  # unknown is fine
    st, why = mon.judge(_sample(cpu_temp_c=80.0, clock=ClockStatus(False, 5, 1, 1)))
    assert st is State.DEGRADED and "CPU hot: 80.0 C" in why and "clock not synchronised" in why
    st, why = mon.judge(_sample(disk_free_bytes=10 << 20, throttled=THROTTLE_UNDERVOLT_NOW))
    assert st is State.DOWN and why == "disk nearly full: 10 MiB free"
    relaxed = SelfMonitor(SelfConfig(require_clock_sync=False), _probe(tmp_path), hub)
    assert relaxed.judge(_sample(clock=ClockStatus(False, 5, 1, 1)))[0] is State.OK
