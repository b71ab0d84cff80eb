"""The journal: the durable, append-only event log every capability writes before it acts.

Theory of operation
-------------------
One writer thread owns the SQLite connection (WAL). ``append()`` stamps the event's times on the
caller's side, puts it on the writer's queue and awaits a future. The writer takes everything
queued (up to ``max_group``) and commits it in ONE transaction, so many producers awaiting at
once share one fsync (group commit); while that commit runs, the next group queues up. Futures
resolve only after COMMIT returns, so ``await journal.append(...)`` means "durable":

    journal = await Journal.open(path, gateway_id="gw-01")
    ev = await journal.append("tap", {"checkpoint": "north-gate"})   # fsynced when this returns

A group holding evidence commits with ``synchronous=FULL`` (WAL fsync at commit). A group of
telemetry alone commits with ``synchronous=NORMAL`` (no fsync: it becomes durable at the next
FULL commit or checkpoint), which keeps SD-card writes down; losing the last seconds of samples in
a power cut is accepted, losing evidence is not.

Sequence numbers are assigned by the writer in queue order and only advance when a commit
succeeds, so they stay gap-free. Rows are deleted only by retention (synced and old) or by the
telemetry budget; the newest row is never deleted, so the sequence never restarts.

Telemetry lives under a byte budget: past it, the oldest synced telemetry goes first, then
unsynced telemetry, down to 90 % of the budget (hysteresis, so one sample does not trigger a
delete every commit). Every dropped row is counted (``dropped_synced`` / ``dropped_unsynced``),
and the drops are reported as a ``journal.telemetry_dropped`` evidence event at most once a
minute (and on close).

A full disk (SQLITE_FULL / ENOSPC) rolls the group back and makes room by dropping telemetry
if any exists, then retries once; if it still fails, the waiting appends raise
:class:`JournalFullError`. Nothing already committed is touched.

``close()`` waits for the writer on the event loop (the writer resolves a future as its last
act), never by blocking an executor thread on ``join()``. The writer is a daemon thread, and a
journal whose event loop ended without ``close()`` is closed by its writer within
``LOOP_CHECK_S``: a crashed caller leaves no thread and no open file behind.

Evidence events are hash-chained (:mod:`wire.chain`): the writer gives each evidence row the
seq and hash of the previous evidence row (``prev_seq``, ``prev_hash``) and its own ``hash``
over its canonical body, in the same transaction as the row (no extra write, no extra fsync).
The chain head lives in memory and is read back from the newest chained row on open (or from
the meta table, where retention pruning keeps it when it prunes the head's row). After
opening, the journal audits its own chain once, in the background (one read pass on its own
connection, no writes unless something is wrong; ``await journal.audited()`` waits for it):
rows whose hash no longer matches their body, links that do not match, or two rows naming the
same predecessor are reported in a ``journal.chain_audit`` evidence event, which
the centre turns into alerts. The centre verifies the chain independently as batches arrive
(docs/antifraud.md). Telemetry is not chained: it is droppable by design.

On open, ``PRAGMA quick_check`` runs; a file that fails it (or is not a database at all) is
moved aside (never deleted) and a fresh journal starts with a ``journal.recovered`` event that
says where the old file went. The sequence resumes after the highest sequence that could still
be read from the damaged file.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import hashlib
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gateway.clock import Clock, SystemClock
from gateway.errors import JournalClosedError, JournalError, JournalFullError
from gateway.events import EVENT_CLASSES, EVIDENCE, TELEMETRY, Event
from wire.canonical import encode as canonical_encode
from wire.chain import BROKEN_LINK, EDITED, FORK, GENESIS, ChainError, check_links, verify_chain
from wire.chain import DOMAIN as CHAIN_DOMAIN
from wire.errors import EncodingError

log = logging.getLogger("gateway.journal")

DEFAULT_TELEMETRY_BUDGET: Final = 32 * 1024 * 1024
BUDGET_LOW_WATER: Final = 0.9  # drop down to this fraction of the budget
DROP_REPORT_INTERVAL_S: Final = 60.0
DROP_CHUNK_ROWS: Final = 256
MAKE_ROOM_ATTEMPTS: Final = 12  # each drops a tenth of telemetry: ~70 % of it at most
ROW_OVERHEAD_BYTES: Final = 96  # rough per-row size beyond the payload, for batch byte limits
# How often an idle writer looks whether its event loop still exists. A journal whose loop ended
# without close() (a crashed caller) is closed by its writer then, so no thread and no file stay
# open behind it. Once a second costs nothing on a Pi.
LOOP_CHECK_S: Final = 1.0

# Schema migrations, applied in order on open, each in one transaction with its record. The
# records live in sqlite-utils' table (``_sqlite_migrations``, same schema and names) so journals
# made by earlier versions open unchanged; sqlite-utils itself is not imported (about 4 MiB of
# resident modules for two CREATE statements, on a daemon that idles for years).
MIGRATION_SET: Final = "compound-gw.journal"
_MIGRATIONS_DDL: Final = (
    'CREATE TABLE IF NOT EXISTS "_sqlite_migrations" ("id" INTEGER PRIMARY KEY, '
    '"migration_set" TEXT, "name" TEXT, "applied_at" TEXT)',
    'CREATE UNIQUE INDEX IF NOT EXISTS "idx__sqlite_migrations_migration_set_name" '
    'ON "_sqlite_migrations" ("migration_set", "name")',
)


def m001_events(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            cls TEXT NOT NULL,
            payload TEXT NOT NULL,
            wall REAL NOT NULL,
            mono REAL NOT NULL,
            boot_id TEXT NOT NULL,
            clock_synced INTEGER NOT NULL,
            synced INTEGER NOT NULL DEFAULT 0
        )"""
    )
    # Partial indexes stay small: only what the uploader and the budget need to find.
    db.execute("CREATE INDEX events_unsynced ON events(seq) WHERE synced = 0")
    db.execute("CREATE INDEX events_telemetry ON events(seq) WHERE cls = 'telemetry'")
    db.execute("CREATE INDEX events_kind ON events(kind, seq)")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def m002_chain(db: sqlite3.Connection) -> None:
    # The hash chain over evidence (wire/chain.py); NULL on telemetry and on older rows.
    db.execute("ALTER TABLE events ADD COLUMN prev_seq INTEGER")
    db.execute("ALTER TABLE events ADD COLUMN prev_hash TEXT")
    db.execute("ALTER TABLE events ADD COLUMN hash TEXT")


