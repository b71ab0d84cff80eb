"""The health hub: the one :class:`HealthModel` of a gateway, and the writer that journals it.

Capabilities report what they observe with plain, non-blocking calls from the event loop::

    hub = HealthHub.for_journal(journal, clock, board)   # the same hub for every capability
    hub.report("reader-3", "reader", "down", "no reply to 5 polls")   # every poll's verdict
    hub.report("relay-1", "relay", "ok", "read-back matches", confirmed=True)  # debounced already
    hub.sample("reader-3", "reader", {"poll_ms": 12.5, "crc_errors": 0})
    hub.record("tamper.open", {"input": "tamper", "pin": 17})  # any evidence event

State changes become evidence events ``health.state`` {device, kind, state, previous, reason};
samples become telemetry ``health.sample`` {device, kind, ...metrics} after thinning. Both go
through an in-memory queue that :meth:`HealthHub.run` (a supervised service) drains into the
journal in order; an item leaves the queue only once the journal accepted it, so a journal crash
loses nothing that is still in memory. Evidence is written at once; telemetry waits up to
``telemetry_batch_s`` so that samples from all pollers share one commit. Telemetry refused for
a full disk is dropped and counted; evidence is retried by the restarted service.

The hub also publishes every device's state to the daemon's status board (``compound-gw status``
shows it as one table) and re-checks staleness once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import weakref
from collections import deque
from collections.abc import Mapping
from typing import Any, Final, Protocol

from gateway.clock import Clock
from gateway.errors import JournalFullError
from gateway.events import EVIDENCE, TELEMETRY
from gateway.health.model import HealthModel, Hysteresis, State, StateChange
from gateway.health.thinning import SampleThinner
from gateway.journal import Journal

log = logging.getLogger("gateway.health")

TICK_S: Final = 1.0
# Telemetry waits up to this long (default; config health.telemetry_batch_s) so samples from
# many pollers share one commit (SD wear); evidence never waits, and takes any waiting samples
# into its own commit. Every commit of even one small row costs about 40 KB of page writes
# (WAL frames of the table and its three index leaves, the WAL index, later the checkpoint), so
# this cadence, not the row count, sets the idle gateway's SD writes (docs/ARCHITECTURE.md,
# "Daemon footprint"): 30 s let a noisy load1 cost 1.7 MB/hour; 300 s bounds it to 12 commits.
TELEMETRY_BATCH_S: Final = 300.0
STOP_FLUSH_S: Final = 2.0  # on stop, waiting samples get this long to reach the journal
MAX_BATCH: Final = 256
BOARD_SECTION: Final = "health"  # rows: device, kind, state, reason, for_s, seen_s_ago
DETAIL_SECTION: Final = "health_detail"  # {device: last metrics}, for ``health --json``

# Built-in hysteresis per device kind; config [[health.hysteresis]] overrides.
DEFAULT_POLICIES: Final[Mapping[str, Hysteresis]] = {
    "camera": Hysteresis(worsen_after=3, recover_after=2),
    "modem": Hysteresis(worsen_after=2, recover_after=2),
    "gateway": Hysteresis(worsen_after=2, recover_after=1),
    "tamper": Hysteresis(worsen_after=1, recover_after=1),
    "power": Hysteresis(worsen_after=1, recover_after=1),
    # No staleness by default: a capability that reports only on change must not turn unknown.
    # One that reports every poll can set [[health.hysteresis]] stale_after_s for its kind.
    "reader": Hysteresis(worsen_after=3, recover_after=2),
    "relay": Hysteresis(worsen_after=2, recover_after=2),
    "link": Hysteresis(worsen_after=2, recover_after=1),
}

# Metric thresholds for sample thinning: below these a move is noise, not news.
SAMPLE_THRESHOLDS: Final[Mapping[str, float]] = {
    "snapshot_ms": 1000.0,
    "rtsp_ms": 1000.0,
    "snapshot_bytes": 1e12,  # JPEG size varies every frame; only the heartbeat reports it
    "signal_dbm": 6.0,
    "cpu_temp_c": 3.0,
    "load1": 1.0,
    "mem_available_bytes": 64 * 1024 * 1024,
    "disk_free_bytes": 256 * 1024 * 1024,
    # Rates and sizes that wobble every poll: only the heartbeat reports them.
    "write_bytes_per_hour": 1e12,
    "process_write_bytes_per_hour": 1e12,
}
SAMPLE_IGNORE: Final = frozenset(
    {"uptime_s", "process_write_bytes", "device_write_bytes", "load5", "urc_count"}
)


class Board(Protocol):
    """The daemon's status board (gateway.daemon.StatusBoard)."""

    def publish(self, section: str, value: Any) -> None: ...


