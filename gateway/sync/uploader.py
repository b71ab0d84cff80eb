"""The uploader: journal → centre, in order, signed, gzip, exactly once at the centre.

Theory of operation
-------------------
The journal flags each row synced once the centre has confirmed it. The uploader keeps a
*floor*: every seq at or below it is synced (or absent: dropped telemetry, pruned, lost in a
recovery). At start the floor is just below the first unsynced row. Each step:

1. Read the next in-order batch: unsynced rows after the floor, bounded by count and bytes.
2. If more rows follow it (a backlog), look for unsynced *evidence* beyond that batch; if
   there is any, send it first (an out-of-order batch). Evidence thus never waits behind days
   of telemetry. An evidence cursor remembers how far evidence is known to be all sent, so a
   week of backlog is scanned once, not once per batch.
3. Otherwise send the in-order batch. Its holes (seqs between floor and its last seq that it
   does not carry) are already synced or gone; the batch declares them ``skipped`` so the
   centre's watermark can pass them.
4. On a 200 reply whose ack confirms every event of the batch (:func:`judge_ack`): an in-order
   batch lets us ``mark_synced_through(last_seq)``; an evidence batch is marked seq by seq with
   ``mark_synced(seqs)``. Nothing else ever marks rows - a non-JSON reply, an HTML page, an ack
   for another batch or claiming seqs we never wrote is a SyncError: logged, retried.
5. Failures back off exponentially with full jitter; 429/503 wait for Retry-After. A request
   that timed out (a slow link) halves the batch size for the next tries.
6. Every batch carries ``chain_head`` (the journal hash chain's newest seq and hash) under
   the batch signature: a signed digest of the journal's history at every upload. When no
   batch has gone out for :data:`CHAIN_HEAD_INTERVAL_S`, the uploader journals a small
   ``sync.chain_head`` telemetry event so that an upload, and its signed head, goes out at
   least hourly. The centre compares each head with the event it holds (docs/antifraud.md).

One batch is in flight at a time, whatever the backlog. While it is, the next one is prepared
(read, built, signed, gzipped on a worker thread) on the assumption that the one in flight is
confirmed; it is posted only after that ack has been judged and its rows marked, and only if
the floor is then what it assumed - else it is dropped and the step plans afresh. A batch in
flight keeps its gzipped bytes and a receipt (seqs), not its events. The first upload waits a
random delay so a district's gateways do not all reconnect in the same second.

    uploader = Uploader(journal, clock, SyncSection(), data_dir=Path("/var/lib/compound-gw"))
    await uploader.run()     # under the supervisor
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import logging
import random
import ssl
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.clock import Clock
from gateway.errors import JournalError, SyncError
from gateway.events import EVIDENCE, TELEMETRY, Event
from gateway.journal import Journal
from gateway.sync.config import SyncPaths, SyncSection
from gateway.sync.policy import (
    AckVerdict,
    Backoff,
    Link,
    LinkTracker,
    judge_ack,
    parse_retry_after,
)
from gateway.sync.provision import load_private_key, read_enrollment
from gateway.sync.replies import hostile, parse_ack, reply_error, reply_start
from gateway.sync.tls import client_ssl_context, read_limited
from wire import BATCH_TYPE, Ack, Batch, ChainHead, WireError, holes, seal

log = logging.getLogger("gateway.sync.uploader")

INGEST_PATH: Final = "/api/v1/ingest"
MAX_SHRINK: Final = 9  # batch limits halve at most 9 times (500 events → 1)
GROW_AFTER_SUCCESSES: Final = 4
GZIP_LEVEL: Final = 6
RETRY_AFTER_JITTER: Final = 0.1  # wait Retry-After plus up to 10 %: clients must not return in step
NOT_PROVISIONED_POLL_S: Final = 60.0
NOT_PROVISIONED_LOG_EVERY: Final = 60  # polls between two 'not provisioned' warnings (hourly)
STATUS_SECTION: Final = "sync"
CHAIN_HEAD_INTERVAL_S: Final = 3600.0  # a signed chain head reaches the centre at least hourly
CHAIN_HEAD_KIND: Final = "sync.chain_head"

Publish = Callable[[str, Any], None]


class RetryLater(SyncError):
    """The centre said 429/503: come back after ``delay_s``."""


class SeqConflict(SyncError):
    """The centre holds ``seq`` of this batch with other content (409 ``seq_conflict``) and
    has kept the version just sent in a ``journal.rewritten`` alert before answering."""


@dataclass(frozen=True, slots=True)
class Plan:
    events: list[Event]
    in_order: bool
    skipped: list[tuple[int, int]]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch read, built, signed and gzipped, ready to post. ``batch`` is a receipt: the
    envelope's fields with each event cut down to its ``seq`` (all that judging the ack and
    marking need), so a batch in flight holds its gzipped bytes and little else."""

    in_order: bool
    batch: Batch
    wire_body: bytes
    raw_size: int


