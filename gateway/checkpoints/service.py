"""The tap path as a supervised service: reader buses in, durable events and guard feedback out.

    card read ─► TapDecider (dedupe, roster) ─► await journal.append(...)   (durable on return)
              ─► only now: feedback to the reader (green + short beep: recorded)
    append raised ─► red + long beep: not recorded, the guard taps again

Every bus is its own :class:`~drivers.checkpoints.CheckpointBus` with its own reconnect state
machine, so one dead bus never stops the others. Reader state changes become ``reader.state``
evidence events; the live table of readers is published on the status board (``readers``)
for ``compound-gw readers``.

    service = CheckpointService(section, journal, clock, board, buses=[OsdpBus(spec), ...])
    await service.run()        # until cancelled
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from drivers.checkpoints import (
    CardRead,
    CheckpointBus,
    Feedback,
    NodeTap,
    ReaderReport,
    ReaderStatus,
    UnknownReply,
)
from gateway.checkpoints.config import (
    CheckpointsSection,
    load_band_master_key,
    load_reader_key,
)
from gateway.checkpoints.core import (
    NODE_TAP_DROPPED,
    READ_KINDS,
    READER_REPLY_UNKNOWN,
    READER_STATE,
    READER_STATUS,
    TAP,
    TAP_DELIVERED_LATE,
    TAP_REFUSED,
    TAP_REPEAT,
    UNKNOWN_WRISTBAND,
    Point,
    TapDecider,
    TapDecision,
    reader_id,
    reader_state_payload,
    unknown_reply_payload,
)
from gateway.clock import Clock
from gateway.credentials.bands import BandVerifier
from gateway.events import Event

log = logging.getLogger(__name__)

STATUS_PUBLISH_S = 1.0
# Events whose verified ``counter`` rebuilds the per-band counter state at start.
COUNTER_KINDS = (TAP, TAP_REPEAT, TAP_DELIVERED_LATE, UNKNOWN_WRISTBAND, "tap.unmapped")
# The whole counter table, journaled at start and then daily, so that it outlives the
# journal's retention (synced events older than ``retention_days`` are pruned).
BANDS_COUNTERS = "bands.counters"
COUNTERS_CHECKPOINT_S = 24 * 3600.0
_HISTORY_BATCH = 1000
_HISTORY_KINDS = tuple(dict.fromkeys((*COUNTER_KINDS, *READ_KINDS)))
# Taps being journaled at once, across all readers (they share group commits).
MAX_TAPS_IN_FLIGHT = 256


class Board(Protocol):
    def publish(self, section: str, value: Any) -> None: ...


class EventSink(Protocol):
    """What the service needs of the journal."""

    async def append(self, kind: str, payload: Any) -> Event: ...


@dataclass(frozen=True, slots=True)
class TapOutcome:
    """Handed to an observer after each card read (the latency bench uses it)."""

    read: CardRead | NodeTap
    decision: TapDecision
    event: Event | None
    durable_mono: float | None
    feedback: Feedback | None
    feedback_sent: bool


@dataclass(slots=True)
class _ReaderRow:
    checkpoint: str
    name: str
    bus: str
    address: int
    online: bool = False
    sc_active: bool = False
    reason: str = "starting"
    since_wall: float = 0.0
    last_tap_wall: float | None = None
    last_tap_guard: str | None = None
    taps: int = 0
    repeats: int = 0
    late: int = 0
    unknown: int = 0
    refused: int = 0
    not_recorded: int = 0
    feedback_failures: int = 0
    node_repeats_dropped: int = 0
    unknown_replies: int = 0
    tamper: bool | None = None
    power_fail: bool | None = None


class CheckpointService:
    """Supervised service ``checkpoints`` (see the module docstring)."""

    name = "checkpoints"

    def __init__(
        self,
        section: CheckpointsSection,
        journal: EventSink,
        clock: Clock,
        board: Board | None = None,
        *,
        buses: Sequence[CheckpointBus],
        observer: Callable[[TapOutcome], None] | None = None,
        band_master_key: bytes | None = None,
    ) -> None:
        self.section = section
        self.journal = journal
        self.clock = clock
        self.board = board
        self.buses = list(buses)
        self.observer = observer
        self.decider = TapDecider.build(
            (Point(p.id, p.bus, p.address) for p in section.points),
            {g.wristband: g.guard for g in section.roster},
            section.dedupe_window_s,
            BandVerifier(band_master_key, section.require_verified_bands),
        )
        self._rows = {
            (p.bus, p.address): _ReaderRow(p.id, p.name, p.bus, p.address) for p in section.points
        }
        self._inflight = asyncio.Semaphore(MAX_TAPS_IN_FLIGHT)

    def set_roster(self, roster: dict[str, str]) -> None:
        """New wristband -> guard map (daemon reload on SIGHUP); the next tap uses it."""
        self.decider.roster = dict(roster)

    # ------------------------------------------------------------------ running

    async def load_counters(self) -> int:
        """Rebuild each band's last verified counter from the journal's history (when the
        journal can be read back); returns how many events carried one."""
        read_after = getattr(self.journal, "read_after", None)
        if read_after is None:
            return 0
        seen, after = 0, 0
        while True:
            batch = await read_after(
                after, limit=_HISTORY_BATCH, kinds=(*_HISTORY_KINDS, BANDS_COUNTERS)
            )
            if not batch:
                return seen
            for e in batch:
                p = e.payload
                if e.kind == BANDS_COUNTERS:
                    table = p.get("bands") if isinstance(p, dict) else None
                    if isinstance(table, dict):
                        seen += sum(self.decider.bands.learn(str(u), c) for u, c in table.items())
                    continue
                if isinstance(p, dict):
                    # Node tap numbers and card reads already journaled: a node offering a
                    # tap again after our restart is not journaled twice.
                    self.decider.node_taps.learn(p, e.wall_time)
                if e.kind not in COUNTER_KINDS:
                    continue
                if p.get("verified") is True and self.decider.bands.learn(
                    str(p.get("wristband", "")), p.get("counter")
                ):
                    seen += 1
            after = batch[-1].seq

    async def run(self) -> None:
        n = await self.load_counters()
        if n:
            log.info("band counters rebuilt from %d verified reads in the journal", n)
        for row in self._rows.values():
            row.since_wall = self.clock.wall()
        try:
            async with asyncio.TaskGroup() as tg:
                for bus in self.buses:
                    await bus.start()
                    tg.create_task(self._consume(bus, tg), name=f"checkpoints-{bus.name}")
                tg.create_task(self._publish_status(), name="checkpoints-status")
                tg.create_task(self._checkpoint_counters_daily(), name="checkpoints-bands")
        finally:
            for bus in self.buses:
                with contextlib.suppress(Exception):
                    await bus.aclose()
            self._publish()

    async def _consume(self, bus: CheckpointBus, tg: asyncio.TaskGroup) -> None:
        async for item in bus.events():
            if isinstance(item, CardRead):
                decision = self.decider.decide(
                    bus=item.bus,
                    address=item.address,
                    data=item.data,
                    bits=item.bits,
                    card_format=item.card_format,
                    now=item.mono_time,
                    held=item.time_uncertain,
                    held_gap_s=item.out_of_contact_s,
                    wall=self._arrival_wall(item.mono_time),
                )
                await self._inflight.acquire()
                tg.create_task(self._record_tap(bus, item, decision))
            elif isinstance(item, NodeTap):
                decision = self.decider.decide_node_tap(
                    item, wall=self._arrival_wall(item.mono_time)
                )
                if decision.kind == NODE_TAP_DROPPED:
                    self._note_dropped(item, decision)
                    continue
                await self._inflight.acquire()
                tg.create_task(self._record_tap(bus, item, decision))
            elif isinstance(item, UnknownReply):
                await self._record_unknown_reply(item)
            elif isinstance(item, ReaderStatus):
                await self._record_state(item)
            elif isinstance(item, ReaderReport):
                await self._record_report(item)

    def _arrival_wall(self, mono: float) -> float:
        """The wall-clock time of a driver's monotonic arrival stamp."""
        return self.clock.wall() - max(0.0, time.monotonic() - mono)

    def _note_dropped(self, tap: NodeTap, decision: TapDecision) -> None:
        """A node's tap record the journal already has: counted, logged, not journaled."""
        row = self._rows.get((tap.bus, tap.address))
        if row is not None:
            row.node_repeats_dropped += 1
        why = ("its tap number is journaled already" if decision.payload.get("reason") == "number"
               else "it repeats a card read journaled already")  # fmt: skip
        log.info("reader %s offered tap %d again: not journaled twice (%s)",
                 reader_id(tap.bus, tap.address), tap.number, why)  # fmt: skip

    async def _record_unknown_reply(self, reply: UnknownReply) -> None:
        row = self._rows.get((reply.bus, reply.address))
        if row is not None:
            row.unknown_replies += 1
        payload = unknown_reply_payload(
            bus=reply.bus, address=reply.address, checkpoint=row.checkpoint if row else None,
            vendor_code=reply.vendor_code, data=reply.data, reason=reply.reason,
        )  # fmt: skip
        try:
            await self.journal.append(READER_REPLY_UNKNOWN, payload)
        except Exception as exc:
            log.error("%s from %s not recorded: %s", READER_REPLY_UNKNOWN, payload["reader"], exc)

    async def _record_tap(
        self, bus: CheckpointBus, read: CardRead | NodeTap, decision: TapDecision
    ) -> None:
        row = self._rows.get((read.bus, read.address))
        event: Event | None = None
        durable: float | None = None
        try:
            try:
                event = await self.journal.append(decision.kind, decision.payload)
                durable = time.monotonic()
                feedback = decision.feedback
            except Exception as exc:
                # Not durable: never green. The guard sees red and taps again (a read held
                # since long ago shows nothing: whoever made it is gone).
                log.error("tap at %s not recorded: %s", reader_id(read.bus, read.address), exc)
                feedback = Feedback.REFUSED if decision.feedback is not None else None
                if isinstance(read, NodeTap):
                    # The node may offer it again: that copy must not be taken for a repeat.
                    self.decider.node_taps.forget(reader_id(read.bus, read.address), read.number)
                if row is not None:
                    row.not_recorded += 1
            if row is not None and event is not None:
                if decision.kind == TAP:
                    row.taps += 1
                    row.last_tap_wall = event.wall_time
                    row.last_tap_guard = str(decision.payload.get("guard"))
                elif decision.kind == TAP_DELIVERED_LATE:
                    row.late += 1
                elif decision.kind == TAP_REFUSED:
                    row.refused += 1
                elif decision.feedback is Feedback.UNKNOWN or decision.feedback is None:
                    row.unknown += 1
                else:
                    row.repeats += 1
            if decision.feedback is None and event is not None and isinstance(read, NodeTap):
                log.warning(
                    "reader %s delivered tap %d it held (%s s old%s): recorded as %s, no "
                    "feedback shown", reader_id(read.bus, read.address), read.number,
                    read.age_s, " at least" if read.age_lower_bound else "", decision.kind,
                )  # fmt: skip
            elif decision.feedback is None and event is not None and isinstance(read, CardRead):
                log.warning(
                    "reader %s delivered a read it held while out of contact (%s): recorded "
                    "as %s, time uncertain, no feedback shown",
                    reader_id(read.bus, read.address),
                    "for an unknown time" if read.out_of_contact_s is None
                    else f"{read.out_of_contact_s:.0f} s",
                    decision.kind,
                )  # fmt: skip
            # The bus keeps trying for a few seconds if the reader cannot take it at once.
            sent = feedback is None or await bus.feedback(read.address, feedback)
            if not sent and row is not None:
                row.feedback_failures += 1
            if self.observer is not None:
                self.observer(TapOutcome(read, decision, event, durable, feedback, sent))
        finally:
            self._inflight.release()

    async def checkpoint_counters(self) -> bool:
        """Journal the band counter table (``bands.counters``) if there is one; one event,
        no extra write per tap. False when there is nothing to keep or the append failed."""
        table = dict(sorted(self.decider.bands.counters.items()))
        if not table:
            return False
        try:
            await self.journal.append(BANDS_COUNTERS, {"bands": table})
        except Exception as exc:
            log.error("band counters not recorded: %s", exc)
            return False
        return True

    async def _checkpoint_counters_daily(self) -> None:
        while True:
            await self.checkpoint_counters()
            await asyncio.sleep(COUNTERS_CHECKPOINT_S)

    async def _record_state(self, status: ReaderStatus) -> None:
        row = self._rows.get((status.bus, status.address))
        payload = reader_state_payload(
            bus=status.bus,
            address=status.address,
            checkpoint=row.checkpoint if row else None,
            online=status.online,
            sc_active=status.sc_active,
            reason=status.reason,
        )
        if row is not None:
            row.online, row.sc_active, row.reason = status.online, status.sc_active, status.reason
            row.since_wall = self.clock.wall()
        level = logging.INFO if status.online else logging.WARNING
        log.log(level, "reader %s %s (%s)", payload["reader"], payload["state"], status.reason)
        try:
            await self.journal.append(READER_STATE, payload)
        except Exception as exc:
            log.error("reader.state for %s not recorded: %s", payload["reader"], exc)
        self._publish()

    async def _record_report(self, report: ReaderReport) -> None:
        row = self._rows.get((report.bus, report.address))
        if row is not None:
            if (row.tamper, row.power_fail) == (report.tamper, report.power_fail):
                return
            row.tamper, row.power_fail = report.tamper, report.power_fail
        payload = {
            "reader": reader_id(report.bus, report.address),
            "checkpoint": row.checkpoint if row else None,
            "tamper": report.tamper,
            "power_fail": report.power_fail,
        }
        try:
            await self.journal.append(READER_STATUS, payload)
        except Exception as exc:
            log.error("reader.status not recorded: %s", exc)

    # ------------------------------------------------------------------ status board

    def snapshot(self) -> dict[str, Any]:
        """The live reader table (what ``compound-gw readers`` prints)."""
        buses: list[dict[str, Any]] = []
        errors: dict[tuple[str, int], dict[str, int]] = {}
        for bus in self.buses:
            counters, readers = bus.counters()
            buses.append(
                {
                    "bus": counters.bus,
                    "state": counters.state,
                    "opens": counters.opens,
                    "failures": counters.failures,
                    "bad_frames": counters.bad_frames,
                    "naks": counters.naks,
                    "unanswered": counters.unanswered,
                    "late_replies": counters.late_replies,
                    "unknown_replies": counters.unknown_replies,
                    "rx_bytes": counters.rx_bytes,
                    "tx_bytes": counters.tx_bytes,
                    "last_error": counters.last_error,
                }
            )
            for r in readers:
                errors[(r.bus, r.address)] = {
                    "offline_transitions": r.offline_transitions,
                    "refusals": r.refusals,
                    "card_reads": r.card_reads,
                    "held_reads": r.held_reads,
                    "feedback_lost": r.feedback_lost,
                    "node_taps": r.node_taps,
                }
        rows = []
        for key, row in sorted(self._rows.items()):
            rows.append(
                {
                    "checkpoint": row.checkpoint,
                    "name": row.name,
                    "reader": reader_id(row.bus, row.address),
                    "bus": row.bus,
                    "address": row.address,
                    "online": row.online,
                    "sc_active": row.sc_active,
                    "reason": row.reason,
                    "since": row.since_wall,
                    "last_tap": row.last_tap_wall,
                    "last_guard": row.last_tap_guard,
                    "taps": row.taps,
                    "repeats": row.repeats,
                    "delivered_late": row.late,
                    "unknown": row.unknown,
                    "refused": row.refused,
                    "not_recorded": row.not_recorded,
                    "feedback_failures": row.feedback_failures,
                    "node_repeats_dropped": row.node_repeats_dropped,
                    "unknown_replies": row.unknown_replies,
                    "tamper": row.tamper,
                    "power_fail": row.power_fail,
                    **errors.get(key, {}),
                }
            )
        return {"updated": self.clock.wall(), "buses": buses, "readers": rows}

    def _publish(self) -> None:
        if self.board is not None:
            self.board.publish("readers", self.snapshot())

    async def _publish_status(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(STATUS_PUBLISH_S)


# ============================================================================ factory


def make_buses(section: CheckpointsSection, base_dir: Path) -> list[CheckpointBus]:
    """One OSDP bus driver per configured bus, each reader with its key from its key file.

    Raises ConfigError (naming the key_file key) for a missing or too-open key file.
    """
    from drivers.osdp_bus import BusSpec, OsdpBus, ReaderSpec

    buses: list[CheckpointBus] = []
    for bus in section.buses:
        readers = tuple(
            ReaderSpec(p.address, load_reader_key(section, p, base_dir))
            for p in section.points
            if p.bus == bus.name
        )
        buses.append(OsdpBus(BusSpec(bus.name, bus.port, bus.baud, readers, bus.osdp_log_level)))
    return buses


def build_services(
    section: CheckpointsSection,
    journal: EventSink,
    clock: Clock,
    board: Board | None = None,
    *,
    base_dir: Path,
) -> list[CheckpointService]:
    """The daemon's services for ``[checkpoints]`` (none when no bus is configured)."""
    if not section.buses:
        return []
    return [
        CheckpointService(
            section, journal, clock, board, buses=make_buses(section, base_dir),
            band_master_key=load_band_master_key(section, base_dir),
        )
    ]  # fmt: skip


def daemon_factory(cfg: Any, journal: Any, clock: Clock, board: Board) -> list[CheckpointService]:
    """The daemon's ServiceFactory: ``cfg.checkpoints`` once the lead wires the section in."""
    section = getattr(cfg, "checkpoints", None)
    if section is None:
        return []
    return build_services(section, journal, clock, board, base_dir=Path(cfg.base_dir))