MIGRATIONS: Final[tuple[Callable[[sqlite3.Connection], None], ...]] = (m001_events, m002_chain)


def apply_migrations(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this journal lacks (autocommit connection); returns their names."""
    done: list[str] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for ddl in _MIGRATIONS_DDL:
            conn.execute(ddl)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    applied = {
        r[0]
        for r in conn.execute(
            'SELECT name FROM "_sqlite_migrations" WHERE migration_set = ?', (MIGRATION_SET,)
        )
    }
    for fn in MIGRATIONS:
        if fn.__name__ in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            fn(conn)
            conn.execute(
                'INSERT INTO "_sqlite_migrations" (migration_set, name, applied_at) '
                "VALUES (?, ?, ?)",
                (MIGRATION_SET, fn.__name__, str(datetime.datetime.now(datetime.UTC))),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.append(fn.__name__)
    return done


@dataclass(slots=True)
class _Append:
    kind: str
    cls: str
    payload_json: str
    wall: float
    mono: float
    boot_id: str
    clock_synced: bool
    future: asyncio.Future[Event]


@dataclass(slots=True)
class _Control:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any] | None
    sync_full: bool = False


@dataclass(slots=True)
class _DropTally:
    synced: int = 0
    unsynced: int = 0
    bytes: int = 0

    def any(self) -> bool:
        return bool(self.synced or self.unsynced)


@dataclass(slots=True)
class RecoveryInfo:
    moved_to: str
    reason: str
    salvaged_last_seq: int


@dataclass(slots=True)
class _State:
    last_seq: int = 0
    telemetry_bytes: int = 0
    dropped_synced: int = 0
    dropped_unsynced: int = 0
    commits: int = 0
    full_errors: int = 0
    pending_drops: _DropTally = field(default_factory=_DropTally)
    last_drop_report: float = -1e18
    chain_seq: int = 0  # the newest chained (evidence) row, 0 before the first
    chain_hash: str = GENESIS
    # The same pair as one object, replaced whole: another thread reads it without tearing.
    chain_head: tuple[int, str] = (0, GENESIS)


def _is_disk_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return True
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "disk is full" in str(exc)


def encode_payload(payload: Mapping[str, Any]) -> str:
    """Canonical JSON for a payload; raises JournalError for what JSON cannot hold."""
    if not isinstance(payload, Mapping):
        raise JournalError("payload must be a JSON object", got=type(payload).__name__)
    try:
        # The canonical encoding (wire/canonical.py) is what the chain hashes and the centre
        # re-encodes: a payload it cannot hold is refused here, at the caller, not in the writer.
        return canonical_encode(dict(payload)).decode("utf-8")
    except EncodingError as exc:
        raise JournalError(f"payload is not JSON-serialisable: {exc.reason}") from exc


def _row_to_event(row: Sequence[Any]) -> Event:
    seq, kind, cls, payload, wall, mono, boot_id, clock_synced = row[:8]
    prev_seq, prev_hash, digest = row[8:11] if len(row) >= 11 else (None, None, None)
    return Event(
        seq=seq,
        kind=kind,
        cls=cls,
        payload=json.loads(payload),
        wall_time=wall,
        mono_time=mono,
        boot_id=boot_id,
        clock_synced=bool(clock_synced),
        prev_seq=prev_seq,
        prev_hash=prev_hash,
        hash=digest,
    )


def _chained(
    row: tuple[Any, ...], head: tuple[int, str]
) -> tuple[tuple[Any, ...], tuple[int, str]]:
    """An 8-column row with its chain columns; the new head if it is evidence."""
    seq, kind, cls, payload_json, wall, mono, boot_id, clock_synced = row
    if cls != EVIDENCE:
        return (*row, None, None, None), head
    prev_seq, prev_hash = head
    digest = chain_digest(
        seq, kind, cls, payload_json, wall, mono, boot_id, bool(clock_synced), prev_seq, prev_hash
    )
    return (*row, prev_seq, prev_hash, digest), (seq, digest)


def chain_digest(
    seq: int,
    kind: str,
    cls: str,
    payload_json: str,
    wall: float,
    mono: float,
    boot_id: str,
    clock_synced: bool,
    prev_seq: int,
    prev_hash: str,
) -> str:
    """:func:`wire.chain.event_hash` of the event these columns make, without parsing the
    payload again: ``payload_json`` is canonical already (:func:`encode_payload`), and the rest
    is written in the canonical form (keys sorted, floats as ``repr`` of the float SQLite will
    give back - an integer clock reading is stored as REAL). Equal to ``event_hash`` of the
    event read back (tests/antifraud/test_journal_chain.py holds it to that)."""

    def text(v: str) -> str:
        return json.dumps(v, ensure_ascii=False)

    body = (
        f'{{"boot_id":{text(boot_id)},"clock_synced":{"true" if clock_synced else "false"},'
        f'"cls":{text(cls)},"kind":{text(kind)},"mono_time":{float(mono)!r},'
        f'"payload":{payload_json},"prev_hash":{text(prev_hash)},"prev_seq":{int(prev_seq)},'
        f'"seq":{int(seq)},"wall_time":{float(wall)!r}}}'
    )
    return hashlib.sha256(CHAIN_DOMAIN + body.encode("utf-8")).hexdigest()


_SELECT = (
    "SELECT seq, kind, cls, payload, wall, mono, boot_id, clock_synced, prev_seq, prev_hash, hash"
    " FROM events"
)
_INSERT = (
    "INSERT INTO events (seq, kind, cls, payload, wall, mono, boot_id, clock_synced, "
    "prev_seq, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
AUDIT_KIND: Final = "journal.chain_audit"
AUDIT_MAX_LISTED: Final = 200


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _salvage_last_seq(path: Path) -> int:
    """The highest sequence still readable from a damaged journal (0 if none)."""
    try:
        conn = _connect(path, read_only=True)
    except sqlite3.Error:
        return 0
    try:
        best = 0
        for sql in ("SELECT max(seq) FROM events", "SELECT value FROM meta WHERE key='last_seq'"):
            with contextlib.suppress(sqlite3.Error, TypeError, ValueError):
                row = conn.execute(sql).fetchone()
                if row and row[0] is not None:
                    best = max(best, int(row[0]))
        return best
    finally:
        conn.close()


def check_integrity(path: Path, *, full: bool = False) -> str:
    """'ok', or what SQLite's quick_check (integrity_check with ``full``) found wrong."""
    try:
        conn = _connect(path)
        try:
            pragma = "integrity_check" if full else "quick_check"
            rows = conn.execute(f"PRAGMA {pragma}").fetchall()
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    result = "; ".join(str(r[0]) for r in rows)
    return "ok" if result == "ok" else result


def _move_aside(path: Path, stamp: str) -> Path:
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


class Journal:
    """The durable event log. Open with :meth:`Journal.open`; close with :meth:`close`."""

    def __init__(
        self,
        path: Path,
        *,
        gateway_id: str,
        clock: Clock,
        telemetry_budget_bytes: int,
        max_group: int,
        max_db_bytes: int | None,
    ) -> None:
        self.path = path
        self.gateway_id = gateway_id
        self.clock = clock
        self.telemetry_budget_bytes = telemetry_budget_bytes
        self.max_group = max_group
        self.max_db_bytes = max_db_bytes
        self.recovery: RecoveryInfo | None = None
        self._state = _State()
        self._queue: queue.SimpleQueue[_Append | _Control | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: threading.Thread | None = None
        self._writer_done: asyncio.Future[None] | None = None
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()
        self._closing = False
        self._closed = asyncio.Event()
        self._new_event = asyncio.Event()
        self._sync_mode = ""
        self._audit_task: asyncio.Task[list[dict[str, Any]]] | None = None

    # ----------------------------------------------------------------- opening

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        gateway_id: str,
        clock: Clock | None = None,
        telemetry_budget_bytes: int = DEFAULT_TELEMETRY_BUDGET,
        max_group: int = 512,
        max_db_bytes: int | None = None,
    ) -> Journal:
        """Open (or create) the journal at ``path``, recovering from corruption if needed."""
        journal = cls(
            Path(path),
            gateway_id=gateway_id,
            clock=clock or SystemClock(),
            telemetry_budget_bytes=telemetry_budget_bytes,
            max_group=max_group,
            max_db_bytes=max_db_bytes,
        )
        journal._loop = asyncio.get_running_loop()
        journal._writer_done = journal._loop.create_future()
        await asyncio.to_thread(journal._open_sync)
        journal._writer = threading.Thread(
            target=journal._writer_main, name="journal-writer", daemon=True
        )
        journal._writer.start()
        if journal.recovery is not None:
            info = journal.recovery
            log.error(
                "journal was corrupt (%s): moved to %s, fresh journal resumes after seq %d",
                info.reason,
                info.moved_to,
                info.salvaged_last_seq,
            )
            await journal.append(
                "journal.recovered",
                {
                    "moved_to": info.moved_to,
                    "reason": info.reason,
                    "resumed_after_seq": info.salvaged_last_seq,
                },
            )
        # In the background: start-up does not wait for a walk over a large journal.
        journal._audit_task = asyncio.create_task(journal._audit(), name="journal-audit")
        return journal

    async def audited(self) -> list[dict[str, Any]]:
        """Wait for the open-time chain audit; its findings (also journaled, if any)."""
        task = self._audit_task
        return [] if task is None else await asyncio.shield(task)

    async def _audit(self) -> list[dict[str, Any]]:
        try:
            findings = await asyncio.to_thread(self._audit_sync)
        except sqlite3.Error as exc:
            log.error("journal chain audit could not read %s: %s", self.path, exc)
            return []
        if findings and not self._closing:
            log.error("journal chain audit: %d finding(s), first %s", len(findings), findings[0])
            with contextlib.suppress(JournalClosedError):
                await self.append(
                    AUDIT_KIND,
                    {"findings": findings[:AUDIT_MAX_LISTED], "total": len(findings)},
                )
        return findings

    def _audit_sync(self) -> list[dict[str, Any]]:
        """Walk the chained rows once on a connection of its own; what says history was
        edited (see the module doc). Stops early when the journal is closing."""
        odd: list[dict[str, Any]] = []
        conn = _connect(self.path, read_only=True)

        def chained() -> Iterable[dict[str, Any]]:
            rows = conn.execute(f"{_SELECT} WHERE hash IS NOT NULL ORDER BY seq")
            for n, row in enumerate(rows):
                if n % 1000 == 0 and self._closing:
                    return
                try:
                    ev = _row_to_event(row).to_dict()
                except ValueError:  # a payload edited into non-JSON: keep it as text
                    ev = _row_to_event((*row[:3], "{}", *row[4:])).to_dict()
                    ev["payload"] = row[3]
                try:
                    check_links(ev)
                except ChainError:  # chain columns edited into nonsense
                    odd.append({"kind": "unreadable", "seq": int(row[0])})
                    continue
                yield ev

        try:
            found = verify_chain(chained())
        except ChainError as exc:  # pragma: no cover - rows come ascending, links pre-checked
            found = []
            odd.append({"kind": "unreadable", "seq": 0, "reason": exc.reason})
        finally:
            conn.close()
        return odd + [
            {"kind": f.kind, "seq": f.seq, **f.detail}
            for f in found
            if f.kind in (EDITED, BROKEN_LINK, FORK)
        ]

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        salvaged = 0
        if self.path.exists():
            verdict = check_integrity(self.path)
            if verdict != "ok":
                salvaged = _salvage_last_seq(self.path)
                stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
                moved = _move_aside(self.path, stamp)
                self.recovery = RecoveryInfo(str(moved), verdict[:500], salvaged)
        conn = _connect(self.path)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        self._sync_mode = "FULL"
        if self.max_db_bytes is not None:
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {max(16, self.max_db_bytes // page_size)}")
        apply_migrations(conn)
        row = conn.execute("SELECT value FROM meta WHERE key='gateway_id'").fetchone()
        if row is not None and row[0] != self.gateway_id:
            conn.close()
            raise JournalError(
                f"journal {self.path} belongs to gateway {row[0]!r}, not {self.gateway_id!r}",
                path=str(self.path),
            )
        if row is None or salvaged:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if row is None:
                    conn.execute("INSERT INTO meta VALUES ('gateway_id', ?)", (self.gateway_id,))
                if salvaged:
                    conn.execute(
                        "INSERT OR REPLACE INTO meta VALUES ('seq_floor', ?)", (str(salvaged),)
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        st = self._state
        max_seq = conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
        floor_row = conn.execute("SELECT value FROM meta WHERE key='seq_floor'").fetchone()
        st.last_seq = max(max_seq, int(floor_row[0]) if floor_row else 0)
        st.telemetry_bytes = (
            conn.execute(
                "SELECT coalesce(sum(length(payload)), 0) FROM events WHERE cls='telemetry'"
            ).fetchone()[0]
            or 0
        )
        for key in ("dropped_synced", "dropped_unsynced"):
            r = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            setattr(st, key, int(r[0]) if r else 0)
        head = conn.execute(
            "SELECT seq, hash FROM events WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if head is not None:
            st.chain_seq, st.chain_hash = int(head[0]), str(head[1])
        kept = conn.execute("SELECT value FROM meta WHERE key='chain_head'").fetchone()
        with contextlib.suppress(ValueError):
            kept_seq, kept_hash = str(kept[0]).split(" ") if kept else ("0", GENESIS)
            if int(kept_seq) > st.chain_seq and len(kept_hash) == len(GENESIS):
                st.chain_seq, st.chain_hash = int(kept_seq), kept_hash
        st.chain_head = (st.chain_seq, st.chain_hash)
        self._conn = conn
        self._reader = _connect(self.path)

    # ----------------------------------------------------------------- appends

    @property
    def last_seq(self) -> int:
        """The highest durable sequence number."""
        return self._state.last_seq

    @property
    def chain_head(self) -> tuple[int, str]:
        """(seq, hash) of the newest durable evidence row: the hash chain's head
        (``(0, GENESIS)`` before the first); the uploader signs it into every batch."""
        return self._state.chain_head

    def writer_alive(self) -> bool:
        """Whether the writer thread runs (the systemd watchdog stops pinging if not)."""
        return self._writer is not None and self._writer.is_alive()

    @property
    def commits(self) -> int:
        """Transactions committed since open (group commit makes this far below appends)."""
        return self._state.commits

    async def append(self, kind: str, payload: Mapping[str, Any], *, cls: str = EVIDENCE) -> Event:
        """Append one event; returns once it is committed (fsynced for evidence)."""
        if self._closing:
            raise JournalClosedError("journal is closed", path=str(self.path))
        if cls not in EVENT_CLASSES:
            raise JournalError(f"unknown event class {cls!r}", kind=kind)
        if not kind or not isinstance(kind, str):
            raise JournalError("event kind must be a non-empty string")
        payload_json = encode_payload(payload)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Event] = loop.create_future()
        clock = self.clock
        self._queue.put(
            _Append(
                kind,
                cls,
                payload_json,
                clock.wall(),
                clock.boottime(),
                clock.boot_id,
                clock.synced(),
                fut,
            )
        )
        return await asyncio.shield(fut)

    # ----------------------------------------------------------------- writer thread

    def _writer_main(self) -> None:
        try:
            self._write_until_closed()
        finally:
            # close() awaits this on the loop: no executor thread ever waits for the writer.
            done = self._writer_done
            if done is not None:
                self._resolve([(done, None, None)])

    def _next_op(self) -> _Append | _Control | None:
        """The next queued operation; None once close() asked or the event loop is gone."""
        while True:
            try:
                return self._queue.get(timeout=LOOP_CHECK_S)
            except queue.Empty:
                loop = self._loop
                if loop is not None and loop.is_closed():
                    log.warning(
                        "journal %s: its event loop ended without close(); closing it", self.path
                    )
                    return None

    def _write_until_closed(self) -> None:
        # An operation taken off the queue while grouping appends, next in line. A list, not an
        # optional: close()'s marker is None itself and must not be mistaken for "nothing held"
        # (it was, and close() then waited forever).
        held: list[_Append | _Control | None] = []
        while True:
            op = held.pop() if held else self._next_op()
            if op is None:
                self._finish_sync()
                return
            if isinstance(op, _Control):
                self._run_control(op)
                continue
            group = [op]
            while len(group) < self.max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(nxt, _Append):
                    held.append(nxt)
                    break
                group.append(nxt)
            self._commit_group(group)

    def _set_sync(self, mode: str) -> None:
        assert self._conn is not None
        if self._sync_mode != mode:
            self._conn.execute(f"PRAGMA synchronous = {mode}")
            self._sync_mode = mode

    def _commit_group(self, group: list[_Append]) -> None:
        conn = self._conn
        assert conn is not None
        st = self._state
        for attempt in range(1, MAKE_ROOM_ATTEMPTS + 1):
            try:
                events = self._write_group(conn, group)
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if _is_disk_full(exc):
                    st.full_errors += 1
                    if attempt < MAKE_ROOM_ATTEMPTS and self._make_room(conn):
                        continue
                    err: JournalError = JournalFullError(
                        "disk full: event not journaled", path=str(self.path)
                    )
                else:
                    err = JournalError(f"journal write failed: {exc}", path=str(self.path))
                log.error("%s (%d appends refused)", err.reason, len(group))
                self._resolve([(op.future, None, err) for op in group])
                return
            break
        self._resolve([(op.future, ev, None) for op, ev in zip(group, events, strict=True)])

    def _write_group(self, conn: sqlite3.Connection, group: list[_Append]) -> list[Event]:
        """One transaction: the group's rows, any budget drops, maybe a drop report."""
        st = self._state
        evidence = any(op.cls == EVIDENCE for op in group)
        seq = st.last_seq
        head = (st.chain_seq, st.chain_hash)
        rows = []
        added_tele = 0
        for op in group:
            seq += 1
            row, head = _chained(
                (
                    seq,
                    op.kind,
                    op.cls,
                    op.payload_json,
                    op.wall,
                    op.mono,
                    op.boot_id,
                    int(op.clock_synced),
                ),
                head,
            )
            rows.append(row)
            if op.cls == TELEMETRY:
                added_tele += len(op.payload_json)
        tele_bytes = st.telemetry_bytes + added_tele
        new_drops = _DropTally()
        pending = st.pending_drops
        report_due = False
        self._set_sync("FULL" if evidence or pending.any() else "NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT, rows)
        if tele_bytes > self.telemetry_budget_bytes:
            target = int(self.telemetry_budget_bytes * BUDGET_LOW_WATER)
            new_drops = self._drop_telemetry(conn, tele_bytes - target, seq)
            tele_bytes -= new_drops.bytes
        unreported = _DropTally(
            pending.synced + new_drops.synced,
            pending.unsynced + new_drops.unsynced,
            pending.bytes + new_drops.bytes,
        )
        if new_drops.any():
            self._record_drop_counters(conn, new_drops)
        if unreported.any() and (
            time.monotonic() - st.last_drop_report >= DROP_REPORT_INTERVAL_S or self._closing
        ):
            seq += 1
            report, head = _chained(self._drop_report_row(seq, unreported, new_drops), head)
            conn.execute(_INSERT, report)
            report_due = True
        conn.execute("COMMIT")
        # Only now, with the commit done, does the in-memory state move.
        st.commits += 1
        st.last_seq = seq
        st.chain_seq, st.chain_hash = head
        st.chain_head = head
        st.telemetry_bytes = tele_bytes
        st.dropped_synced += new_drops.synced
        st.dropped_unsynced += new_drops.unsynced
        if report_due:
            st.pending_drops = _DropTally()
            st.last_drop_report = time.monotonic()
        else:
            st.pending_drops = unreported
        return [_row_to_event(r) for r in rows]

    def _drop_report_row(
        self, seq: int, unreported: _DropTally, new: _DropTally
    ) -> tuple[Any, ...]:
        st = self._state
        clock = self.clock
        total = st.dropped_synced + st.dropped_unsynced + new.synced + new.unsynced
        payload = encode_payload(
            {
                "dropped_synced": unreported.synced,
                "dropped_unsynced": unreported.unsynced,
                "bytes": unreported.bytes,
                "total_dropped": total,
            }
        )
        return (
            seq,
            "journal.telemetry_dropped",
            EVIDENCE,
            payload,
            clock.wall(),
            clock.boottime(),
            clock.boot_id,
            int(clock.synced()),
        )

    def _record_drop_counters(self, conn: sqlite3.Connection, new: _DropTally) -> None:
        st = self._state
        conn.executemany(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            [
                ("dropped_synced", str(st.dropped_synced + new.synced)),
                ("dropped_unsynced", str(st.dropped_unsynced + new.unsynced)),
            ],
        )

    def _drop_telemetry(self, conn: sqlite3.Connection, need: int, newest_seq: int) -> _DropTally:
        """Delete the oldest telemetry (synced first) until ``need`` bytes are freed."""
        tally = _DropTally()
        for synced in (1, 0):
            while tally.bytes < need:
                rows = conn.execute(
                    "SELECT seq, length(payload) FROM events WHERE cls='telemetry' "
                    "AND synced=? AND seq < ? ORDER BY seq LIMIT ?",
                    (synced, newest_seq, DROP_CHUNK_ROWS),
                ).fetchall()
                if not rows:
                    break
                chosen = []
                for s, n in rows:
                    chosen.append(s)
                    tally.bytes += n
                    if synced:
                        tally.synced += 1
                    else:
                        tally.unsynced += 1
                    if tally.bytes >= need:
                        break
                conn.execute(
                    f"DELETE FROM events WHERE seq IN ({','.join('?' * len(chosen))})", chosen
                )
        return tally

    def _make_room(self, conn: sqlite3.Connection) -> bool:
        """On a full disk: drop the oldest tenth of telemetry so evidence fits. True if any."""
        st = self._state
        try:
            conn.execute("BEGIN IMMEDIATE")
            drops = self._drop_telemetry(conn, max(1, st.telemetry_bytes // 10), st.last_seq + 1)
            if drops.any():
                self._record_drop_counters(conn, drops)
            conn.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            return False
        if not drops.any():
            return False
        st.commits += 1
        st.telemetry_bytes -= drops.bytes
        st.dropped_synced += drops.synced
        st.dropped_unsynced += drops.unsynced
        p = st.pending_drops
        st.pending_drops = _DropTally(
            p.synced + drops.synced, p.unsynced + drops.unsynced, p.bytes + drops.bytes
        )
        log.warning(
            "disk full: dropped %d telemetry rows (%d bytes) to make room",
            drops.synced + drops.unsynced,
            drops.bytes,
        )
        return True

    def _run_control(self, op: _Control) -> None:
        assert self._conn is not None
        try:
            self._set_sync("FULL" if op.sync_full else "NORMAL")
            result = op.fn(self._conn)
        except BaseException as exc:  # handed to the awaiting caller
            with contextlib.suppress(sqlite3.Error):
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            if _is_disk_full(exc):
                exc = JournalFullError("disk full", path=str(self.path))
            if op.future is not None:
                self._resolve([(op.future, None, exc)])
            else:
                log.error("journal maintenance failed: %s", exc)
            return
        self._state.commits += 1
        if op.future is not None:
            self._resolve([(op.future, result, None)])

    def _resolve(
        self, outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]]
    ) -> None:
        loop = self._loop
        assert loop is not None

        def settle() -> None:
            for fut, value, exc in outcomes:
                if fut.done():
                    continue
                if exc is not None:
                    fut.set_exception(exc)
                else:
                    fut.set_result(value)
            self._new_event.set()
            self._new_event = asyncio.Event()

        with contextlib.suppress(RuntimeError):  # loop already closed: nobody is waiting
            loop.call_soon_threadsafe(settle)

    def _finish_sync(self) -> None:
        conn = self._conn
        if conn is None:
            return
        st = self._state
        try:
            if st.pending_drops.any():
                # Report drops not yet reported, so the count is never lost on shutdown.
                self._write_group(conn, [])
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.error("journal close: %s", exc)
        finally:
            conn.close()
            self._conn = None
            with self._reader_lock:
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None

    async def _control(
        self, fn: Callable[[sqlite3.Connection], Any], *, sync_full: bool = False
    ) -> Any:
        if self._closing:
            raise JournalClosedError("journal is closed", path=str(self.path))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put(_Control(fn, fut, sync_full))
        return await asyncio.shield(fut)

    # ----------------------------------------------------------------- sync cursor

    async def read_after(
        self,
        seq: int,
        *,
        limit: int = 500,
        max_bytes: int = 1_000_000,
        unsynced_only: bool = False,
        classes: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
    ) -> list[Event]:
        """Events with sequence > ``seq`` in order, at most ``limit`` rows / ~``max_bytes``."""
        where = ["seq > ?"]
        params: list[Any] = [seq]
        if unsynced_only:
            where.append("synced = 0")
        if classes is not None:
            cl = list(classes)
            where.append(f"cls IN ({','.join('?' * len(cl))})")
            params.extend(cl)
        if kinds is not None:
            kl = list(kinds)
            where.append(f"kind IN ({','.join('?' * len(kl))})")
            params.extend(kl)
        sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?"
        params.append(max(1, limit))

        def read() -> list[Event]:
            with self._reader_lock:
                if self._reader is None:
                    raise JournalClosedError("journal is closed", path=str(self.path))
                out: list[Event] = []
                size = 0
                for row in self._reader.execute(sql, params):
                    size += len(row[3]) + ROW_OVERHEAD_BYTES
                    if out and size > max_bytes:
                        break
                    out.append(_row_to_event(row))
                return out

        return await asyncio.to_thread(read)

    async def mark_synced_through(self, seq: int) -> int:
        """Mark every event up to ``seq`` as synced; returns how many rows changed."""
        seq = min(seq, self._state.last_seq)

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute("UPDATE events SET synced=1 WHERE seq <= ? AND synced=0", (seq,))
            return cur.rowcount

        return int(await self._control(run))

    async def mark_synced(self, seqs: Iterable[int]) -> int:
        """Mark exactly these events as synced (out-of-order acks); returns rows changed."""
        chosen = sorted({int(s) for s in seqs})

        def run(conn: sqlite3.Connection) -> int:
            changed = 0
            conn.execute("BEGIN")
            for i in range(0, len(chosen), 500):
                part = chosen[i : i + 500]
                cur = conn.execute(
                    f"UPDATE events SET synced=1 WHERE synced=0 AND seq IN "
                    f"({','.join('?' * len(part))})",
                    part,
                )
                changed += cur.rowcount
            conn.execute("COMMIT")
            return changed

        return int(await self._control(run))

    async def prune(self, retention_s: float, *, now: float | None = None) -> int:
        """Delete synced events older than ``retention_s``; the newest row is always kept."""
        cutoff = (self.clock.wall() if now is None else now) - retention_s
        st = self._state

        def run(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            tele = conn.execute(
                "SELECT coalesce(sum(length(payload)), 0) FROM events WHERE synced=1 AND "
                "wall < ? AND cls='telemetry' AND seq < (SELECT max(seq) FROM events)",
                (cutoff,),
            ).fetchone()[0]
            cur = conn.execute(
                "DELETE FROM events WHERE synced=1 AND wall < ? "
                "AND seq < (SELECT max(seq) FROM events)",
                (cutoff,),
            )
            # The chain head may be among the pruned rows: keep it, so the next open continues
            # the chain instead of starting a new segment.
            conn.execute(
                "INSERT INTO meta VALUES ('chain_head', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (f"{st.chain_seq} {st.chain_hash}",),
            )
            conn.execute("COMMIT")
            st.telemetry_bytes -= int(tele)
            return cur.rowcount

        return int(await self._control(run))

    async def wait_for_new(self, after_seq: int, timeout: float | None = None) -> int:
        """Wait until an event with sequence > ``after_seq`` is durable; returns ``last_seq``.

        On timeout, returns ``last_seq`` as it is (which may still be ``<= after_seq``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._state.last_seq <= after_seq and not self._closing:
            waiter = self._new_event
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            try:
                await asyncio.wait_for(waiter.wait(), remaining)
            except TimeoutError:
                break
        return self._state.last_seq

    # ----------------------------------------------------------------- status

    async def stats(self) -> dict[str, Any]:
        """Counts for ``compound-gw status`` and the health model."""

        def read() -> dict[str, Any]:
            with self._reader_lock:
                if self._reader is None:
                    raise JournalClosedError("journal is closed", path=str(self.path))
                return _stats_from(self._reader, self.path)

        out = await asyncio.to_thread(read)
        st = self._state
        out.update(
            commits=st.commits,
            telemetry_bytes=st.telemetry_bytes,
            telemetry_budget_bytes=self.telemetry_budget_bytes,
            full_errors=st.full_errors,
            last_seq=st.last_seq,
        )
        return out

    # ----------------------------------------------------------------- closing

    async def close(self) -> None:
        """Finish queued appends, report pending drops, checkpoint the WAL and close."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        if self._audit_task is not None and not self._audit_task.done():
            # It stops at its next thousand rows; its append (if any) would be refused now.
            self._audit_task.cancel()
            await asyncio.gather(self._audit_task, return_exceptions=True)
        self._queue.put(None)
        writer, done = self._writer, self._writer_done
        if writer is not None and done is not None:
            if asyncio.get_running_loop() is self._loop:
                await asyncio.shield(done)
                # The writer resolved ``done`` as its last act: this join is over at once.
                writer.join(timeout=1.0)
            else:  # closed from another loop than it was opened in: wait without blocking it
                await asyncio.to_thread(writer.join)
        self._new_event.set()
        self._closed.set()

    async def __aenter__(self) -> Journal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _stats_from(conn: sqlite3.Connection, path: Path) -> dict[str, Any]:
    count, unsynced, max_seq = conn.execute(
        "SELECT count(*), coalesce(sum(synced = 0), 0), coalesce(max(seq), 0) FROM events"
    ).fetchone()
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    size = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            size += os.path.getsize(str(path) + suffix)
    dropped_synced = int(meta.get("dropped_synced", 0))
    dropped_unsynced = int(meta.get("dropped_unsynced", 0))
    return {
        "path": str(path),
        "gateway_id": meta.get("gateway_id"),
        "events": count,
        "unsynced": unsynced,
        "last_seq": max(max_seq, int(meta.get("seq_floor", 0))),
        "bytes_on_disk": size,
        "dropped": dropped_synced + dropped_unsynced,
        "dropped_synced": dropped_synced,
        "dropped_unsynced": dropped_unsynced,
    }


def read_status(path: str | Path) -> dict[str, Any]:
    """Journal status read straight from the file (works while the daemon runs)."""
    p = Path(path)
    if not p.exists():
        raise JournalError(f"no journal at {p}", path=str(p))
    conn = _connect(p, read_only=True)
    try:
        return _stats_from(conn, p)
    finally:
        conn.close()


def read_events(
    path: str | Path, *, after_seq: int = 0, last: int | None = None, limit: int = 1000
) -> list[Event]:
    """Events from the file directly, for ``events tail`` (read-only, daemon may be running)."""
    p = Path(path)
    if not p.exists():
        raise JournalError(f"no journal at {p}", path=str(p))
    conn = _connect(p, read_only=True)
    select = _SELECT
    with contextlib.suppress(sqlite3.Error):
        columns = {r[1] for r in conn.execute("PRAGMA table_info(events)")}
        if "hash" not in columns:  # a journal the daemon has not opened since the chain came
            select = _SELECT.replace(", prev_seq, prev_hash, hash", "")
    try:
        if last is not None:
            rows = conn.execute(
                f"SELECT * FROM ({select} WHERE seq > ? ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (after_seq, last),
            ).fetchall()
        else:
            rows = conn.execute(
                f"{select} WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
        return [_row_to_event(r) for r in rows]
    finally:
        conn.close()