_HUBS: weakref.WeakKeyDictionary[Journal, HealthHub] = weakref.WeakKeyDictionary()


class HealthHub:
    """The gateway's health model plus its journal writer (a supervised service)."""

    name = "health-hub"

    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        board: Board | None = None,
        *,
        policies: Mapping[str, Hysteresis] | None = None,
        heartbeat_s: float = 900.0,
        telemetry_batch_s: float = TELEMETRY_BATCH_S,
    ) -> None:
        self.journal = journal
        self.clock = clock
        self.board = board
        merged = dict(DEFAULT_POLICIES)
        merged.update(policies or {})
        self.model = HealthModel(merged, default=Hysteresis())
        self.thinner = SampleThinner(
            heartbeat_s=heartbeat_s, thresholds=SAMPLE_THRESHOLDS, ignore=SAMPLE_IGNORE
        )
        self._pending: deque[tuple[str, dict[str, Any], str]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._flush_now = False
        self._first_pending_at = 0.0
        self.telemetry_batch_s = telemetry_batch_s
        self.telemetry_dropped = 0
        self.events_written = 0

    @classmethod
    def for_journal(
        cls, journal: Journal, clock: Clock, board: Board | None = None, **kwargs: Any
    ) -> HealthHub:
        """The one hub of this journal (made on first call), so every capability shares it."""
        hub = _HUBS.get(journal)
        if hub is None:
            hub = cls(journal, clock, board, **kwargs)
            _HUBS[journal] = hub
        elif board is not None and hub.board is None:
            hub.board = board
        return hub

    def configure(
        self,
        policies: Mapping[str, Hysteresis] | None = None,
        heartbeat_s: float | None = None,
        telemetry_batch_s: float | None = None,
    ) -> None:
        """Apply config after construction (the first capability to ask may not have it)."""
        if telemetry_batch_s is not None:
            self.telemetry_batch_s = telemetry_batch_s
        if policies:
            for kind, pol in policies.items():
                self.model._policies[kind] = pol
        if heartbeat_s is not None:
            self.thinner.heartbeat_s = heartbeat_s

    # --- the API other capabilities use --------------------------------------------------------

    def register(self, device: str, kind: str) -> None:
        """Show a device (as ``unknown``) before its first report."""
        self.model.register(device, kind, self.clock.monotonic())
        self._publish()

    def report(
        self,
        device: str,
        kind: str,
        state: State | str,
        reason: str,
        detail: Mapping[str, Any] | None = None,
        *,
        confirmed: bool = False,
    ) -> StateChange | None:
        """Record an observation (ok/degraded/down + reason); journals a state change if any.

        Report every observation (each poll), not only changes: the hysteresis counts them.
        A reporter that debounces itself and reports only changes passes ``confirmed=True``.
        """
        change = self.model.report(
            device, kind, state, reason, self.clock.monotonic(), detail, confirmed=confirmed
        )
        if change is not None:
            self._on_change(change)
        return change

    def sample(self, device: str, kind: str, metrics: Mapping[str, Any]) -> bool:
        """Offer a telemetry sample; it is journaled only if it says something new."""
        if not self.thinner.keep(device, metrics, self.clock.monotonic()):
            return False
        self._enqueue("health.sample", {"device": device, "kind": kind, **metrics}, TELEMETRY)
        return True

    def record(self, kind: str, payload: Mapping[str, Any], cls: str = EVIDENCE) -> None:
        """Queue any event (e.g. ``tamper.open``) behind the health events already queued."""
        self._enqueue(kind, dict(payload), cls)

    def states(self, *, detail: bool = True) -> list[dict[str, Any]]:
        """Every device as a row: device, kind, state, reason, for_s, seen_s_ago (, detail)."""
        now = self.clock.monotonic()
        rows = [h.to_dict(now) for h in self.model.snapshot()]
        if not detail:
            for r in rows:
                r.pop("detail", None)
        return rows

    # --- internals -----------------------------------------------------------------------------

    def _on_change(self, change: StateChange) -> None:
        log.log(
            logging.WARNING if change.state in (State.DOWN, State.DEGRADED) else logging.INFO,
            "health: %s (%s) %s -> %s: %s",
            change.device,
            change.kind,
            change.previous.value,
            change.state.value,
            change.reason,
        )
        self._enqueue("health.state", change.payload(), EVIDENCE)
        # The next sample after a change is worth keeping: it shows the new situation.
        self.thinner.forget(change.device)
        self._publish()

    def _enqueue(self, kind: str, payload: dict[str, Any], cls: str) -> None:
        if not self._pending:
            self._first_pending_at = self.clock.monotonic()
        self._pending.append((kind, payload, cls))
        self._idle.clear()
        self._wake.set()

    def _publish(self) -> None:
        if self.board is not None:
            self.board.publish(BOARD_SECTION, self.states(detail=False))
            self.board.publish(
                DETAIL_SECTION,
                {h.device: dict(h.detail) for h in self.model.snapshot() if h.detail},
            )

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far is in the journal (tests, shutdown)."""
        self._flush_now = True
        self._wake.set()
        await asyncio.wait_for(self._idle.wait(), timeout)

    def _due(self, now: float) -> bool:
        """Evidence goes at once; telemetry waits up to TELEMETRY_BATCH_S to share a commit."""
        if not self._pending:
            return False
        if self._flush_now or any(cls != TELEMETRY for _, _, cls in self._pending):
            return True
        return now - self._first_pending_at >= self.telemetry_batch_s

    async def _write_batch(self) -> None:
        """Append up to MAX_BATCH queued events concurrently, so they share one commit.

        ``journal.append`` queues synchronously before its first await, so gathering keeps the
        queue's order in the journal. Items leave our queue only once the journal has them.
        """
        batch = list(itertools.islice(self._pending, MAX_BATCH))
        results = await asyncio.gather(
            *(self.journal.append(kind, payload, cls=cls) for kind, payload, cls in batch),
            return_exceptions=True,
        )
        retry: list[tuple[str, dict[str, Any], str]] = []
        error: BaseException | None = None
        for item, result in zip(batch, results, strict=True):
            if not isinstance(result, BaseException):
                self.events_written += 1
            elif isinstance(result, JournalFullError) and item[2] == TELEMETRY:
                self.telemetry_dropped += 1
            else:
                retry.append(item)
                error = error or result
        for _ in batch:
            self._pending.popleft()
        self._pending.extendleft(reversed(retry))
        if error is not None:
            # Evidence stays queued; the supervisor restarts us with backoff and we try again.
            raise error

    async def run(self) -> None:
        """Drain the queue into the journal; tick staleness; keep the status board fresh.

        When stopped (cancelled), whatever still waits for its batch is written first, within
        ``STOP_FLUSH_S``: a clean stop loses no samples although they wait minutes to batch.
        """
        try:
            await self._run()
        except asyncio.CancelledError:
            if self._pending:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._drain(), STOP_FLUSH_S)
            raise

    async def _drain(self) -> None:
        while self._pending:
            await self._write_batch()

    async def _run(self) -> None:
        next_tick = self.clock.monotonic()
        while True:
            now = self.clock.monotonic()
            while self._due(now):
                await self._write_batch()
                now = self.clock.monotonic()
            if not self._pending:
                self._flush_now = False
                self._idle.set()
            if now >= next_tick:
                for change in self.model.tick(now):
                    self._on_change(change)
                self._publish()
                next_tick = now + TICK_S
                continue
            wait = next_tick - now
            if self._pending:
                wait = min(wait, max(0.0, self._first_pending_at + self.telemetry_batch_s - now))
            self._wake.clear()
            if self._due(self.clock.monotonic()):
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.01, wait))
            except TimeoutError:
                pass
