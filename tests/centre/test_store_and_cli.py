"""The centre's repository, PKI files and CLI (no network)."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from centre.cli import main
from centre.errors import BadRequest, CentreError, EnrollmentRefused
from centre.pki import CentrePaths, init_centre
from centre.store import SqlRepository
from centre.tokens import parse_ttl
from tests.pg_cluster import OpenRepo
from wire import Batch


def ev(seq: int, kind: str = "tap", wall: float = 1_790_000_000.0) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": kind,
        "cls": "evidence",
        "payload": {"n": seq},
        "wall_time": wall + seq,
        "mono_time": 1.0,
        "boot_id": "b",
        "clock_synced": True,
    }


async def registered(
    open_repo: OpenRepo, gw: str = "gw-01", compound: str = "Rose"
) -> SqlRepository:
    repo: SqlRepository = await open_repo()
    await repo.create_token("h-" + gw, compound, "North", 0.0, 1e12)
    await repo.enroll("h-" + gw, gw, compound, 1.0, lambda g: ("pem", "fp-" + gw, "pub", "kid"))
    return repo


async def ingest(
    repo: SqlRepository,
    seqs: list[int],
    skipped: list[tuple[int, int]] = (),  # type: ignore[assignment]
    gw: str = "gw-01",
    kind: str = "tap",
) -> Any:
    b = Batch.build(
        gw,
        f"b{seqs[0]}",
        [ev(s, kind) for s in seqs],
        head_seq=max(seqs) + 10,
        created_at=0.0,
        skipped=skipped,
    )
    return await repo.ingest(b, envelope=b"{}", signature=b"s" * 64, key_id="kid", now=time.time())


async def test_watermark_gaps_and_skips(open_repo: OpenRepo) -> None:
    repo = await registered(open_repo)
    try:
        r = await ingest(repo, [1, 2, 6, 9])
        assert (r.watermark, r.highest, r.gaps) == (2, 9, ((3, 5), (7, 8)))
        r = await ingest(repo, [3, 4, 7], skipped=[(5, 6)])
        assert (r.watermark, r.gaps) == (7, ((8, 8),))
        r = await ingest(repo, [8, 10])
        assert (r.watermark, r.gaps, r.stored, r.duplicates) == (10, (), 2, 0)
        r = await ingest(repo, [9, 10])
        assert (r.stored, r.duplicates) == (0, 2)
        g = await repo.gateway("gw-01")
        assert g is not None and g.event_count == 9 and g.backlog_estimate == 10
    finally:
        await repo.close()


async def test_many_gaps_are_truncated(open_repo: OpenRepo) -> None:
    repo = await registered(open_repo)
    try:
        r = await ingest(repo, list(range(2, 600, 2)))  # evidence ahead: every other seq
        assert r.watermark == 0 and len(r.gaps) == 100 and r.gaps_truncated
    finally:
        await repo.close()


def _reference_gaps(
    held: set[int], skipped: list[tuple[int, int]], wm: int
) -> tuple[tuple[tuple[int, int], ...], bool]:
    """Gaps as the ack defines them, the slow way: every missing seq between the watermark and
    the highest held one, minus the skipped ranges, cut at 100 (truncated) or at 1000 holes."""
    gone = {s for lo, hi in skipped for s in range(lo, hi + 1)}
    gaps: list[tuple[int, int]] = []
    holes, prev = 0, wm
    for seq in sorted(s for s in held if s > wm):
        if seq - prev > 1:
            holes += 1
            run: list[int] = [s for s in range(prev + 1, seq) if s not in gone]
            for s in run:
                if gaps and gaps[-1][1] == s - 1 and gaps[-1][1] >= prev:
                    gaps[-1] = (gaps[-1][0], s)
                else:
                    gaps.append((s, s))
            if holes >= 1000 or len(gaps) > 100:
                return tuple(gaps[:100]), True
        prev = seq
    return tuple(gaps), False


async def test_gaps_across_pages_and_skips(open_repo: OpenRepo) -> None:
    """The gap walk reads held seqs a page (1,000) at a time: gaps found on the first page,
    across a page boundary and after it, with skipped ranges cutting holes in two or away."""
    repo = await registered(open_repo)
    try:
        held = set(range(2, 1503)) | {1600, 1700, 1710, 2500}
        skipped = [(1520, 1530), (1701, 1709)]
        await ingest(repo, sorted(held), skipped=skipped)
        r = await repo.state("gw-01")
        assert r.watermark == 0
        assert (r.gaps, r.gaps_truncated) == _reference_gaps(held, skipped, 0)
        assert r.gaps == ((1, 1), (1503, 1519), (1531, 1599), (1601, 1699), (1711, 2499))
        # Holes only beyond the first page, many of them: truncated at 100.
        more = set(range(3000, 3600, 2))
        await ingest(repo, sorted(more))
        r = await repo.state("gw-01")
        assert (r.gaps, r.gaps_truncated) == _reference_gaps(held | more, skipped, 0)
        assert len(r.gaps) == 100 and r.gaps_truncated
    finally:
        await repo.close()


async def test_query_by_compound_kind_and_time(open_repo: OpenRepo) -> None:
    repo = await registered(open_repo)
    await repo.create_token("h2", "Lily", "", 0.0, 1e12)
    await repo.enroll("h2", "gw-02", None, 1.0, lambda g: ("pem", "fp2", "pub", "kid"))
    try:
        await ingest(repo, [1, 2, 3])
        await ingest(repo, [1, 2], gw="gw-02", kind="health.sample")
        assert len(await repo.events(compound="Rose")) == 3
        assert [e["gateway_id"] for e in await repo.events(kind="health.sample")] == ["gw-02"] * 2
        t0 = 1_790_000_000.0
        assert [
            e["seq"] for e in await repo.events(compound="Rose", since=t0 + 2, until=t0 + 3)
        ] == [2]
    finally:
        await repo.close()


async def test_token_rules(open_repo: OpenRepo) -> None:
    repo = await open_repo()
    try:
        await repo.create_token("h", "Rose", "", 0.0, 100.0)
        issue = lambda g: ("pem", "fp", "pub", "kid")  # noqa: E731
        with pytest.raises(EnrollmentRefused) as info:
            await repo.enroll("h", "gw-01", "Rose", 100.0, issue)
        assert info.value.code == "token_expired"
        with pytest.raises(EnrollmentRefused) as info:
            await repo.enroll("nope", "gw-01", None, 1.0, issue)
        assert info.value.code == "token_unknown"
        await repo.enroll("h", "gw-01", "Rose", 50.0, issue)
        with pytest.raises(EnrollmentRefused) as info:
            await repo.enroll("h", "gw-02", "Rose", 51.0, issue)
        assert info.value.code == "token_used" and info.value.fields["used_by"] == "gw-01"
    finally:
        await repo.close()


def test_ttl() -> None:
    assert parse_ttl("15m") == 900 and parse_ttl("90s") == 90 and parse_ttl("2h") == 7200
    for bad in ("", "15x", "0m", "8d", "-1m"):
        with pytest.raises(BadRequest):
            parse_ttl(bad)


def test_init_makes_private_files_and_refuses_twice(tmp_path: Path) -> None:
    paths = CentrePaths(tmp_path / "c")
    fp = init_centre(paths, hostnames=["centre.test"], ips=["127.0.0.1"], now=time.time(), name="T")
    assert len(fp) == 64
    for key in (paths.ca_key, paths.server_key, paths.command_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert paths.command_key.parent != paths.ca_key.parent  # kept apart from the CA key
    with pytest.raises(CentreError, match="already holds a CA"):
        init_centre(paths, hostnames=["x"], ips=[], now=time.time(), name="T")


def test_cli_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "c")
    assert main(["--data", data, "init", "--hostname", "centre.test", "--ip", "127.0.0.1"]) == 0
    assert "CA fingerprint" in capsys.readouterr().out
    assert (
        main(["--data", data, "token", "create", "--compound", "Rose", "--ttl", "15m", "--json"])
        == 0
    )
    tok = json.loads(capsys.readouterr().out)
    assert tok["token"].startswith("cgt-") and tok["compound"] == "Rose"
    db = (tmp_path / "c" / "centre.db").read_bytes()
    assert tok["token"].encode() not in db  # only its hash is stored
    assert stat.S_IMODE((tmp_path / "c" / "centre.db").stat().st_mode) == 0o600
    assert main(["--data", data, "gateways", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["--data", data, "revoke", "gw-none"]) == 2
    assert "no gateway" in capsys.readouterr().err
    assert main(["--data", data, "verify"]) == 0
    assert main(["--data", str(tmp_path / "nothing"), "gateways"]) == 2
