"""The gateway's self-probe on hostile kernel files: whatever /proc and /sys hold (non-ASCII
digits, 5000-digit numbers, "nan", "1_000", binary junk), ``SelfProbe.read`` returns a sample
whose unreadable values are ``None`` ("unknown") -- never an exception -- within a second.

Before, ``"²".isdigit()`` let a superscript through to ``int()`` (ValueError), and a huge
thermal reading overflowed its division into a float (OverflowError).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.selfmon import SelfProbe

LIMIT_S = 1.0
FILES = (
    "sys/class/thermal/thermal_zone0/temp",
    "sys/devices/platform/soc/soc:firmware/get_throttled",
    "sys/class/hwmon/hwmon0/in0_lcrit_alarm",
    "proc/loadavg",
    "proc/meminfo",
    "proc/uptime",
    "proc/self/io",
)
ODD = "\u00b2\u0663\uff13\U0001d7d1"
contents = st.one_of(
    st.binary(max_size=200),
    st.text(st.sampled_from("0123456789 .:-_xabcdef\n" + ODD), max_size=60).map(str.encode),
    st.integers(20, 6000).map(lambda n: b"9" * n),  # past int()'s 4300-digit limit too
    st.sampled_from([b"nan", b"inf", b"-inf", b"1_000", b"\xb2", b"1e400", b"0x", b""]),
    st.sampled_from(
        [
            b"MemTotal: \xb2 kB\nMemAvailable: 9" + b"9" * 5000 + b" kB\n",
            b"write_bytes: \xd9\xa3\n",
            b"MemTotal:\n",
        ]
    ),
)


def _tree(root: Path, files: dict[str, bytes]) -> SelfProbe:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "sys/class/hwmon/hwmon0").mkdir(parents=True, exist_ok=True)
    (root / "sys/class/hwmon/hwmon0/name").write_text("rpi_volt\n")
    return SelfProbe(root, sys_root=root / "sys", proc_root=root / "proc", vcgencmd=None)


def _finite_or_none(value: object) -> bool:
    return value is None or not isinstance(value, float) or math.isfinite(value)


@settings(max_examples=200, deadline=None)
@given(files=st.fixed_dictionaries({f: contents for f in FILES}))
def test_self_probe_reads_none_not_errors(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        probe = _tree(Path(tmp), files)
        started = time.monotonic()
        sample = probe.read()
        assert time.monotonic() - started < LIMIT_S
    for name in ("cpu_temp_c", "load1", "load5", "uptime_s", "mem_total_bytes",
                 "process_write_bytes", "throttled"):  # fmt: skip
        assert _finite_or_none(getattr(sample, name)), (name, getattr(sample, name))


def test_superscript_and_huge_numbers_are_unknown(tmp_path: Path) -> None:
    probe = _tree(
        tmp_path,
        {
            "sys/class/thermal/thermal_zone0/temp": b"9" * 400 + b"\n",
            "sys/class/hwmon/hwmon0/in0_lcrit_alarm": "\u00b2\n".encode(),
            "proc/meminfo": "MemTotal: \u00b2 kB\nMemAvailable: 2048 kB\n".encode(),
        },
    )
    sample = probe.read()
    assert sample.cpu_temp_c is None and sample.throttled is None
    assert sample.mem_total_bytes is None and sample.mem_available_bytes == 2048 * 1024


def test_vcgencmd_printing_junk_is_unknown(tmp_path: Path) -> None:
    script = tmp_path / "vcgencmd"
    script.write_bytes(b"#!/bin/sh\nprintf 'throttled=\\262\\377'\n")
    os.chmod(script, 0o755)
    probe = SelfProbe(tmp_path, sys_root=tmp_path / "sys", proc_root=tmp_path / "proc",
                      vcgencmd=str(script))  # fmt: skip
    assert probe.throttled() is None
