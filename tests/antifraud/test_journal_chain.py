"""The gateway journal's side of the hash chain: rows chained at append, continued across
reopen and retention, and the open-time audit that reports edits."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clock import ManualClock
from gateway.events import TELEMETRY
from gateway.journal import AUDIT_KIND, Journal, chain_digest, encode_payload
from wire import Batch
from wire.chain import GENESIS, event_hash, verify_chain, verify_event


async def open_journal(path: Path) -> Journal:
    return await Journal.open(path, gateway_id="gw-test", clock=ManualClock())


async def test_evidence_is_chained_and_telemetry_is_not(tmp_path: Path) -> None:
    j = await open_journal(tmp_path / "j.db")
    try:
        a = await j.append("tap", {"checkpoint": "gate", "n": 1.5})
        t = await j.append("health.sample", {"cpu_c": 41}, cls=TELEMETRY)
        b = await j.append("tap", {"checkpoint": "hub"})
        evs = await j.read_after(0)
    finally:
        await j.close()
    assert (a.prev_seq, a.prev_hash) == (0, GENESIS)
    assert (b.prev_seq, b.prev_hash) == (a.seq, a.hash)
    assert t.hash is None and "hash" not in t.to_dict()
    chained = [e.to_dict() for e in evs if e.hash is not None]
    assert [e["seq"] for e in chained] == [a.seq, b.seq]
    assert verify_chain(chained) == []
    for e in chained:
        verify_event(e)
    # What the uploader sends is valid on the wire, chain fields included.
    batch = Batch.build("gw-test", "b1", [e.to_dict() for e in evs], head_seq=3, created_at=1.0)
    assert batch.events[2]["prev_hash"] == a.hash


async def test_the_chain_continues_across_reopen_and_pruning_of_its_head(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = await open_journal(path)
    head = await j.append("tap", {"checkpoint": "gate"})
    await j.append("health.sample", {"cpu_c": 40}, cls=TELEMETRY)
    await j.mark_synced_through(j.last_seq)
    assert await j.prune(0.0, now=2e9) == 1  # the tap goes, the newest row stays
    await j.close()
    j = await open_journal(path)
    try:
        assert await j.audited() == []
        nxt = await j.append("tap", {"checkpoint": "hub"})
        kinds = [e.kind for e in await j.read_after(0)]
    finally:
        await j.close()
    assert (nxt.prev_seq, nxt.prev_hash) == (head.seq, head.hash)
    assert AUDIT_KIND not in kinds  # nothing was edited: the audit stays silent


async def test_the_open_audit_reports_edits_with_their_seq(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = await open_journal(path)
    taps = [await j.append("tap", {"checkpoint": f"cp-{i}"}) for i in range(5)]
    await j.close()
    conn = sqlite3.connect(path)
    with conn:
        # A naive edit, and an edit whose hash was re-computed by hand (link to it breaks).
        conn.execute("UPDATE events SET wall = wall - 60 WHERE seq = ?", (taps[1].seq,))
        forged = dict(taps[3].to_dict(), payload={"checkpoint": "elsewhere"})
        conn.execute(
            "UPDATE events SET payload = ?, hash = ? WHERE seq = ?",
            ('{"checkpoint":"elsewhere"}', event_hash(forged), taps[3].seq),
        )
    conn.close()
    j = await open_journal(path)
    try:
        await j.audited()
        audit = [e for e in await j.read_after(0) if e.kind == AUDIT_KIND]
    finally:
        await j.close()
    findings = audit[0].payload["findings"]
    assert [(f["kind"], f["seq"]) for f in findings] == [
        ("edited", taps[1].seq),
        ("broken_link", taps[4].seq),
    ]
    assert audit[0].payload["total"] == 2


payloads = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(10**20), 10**20)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=8,
    ),
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(
    payloads,
    st.floats(0, 4e9) | st.integers(0, 4_000_000_000),
    st.text(min_size=1, max_size=20),
    st.booleans(),
)
def test_the_writers_digest_is_the_wire_hash_of_the_row_read_back(
    payload: dict[str, Any], wall: float, kind: str, synced: bool
) -> None:
    payload_json = encode_payload(payload)
    digest = chain_digest(7, kind, "evidence", payload_json, wall, 3, "boot", synced, 5, "a" * 64)
    read_back = {
        "seq": 7,
        "kind": kind,
        "cls": "evidence",
        "payload": json.loads(payload_json),
        "wall_time": float(wall),  # SQLite's REAL column gives a float back
        "mono_time": 3.0,
        "boot_id": "boot",
        "clock_synced": synced,
        "prev_seq": 5,
        "prev_hash": "a" * 64,
    }
    assert digest == event_hash(read_back)


async def test_an_integer_clock_reading_still_verifies(tmp_path: Path) -> None:
    j = await Journal.open(
        tmp_path / "j.db", gateway_id="gw-test", clock=ManualClock(1_790_000_000)
    )
    try:
        await j.append("tap", {"checkpoint": "gate"})
        [ev] = await j.read_after(0)
    finally:
        await j.close()
    assert isinstance(ev.wall_time, float)
    verify_event(ev.to_dict())


async def test_rows_edited_into_nonsense_are_findings_too(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = await open_journal(path)
    taps = [await j.append("tap", {"checkpoint": f"cp-{i}"}) for i in range(4)]
    await j.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE events SET payload = 'not json' WHERE seq = ?", (taps[1].seq,))
        conn.execute("UPDATE events SET prev_hash = 'zz' WHERE seq = ?", (taps[2].seq,))
    conn.close()
    j = await open_journal(path)
    try:
        findings = await j.audited()
    finally:
        await j.close()
    assert [(f["kind"], f["seq"]) for f in findings] == [
        ("unreadable", taps[2].seq),
        ("edited", taps[1].seq),
    ]
