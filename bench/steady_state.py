"""Steady state of the whole daemon on a simulated compound: RSS, CPU, bytes written per hour.

    .venv/bin/python bench/steady_state.py                  # 16 readers, 2 boards, 8 cameras, modem
    .venv/bin/python bench/steady_state.py --seconds 300 --json

The real ``compound-gw run`` (a subprocess) polls 16 OSDP readers in Secure Channel on two
paced 9600-baud RS-485 buses, two Modbus relay boards on a third, 8 Digest-auth cameras (every
30 s, production interval) and a modem (every 60 s), plus its own health. Nothing else happens:
no taps, no broadcasts; this is the box idling in a compound at night. Figures are taken over a
window after a warm-up (start-up state changes are not steady state):

- daemon RSS (and its peak), beside an idle ``python -c sleep`` measured in the same run;
- CPU % of one core (utime + stime of the daemon's process, all threads);
- bytes written per hour (``write_bytes`` of ``/proc/<pid>/io``: WAL, checkpoints, fsyncs) and
  journal rows per hour, extrapolated from the window. As in the field, the live status file
  sits on a tmpfs (``/dev/shm`` here, ``/run`` on the Pi), so it is not counted as disk writes.

The simulators run in this process; their cost is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gateway.journal import read_status  # noqa: E402
from hil_tests.benchfile import parse_bench  # noqa: E402
from hil_tests.compound import SimCompound  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def soak_bench(readers_per_bus: int = 8, cameras: int = 8) -> Any:
    lines = [
        {"name": "readers-a", "kind": "rs485", "port": "sim", "baud": 9600, "paced": True},
        {"name": "readers-b", "kind": "rs485", "port": "sim", "baud": 9600, "paced": True},
        {"name": "relays", "kind": "rs485", "port": "sim", "baud": 9600, "paced": True},
        {"name": "modem", "kind": "serial", "port": "sim", "baud": 115200},
    ]
    readers = [
        {"name": f"cp-{bus[-1]}{i}", "line": bus, "address": i}
        for bus in ("readers-a", "readers-b")
        for i in range(1, readers_per_bus + 1)
    ]
    boards = [
        {"name": "amp-main", "line": "relays", "address": 1, "profile": "waveshare_v2"},
        {"name": "zones-east", "line": "relays", "address": 2, "profile": "coils"},
    ]
    cams = [
        {"name": f"cam-{i}", "snapshot_url": "sim", "rtsp_url": "sim", "auth": "digest",
         "username": "admin"}
        for i in range(cameras)
    ]  # fmt: skip
    return parse_bench(
        {
            "bench": {"name": "soak", "description": "steady-state soak"},
            "lines": lines,
            "readers": readers,
            "relay_boards": boards,
            "cameras": cams,
            "modem": {"line": "modem", "csq": [21, 99], "operator": "SimTel"},
        }
    )


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def write_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/io") as fh:
        for line in fh:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=20.0, help="before the window")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="daemon-soak-") as tmp,
        tempfile.TemporaryDirectory(prefix="daemon-soak-run-", dir="/dev/shm") as run,
    ):
        # As in the field: live status on a tmpfs (/run), the journal on the disk.
        compound = SimCompound(soak_bench(), Path(tmp), gateway_id="gw-soak", runtime_dir=run)
        compound.start()
        idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        try:
            gw = compound.daemon()
            gw.start()
            online = sum(sim.wait_secure(60) for sim in compound.readers.values())
            time.sleep(args.warmup)
            pid = gw.pid
            t0, c0, w0 = time.monotonic(), cpu_ticks(pid), write_bytes(pid)
            rows0 = read_status(compound.journal_path)["events"]
            time.sleep(args.seconds)
            t1, c1, w1 = time.monotonic(), cpu_ticks(pid), write_bytes(pid)
            rows1 = read_status(compound.journal_path)["events"]
            mem = proc_status(pid)
            idle_rss = proc_status(idle.pid)["VmRSS"]
            rc = gw.terminate(timeout=15)
        finally:
            idle.kill()
            idle.wait()
            compound.stop()
    hours = (t1 - t0) / 3600
    result = {
        "readers": 16,
        "readers_in_secure_channel": online,
        "relay_boards": 2,
        "cameras": 8,
        "window_s": round(t1 - t0, 1),
        "daemon_rss_mib": round(mem["VmRSS"] / 2**20, 1),
        "daemon_peak_rss_mib": round(mem["VmHWM"] / 2**20, 1),
        "idle_python_rss_mib": round(idle_rss / 2**20, 1),
        "cpu_percent_of_one_core": round(100 * (c1 - c0) / CLK_TCK / (t1 - t0), 2),
        "bytes_written_per_hour": round((w1 - w0) / hours),
        "journal_rows_per_hour": round((rows1 - rows0) / hours),
        "exit_code": rc,
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print("daemon soak: the whole daemon on a simulated compound (no taps, night idle)")
        print(f"  readers in Secure Channel  {online}/16 (two buses, 9600 baud, paced)")
        print(f"  window                     {result['window_s']} s after {args.warmup} s warm-up")
        print(
            f"  daemon RSS                 {result['daemon_rss_mib']} MiB "
            f"(peak {result['daemon_peak_rss_mib']} MiB)"
        )
        print(f"  baseline: idle Python RSS  {result['idle_python_rss_mib']} MiB (same run)")
        print(f"  CPU                        {result['cpu_percent_of_one_core']} % of one core")
        print(f"  bytes written              {result['bytes_written_per_hour']:,} per hour")
        print(f"  journal rows               {result['journal_rows_per_hour']:,} per hour")
        print(f"  exit on SIGTERM            {rc}")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
