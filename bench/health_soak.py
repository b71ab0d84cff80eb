"""Steady-state soak of the health services: RSS, CPU % of one core, journal bytes per hour.

    .venv/bin/python bench/health_soak.py                 # 8 cameras, a modem, self; 60 s
    .venv/bin/python bench/health_soak.py --seconds 120 --accel 60 --json

What runs where
---------------
This process hosts the simulators (8 Digest-auth cameras with RTSP, a modem on a pty). The
gateway side -- the journal, the health hub, 8 camera monitors, the modem monitor and the self
monitor, exactly as ``gateway.health.services`` builds them -- runs in a *child* process, so its
RSS and CPU are its own. An idle ``python -c 'sleep'`` and a Python that has only imported the
gateway's libraries run beside it as baselines, measured in the same run.

Acceleration: every poll interval, the sample heartbeat and the telemetry batching window are
divided by ``--accel``; one real
second is ``accel`` seconds of gateway life. CPU is reported as measured (accelerated) and scaled
back to real intervals (divided by ``accel``: polling work is proportional to the poll rate).
Bytes per hour are per *simulated* hour: the child's storage writes (``write_bytes`` in
``/proc/<pid>/io``: what the kernel sent toward the disk for it, SQLite WAL, checkpoints and
fsyncs included) and the journal's logical growth (rows and payload bytes), over a window that
starts after a warm-up (start-up state changes are not steady state).

This isolates the health services; ``bench/steady_state.py`` soaks the whole daemon (16 readers,
2 relay boards, 8 cameras, the modem) at production intervals.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Production poll intervals (seconds); divided by --accel for the soak.
CAMERA_INTERVAL_S = 30.0
MODEM_INTERVAL_S = 60.0
SELF_INTERVAL_S = 60.0
HEARTBEAT_S = 900.0
TELEMETRY_BATCH_S = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- child: the gateway


async def _child_main(cfg_path: Path) -> None:
    from gateway.clock import SystemClock
    from gateway.config.schema import parse_section
    from gateway.health.config import HealthSection
    from gateway.health.services import build_services
    from gateway.journal import Journal

    spec = json.loads(cfg_path.read_text())
    section = parse_section(HealthSection, spec["health"], "health")
    clock = SystemClock()
    journal = await Journal.open(Path(spec["journal"]), gateway_id="gw-bench", clock=clock)
    services = build_services(
        section,
        journal,
        clock,
        None,
        base_dir=cfg_path.parent,
        data_dir=Path(spec["journal"]).parent,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    tasks = [asyncio.create_task(s.run(), name=s.name) for s in services]
    print("ready", flush=True)
    await stop.wait()
    for t in tasks:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    crashed = [
        (t.get_name(), r)
        for t, r in zip(tasks, results, strict=True)
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
    ]
    await journal.close()
    if crashed:
        print(f"crashed: {crashed}", file=sys.stderr)
        sys.exit(1)


# --------------------------------------------------------------------------- measuring


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(rest.split()[0]) * 1024
    return out


def _cpu_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def _journal_counts(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT cls, kind, count(*), coalesce(sum(length(payload)), 0) FROM events "
            "GROUP BY cls, kind"
        ).fetchall()
        last = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        states: dict[str, str] = {}
        for (payload,) in conn.execute(
            "SELECT payload FROM events WHERE kind = 'health.state' ORDER BY seq"
        ):
            p = json.loads(payload)
            states[p["device"]] = f"{p['state']} ({p['reason']})"
    finally:
        conn.close()
    return {
        "by_kind": {f"{c}/{k}": (n, b) for c, k, n, b in rows},
        "last_seq": last,
        "states": states,
    }


async def _idle_baselines() -> list[asyncio.subprocess.Process]:
    idle = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(3600)"
    )
    imported = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); import aiohttp, serial, sqlite_utils, "
        "gateway.journal, gateway.health.services, time; time.sleep(3600)",
    )
    return [idle, imported]


async def _parent(args: argparse.Namespace) -> dict[str, Any]:
    from hil_tests.sims.camera import CameraSim
    from hil_tests.sims.modem import ModemSim

    accel = args.accel
    tmp = Path(tempfile.mkdtemp(prefix="steady-state-", dir=args.tmpdir))
    cams = [
        CameraSim(f"cam{i}", password="bench-pw", algorithm="SHA-256" if i % 2 else "MD5",
                  jpeg_bytes=60_000)
        for i in range(args.cameras)
    ]  # fmt: skip
    for c in cams:
        await c.start()
    modem = ModemSim(tmp / "ttyModem", csq=(22, 99), creg=1, operator="Bench Mobile")
    await modem.start()
    pw = tmp / "cam.pass"
    pw.write_text("bench-pw\n")
    pw.chmod(0o600)
    health = {
        "cameras": [
            {"name": c.name, "snapshot_url": c.snapshot_url, "rtsp_url": c.rtsp_url,
             "username": "admin", "password_file": str(pw),
             "interval_s": CAMERA_INTERVAL_S / accel, "timeout_s": 5.0}
            for c in cams
        ],
        "modem": {"port": str(modem.path), "interval_s": MODEM_INTERVAL_S / accel},
        "system": {"interval_s": SELF_INTERVAL_S / accel},
        "sample_heartbeat_s": HEARTBEAT_S / accel,
        "telemetry_batch_s": TELEMETRY_BATCH_S / accel,
    }  # fmt: skip
    journal = tmp / "data" / "journal.db"
    spec = tmp / "bench.json"
    spec.write_text(json.dumps({"health": health, "journal": str(journal)}))

    baselines = await _idle_baselines()
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", str(spec), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        if line.strip() != b"ready":
            raise RuntimeError(f"child did not start: {line!r}")
        await asyncio.sleep(args.warmup)
        pid = child.pid
        t0, cpu0, wb0 = time.monotonic(), _cpu_ticks(pid), _write_bytes(pid)
        j0 = _journal_counts(journal)
        rss_samples = []
        end = t0 + args.seconds
        while time.monotonic() < end:
            await asyncio.sleep(min(1.0, end - time.monotonic()))
            rss_samples.append(_status(pid)["VmRSS"])
        t1, cpu1, wb1 = time.monotonic(), _cpu_ticks(pid), _write_bytes(pid)
        j1 = _journal_counts(journal)
        st = _status(pid)
        base_rss = [_status(p.pid)["VmRSS"] for p in baselines]
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
            await asyncio.wait_for(child.wait(), 15)
        for p in baselines:
            p.kill()
            await p.wait()
        await modem.stop()
        for c in cams:
            await c.stop()
    window = t1 - t0
    sim_hours = window * accel / 3600
    rows = j1["last_seq"] - j0["last_seq"]
    payload = sum(b for _, b in j1["by_kind"].values()) - sum(b for _, b in j0["by_kind"].values())
    per_kind = {
        k: (n - j0["by_kind"].get(k, (0, 0))[0]) / sim_hours for k, (n, _) in j1["by_kind"].items()
    }
    cpu_pct = (cpu1 - cpu0) / CLK_TCK / window * 100
    polls_per_real_s = (args.cameras * 2 * accel / CAMERA_INTERVAL_S) + accel / MODEM_INTERVAL_S
    return {
        "measured": "health services only (8 cameras incl. RTSP, modem, self) in one process",
        "cameras": args.cameras,
        "accel": accel,
        "window_real_s": round(window, 1),
        "window_simulated_h": round(sim_hours, 3),
        "child_exit": child.returncode,
        "rss_bytes": st["VmRSS"],
        "rss_peak_bytes": st["VmHWM"],
        "rss_min_max_in_window": [min(rss_samples), max(rss_samples)],
        "idle_python_rss_bytes": base_rss[0],
        "imports_only_python_rss_bytes": base_rss[1],
        "cpu_pct_one_core_accelerated": round(cpu_pct, 2),
        "cpu_pct_one_core_at_real_rate": round(cpu_pct / accel, 3),
        "probes_per_real_s_accelerated": round(polls_per_real_s, 1),
        "storage_write_bytes_per_hour": round((wb1 - wb0) / sim_hours),
        "journal_rows_per_hour": round(rows / sim_hours, 1),
        "journal_payload_bytes_per_hour": round(payload / sim_hours),
        "journal_rows_per_hour_by_kind": {k: round(v, 1) for k, v in sorted(per_kind.items())},
        "device_states_at_end": j1["states"],
        "journal_path": str(journal),
    }


def _print(r: dict[str, Any]) -> None:
    mib = 1024 * 1024
    print(f"steady state: {r['measured']}")
    print(f"  accelerated x{r['accel']}: {r['window_real_s']} s real = "
          f"{r['window_simulated_h']} h of gateway life (after warm-up)")  # fmt: skip
    print(f"  RSS                      {r['rss_bytes'] / mib:7.1f} MiB  "
          f"(peak {r['rss_peak_bytes'] / mib:.1f} MiB)")  # fmt: skip
    print(f"  idle Python RSS          {r['idle_python_rss_bytes'] / mib:7.1f} MiB  (baseline)")
    print(f"  Python + our imports RSS {r['imports_only_python_rss_bytes'] / mib:7.1f} MiB")
    print(f"  CPU, one core            {r['cpu_pct_one_core_accelerated']:7.2f} %  accelerated; "
          f"~{r['cpu_pct_one_core_at_real_rate']:.3f} % at real poll rates")  # fmt: skip
    print(f"  storage writes           {r['storage_write_bytes_per_hour'] / 1024:7.1f} KiB "
          "per hour  (/proc/<pid>/io write_bytes)")  # fmt: skip
    print(f"  journal growth           {r['journal_rows_per_hour']:7.1f} rows, "
          f"{r['journal_payload_bytes_per_hour'] / 1024:.1f} KiB payload per hour")  # fmt: skip
    for k, v in r["journal_rows_per_hour_by_kind"].items():
        print(f"      {k:32s} {v:8.1f} /h")
    print("  device states at the end:")
    for dev, state in sorted(r["device_states_at_end"].items()):
        print(f"      {dev:10s} {state}")
    if r["child_exit"] != 0:
        print(f"  WARNING: the gateway process exited with {r['child_exit']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="measurement window (real s)")
    p.add_argument("--warmup", type=float, default=5.0, help="real seconds before measuring")
    p.add_argument("--accel", type=float, default=30.0, help="divide every interval by this")
    p.add_argument("--cameras", type=int, default=8)
    p.add_argument("--tmpdir", default=None, help="where the journal goes (a real disk)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        asyncio.run(_child_main(Path(args.child)))
        return 0
    result = asyncio.run(_parent(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0 if result["child_exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
