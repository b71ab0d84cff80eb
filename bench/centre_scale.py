"""Many gateways pushing a day's events to one centre, on SQLite and on PostgreSQL, same run.

    .venv/bin/python bench/centre_scale.py [--gateways 50] [--events-per-gateway 2000]
        [--batch-events 500] [--client-procs 2] [--max-concurrent-ingest 8]
        [--rounds-per-day 12] [--backends sqlite,postgres] [--profile-centre FILE]
        [--rate EVENTS_PER_S] [--centres N]

What it does, all on 127.0.0.1, once per backend (SQLite first, the baseline):
1. ``compound-centre init`` once; ``--gateways`` gateways get an Ed25519 key and a client
   certificate signed directly with the centre CA (:func:`centre.pki.check_csr` and
   :func:`~centre.pki.issue_client_certificate`, what ``POST /api/v1/enroll`` does; the HTTP
   round trip of 2,000 enrollments is not what is measured) and are enrolled in the backend's
   registry with a single-use token each, as the endpoint does.
2. The month before the pushed day is seeded straight into the repository (``--rounds-per-day``
   ``patrol.round`` verdicts a day a compound, signed batches), so the monthly bulletin has a
   month of 2,000 compounds to read.
3. ``compound-centre serve`` in its own process (its CPU is read from /proc, its threads
   included; PostgreSQL's server processes are counted apart). ``--client-procs`` client
   processes hold the gateways: each gateway has its own TLS session with its own certificate
   (:func:`gateway.sync.tls.client_ssl_context`), asks ``/ingest/state`` (as the uploader does
   at start; this opens the connections before the clock starts), then posts its day of events
   (``--events-per-gateway``: health samples, taps and the day's round verdicts) in batches of
   ``--batch-events``, one in flight at a time, built and sealed by the uploader's own
   :func:`gateway.sync.uploader.seal_batch` (signed, gzip) before the clock starts, acks read by
   :func:`gateway.sync.replies.parse_ack` and judged by :func:`gateway.sync.policy.judge_ack`;
   429/503 wait for Retry-After (plus the uploader's jitter) and retry. Not the whole Uploader:
   2,000 SQLite journals would be the gateways' cost, not the centre's.
   **Closed loop** (the default): every gateway posts its next batch as soon as the last one is
   acked, so all the day's events wait at once (a fleet back from an outage). **Paced**
   (``--rate``, an open loop): the fleet offers ``--rate`` events/s in all, each gateway one
   batch every ``gateways x batch-events / rate`` seconds from a random phase (gateways
   sending as they collect); a batch's latency counts from its *scheduled* time, so a batch
   held up behind its gateway's previous one (one in flight per gateway) is charged that wait.
   ``--centres N`` (PostgreSQL only): N ``serve --reuse-port`` processes on the one port and
   the one database; the kernel spreads the gateways' connections over them, and the centre
   CPU column is their sum.
4. Figures: ingest events/s (first post to last ack), batch-to-ack latency p50/p99 (first
   attempt to the confirming ack, retries included) and per request, CPU seconds per 10k events
   of the centre process (and of PostgreSQL's processes), database size per million events
   stored (all events, the seeded month included), and the daily and monthly bulletin of the
   pushed day's month timed through ``compound-centre bulletin`` (process start included).
5. Audit: every gateway's seqs at the centre are exactly 1..N, once each.

PostgreSQL runs on a throwaway cluster (tests/pg_cluster.py) with fsync on, as SQLite runs with
``synchronous=FULL``. Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._figures import pct  # noqa: E402

CENTRE = [sys.executable, "-m", "centre.cli"]
TZ = "Asia/Shanghai"
ENV = os.environ | {"PYTHONPATH": str(REPO)}


# -- events ------------------------------------------------------------------------------------


def round_event(seq: int, day: date, r: int, rounds: int, rng: random.Random) -> dict[str, Any]:
    tz = ZoneInfo(TZ)
    start = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(hours=24 * r / rounds)
    end = start + timedelta(minutes=50)
    return {
        "seq": seq,
        "kind": "patrol.round",
        "cls": "evidence",
        "payload": {
            "round": f"s{r}@{start.strftime('%Y-%m-%dT%H:%M')}",
            "route": "r",
            "day": day.isoformat(),
            "local_start": start.isoformat(),
            "local_end": end.isoformat(),
            "verdict": "missed" if rng.random() < 0.05 else "completed",
            "revision": 1,
            "reasons": [],
            "checkpoints": {"a": 1, "b": 1, "c": 1},
            "responsible": ["g1"],
        },
        "wall_time": end.timestamp() + 60,
        "mono_time": float(seq),
        "boot_id": "b" * 16,
        "clock_synced": True,
    }


def day_events(
    first_seq: int, n: int, day: date, rounds: int, rng: random.Random
) -> list[dict[str, Any]]:
    """``n`` events spread over ``day``: the day's round verdicts, a tap every tenth event,
    health samples for the rest (the shapes of bench/drain_bench.py)."""
    t0 = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(TZ)).timestamp()
    rounds_at = {int(n * (r + 1) / (rounds + 1)): r for r in range(rounds)} if n > rounds else {}
    out: list[dict[str, Any]] = []
    for i in range(n):
        seq = first_seq + i
        if i in rounds_at:
            out.append(round_event(seq, day, rounds_at[i], rounds, rng))
            continue
        t = t0 + 86400.0 * i / n
        if i % 10 == 9:
            kind, cls = "tap", "evidence"
            payload: dict[str, Any] = {
                "checkpoint": f"cp-{i % 8:02d}",
                "card": f"{rng.getrandbits(56):014x}",
                "node_counter": i,
                "guard": f"G{i % 17:03d}",
                "rssi": -30 - rng.randrange(10),
            }
        else:
            kind, cls = "health.sample", "telemetry"
            payload = {
                "device": f"cp-{i % 8:02d}",
                "kind": "reader",
                "poll_ok": 600 - rng.randrange(3),
                "poll_fail": rng.randrange(3),
                "rssi_dbm": -40 - rng.randrange(20),
                "uptime_s": int(t - t0),
            }
        out.append({
            "seq": seq, "kind": kind, "cls": cls, "payload": payload, "wall_time": t,
            "mono_time": t - t0, "boot_id": "b" * 16, "clock_synced": True,
        })  # fmt: skip
    return out


# -- the client side (child processes) --------------------------------------------------------


async def client_side(plan: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    from gateway.sync.config import SyncPaths, SyncSection
    from gateway.sync.policy import judge_ack
    from gateway.sync.provision import load_private_key
    from gateway.sync.replies import parse_ack
    from gateway.sync.tls import client_ssl_context
    from gateway.sync.uploader import INGEST_PATH, RETRY_AFTER_JITTER, seal_batch
    from wire import Batch

    url, per_gw, batch_events = plan["url"], plan["events"], plan["batch_events"]
    interval = plan.get("interval_s")  # paced: seconds between one gateway's batches
    day, rounds = date.fromisoformat(plan["day"]), plan["rounds"]
    rng = random.Random(plan["seed"])
    cpu0 = time.process_time()
    prepared: dict[str, list[tuple[Batch, bytes]]] = {}
    contexts = {}
    for gw in plan["gateways"]:
        paths = SyncPaths.from_section(SyncSection(), Path(gw["dir"]))
        key = load_private_key(paths.key)
        contexts[gw["id"]] = client_ssl_context(paths.ca, paths.cert, paths.key)
        events = day_events(gw["first_seq"], per_gw, day, rounds, rng)
        last = events[-1]["seq"]
        out = []
        for b, i in enumerate(range(0, len(events), batch_events)):
            batch = Batch.build(
                gw["id"], f"d{b}", events[i : i + batch_events], head_seq=last,
                created_at=time.time(),
            )  # fmt: skip
            out.append((batch, seal_batch(batch, key)[0]))
        prepared[gw["id"]] = out
    prepare_cpu = time.process_time() - cpu0
    timeout = aiohttp.ClientTimeout(total=120)
    sessions = {
        g: aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=1), timeout=timeout)
        for g, ctx in contexts.items()
    }
    t_conn = time.perf_counter()

    async def hello(g: str) -> None:
        async with sessions[g].get(f"{url}{INGEST_PATH}/state") as r:
            await r.read()
            assert r.status == 200, (g, r.status)

    await asyncio.gather(*(hello(g) for g in sessions))
    connect_s = time.perf_counter() - t_conn
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "go"

    batch_lat: list[float] = []
    req_lat: list[float] = []
    retries = {"429": 0, "503": 0}

    async def push(g: str, start: float, phase: float) -> int:
        stored = 0
        s = sessions[g]
        for n, (batch, body) in enumerate(prepared[g]):
            t0 = time.perf_counter()
            if interval is not None:
                due = start + phase + n * interval
                if due > t0:
                    await asyncio.sleep(due - t0)
                t0 = due  # an open loop: latency from the schedule, not from when we got to it
            while True:
                t1 = time.perf_counter()
                async with s.post(
                    f"{url}{INGEST_PATH}",
                    data=body,
                    headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
                ) as r:
                    reply = await r.read()
                    status, retry_after = r.status, r.headers.get("Retry-After", "1")
                req_lat.append(time.perf_counter() - t1)
                if status in (429, 503):
                    retries[str(status)] += 1
                    wait = float(retry_after) * (1 + rng.uniform(0, RETRY_AFTER_JITTER))
                    await asyncio.sleep(wait)
                    continue
                if status != 200:
                    raise SystemExit(f"{g}: HTTP {status}: {reply[:300]!r}")
                ack = parse_ack(reply)
                judge_ack(batch, ack, journal_last_seq=batch.head_seq, in_order=True)
                stored += ack.stored
                break
            batch_lat.append(time.perf_counter() - t0)
        return stored

    t0, cpu1 = time.perf_counter(), time.process_time()
    phases = {g: rng.uniform(0, interval) if interval is not None else 0.0 for g in sessions}
    stored = sum(await asyncio.gather(*(push(g, t0, phases[g]) for g in sessions)))
    wall = time.perf_counter() - t0
    push_cpu = time.process_time() - cpu1
    for s in sessions.values():
        await s.close()
    return {
        "stored": stored,
        "t_start": time.time() - wall,
        "t_end": time.time(),
        "batch_lat": batch_lat,
        "req_lat": req_lat,
        "retries": retries,
        "connect_s": connect_s,
        "prepare_cpu_s": prepare_cpu,
        "push_cpu_s": push_cpu,
    }


def client_main(plan_file: Path) -> None:
    plan = json.loads(plan_file.read_text())
    result = asyncio.run(client_side(plan))
    print(json.dumps(result), flush=True)


# -- orchestration ----------------------------------------------------------------------------


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of_tree(root: int) -> float:
    """CPU seconds of ``root`` and its live children (PostgreSQL's postmaster and backends)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == root or int(fields[1]) == root:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(data: Path, *args: str) -> str:
    out = subprocess.run(
        [*CENTRE, "--data", str(data), *args],
        cwd=REPO, check=True, capture_output=True, text=True, env=ENV,
    )  # fmt: skip
    return out.stdout


@dataclass
class Gateway:
    gateway_id: str
    compound: str
    township: str
    dir: Path
    cert_pem: str
    fingerprint: str
    public_pem: str
    key_id: str


def make_gateways(centre: Path, root: Path, n: int) -> tuple[list[Gateway], float]:
    """Keys and CA-signed client certificates for ``n`` gateways, files where the uploader
    looks for them; returns them and the seconds it took."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.x509.oid import NameOID

    from centre.pki import CentrePaths, check_csr, issue_client_certificate, load_ca
    from gateway.sync.config import SyncPaths, SyncSection
    from wire import key_id, load_public_key_pem

    t0 = time.perf_counter()
    paths = CentrePaths(centre)
    ca_key, ca_cert = load_ca(paths)
    ca_pem = paths.ca_cert.read_bytes()
    out = []
    for i in range(n):
        gid, compound = f"gw-{i:04d}", f"Compound {i:04d}"
        key = Ed25519PrivateKey.generate()
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gid)]))
            .sign(key, None)
        )
        csr = check_csr(csr.public_bytes(serialization.Encoding.PEM), gid)
        cert = issue_client_certificate(
            ca_key, ca_cert, csr, gateway_id=gid, compound=compound, now=time.time()
        )
        sp = SyncPaths.from_section(SyncSection(), root / gid)
        sp.key.parent.mkdir(parents=True, exist_ok=True)
        sp.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        sp.key.chmod(0o600)
        sp.cert.write_bytes(cert.pem)
        sp.ca.write_bytes(ca_pem)
        out.append(
            Gateway(
                gid, compound, f"Township {i % 40:02d}", root / gid, cert.pem.decode("ascii"),
                cert.fingerprint, cert.public_key_pem.decode("ascii"),
                key_id(load_public_key_pem(cert.public_key_pem)),
            )
        )  # fmt: skip
    return out, time.perf_counter() - t0


async def enroll_and_seed(
    paths: Any, gws: list[Gateway], month_days: list[date], rounds: int
) -> tuple[int, float]:
    """Enroll every gateway in the backend's registry and seed its month of round verdicts
    (signed batches, straight into the repository); returns events seeded and seconds."""
    from centre.database import open_repository
    from centre.tokens import hash_token, new_token
    from gateway.sync.config import SyncPaths, SyncSection
    from gateway.sync.provision import load_private_key
    from wire import BATCH_TYPE, Batch, seal, split_sealed

    t0 = time.perf_counter()
    seeded = 0
    rng = random.Random(7)
    repo = await open_repository(paths)
    try:
        for g in gws:
            token = hash_token(new_token())
            now = time.time()
            await repo.create_token(token, g.compound, g.township, now, now + 3600)
            issued = (g.cert_pem, g.fingerprint, g.public_pem, g.key_id)

            def issue(_grant: Any, issued: tuple[str, str, str, str] = issued) -> Any:
                return issued

            await repo.enroll(token, g.gateway_id, g.compound, now, issue)
            if not rounds or not month_days:
                continue
            events = [
                round_event(1 + d * rounds + r, day, r, rounds, rng)
                for d, day in enumerate(month_days)
                for r in range(rounds)
            ]
            key = load_private_key(SyncPaths.from_section(SyncSection(), g.dir).key)
            batch = Batch.build(
                g.gateway_id, "month", events, head_seq=len(events), created_at=time.time()
            )
            raw = seal(BATCH_TYPE, batch.to_dict(), key)
            sig = split_sealed(raw, BATCH_TYPE, max_bytes=1 << 26)[2]
            r = await repo.ingest(
                batch, envelope=raw, signature=sig, key_id=g.key_id, now=time.time()
            )
            seeded += r.stored
    finally:
        await repo.close()
    return seeded, time.perf_counter() - t0


async def wait_port(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(600):
        if proc.returncode is not None:
            raise SystemExit(f"centre exited ({proc.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        await asyncio.sleep(0.05)
    raise SystemExit("centre did not start listening")


async def run_backend(
    backend: str, template: Path, work: Path, gws: list[Gateway], args: argparse.Namespace,
    pg: Any,
) -> dict[str, Any]:  # fmt: skip
    from centre.database import open_repository
    from centre.pki import CentrePaths

    centre = work / f"centre-{backend}"
    shutil.copytree(template, centre)
    pg_root: int | None = None
    if backend == "postgres":
        import psycopg

        with psycopg.connect(pg.dsn(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE scale")
        (centre / "centre.toml").write_text(
            f'[database]\ndsn = "{pg.dsn("scale")}"\n', encoding="utf-8"
        )
        pidfile = pg.socket_dir.parent / "data" / "postmaster.pid"
        pg_root = int(pidfile.read_text().split()[0])
    paths = CentrePaths(centre)
    day = date.fromisoformat(args.day)
    month_days = [date(day.year, day.month, d) for d in range(1, day.day)]
    await (await open_repository(paths)).close()  # the schema, empty
    empty = db_size(backend, paths, pg)
    seeded, seed_s = await enroll_and_seed(paths, gws, month_days, args.rounds_per_day)
    first_seq = 1 + len(month_days) * args.rounds_per_day

    port = free_port()
    log = open(work / f"centre-{backend}.log", "wb")  # noqa: SIM115
    serve = [*CENTRE, "--data", str(centre), "serve", "--port", str(port),
             "--max-concurrent-ingest", str(args.max_concurrent_ingest)]  # fmt: skip
    if args.profile_centre and backend == args.profile_backend:
        prof = f"{args.profile_centre}.{backend}"
        serve = [sys.executable, "-m", "cProfile", "-o", prof, "-m", "centre.cli", *serve[3:]]
    centres = args.centres if backend == "postgres" else 1
    if centres > 1:
        serve.append("--reuse-port")
    servers = [
        await asyncio.create_subprocess_exec(
            *serve, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=ENV
        )
        for _ in range(centres)
    ]
    clients: list[asyncio.subprocess.Process] = []
    try:
        await wait_port(port, servers[0])
        if centres > 1:
            await asyncio.sleep(2.0)  # the others' listening sockets join the port's group
            if any(x.returncode is not None for x in servers):
                raise SystemExit("a centre process stopped before the start (see its log)")
        shares = [gws[i :: args.client_procs] for i in range(args.client_procs)]
        for i, share in enumerate(s for s in shares if s):
            plan = {
                "url": f"https://127.0.0.1:{port}",
                "events": args.events_per_gateway,
                "batch_events": args.batch_events,
                "day": args.day,
                "rounds": args.rounds_per_day,
                "seed": 100 + i,
                "interval_s": (len(gws) * args.batch_events / args.rate if args.rate > 0 else None),
                "gateways": [
                    {"id": g.gateway_id, "dir": str(g.dir), "first_seq": first_seq} for g in share
                ],
            }
            pf = work / f"plan-{backend}-{i}.json"
            pf.write_text(json.dumps(plan))
            clients.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, __file__, "--client", str(pf), cwd=REPO, env=ENV,
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                )
            )  # fmt: skip
        t_ready = time.perf_counter()
        for c in clients:
            assert c.stdout is not None
            line = await c.stdout.readline()
            if line.strip() != b"ready":
                raise SystemExit(f"client side failed before the start: {line[:300]!r}")
        ready_s = time.perf_counter() - t_ready
        centre0 = sum(cpu_of(x.pid) for x in servers)
        pg0 = cpu_of_tree(pg_root) if pg_root else 0.0
        for c in clients:
            assert c.stdin is not None
            c.stdin.write(b"go\n")
            await c.stdin.drain()
        results = []
        for c in clients:
            out, _ = await c.communicate()
            if c.returncode != 0:
                raise SystemExit(f"client side failed ({c.returncode})")
            results.append(json.loads(out.decode().strip().splitlines()[-1]))
        centre_cpu = sum(cpu_of(x.pid) for x in servers) - centre0
        pg_cpu = (cpu_of_tree(pg_root) - pg0) if pg_root else 0.0
    finally:
        for c in clients:
            if c.returncode is None:
                c.kill()
                await c.wait()
        for x in servers:
            if x.returncode is None:
                x.terminate()
        for x in servers:
            await x.wait()
        log.close()

    pushed = len(gws) * args.events_per_gateway
    stored = sum(r["stored"] for r in results)
    wall = max(r["t_end"] for r in results) - min(r["t_start"] for r in results)
    batch_lat = [x for r in results for x in r["batch_lat"]]
    req_lat = [x for r in results for x in r["req_lat"]]

    # Audit: each gateway's seqs exactly 1..N; and the database's size.
    expected = list(range(1, first_seq + args.events_per_gateway))
    repo = await open_repository(paths)
    try:
        bad = [g.gateway_id for g in gws if await repo.event_seqs(g.gateway_id) != expected]
    finally:
        await repo.close()
    size = db_size(backend, paths, pg)

    timings = {"daily": float("nan"), "monthly": float("nan")}
    for what, extra in (
        ("daily", ["daily", "--date", args.day]),
        ("monthly", ["monthly", "--month", args.day[:7]]),
    ):
        if not args.bulletins:
            break
        out_dir = work / f"bulletin-{backend}-{what}"
        t0 = time.perf_counter()
        cli(centre, "bulletin", *extra, "--out", str(out_dir))
        timings[what] = time.perf_counter() - t0
    return {
        "pushed": pushed,
        "stored": stored,
        "total_events": seeded + stored,
        "seeded": seeded,
        "seed_s": seed_s,
        "ready_s": ready_s,
        "connect_s": max(r["connect_s"] for r in results),
        "wall_s": wall,
        "events_per_s": pushed / wall,
        "batch_p50_ms": pct(batch_lat, 50) * 1000,
        "batch_p99_ms": pct(batch_lat, 99) * 1000,
        "req_p50_ms": pct(req_lat, 50) * 1000,
        "req_p99_ms": pct(req_lat, 99) * 1000,
        "retries": {k: sum(r["retries"][k] for r in results) for k in ("429", "503")},
        "batches": len(batch_lat),
        "centre_cpu_per_10k": centre_cpu / pushed * 10_000,
        "db_cpu_per_10k": pg_cpu / pushed * 10_000,
        "client_cpu_per_10k": sum(r["push_cpu_s"] for r in results) / pushed * 10_000,
        "mb_per_million": (size - empty) / (seeded + stored),
        "db_mb": size / 1e6,
        "audit_bad": bad,
        "daily_s": timings["daily"],
        "monthly_s": timings["monthly"],
    }


def db_size(backend: str, paths: Any, pg: Any) -> int:
    if backend == "postgres":
        import psycopg

        with psycopg.connect(pg.dsn("scale"), autocommit=True) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0
    path = Path(paths.database)
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def default_day() -> str:
    """The last day of last month (so a monthly bulletin of that month is complete)."""
    today = date.today()
    first = today.replace(day=1)
    last = first - timedelta(days=1)
    return last.isoformat()


async def orchestrate(args: argparse.Namespace) -> None:
    from tests.pg_cluster import throwaway_cluster

    work = Path(tempfile.mkdtemp(prefix="centre-scale-"))
    try:
        template = work / "template"
        cli(template, "init")
        gws, cert_s = make_gateways(template, work / "gateways", args.gateways)
        results: dict[str, dict[str, Any]] = {}
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        for backend in backends:
            if backend == "postgres":
                with throwaway_cluster(durable=True) as cluster:
                    results[backend] = await run_backend(
                        backend, template, work, gws, args, cluster
                    )
            else:
                results[backend] = await run_backend(backend, template, work, gws, args, None)
        report(args, results, cert_s)
    finally:
        if args.keep:
            print(f"(work dir kept: {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]], cert_s: float) -> None:
    n, per = args.gateways, args.events_per_gateway
    print(
        f"{n} gateways x {per} events (batches of {args.batch_events}) = {n * per} events pushed; "
        f"{args.client_procs} client processes; centre --max-concurrent-ingest "
        f"{args.max_concurrent_ingest}; day {args.day}, {args.rounds_per_day} rounds/day"
    )
    if args.centres > 1:
        print(f"postgres: {args.centres} centre processes (serve --reuse-port) on one port")
    if args.rate > 0:
        every = n * args.batch_events / args.rate
        print(
            f"paced: {args.rate:.0f} events/s offered (each gateway one batch every "
            f"{every:.1f} s); batch latency from each batch's scheduled time"
        )
    else:
        print("closed loop: each gateway posts its next batch when the last is acked")
    print(f"client certificates: {n} signed with the centre CA in {cert_s:.1f} s")
    for backend, r in results.items():
        print(
            f"{backend}: seeded {r['seeded']} events (enroll + month) in {r['seed_s']:.1f} s; "
            f"{n} TLS sessions opened in {r['connect_s']:.1f} s"
        )
    cols = (
        f"{'backend':<9} {'events/s':>9} {'batch p50':>10} {'batch p99':>10} {'req p99':>8} "
        f"{'429/503':>8} {'centre CPU':>11} {'db CPU':>7} {'MB/M ev':>8} {'daily s':>8} "
        f"{'monthly s':>10}"
    )
    print(cols)
    for backend, r in results.items():
        print(
            f"{backend:<9} {r['events_per_s']:>9.0f} {r['batch_p50_ms']:>8.0f}ms "
            f"{r['batch_p99_ms']:>8.0f}ms {r['req_p99_ms']:>6.0f}ms "
            f"{r['retries']['429'] + r['retries']['503']:>8} "
            f"{r['centre_cpu_per_10k']:>9.2f} s {r['db_cpu_per_10k']:>5.2f} s "
            f"{r['mb_per_million']:>8.0f} {r['daily_s']:>8.2f} {r['monthly_s']:>10.2f}"
        )
    print("CPU columns: seconds per 10k events pushed (centre process; PostgreSQL's processes)")
    for backend, r in results.items():
        audit = "ok" if not r["audit_bad"] and r["stored"] == r["pushed"] else (
            f"FAILED: stored {r['stored']} of {r['pushed']}, wrong seqs at {r['audit_bad'][:5]}"
        )  # fmt: skip
        print(
            f"audit {backend}: {audit} ({r['total_events']} events in the database, "
            f"{r['db_mb']:.0f} MB, {r['mb_per_million']:.0f} MB/million over the empty schema; "
            "each gateway's seqs exactly once)"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gateways", type=int, default=50)
    p.add_argument("--events-per-gateway", type=int, default=2000)
    p.add_argument("--batch-events", type=int, default=500)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--max-concurrent-ingest", type=int, default=8)
    p.add_argument("--rounds-per-day", type=int, default=12)
    p.add_argument(
        "--rate", type=float, default=0.0,
        help="paced (open loop): events/s offered by the whole fleet (default 0: closed loop)",
    )  # fmt: skip
    p.add_argument("--day", default=default_day(), help="the pushed day (YYYY-MM-DD)")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument(
        "--centres", type=int, default=1,
        help="PostgreSQL: this many serve --reuse-port processes on one port (default 1)",
    )  # fmt: skip
    p.add_argument("--profile-centre", help="cProfile the centre into FILE.<backend>")
    p.add_argument("--profile-backend", default="postgres")
    p.add_argument("--no-bulletins", dest="bulletins", action="store_false")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--client", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        client_main(args.client)
        return
    date.fromisoformat(args.day)
    asyncio.run(orchestrate(args))


if __name__ == "__main__":
    main()
