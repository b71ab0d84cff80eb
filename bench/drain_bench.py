"""Drain a 7-day backlog to the centre over loopback TLS, beside a naive baseline.

    .venv/bin/python bench/drain_bench.py [--events 520000] [--naive-events 2000]
                                          [--batch-events N (default: sync.batch_max_events)]

What it does, all on 127.0.0.1:
1. ``compound-centre init`` + ``serve`` (its own process), two tokens, two gateways provisioned.
2. Fills a journal with a week of realistic events: ~50 health/telemetry samples a minute from
   readers, cameras, relay boards, the modem and the box itself, plus patrol taps and round
   results (evidence) - at least 500,000 rows, timestamps spread over 7 days.
3. Drains it with the real Uploader in a child process (so its peak RSS is the gateway's alone,
   read from VmHWM), through a pass-through FaultProxy that counts the bytes really on
   the wire (TLS records, HTTP headers, both directions).
4. Baseline in the same run: one request per event, no compression (same TLS, same centre), for
   a smaller count.
5. Audits the centre: every event exactly once, signatures valid.

Figures, not pass/fail. Expect a minute or two on a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DAY = 86400.0
CENTRE = [sys.executable, "-m", "centre.cli"]


# -- realistic week ----------------------------------------------------------------------------


def week_of_events(
    n_target: int, rng: random.Random
) -> list[tuple[float, str, str, dict[str, Any]]]:
    """(offset seconds, kind, cls, payload) for 7 days, ~n_target rows, ascending time."""
    out: list[tuple[float, str, str, dict[str, Any]]] = []
    minutes = int(7 * DAY / 60)
    per_minute = max(1, n_target // minutes)
    readers = [f"cp-{i:02d}" for i in range(8)]
    cameras = [f"cam-{i:02d}" for i in range(6)]
    for m in range(minutes):
        base = m * 60.0
        for k in range(per_minute - 1):
            t = base + k * 60.0 / per_minute
            choice = k % 5
            if choice == 0:
                dev = readers[k % len(readers)]
                out.append(
                    (
                        t,
                        "health.sample",
                        "telemetry",
                        {
                            "device": dev,
                            "kind": "reader",
                            "poll_ok": 600 - rng.randrange(3),
                            "poll_fail": rng.randrange(3),
                            "rssi_dbm": -40 - rng.randrange(20),
                            "uptime_s": int(base),
                        },
                    )
                )
            elif choice == 1:
                dev = cameras[k % len(cameras)]
                out.append(
                    (
                        t,
                        "health.sample",
                        "telemetry",
                        {
                            "device": dev,
                            "kind": "camera",
                            "reachable": True,
                            "rtsp_ms": round(rng.uniform(8, 90), 1),
                            "http_status": 200,
                        },
                    )
                )
            elif choice == 2:
                out.append(
                    (
                        t,
                        "health.sample",
                        "telemetry",
                        {
                            "device": "gateway",
                            "cpu_c": round(rng.uniform(42, 71), 2),
                            "load1": round(rng.uniform(0.05, 1.4), 2),
                            "disk_free_mb": 20_000 - m // 100,
                            "mem_free_mb": 300 + rng.randrange(40),
                        },
                    )
                )
            elif choice == 3:
                out.append(
                    (
                        t,
                        "health.sample",
                        "telemetry",
                        {
                            "device": "modem",
                            "rssi": -60 - rng.randrange(30),
                            "rsrq": -10 - rng.randrange(8),
                            "operator": "46000",
                            "registered": True,
                            "tech": "LTE",
                        },
                    )
                )
            else:
                out.append(
                    (
                        t,
                        "relay.readback",
                        "telemetry",
                        {
                            "board": 1,
                            "coils": [False] * 8,
                            "ok": True,
                            "ms": round(rng.uniform(17, 40), 1),
                        },
                    )
                )
        # evidence: a patrol tap every ~minute and a round result every ~2 h
        cp = readers[m % len(readers)]
        out.append(
            (
                base + 59.0,
                "tap",
                "evidence",
                {
                    "checkpoint": cp,
                    "card": f"{rng.getrandbits(56):014x}",
                    "node_counter": m,
                    "guard": f"G{m % 17:03d}",
                    "rssi": -30 - rng.randrange(10),
                },
            )
        )
        if m % 120 == 119:
            out.append(
                (
                    base + 59.5,
                    "patrol.round",
                    "evidence",
                    {"round": f"R{m // 120}", "verdict": "completed", "checkpoints": 8, "late": 0},
                )
            )
    return out


async def fill_journal(
    path: Path, gateway_id: str, rows: list[tuple[float, str, str, dict[str, Any]]]
) -> int:
    from gateway.clock import ManualClock
    from gateway.journal import Journal

    start = time.time() - 7 * DAY
    clock = ManualClock(wall=start)
    journal = await Journal.open(
        path, gateway_id=gateway_id, clock=clock, telemetry_budget_bytes=1 << 30, max_group=4096
    )
    chunk = 2000
    for i in range(0, len(rows), chunk):
        part = rows[i : i + chunk]
        clock.set_wall(start + part[0][0])
        await asyncio.gather(
            *(journal.append(kind, payload, cls=cls) for _, kind, cls, payload in part)
        )
    last = journal.last_seq
    await journal.close()
    return last


# -- the gateway side (child process) ----------------------------------------------------------


def peak_rss_kb() -> int:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a
    child would report its parent's peak (the parent holds the generated week in memory)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def gateway_side(data: Path, url: str, naive: bool, batch_events: int) -> None:
    from gateway.clock import SystemClock
    from gateway.journal import Journal
    from gateway.sync.config import SyncSection
    from gateway.sync.uploader import Uploader

    async def drain() -> dict[str, Any]:
        journal = await Journal.open(
            data / "journal.db",
            gateway_id=data.name,
            clock=SystemClock(),
            telemetry_budget_bytes=1 << 30,
        )
        total = (await journal.stats())["unsynced"]
        t0, cpu0, sys0 = time.perf_counter(), time.process_time(), os.times().system
        if naive:
            sent = await naive_drain(journal, data, url)
            counters = {"events": sent}
        else:
            section = SyncSection(
                centre_url=url,
                first_delay_max_s=0.0,
                idle_poll_s=0.2,
                batch_max_events=batch_events,
            )
            up = Uploader(journal, SystemClock(), section, data_dir=data, rng=random.Random(1))
            task = asyncio.create_task(up.run())
            # Done when no unsynced row is left: one lookup in the unsynced index. (Not
            # journal.stats(): its count is a full scan of the journal, 0.15 s at 514k rows,
            # under the reader lock the uploader reads with - it slowed what it measured.)
            while await journal.read_after(0, limit=1, unsynced_only=True):
                if task.done():
                    task.result()
                await asyncio.sleep(0.2)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            counters = dict(up.counters)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        sys_s = os.times().system - sys0
        await journal.close()
        return {
            "events": total,
            "elapsed_s": elapsed,
            "cpu_s": cpu,
            "sys_s": sys_s,
            "counters": counters,
            "peak_rss_kb": peak_rss_kb(),
        }

    profile_to = os.environ.get("DRAIN_PROFILE_GATEWAY")
    if profile_to:  # the event loop's thread only: worker threads show as waits on them
        import cProfile

        prof = cProfile.Profile()
        result = prof.runcall(asyncio.run, drain())
        prof.dump_stats(profile_to)
    else:
        result = asyncio.run(drain())
    print(json.dumps(result), flush=True)


async def naive_drain(journal: Any, data: Path, url: str) -> int:
    """One event per request, no gzip: the baseline the real uploader is measured against."""
    import aiohttp

    from gateway.sync.config import SyncPaths, SyncSection
    from gateway.sync.provision import load_private_key
    from gateway.sync.tls import client_ssl_context
    from wire import BATCH_TYPE, Ack, Batch, decode, seal

    paths = SyncPaths.from_section(SyncSection(), data)
    key = load_private_key(paths.key)
    ctx = client_ssl_context(paths.ca, paths.cert, paths.key)
    sent = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=1)) as s:
        after = 0
        while True:
            events = await journal.read_after(after, limit=200, unsynced_only=True)
            if not events:
                return sent
            for e in events:
                b = Batch.build(
                    journal.gateway_id,
                    f"n{e.seq}",
                    [e.to_dict()],
                    head_seq=e.seq,
                    created_at=time.time(),
                )
                async with s.post(
                    f"{url}/api/v1/ingest",
                    data=seal(BATCH_TYPE, b.to_dict(), key),
                    headers={"Content-Type": "application/json"},
                ) as r:
                    ack = Ack.from_dict(decode(await r.read()))
                assert ack.confirms_batch(b)
                await journal.mark_synced([e.seq])
                sent += 1
            after = events[-1].seq


# -- orchestration -------------------------------------------------------------------------------


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(data: Path, *args: str) -> str:
    out = subprocess.run(
        [*CENTRE, "--data", str(data), *args],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    return out.stdout


async def run_child(data: Path, url: str, naive: bool, batch_events: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--gateway-side",
        str(data),
        url,
        *(["--naive"] if naive else []),
        f"--batch-events={batch_events}",
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"gateway side failed ({proc.returncode})")
    return json.loads(out.decode().strip().splitlines()[-1])


async def orchestrate(n_events: int, n_naive: int, keep: bool, batch_events: int) -> None:
    from centre.audit import audit_gateway
    from centre.pki import CentrePaths
    from centre.store import SqliteRepository
    from gateway.sync.provision import provision
    from hil_tests.netproxy import FaultProxy

    tmp = Path(tempfile.mkdtemp(prefix="drain-bench-"))
    centre = tmp / "centre"
    cli(centre, "init")
    port = free_port()
    log = open(tmp / "centre.log", "wb")  # noqa: SIM115
    # DRAIN_PROFILE_CENTRE=<file>: the centre under cProfile (its event loop's thread only: the
    # parse and the database run on worker threads, which drain_profile.py covers).
    profile_centre = os.environ.get("DRAIN_PROFILE_CENTRE")
    serve = (
        [sys.executable, "-m", "cProfile", "-o", profile_centre, "-m", "centre.cli"]
        if profile_centre
        else CENTRE
    )
    server = await asyncio.create_subprocess_exec(
        *serve,
        "--data",
        str(centre),
        "serve",
        "--port",
        str(port),
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    try:
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            await asyncio.sleep(0.05)
        url = f"https://127.0.0.1:{port}"
        gws = {}
        for name in ("gw-bench-week", "gw-bench-naive"):
            tok = json.loads(cli(centre, "token", "create", "--compound", "Bench Court", "--json"))
            data = tmp / name
            await provision(
                url,
                tok["token"],
                data_dir=data,
                gateway_id=name,
                compound="Bench Court",
                ca_fingerprint=tok["ca_fingerprint"],
            )
            gws[name] = data

        rng = random.Random(2026)
        t = time.perf_counter()
        rows = week_of_events(n_events, rng)
        last = await fill_journal(gws["gw-bench-week"] / "journal.db", "gw-bench-week", rows)
        evidence = sum(1 for r in rows if r[2] == "evidence")
        print(
            f"journal: {last} events over 7 days ({evidence} evidence), "
            f"filled in {time.perf_counter() - t:.1f} s, "
            f"{(gws['gw-bench-week'] / 'journal.db').stat().st_size / 1e6:.0f} MB"
        )
        naive_rows = week_of_events(n_naive * 3, rng)[:n_naive]
        await fill_journal(gws["gw-bench-naive"] / "journal.db", "gw-bench-naive", naive_rows)

        results = {}
        for name, naive in (("gw-bench-week", False), ("gw-bench-naive", True)):
            proxy = FaultProxy(target=("127.0.0.1", port))
            await proxy.start()
            centre0, self0 = cpu_split(server.pid), time.process_time()
            try:
                r = await run_child(
                    gws[name], f"https://127.0.0.1:{proxy.port}", naive, batch_events
                )
            finally:
                stats = proxy.stats
                await proxy.stop()
            centre1 = cpu_split(server.pid)
            r["centre_cpu_s"] = sum(centre1) - sum(centre0)
            r["centre_sys_s"] = centre1[1] - centre0[1]
            r["proxy_cpu_s"] = time.process_time() - self0
            r["wire_up"], r["wire_down"] = stats.bytes_upstream, stats.bytes_downstream
            results[name] = r

        repo = await SqliteRepository.open(CentrePaths(centre).database)
        try:
            audits = {n: await audit_gateway(repo, n) for n in gws}
        finally:
            await repo.close()
    finally:
        server.terminate()
        await server.wait()
        log.close()

    print()
    print(
        f"{'':32} {'events':>8} {'events/s':>9} {'wire B/event':>13} {'up B/event':>11} "
        f"{'peak RSS MB':>12}"
    )
    for label, name in (
        ("uploader (batched, gzip, signed)", "gw-bench-week"),
        ("naive (1 request/event, plain)", "gw-bench-naive"),
    ):
        r = results[name]
        n = r["events"]
        print(
            f"{label:32} {n:>8} {n / r['elapsed_s']:>9.0f} "
            f"{(r['wire_up'] + r['wire_down']) / n:>13.1f} {r['wire_up'] / n:>11.1f} "
            f"{r['peak_rss_kb'] / 1024:>12.1f}"
        )
    w, nv = results["gw-bench-week"], results["gw-bench-naive"]
    speed = (w["events"] / w["elapsed_s"]) / (nv["events"] / nv["elapsed_s"])
    size = ((nv["wire_up"] + nv["wire_down"]) / nv["events"]) / (
        (w["wire_up"] + w["wire_down"]) / w["events"]
    )
    print(f"\nuploader vs naive: {speed:.0f}x the events/s, {size:.0f}x fewer wire bytes per event")
    print(
        "CPU per event (us), uploader run: "
        f"gateway {1e6 * w['cpu_s'] / w['events']:.0f}, "
        f"centre {1e6 * w['centre_cpu_s'] / w['events']:.0f}, "
        f"proxy {1e6 * w['proxy_cpu_s'] / w['events']:.0f}; "
        f"wall {1e6 * w['elapsed_s'] / w['events']:.0f}"
    )
    print(
        "  of which system (kernel: fsync, sockets, page faults): "
        f"gateway {1e6 * w['sys_s'] / w['events']:.0f}, "
        f"centre {1e6 * w['centre_sys_s'] / w['events']:.0f}"
    )
    c = w["counters"]
    print(
        f"uploader: batch_max_events {batch_events}, {c.get('prefetched', 0)} of "
        f"{c['batches']} batches prepared ahead"
    )
    print(
        f"uploader: {c['batches']} batches, canonical {c['raw_bytes'] / w['events']:.0f} B/event "
        f"→ gzip body {c['wire_bytes'] / w['events']:.1f} B/event, {c['errors']} errors"
    )
    print("wire bytes = everything through the proxy both ways (TLS records, HTTP, acks)")
    for name, a in audits.items():
        print(
            f"centre audit {name}: {'ok' if a.ok else a.problems}: {a.events} events, "
            f"{a.batches} batches, signatures valid, sequence-complete"
        )
    if keep:
        print(f"(work dir kept: {tmp})")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    from gateway.sync.config import SyncSection

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=520_000)
    p.add_argument("--naive-events", type=int, default=2_000)
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument(
        "--batch-events",
        type=int,
        default=SyncSection().batch_max_events,
        help="the uploader's sync.batch_max_events (default: the setting's default)",
    )
    p.add_argument("--gateway-side", nargs=2, metavar=("DATA", "URL"), help=argparse.SUPPRESS)
    p.add_argument("--naive", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.gateway_side:
        gw_data, gw_url = args.gateway_side
        gateway_side(Path(gw_data), gw_url, args.naive, args.batch_events)
        return
    asyncio.run(orchestrate(args.events, args.naive_events, args.keep, args.batch_events))


if __name__ == "__main__":
    main()
