"""Where a backlog drain spends its CPU: the uploader's and the centre's work for each batch,
in one process, one thread, without the network, under cProfile.

    .venv/bin/python bench/drain_profile.py [--events 100000] [--top 25] [--sort tottime]

Fills a journal with drain_bench's realistic week, then drains it through the real code: the
Uploader's ``plan()`` and batch building, ``seal_batch`` (encode, sign, gzip), the centre's
gunzip, ``_parse_and_verify`` and ``SqliteRepository.ingest``, the ack judged and the journal
marked. Thread hops (``asyncio.to_thread``, the centre's worker thread) are run inline so the
profile sees them; the journal writer's marks still run on its own thread. Prints the time by
stage (wall clock) and the top functions by the chosen key. TLS, HTTP and aiohttp are not in
it: drain_bench measures the whole path.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gzip
import pstats
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

T = TypeVar("T")


async def _inline(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return fn(*args, **kwargs)


async def run(
    n_events: int, top: int, sort: str, batch_events: int, batch_bytes: int, profile: bool
) -> None:
    import drain_bench
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from centre.antifraud.monitor import AntifraudMonitor
    from centre.app import _ack, _parse_and_verify
    from centre.pki import CentrePaths, init_centre
    from centre.store import SqliteRepository
    from centre.tokens import hash_token
    from gateway.clock import SystemClock
    from gateway.journal import Journal
    from gateway.sync import uploader as up_mod
    from gateway.sync.config import SyncSection
    from gateway.sync.policy import judge_ack
    from gateway.sync.uploader import Uploader
    from wire import Ack, key_id

    tmp = Path(tempfile.mkdtemp(prefix="drain-profile-"))
    paths = CentrePaths(tmp / "centre")
    init_centre(paths, hostnames=["localhost"], ips=["127.0.0.1"], now=time.time(), name="P")
    repo = await SqliteRepository.open(paths.database)
    key = Ed25519PrivateKey.generate()
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    await repo.create_token(hash_token("t"), "P", "", time.time(), time.time() + 600)
    record = await repo.enroll(
        hash_token("t"),
        "gw-profile",
        "P",
        time.time(),
        lambda grant: ("cert", "fp", pub_pem.decode(), key_id(key.public_key())),
    )
    rows = drain_bench.week_of_events(n_events, random.Random(2026))
    await drain_bench.fill_journal(tmp / "journal.db", "gw-profile", rows)
    journal = await Journal.open(
        tmp / "journal.db", gateway_id="gw-profile", telemetry_budget_bytes=1 << 30
    )
    section = SyncSection(batch_max_events=batch_events, batch_max_bytes=batch_bytes)
    up = Uploader(journal, SystemClock(), section, data_dir=tmp, rng=random.Random(1))
    up.floor = await up._initial_floor()
    await journal.audited()  # the open-time chain audit, not part of the drain
    antifraud = AntifraudMonitor(repo)

    async def repo_inline(fn: Callable[[], T]) -> T:
        return fn()

    repo._run = repo_inline  # type: ignore[method-assign]
    asyncio.to_thread = _inline
    stages: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)

    def clock() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def done(name: str, t: tuple[float, float]) -> None:
        stages[name] += time.perf_counter() - t[0]
        cpu[name] += time.process_time() - t[1]

    n = 0
    prof = cProfile.Profile()
    t_all = time.perf_counter()
    if profile:
        prof.enable()
    while True:
        t = clock()
        plan = await up.plan()
        done("gateway: journal read (plan)", t)
        if plan is None:
            break
        t = clock()
        batch = up.build_batch(plan)
        done("gateway: batch build/check", t)
        t = clock()
        wire_body, _ = up_mod.seal_batch(batch, key)
        done("gateway: seal (encode, sign, gzip)", t)
        t = clock()
        raw = gzip.decompress(wire_body)
        done("centre: gunzip", t)
        t = clock()
        cbatch, sig, kid = _parse_and_verify(raw, record)
        done("centre: parse, check, verify", t)
        t = clock()
        result = await repo.ingest(cbatch, envelope=raw, signature=sig, key_id=kid, now=0.0)
        done("centre: insert (one transaction)", t)
        t = clock()
        ack = Ack.from_dict(_ack(record.gateway_id, cbatch.batch_id, result))
        verdict = judge_ack(batch, ack, journal_last_seq=journal.last_seq, in_order=plan.in_order)
        assert verdict.mark_through is not None or verdict.mark_seqs
        await up.record_ack(batch, plan.in_order, ack, verdict)
        done("gateway: judge ack, mark synced", t)
        t = clock()
        await antifraud.after_ingest(record.gateway_id, cbatch.events, now=time.time())
        done("centre: anti-fraud after ingest", t)
        n += len(batch.events)
    prof.disable()
    total = time.perf_counter() - t_all
    await journal.close()
    await repo.close()
    print(f"{n} events in {total:.2f} s = {n / total:.0f} events/s (one thread, no network)")
    print(f"  {'stage':40} {'wall s':>7}   {'%':>5}  {'us/ev':>6} {'CPU us/ev':>10}")
    for name, secs in stages.items():
        print(
            f"  {name:40} {secs:7.2f} s {100 * secs / total:5.1f} %  {1e6 * secs / n:6.1f}"
            f" {1e6 * cpu[name] / n:10.1f}"
        )
    print("  (CPU: process time, the journal writer's thread included; steadier than wall)")
    if profile:
        print()
        pstats.Stats(prof).sort_stats(sort).print_stats(top)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--sort", default="tottime")
    p.add_argument("--batch-events", type=int, default=500)
    p.add_argument("--batch-bytes", type=int, default=512 * 1024)
    p.add_argument("--no-cprofile", action="store_true", help="stage times only, no profiler")
    a = p.parse_args()
    asyncio.run(
        run(a.events, a.top, a.sort, a.batch_events, a.batch_bytes, profile=not a.no_cprofile)
    )


if __name__ == "__main__":
    main()
