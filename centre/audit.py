"""Audit what the centre holds for a gateway: every event exactly once, in sequence, and
covered by a stored batch whose gateway signature still verifies.

    report = await audit_gateway(repo, "gw-01")
    assert report.ok, report.problems
"""

from __future__ import annotations

from dataclasses import dataclass, field

from centre.store import SqliteRepository
from wire import BATCH_TYPE, Batch, WireError, encode, load_public_key_pem, split_envelope, verify


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
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


async def audit_gateway(repo: SqliteRepository, gateway_id: str) -> AuditReport:
    """Check seqs 1..highest are all held and each event matches a verified batch."""
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
            body, _kid, sig = split_envelope(stored.envelope, BATCH_TYPE)
            verify(BATCH_TYPE, body, sig, key)
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
    return report
