"""The journal's hash chain: every evidence event names the evidence event before it.

Each evidence event the gateway journals carries three chain fields::

    prev_seq   the seq of the previous evidence event of this journal (0: a chain starts here)
    prev_hash  that event's ``hash`` (:data:`GENESIS` when ``prev_seq`` is 0)
    hash       sha256 over :data:`DOMAIN` and the canonical encoding (:mod:`wire.canonical`)
               of the event without its ``hash`` field - prev_seq and prev_hash included

so editing an event's body, deleting an event or re-writing history shows as a hash that does
not match its body, a ``prev_hash`` that is not the hash of the event at ``prev_seq``, an event
named by ``prev_seq`` that never arrives (the gateway declared it skipped), or two events
claiming the same ``prev_seq``. Telemetry is not chained: it may be dropped under the disk
budget by design, and a chain through it would break at every drop::

    ev["hash"] = event_hash(ev)                      # gateway, at append time
    verify_event(ev)                                 # ChainError if body and hash disagree
    findings = verify_chain(events)                  # an ordered run of events, e.g. a journal

:func:`event_hash`, :func:`verify_event` and :func:`verify_chain` raise :class:`ChainError`
and nothing else, whatever they are given (tests/wire/test_chain.py holds them to it).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from wire.canonical import encode
from wire.errors import EncodingError, WireError

DOMAIN: Final = b"compound-gw.journal-chain.v1\n"
GENESIS: Final = "0" * 64
CHAIN_FIELDS: Final = frozenset({"prev_seq", "prev_hash", "hash"})
HASH_RE: Final = re.compile(r"[0-9a-f]{64}")

# Finding kinds (docs/antifraud.md, "Journal tamper evidence")
EDITED: Final = "edited"  # the event's hash does not match its own body
BROKEN_LINK: Final = "broken_link"  # prev_hash is not the hash of the event at prev_seq
FORK: Final = "fork"  # two events name the same previous event
SEGMENT_START: Final = "segment_start"  # a chain (re)starts above seq 1


class ChainError(WireError):
    """An event's chain fields are missing, malformed, or do not match its body."""

    code = "bad_chain"


@dataclass(frozen=True, slots=True)
class Finding:
    """One place where the chain says history changed: ``seq`` is the event it concerns."""

    kind: str
    seq: int
    detail: Mapping[str, Any]


def _seq(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise ChainError(f"{where} must be an integer in 0..2^62", field=where)
    return value


def _hash(value: Any, where: str) -> str:
    if not isinstance(value, str) or not HASH_RE.fullmatch(value):
        raise ChainError(f"{where} must be 64 lowercase hex digits", field=where)
    return value


def check_links(ev: Any) -> tuple[int, int, str, str]:
    """(seq, prev_seq, prev_hash, hash) of a chained event, shape-checked; ChainError if not."""
    if not isinstance(ev, Mapping):
        raise ChainError("event is not an object")
    missing = CHAIN_FIELDS - set(ev)
    if missing:
        raise ChainError(f"event lacks chain field(s) {sorted(missing)}")
    seq = _seq(ev.get("seq"), "seq")
    prev_seq = _seq(ev["prev_seq"], "prev_seq")
    if prev_seq >= seq:
        raise ChainError(f"prev_seq={prev_seq} is not below seq={seq}", field="prev_seq")
    prev_hash = _hash(ev["prev_hash"], "prev_hash")
    if prev_seq == 0 and prev_hash != GENESIS:
        raise ChainError("a chain start (prev_seq 0) must name the genesis hash")
    return seq, prev_seq, prev_hash, _hash(ev["hash"], "hash")


def event_hash(ev: Mapping[str, Any]) -> str:
    """The hash an event should carry: over everything but its own ``hash`` field."""
    if not isinstance(ev, Mapping):
        raise ChainError("event is not an object")
    body = {k: v for k, v in ev.items() if k != "hash"}
    try:
        raw = encode(body)
    except EncodingError as exc:
        raise ChainError(f"event has no canonical form: {exc.reason}") from exc
    return hashlib.sha256(DOMAIN + raw).hexdigest()


def verify_event(ev: Any) -> tuple[int, int, str, str]:
    """Shape and self-consistency of one chained event; returns :func:`check_links`' tuple."""
    links = check_links(ev)
    if event_hash(ev) != links[3]:
        raise ChainError(f"event {links[0]} does not match its hash", seq=links[0])
    return links


def verify_chain(events: Iterable[Any]) -> list[Finding]:
    """Findings over an ascending run of chained events (one journal's, or one batch's).

    A link can only be judged when the event at ``prev_seq`` is in the run; an absent one is
    not a finding here (it may be pruned, or held elsewhere: the centre judges it with what it
    holds). Raises ChainError for a malformed item or a run that is not strictly ascending.
    """
    findings: list[Finding] = []
    hashes: dict[int, str] = {}
    successor: dict[int, int] = {}
    last = 0
    for ev in events:
        seq, prev_seq, prev_hash, digest = check_links(ev)
        if seq <= last:
            raise ChainError(f"seq {seq} is not above the previous {last}", seq=seq)
        last = seq
        if event_hash(ev) != digest:
            findings.append(Finding(EDITED, seq, {}))
        if prev_seq == 0 and seq > 1:
            findings.append(Finding(SEGMENT_START, seq, {}))
        held = hashes.get(prev_seq)
        if held is not None and held != prev_hash:
            findings.append(Finding(BROKEN_LINK, seq, {"prev_seq": prev_seq}))
        if prev_seq in successor:
            findings.append(
                Finding(FORK, seq, {"prev_seq": prev_seq, "other": successor[prev_seq]})
            )
        else:
            successor[prev_seq] = seq
        hashes[seq] = digest
    return findings
