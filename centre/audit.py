"""Audit what the centre holds for a gateway: every event exactly once, in sequence, and
covered by a stored batch whose gateway signature still verifies.

    report = await audit_gateway(repo, "gw-01", chain=True)
    assert report.ok, report.problems

With ``chain``, the stored events' hash chain (wire/chain.py) is walked again from what the
centre holds - independent of the checks made at ingest, so an edit of the centre's own
database shows too - and every finding names the gateway's seq (``compound-centre verify
--chain``). A chain that starts again above seq 1 (a recovered journal) is listed, not a problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from centre.store import SqlRepository
from wire import (
    BATCH_TYPE,
    Batch,
    WireError,
    encode,
    load_public_key_pem,
    split_sealed,
    verify_signed,
)
from wire.chain import SEGMENT_START, ChainError, verify_chain


@dataclass(slots=True)
class AuditReport:
    gateway_id: str
    events: int = 0
    highest: int = 0
    batches: int = 0
    bad_batches: int = 0
    skipped: int = 0
    missing: list[int] = field(default_factory=list)
    unsigned: list[int] = field(default_factory=list)
    chain: list[str] = field(default_factory=list)  # one line per finding: kind and seq
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def audit_gateway(
    repo: SqlRepository, gateway_id: str, *, chain: bool = False
) -> AuditReport:
    """Check seqs 1..highest are all held and each event matches a verified batch (and, with
    ``chain``, that the stored hash chain is unbroken)."""
    report = AuditReport(gateway_id)
    record = await repo.gateway(gateway_id)
    if record is None:
        report.problems.append(f"{gateway_id} is not enrolled")
        return report
    key = load_public_key_pem(record.public_key_pem.encode("ascii"))
    bodies = await repo.event_bodies(gateway_id)
    report.events = len(bodies)
    report.highest = max(bodies, default=0)
    # The primary key makes duplicates impossible; completeness is what can fail. A seq the
    # gateway declared skipped (dropped telemetry, recovered journal) counts as accounted for.
    skipped = await repo.skipped_ranges(gateway_id)
    report.skipped = sum(1 for lo, hi in skipped for s in range(lo, hi + 1) if s not in bodies)
    accounted = set(bodies)
    for lo, hi in skipped:
        accounted.update(range(lo, hi + 1))
    report.missing = [s for s in range(1, report.highest + 1) if s not in accounted][:100]
    if report.missing:
        report.problems.append(f"{len(report.missing)}+ seqs missing, first {report.missing[:5]}")
    signed: set[int] = set()
    for stored in await repo.stored_batches(gateway_id):
        report.batches += 1
        try:
            body, _kid, sig, covered = split_sealed(stored.envelope, BATCH_TYPE)
            verify_signed(BATCH_TYPE, body, sig, covered, key)
            batch = Batch.from_dict(body)
        except WireError as exc:
            report.bad_batches += 1
            report.problems.append(f"batch {stored.batch_id}: {exc.reason}")
            continue
        if sig != stored.signature:
            report.problems.append(f"batch {stored.batch_id}: stored signature differs")
        for ev in batch.events:
            if bodies.get(ev["seq"]) == encode(ev).decode("utf-8"):
                signed.add(ev["seq"])
    report.unsigned = sorted(set(bodies) - signed)[:100]
    if report.unsigned:
        report.problems.append(
            f"{len(report.unsigned)}+ events not matched by a verified batch, first"
            f" {report.unsigned[:5]}"
        )
    if chain:
        _audit_chain(report, bodies, skipped)
    return report


def _audit_chain(
    report: AuditReport, bodies: dict[int, str], skipped: list[tuple[int, int]]
) -> None:
    chained = []
    for seq in sorted(bodies):
        ev = json.loads(bodies[seq])
        if isinstance(ev, dict) and "hash" in ev:
            chained.append(ev)
    try:
        findings = verify_chain(chained)
    except ChainError as exc:
        report.problems.append(f"stored chain is unreadable: {exc.reason}")
        return
    for ev in chained:
        prev = ev["prev_seq"]
        if prev and prev not in bodies and any(lo <= prev <= hi for lo, hi in skipped):
            report.chain.append(f"deleted: seq {prev} (named by seq {ev['seq']})")
    for f in findings:
        report.chain.append(f"{f.kind}: seq {f.seq}")
    serious = [f for f in findings if f.kind != SEGMENT_START]
    deleted = [c for c in report.chain if c.startswith("deleted")]
    if serious or deleted:
        report.problems.append(
            f"journal history changed at {len(serious) + len(deleted)} place(s), first "
            f"{(deleted + [f'{f.kind}: seq {f.seq}' for f in serious])[0]}"
        )
