"""The console's audit record: who did what, to what, when, from where, and how it ended.

Records form a hash chain. Each carries ``prev``, the sha256 of the previous record's canonical
form (:func:`canonical`; the first record's ``prev`` is :data:`GENESIS`), and ``digest``, the
sha256 of its own. Editing a record breaks its digest and the next record's ``prev``; deleting
one leaves a gap in ``seq`` and a broken ``prev``; reordering breaks ``prev``. :func:`verify`
names each break. The store only appends (no update or delete API; SQLite triggers refuse
UPDATE and DELETE), so an edit needs someone who drops the triggers, and the chain shows it.

What the chain cannot show alone: someone with root who rewrites every record after the one
they changed, or cuts records off the end. :func:`verify` reports the head digest so it can be
written down or sent elsewhere; a later record that does not descend from it proves a rewrite.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What the caller says happened; the store adds seq, prev and digest."""

    at: float
    user: str
    action: str
    target: str
    outcome: str
    client: str


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    at: float
    user: str
    action: str
    target: str
    outcome: str
    client: str
    prev: str
    digest: str


def canonical(seq: int, entry: AuditEntry, prev: str) -> bytes:
    """The bytes a record's digest covers: a JSON array in a fixed order, UTF-8."""
    fields = [seq, entry.at, entry.user, entry.action, entry.target, entry.outcome, entry.client]
    return json.dumps(
        [*fields, prev], ensure_ascii=False, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def digest_of(seq: int, entry: AuditEntry, prev: str) -> str:
    return hashlib.sha256(canonical(seq, entry, prev)).hexdigest()


def seal(seq: int, entry: AuditEntry, prev: str) -> AuditRecord:
    """The record to store as number ``seq`` after a record whose digest is ``prev``."""
    return AuditRecord(
        seq,
        entry.at,
        entry.user,
        entry.action,
        entry.target,
        entry.outcome,
        entry.client,
        prev,
        digest_of(seq, entry, prev),
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    records: int
    head: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(records: list[AuditRecord]) -> ChainReport:
    """Check ``records`` (in stored order) form one unbroken chain from the first."""
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    for rec in records:
        entry = AuditEntry(rec.at, rec.user, rec.action, rec.target, rec.outcome, rec.client)
        if rec.seq != expected_seq:
            problems.append(f"record {rec.seq}: expected number {expected_seq} (missing records)")
        if rec.prev != prev:
            problems.append(
                f"record {rec.seq}: does not follow the record before it "
                "(deleted, reordered or edited)"
            )
        try:
            computed = digest_of(rec.seq, entry, rec.prev)
        except (TypeError, ValueError):  # a NaN or a non-text field written into the file
            computed = ""
        if computed != rec.digest:
            problems.append(f"record {rec.seq}: contents do not match its digest (edited)")
        prev = rec.digest
        expected_seq = rec.seq + 1
    return ChainReport(len(records), prev, tuple(problems))
