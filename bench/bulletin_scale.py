"""The daily and monthly bulletins for many compounds, timed as processes, this tree against
a reference commit, on SQLite and on PostgreSQL, same run.

    .venv/bin/python bench/bulletin_scale.py [--compounds 2000] [--rounds-per-day 12]
        [--month 2026-11] [--backends sqlite,postgres] [--reference main] [--profile FILE]

Per backend: ``compound-centre init``, then ``--compounds`` gateways (one per compound, 40
townships) enrolled in the repository and a month of ``patrol.round`` verdicts each
(``--rounds-per-day`` a day, about 5 % missed; the shapes of bench/centre_scale.py) ingested
straight into the repository, one batch per gateway (the envelope is a placeholder: the
repository stores it, the HTTP layer is what checks it, and it is not what is timed). Then
``compound-centre bulletin daily --date <last day>`` and ``bulletin monthly`` are timed (process
start included), first from a git worktree of ``--reference`` (the code before this work),
then from this tree, each on the same database; their CSV files must be identical (the HTML
too, but for the generation time it prints). ``--profile FILE`` writes a cProfile of this
tree's monthly run to ``FILE.<backend>``. PostgreSQL is a throwaway cluster with fsync on.
Figures, not pass/fail (an output difference is reported and exits 1).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.centre_scale import round_event  # noqa: E402


def centre_cmd(tree: Path, data: Path, *args: str, profile: str | None = None) -> list[str]:
    pre = [sys.executable]
    if profile:
        pre += ["-m", "cProfile", "-o", profile]
    return [*pre, "-m", "centre.cli", "--data", str(data), *args]


def run(tree: Path, cmd: list[str]) -> float:
    env = os.environ | {"PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=tree, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


async def seed(data: Path, compounds: int, days: list[date], rounds: int) -> tuple[int, float]:
    """Enroll one gateway per compound and ingest its month of verdicts; (events, seconds)."""
    from centre.database import open_repository
    from centre.pki import CentrePaths
    from centre.tokens import hash_token, new_token
    from wire import Batch

    t0 = time.perf_counter()
    rng = random.Random(7)
    stored = 0
    repo = await open_repository(CentrePaths(data))
    try:
        for i in range(compounds):
            gid, compound = f"gw-{i:04d}", f"Compound {i:04d}"
            token, now = hash_token(new_token()), time.time()
            await repo.create_token(token, compound, f"Township {i % 40:02d}", now, now + 3600)
            issued = ("cert", f"fp-{gid}", "public key", f"kid-{gid}")
            await repo.enroll(token, gid, compound, now, lambda _g, issued=issued: issued)
            events = [
                round_event(1 + d * rounds + r, day, r, rounds, rng)
                for d, day in enumerate(days)
                for r in range(rounds)
            ]
            batch = Batch.build(gid, "month", events, head_seq=len(events), created_at=now)
            result = await repo.ingest(
                batch, envelope=b"placeholder", signature=b"-", key_id=f"kid-{gid}", now=now
            )
            stored += result.stored
    finally:
        await repo.close()
    return stored, time.perf_counter() - t0


_GENERATED = re.compile(rb"20[0-9]{2}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}(:[0-9]{2})?")


def same_files(a: Path, b: Path) -> list[str]:
    """Names of the files that differ (HTML compared without its date-times)."""
    names = sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()})
    bad = []
    for name in names:
        pa, pb = a / name, b / name
        if not (pa.exists() and pb.exists()):
            bad.append(name)
            continue
        da, db = pa.read_bytes(), pb.read_bytes()
        if name.endswith(".html"):
            da, db = _GENERATED.sub(b"T", da), _GENERATED.sub(b"T", db)
        if da != db:
            bad.append(name)
    return bad


async def one_backend(
    backend: str, args: argparse.Namespace, work: Path, ref: Path | None, pg: Any
) -> dict[str, Any]:
    data = work / f"centre-{backend}"
    run(REPO, centre_cmd(REPO, data, "init"))
    if backend == "postgres":
        import psycopg

        with psycopg.connect(pg.dsn(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE bulletins")
        (data / "centre.toml").write_text(
            f'[database]\ndsn = "{pg.dsn("bulletins")}"\n', encoding="utf-8"
        )
    first = date.fromisoformat(args.month + "-01")
    days = [first + timedelta(days=d) for d in range(31) if (first + timedelta(days=d)).month
            == first.month]  # fmt: skip
    seeded, seed_s = await seed(data, args.compounds, days, args.rounds_per_day)
    # Bring the schema to this tree's version before anything is timed (the reference code
    # reads it as well: migrations only add).
    run(REPO, centre_cmd(REPO, data, "migrate"))
    out: dict[str, Any] = {"seeded": seeded, "seed_s": seed_s, "diff": []}
    jobs = (
        ("daily", ["daily", "--date", days[-1].isoformat()]),
        ("monthly", ["monthly", "--month", args.month]),
    )
    for what, extra in jobs:
        dirs = {}
        for label, tree in (("old", ref), ("new", REPO)):
            if tree is None:
                continue
            d = work / f"{backend}-{what}-{label}"
            prof = (
                f"{args.profile}.{backend}"
                if args.profile and label == "new" and what == "monthly"
                else None
            )
            cmd = centre_cmd(tree, data, "bulletin", *extra, "--out", str(d), profile=prof)
            out[f"{what}_{label}"] = run(tree, cmd)
            dirs[label] = d
        if len(dirs) == 2:
            out["diff"] += [f"{what}/{n}" for n in same_files(dirs["old"], dirs["new"])]
    return out


async def orchestrate(args: argparse.Namespace, work: Path, ref: Path | None) -> int:
    from tests.pg_cluster import throwaway_cluster

    results = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if backend == "postgres":
            with throwaway_cluster(durable=True) as cluster:
                results[backend] = await one_backend(backend, args, work, ref, cluster)
        else:
            results[backend] = await one_backend(backend, args, work, ref, None)
    label = f"old = {args.reference}, new = this tree" if ref else "new = this tree"
    print(
        f"{args.compounds} compounds x {args.rounds_per_day} rounds/day, month {args.month}"
        f" ({label}); seconds per `compound-centre bulletin` process"
    )
    print(f"{'backend':9} {'seeded':>8} {'daily old':>10} {'daily new':>10}"
          f" {'monthly old':>12} {'monthly new':>12}  outputs")  # fmt: skip
    nan = float("nan")
    bad = False
    for backend, r in results.items():
        same = "identical" if not r["diff"] else "DIFFER: " + ", ".join(r["diff"])
        bad |= bool(r["diff"])
        print(
            f"{backend:9} {r['seeded']:8d} {r.get('daily_old', nan):10.2f}"
            f" {r['daily_new']:10.2f} {r.get('monthly_old', nan):12.2f}"
            f" {r['monthly_new']:12.2f}  {same if ref else '-'}"
        )
    for backend, r in results.items():
        print(f"({backend}: seeded in {r['seed_s']:.1f} s)")
    return 1 if bad else 0


def last_month() -> str:
    first = date.today().replace(day=1)
    return (first - timedelta(days=1)).isoformat()[:7]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--compounds", type=int, default=200)
    p.add_argument("--rounds-per-day", type=int, default=12)
    p.add_argument("--month", default=last_month())
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--reference", help="a commit to time as 'old' (a temporary git worktree)")
    p.add_argument("--profile", help="cProfile this tree's monthly run into FILE.<backend>")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bulletin-scale-"))
    ref: Path | None = None
    try:
        if args.reference:
            ref = work / "reference"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(ref), args.reference],
                cwd=REPO, check=True, capture_output=True,
            )  # fmt: skip
        code = asyncio.run(orchestrate(args, work, ref))
    finally:
        if ref is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(ref)],
                cwd=REPO, check=False, capture_output=True,
            )  # fmt: skip
        if args.keep:
            print(f"(work dir kept: {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