@dataclass(frozen=True, slots=True)
class Prefetched:
    """The next batch, prepared while the previous one was in flight, on the assumption that
    the previous one is confirmed: valid only if the floor is then ``floor`` and the limits
    are still ``limits`` (:meth:`Uploader._take_prefetched`)."""

    floor: int
    limits: tuple[int, int]
    evidence_cursor: int
    prepared: Prepared | None


def seal_batch(batch: Batch, key: Ed25519PrivateKey) -> tuple[bytes, int]:
    """Signed canonical envelope, gzipped; returns (wire bytes, uncompressed size)."""
    raw = seal(BATCH_TYPE, batch.to_dict(), key)
    return gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0), len(raw)


class Uploader:
    """The sync service (see module doc). ``publish`` receives the link status for
    ``compound-gw status``."""

    name = "uploader"

    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        section: SyncSection,
        *,
        data_dir: Path,
        publish: Publish | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.journal = journal
        self.clock = clock
        self.section = section
        self.paths = SyncPaths.from_section(section, Path(data_dir))
        self.publish = publish
        self.rng = rng or random.Random()
        self.backoff = Backoff(section.backoff_initial_s, section.backoff_max_s, self.rng)
        self.link = LinkTracker()
        self.centre_url = section.centre_url
        self.floor = 0
        self.evidence_cursor = 0
        self.shrink = 0
        self._successes = 0
        self.retry_in_s = 0.0
        self.last_ack: Ack | None = None
        self.counters = {
            "batches": 0,
            "events": 0,
            "wire_bytes": 0,
            "raw_bytes": 0,
            "errors": 0,
            "prefetched": 0,
            "conflicts": 0,
        }
        self._next: asyncio.Task[Prefetched | None] | None = None
        self.last_head_sent = clock.monotonic()  # a batch with the chain head last went out

    # -- the service ----------------------------------------------------------------------

    async def run(self) -> None:
        polls = 0
        while not self.paths.provisioned():
            self._publish(state="not provisioned")
            # Checked every minute, said at start and then hourly (a line a minute is SD writes
            # and says nothing new; the status board shows it all along).
            if polls % NOT_PROVISIONED_LOG_EVERY == 0:
                log.warning(
                    "sync: not provisioned (no %s); run `compound-gw provision`", self.paths.cert
                )
            polls += 1
            await asyncio.sleep(NOT_PROVISIONED_POLL_S)
        enrollment = read_enrollment(self.paths)
        self.centre_url = (self.section.centre_url or str(enrollment["centre_url"])).rstrip("/")
        key = await asyncio.to_thread(load_private_key, self.paths.key)
        ctx = await asyncio.to_thread(
            client_ssl_context, self.paths.ca, self.paths.cert, self.paths.key
        )
        self.floor = await self._initial_floor()
        self._publish()
        first = self.rng.uniform(0, self.section.first_delay_max_s)
        log.info("sync: %s, floor %d, first upload in %.1f s", self.centre_url, self.floor, first)
        await asyncio.sleep(first)
        timeout = aiohttp.ClientTimeout(
            total=self.section.request_timeout_s, sock_connect=self.section.connect_timeout_s
        )
        connector = aiohttp.TCPConnector(ssl=ctx, limit=1)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await self._align_with_centre(session)
            try:
                while True:
                    delay = await self.step(session, key)
                    self.retry_in_s = delay
                    self._publish()
                    if delay > 0:
                        await asyncio.sleep(delay)
            finally:
                self._drop_prefetched()

    async def _initial_floor(self) -> int:
        first = await self.journal.read_after(0, limit=1, unsynced_only=True)
        return first[0].seq - 1 if first else self.journal.last_seq

    async def _align_with_centre(self, session: aiohttp.ClientSession) -> None:
        """Start the floor at the centre's watermark when that is lower than our first unsynced
        row, so holes in between (telemetry dropped while a batch was out) get declared
        ``skipped`` and the centre's watermark can pass them. Best effort: offline, we start
        from the journal alone and the next start tries again."""
        try:
            async with session.get(f"{self.centre_url}{INGEST_PATH}/state") as resp:
                body = await read_limited(resp)
                if resp.status != 200 or resp.content_type != "application/json":
                    return
            state = parse_ack(body)
        except (aiohttp.ClientError, TimeoutError, OSError, SyncError) as exc:
            log.info("sync: centre state not available at start (%s)", exc)
            return
        if state.gateway_id == self.journal.gateway_id and state.watermark < self.floor:
            log.info(
                "sync: centre watermark %d below first unsynced; floor lowered", state.watermark
            )
            self.floor = state.watermark

    async def step(self, session: aiohttp.ClientSession, key: Ed25519PrivateKey) -> float:
        """One upload attempt (or one idle wait); returns the delay before the next."""
        prepared = await self._take_prefetched()
        if prepared is None:
            plan = await self.plan()
            if plan is None:
                if await self._chain_head_due():
                    return 0.0
                await self.journal.wait_for_new(self.floor, timeout=self.section.idle_poll_s)
                return 0.0
            prepared = await asyncio.to_thread(self.prepare, plan, key)
            del plan  # its events are in the gzipped body now; not kept while in flight
        try:
            await self.send(session, key, prepared)
        except SeqConflict as exc:
            self._drop_prefetched()
            await self._link_success()
            await self._settle_conflict(exc)
            return 0.0
        except RetryLater as exc:
            self._drop_prefetched()
            await self._link_success()
            delay = float(exc.fields.get("delay_s", 0.0))
            log.info("sync: centre asks to retry in %.1f s (%s)", delay, exc.reason)
            return delay * (1 + self.rng.uniform(0, RETRY_AFTER_JITTER))
        except SyncError as exc:
            self._drop_prefetched()
            self.counters["errors"] += 1
            await self._link_failure(exc.reason)
            delay = self.backoff.next_delay()
            log.warning("sync: %s %s; retry in %.1f s", exc.reason, exc.fields or "", delay)
            return delay
        self.backoff.reset()
        await self._link_success()
        return 0.0

    async def _settle_conflict(self, exc: SeqConflict) -> None:
        """A seq the centre already holds with other content (the journal file was edited or
        restored, and the centre's ack of the first copy never came back): both versions are
        at the centre (the held one, and the refused one in the ``journal.rewritten`` alert it
        stored before answering), so the seq counts as delivered here and the rest of the
        journal goes on; resending it would be refused forever and hold back every event after
        it. Not journaled here: after a restored old file every new event reuses a seq the
        centre holds, and a record of each refusal would reuse the next one."""
        seq = int(exc.fields["seq"])
        log.warning(
            "sync: centre holds seq %d with other content (%s); kept there", seq, exc.reason
        )
        self.counters["conflicts"] += 1
        try:
            await self.journal.mark_synced([seq])
        except JournalError as exc2:
            log.error("sync: seq %d not marked delivered: %s", seq, exc2.reason)

    async def _chain_head_due(self) -> bool:
        """Idle for an hour with a chain: journal ``sync.chain_head`` so the next upload
        carries a fresh signed head. True when it did."""
        seq, digest = self.journal.chain_head
        if seq == 0 or self.clock.monotonic() - self.last_head_sent < CHAIN_HEAD_INTERVAL_S:
            return False
        try:
            await self.journal.append(
                CHAIN_HEAD_KIND, {"chain_seq": seq, "chain_hash": digest}, cls=TELEMETRY
            )
        except JournalError as exc:
            log.warning("sync: chain head not journaled: %s", exc)
            return False
        self.last_head_sent = self.clock.monotonic()
        return True

    # -- deciding what to send ------------------------------------------------------------

    def limits(self) -> tuple[int, int]:
        events = max(1, self.section.batch_max_events >> self.shrink)
        size = max(1024, self.section.batch_max_bytes >> self.shrink)
        return events, size

    async def plan(self) -> Plan | None:
        plan, floor, cursor = await self._plan_at(self.floor, self.evidence_cursor)
        self.floor = max(self.floor, floor)
        self.evidence_cursor = max(self.evidence_cursor, cursor)
        return plan

    async def _plan_at(self, floor: int, cursor: int) -> tuple[Plan | None, int, int]:
        """The plan for a given floor and evidence cursor, and the floor and cursor it
        establishes; changes nothing (so it can run ahead, see :meth:`_prefetch`)."""
        limit, max_bytes = self.limits()
        snapshot = self.journal.last_seq
        events = await self.journal.read_after(
            floor, limit=limit, max_bytes=max_bytes, unsynced_only=True
        )
        if not events:
            # Nothing unsynced up to the snapshot: every row at or below it is synced or gone.
            return None, max(floor, snapshot), cursor
        if events[-1].seq < snapshot:
            start = max(events[-1].seq, cursor)
            evidence = await self.journal.read_after(
                start, limit=limit, max_bytes=max_bytes, unsynced_only=True, classes=[EVIDENCE]
            )
            if evidence:
                return Plan(evidence, in_order=False, skipped=[]), floor, cursor
            cursor = max(cursor, snapshot)
        plan = Plan(events, in_order=True, skipped=holes(floor, (e.seq for e in events)))
        return plan, floor, cursor

    # -- running one batch ahead ----------------------------------------------------------------
    #
    # While a batch is in flight (the centre verifying and storing it), the next one is read,
    # built, signed and gzipped, assuming the one in flight will be confirmed. It is only ever
    # *prepared* ahead: it is posted after the ack of the previous one has been judged and its
    # rows marked, and only if the floor is then exactly what was assumed (else it is thrown
    # away and the step plans afresh). One request in flight, acks judged by seq as before.
    # Only after an in-order batch: an evidence batch leaves its rows unsynced below the floor.

    def _start_prefetch(self, sent: Prepared, key: Ed25519PrivateKey) -> None:
        self._drop_prefetched()
        if sent.in_order:
            self._next = asyncio.create_task(self._prefetch(sent.batch.last_seq, key))

    async def _prefetch(self, floor: int, key: Ed25519PrivateKey) -> Prefetched | None:
        limits = self.limits()
        plan, _, cursor = await self._plan_at(floor, self.evidence_cursor)
        prepared = None if plan is None else await asyncio.to_thread(self.prepare, plan, key)
        return Prefetched(floor, limits, cursor, prepared)

    async def _take_prefetched(self) -> Prepared | None:
        """The batch prepared ahead, if it is still the right next one."""
        task, self._next = self._next, None
        if task is None:
            return None
        try:
            ahead = await task
        except (JournalError, SyncError, WireError) as exc:
            log.info("sync: batch prepared ahead failed (%s); planning again", exc)
            return None
        if ahead is None or ahead.prepared is None:
            return None
        if ahead.floor != self.floor or ahead.limits != self.limits():
            return None
        self.evidence_cursor = max(self.evidence_cursor, ahead.evidence_cursor)
        self.counters["prefetched"] += 1
        return ahead.prepared

    def _drop_prefetched(self) -> None:
        task, self._next = self._next, None
        if task is not None:
            task.cancel()

    # -- sending ----------------------------------------------------------------------------

    def prepare(self, plan: Plan, key: Ed25519PrivateKey) -> Prepared:
        """Build, sign and gzip the batch for ``plan`` (CPU only: runs on a worker thread)."""
        batch = self.build_batch(plan)
        wire_body, raw_size = seal_batch(batch, key)
        receipt = dataclasses.replace(batch, events=tuple({"seq": s} for s in batch.seqs()))
        return Prepared(plan.in_order, receipt, wire_body, raw_size)

    async def send(
        self, session: aiohttp.ClientSession, key: Ed25519PrivateKey, prepared: Prepared
    ) -> None:
        in_order, batch, wire_body, raw_size = (
            prepared.in_order,
            prepared.batch,
            prepared.wire_body,
            prepared.raw_size,
        )
        self._start_prefetch(prepared, key)
        try:
            async with session.post(
                f"{self.centre_url}{INGEST_PATH}",
                data=wire_body,
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            ) as resp:
                body = await read_limited(resp)
                status, ctype = resp.status, resp.content_type
                retry_after = resp.headers.get("Retry-After")
        except aiohttp.ConnectionTimeoutError as exc:
            # TCP + TLS handshake too slow: a smaller batch would not help.
            raise SyncError("connect timed out") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            self._shrink()
            raise SyncError(
                "upload timed out", events=len(batch.events), shrink=self.shrink
            ) from exc
        except (aiohttp.ClientError, ssl.SSLError, OSError) as exc:
            raise SyncError(f"link error: {type(exc).__name__}: {str(exc)[:200]}") from exc
        except ValueError as exc:  # e.g. a header aiohttp cannot parse: the peer's fault
            raise SyncError(f"centre reply is malformed: {str(exc)[:200]}") from exc
        self.counters["wire_bytes"] += len(wire_body)
        self.counters["raw_bytes"] += raw_size
        if status in (429, 503):
            wait = parse_retry_after(retry_after, self.clock.wall())
            if wait is None:
                wait = self.backoff.next_delay()
            raise RetryLater(f"centre answered {status}", delay_s=wait)
        if status == 413:
            self._shrink()
        if status != 200:
            refusal = reply_error(status, ctype, body)
            seq = refusal.fields.get("seq")
            conflict = status == 409 and refusal.fields.get("code") == "seq_conflict"
            if conflict and isinstance(seq, int) and seq in batch.seqs():
                raise SeqConflict(refusal.reason, seq=seq, batch_id=batch.batch_id)
            raise refusal
        if ctype != "application/json":
            raise SyncError(
                "centre reply is not JSON (captive portal or proxy?)",
                content_type=ctype[:80],
                start=reply_start(body),
            )
        ack = parse_ack(body)  # SyncError for anything malformed, whatever wire lets through
        with hostile("centre ack cannot be judged"):
            verdict = judge_ack(
                batch, ack, journal_last_seq=self.journal.last_seq, in_order=in_order
            )
        await self.record_ack(batch, in_order, ack, verdict)

    def build_batch(self, plan: Plan) -> Batch:
        """The checked batch for ``plan``, with a fresh id and the journal's chain head."""
        # The chain head first: last_seq only grows, so it stays at or above the head's seq.
        head_seq, head_hash = self.journal.chain_head
        return Batch.build(
            self.journal.gateway_id,
            f"b{plan.events[0].seq}-{uuid.uuid4().hex[:12]}",
            [e.to_dict() for e in plan.events],
            head_seq=max(self.journal.last_seq, plan.events[-1].seq),
            created_at=self.clock.wall(),
            skipped=plan.skipped,
            chain_head=ChainHead(head_seq, head_hash) if head_seq else None,
        )

    async def record_ack(self, batch: Batch, in_order: bool, ack: Ack, verdict: AckVerdict) -> None:
        """Mark what a judged ack confirms and move the floor (or the evidence cursor)."""
        if verdict.mark_through is not None:
            await self.journal.mark_synced_through(verdict.mark_through)
            self.floor = max(self.floor, verdict.mark_through)
        else:
            if verdict.note:
                log.info("sync: %s", verdict.note)
            await self.journal.mark_synced(verdict.mark_seqs)
            if in_order:
                self.floor = max(self.floor, batch.last_seq)
            else:
                self.evidence_cursor = max(self.evidence_cursor, batch.last_seq)
        self.last_ack = ack
        self.last_head_sent = self.clock.monotonic()
        self.counters["batches"] += 1
        self.counters["events"] += len(batch.events)
        self._successes += 1
        if self.shrink and self._successes >= GROW_AFTER_SUCCESSES:
            self.shrink -= 1
            self._successes = 0

    def _shrink(self) -> None:
        self.shrink = min(MAX_SHRINK, self.shrink + 1)
        self._successes = 0

    # -- link state -------------------------------------------------------------------------

    async def _link_success(self) -> None:
        now = self.clock.wall()
        down_since = self.link.since if self.link.state is Link.DOWN else None
        if self.link.success(now) is Link.UP:
            payload: dict[str, Any] = {"centre": self.centre_url}
            if down_since is not None:
                payload["down_for_s"] = round(now - down_since, 3)
            await self._journal_link("link.up", payload)

    async def _link_failure(self, reason: str) -> None:
        if self.link.failure(self.clock.wall(), reason) is Link.DOWN:
            await self._journal_link("link.down", {"centre": self.centre_url, "reason": reason})

    async def _journal_link(self, kind: str, payload: Mapping[str, Any]) -> None:
        log.info("sync: %s %s", kind, dict(payload))
        try:
            await self.journal.append(kind, payload)
        except JournalError as exc:
            log.error("sync: could not journal %s: %s", kind, exc.reason)

    def status(self) -> dict[str, Any]:
        """The link as ``compound-gw status`` shows it."""
        ack = self.last_ack
        return {
            "centre": self.centre_url,
            "link": self.link.state.value,
            "since": self.link.since or None,
            "last_success": self.link.last_success,
            "last_error": self.link.last_error,
            "failures": self.link.failures,
            "synced_floor": self.floor,
            "backlog": max(0, self.journal.last_seq - self.floor),
            "centre_watermark": ack.watermark if ack else None,
            "centre_gaps": len(ack.gaps) if ack else None,
            "retry_in_s": round(self.retry_in_s, 1),
            "batch_limit": self.limits()[0],
            **self.counters,
        }

    def _publish(self, **extra: Any) -> None:
        if self.publish is not None:
            self.publish(STATUS_SECTION, self.status() | extra)


def read_link_state(status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The uploader's section of a status mapping (``gather_status(cfg)``), if it published one."""
    value = status.get(STATUS_SECTION)
    return dict(value) if isinstance(value, Mapping) else None


def describe_link(link: Mapping[str, Any]) -> str:
    """One status line: ``link up to https://...; backlog 12; last success 3 s ago``."""
    parts = [f"link {link.get('link', '?')} to {link.get('centre') or '?'}"]
    if link.get("state"):
        parts = [str(link["state"])]
    parts.append(f"backlog {link.get('backlog', '?')}")
    if link.get("last_error") and link.get("link") != "up":
        parts.append(f"last error: {link['last_error']}")
    if link.get("retry_in_s"):
        parts.append(f"retry in {link['retry_in_s']} s")
    return "; ".join(parts)
