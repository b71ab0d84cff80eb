"""The broadcast controller: the thin asyncio shell around the pure ``BroadcastCore``.

It owns one inbox; every trigger (remote, schedule, button, CLI) only enqueues. The run loop
takes one input at a time (or a timer from the core), lets the core decide, and carries out the
effects in order: journal records, relay drives (grouped per board, written with verification
by the :class:`~drivers.relays.RelayBank`), and notifications to whoever asked. Because inputs
are serialised, the core never sees a stop in the middle of a relay write.

Fail-safe: at start every broadcast relay is forced off and verified (and a broadcast the
journal shows left open is recorded as interrupted); if the loop dies of anything (a bug, a
cancellation at shutdown), every broadcast relay is switched off before the error propagates.
A board that raises anything at all (not only :class:`~drivers.relays.RelayBoardError`) counts
as relays that did not verify: the core fails them off and records it, and the other boards
are still driven, so no board's misbehaviour can leave a relay on or stop the controller.

    controller = BroadcastController(layout, banks, journal, clock)
    ticket = controller.submit_start(StartRequest("r1", (1, 2), 90.0, "cli"))
    await ticket.wait("on")   # relays verified on
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from drivers.relays import Priority, RelayBank, RelayBoardError
from gateway.broadcast.plan import (
    BroadcastCore,
    Drive,
    Effect,
    Layout,
    Notify,
    Record,
    RelayRef,
    StartRequest,
    interrupted_broadcast,
)
from gateway.clock import Clock
from gateway.errors import JournalError
from gateway.events import EVIDENCE, Event

log = logging.getLogger(__name__)

# How far back the start-up scan looks for a broadcast left open (evidence events only).
INTERRUPTED_SCAN_EVENTS = 20_000
FAILSAFE_DEADLINE_S = 3.0


class EventJournal(Protocol):
    """The part of :class:`gateway.journal.Journal` the broadcast uses."""

    @property
    def last_seq(self) -> int: ...

    async def append(
        self, kind: str, payload: Mapping[str, Any], *, cls: str = EVIDENCE
    ) -> Event: ...

    async def read_after(
        self,
        seq: int,
        *,
        limit: int = 500,
        max_bytes: int = 1_000_000,
        unsynced_only: bool = False,
        classes: Any = None,
    ) -> list[Event]: ...


STAGES = ("accepted", "refused", "on", "done", "failed")


@dataclass(slots=True)
class Ticket:
    """What the requester holds: one future per stage (accepted/refused, on, done/failed)."""

    request_id: str
    futures: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)

    def _future(self, stage: str) -> asyncio.Future[dict[str, Any]]:
        if stage not in self.futures:
            self.futures[stage] = asyncio.get_running_loop().create_future()
        return self.futures[stage]

    def resolve(self, stage: str, detail: Mapping[str, Any]) -> None:
        fut = self._future(stage)
        if not fut.done():
            fut.set_result(dict(detail))
        # A refusal, failure or early end (replaced or stopped before the zones came on)
        # answers every stage not reached, so nobody waits for an "on" that cannot come.
        if stage in ("refused", "failed", "done"):
            # Only the stage and why: never a "verified" that belongs to another stage.
            why = {k: str(detail.get(k, "")) for k in ("cause", "reason")}
            for later in ("accepted", "on", "done"):
                f = self._future(later)
                if not f.done():
                    f.set_result({"stage": stage, **why})

    async def wait(self, stage: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait for ``stage``; the result says ``stage`` = refused/failed if it never came."""
        return await asyncio.wait_for(asyncio.shield(self._future(stage)), timeout)

    def outcome(self, stage: str) -> dict[str, Any] | None:
        fut = self.futures.get(stage)
        return fut.result() if fut is not None and fut.done() else None


@dataclass(frozen=True, slots=True)
class _Start:
    req: StartRequest


@dataclass(frozen=True, slots=True)
class _Stop:
    source: str
    reason: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Observed:
    states: Mapping[RelayRef, bool]


_Input = _Start | _Stop | _Observed
NotifyHook = Callable[[Notify, StartRequest | None], Awaitable[None]]


class BroadcastController:
    """Service ``broadcast``: serialises triggers, drives relays, journals every step."""

    def __init__(
        self,
        layout: Layout,
        banks: Mapping[str, RelayBank],
        journal: EventJournal,
        clock: Clock,
        *,
        name: str = "broadcast",
        on_notify: NotifyHook | None = None,
    ) -> None:
        missing = {r.board for r in layout.all_relays()} - set(banks)
        if missing:
            raise ValueError(f"no relay bank for board(s) {sorted(missing)}")
        self.name = name
        self.layout = layout
        self.banks = dict(banks)
        self.journal = journal
        self.clock = clock
        self.core = BroadcastCore(layout)
        self.on_notify = on_notify
        self.ready = asyncio.Event()  # set once the start-up force-off is done
        self._inbox: asyncio.Queue[_Input] = asyncio.Queue()
        self._tickets: dict[str, Ticket] = {}
        self._requests: dict[str, StartRequest] = {}

    # -- triggers ------------------------------------------------------------------------------

    def submit_start(self, req: StartRequest) -> Ticket:
        """Queue a start; returns at once with the ticket (call on the loop's thread)."""
        ticket = self._tickets.get(req.request_id) or Ticket(req.request_id)
        self._tickets[req.request_id] = ticket
        self._requests[req.request_id] = req
        self._inbox.put_nowait(_Start(req))
        return ticket

    def ticket(self, request_id: str) -> Ticket | None:
        """The ticket of a request still under way (listeners add stages such as "sound")."""
        return self._tickets.get(request_id)

    def submit_stop(self, source: str, reason: str = "", *, request_id: str | None = None) -> None:
        """Queue a stop (always ends in a verified off of every broadcast relay). With
        ``request_id``, only if that request is still the one playing when the stop is taken
        from the inbox (the silent test ends its own run, never a broadcast that replaced it)."""
        self._inbox.put_nowait(_Stop(source, reason, request_id))

    def submit_observed(self, states: Mapping[RelayRef, bool]) -> None:
        self._inbox.put_nowait(_Observed(dict(states)))

    async def record(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Journal an evidence event; a full disk must never keep relays from switching off."""
        try:
            await self.journal.append(kind, payload)
        except JournalError as exc:
            log.error("broadcast: could not journal %s: %s", kind, exc)

    @property
    def phase(self) -> str:
        return self.core.phase

    @property
    def active_source(self) -> str | None:
        """The source of the request under way (``test`` for the silent test), or None."""
        active = self.core.active
        return active.request.source if active is not None else None

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        self.ready.clear()
        try:
            await self._record_interrupted()
            await self._apply(self.core.boot(self.clock.monotonic()))
            self.ready.set()
            while True:
                item = await self._next_input()
                now = self.clock.monotonic()
                if isinstance(item, _Start):
                    effects = self.core.start(item.req, now)
                elif isinstance(item, _Stop):
                    active = self.core.active
                    if item.request_id is not None and (
                        active is None or active.request.request_id != item.request_id
                    ):
                        effects = []  # that request already ended (or was replaced)
                    else:
                        effects = self.core.stop(item.source, item.reason, now)
                elif isinstance(item, _Observed):
                    effects = self.core.observed(item.states, now)
                elif item is None:
                    effects = self.core.due(now)
                else:
                    raise TypeError(f"broadcast inbox got {item!r}")
                await self._apply(effects)
        except BaseException as exc:
            await asyncio.shield(self._fail_safe(exc))
            raise
        finally:
            self.ready.clear()

    async def _next_input(self) -> _Input | None:
        deadline = self.core.next_deadline()
        if deadline is None:
            return await self._inbox.get()
        timeout = deadline - self.clock.monotonic()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError:
            return None

    async def _apply(self, effects: list[Effect]) -> None:
        work = list(effects)
        while work:
            effect = work.pop(0)
            if isinstance(effect, Record):
                await self.record(effect.kind, effect.payload)
            elif isinstance(effect, Notify):
                await self._notify(effect)
            else:
                failed = await self.execute(effect)
                work[:0] = self.core.drive_done(effect, failed, self.clock.monotonic())

    async def _notify(self, note: Notify) -> None:
        ticket = self._tickets.get(note.request_id)
        if ticket is not None:
            ticket.resolve(note.stage, note.detail)
        req = self._requests.get(note.request_id)
        if self.on_notify is not None:
            try:
                await self.on_notify(note, req)
            except Exception:  # a listener's bug must not take the relays with it
                log.exception("broadcast: notify hook failed")
        if note.stage in ("refused", "done", "failed"):
            self._tickets.pop(note.request_id, None)
            self._requests.pop(note.request_id, None)

    # -- relays --------------------------------------------------------------------------------

    async def execute(self, drive: Drive) -> dict[RelayRef, str]:
        """Carry out ``drive`` stage by stage; returns the relays that did not verify."""
        failed: dict[RelayRef, str] = {}
        stages: list[tuple[frozenset[RelayRef], bool, Priority]] = [
            (drive.off, False, Priority.OFF),
            (drive.on, True, Priority.ON),
            (drive.off_last, False, Priority.OFF),
        ]
        for relays, on, priority in stages:
            if relays:
                failed.update(await self._write(relays, on, drive.hold_s, priority))
        return failed

    async def _write(
        self,
        relays: frozenset[RelayRef],
        on: bool,
        hold_s: Mapping[RelayRef, float],
        priority: Priority,
    ) -> dict[RelayRef, str]:
        per_board: dict[str, list[RelayRef]] = defaultdict(list)
        for ref in sorted(relays):
            per_board[ref.board].append(ref)

        async def one(board: str, refs: list[RelayRef]) -> dict[RelayRef, str]:
            holds = [hold_s[r] for r in refs if r in hold_s]
            hold = max(holds) if on and holds else None
            try:
                await self.banks[board].write(
                    {r.channel: on for r in refs}, hold_s=hold, priority=priority
                )
            except RelayBoardError as exc:
                # A read-back names the channels that differ; the others did verify.
                wrong = exc.fields.get("mismatched")
                if isinstance(wrong, list):
                    return {r: exc.reason for r in refs if r.channel in wrong}
                return {r: exc.reason for r in refs}
            except Exception as exc:
                # A board (or its driver) failing in a way it should not is still a relay that
                # did not verify: the core fails its relays off like any other, and the other
                # boards are switched all the same. Logged with its traceback: it is a bug.
                log.exception("broadcast: board %s failed unexpectedly", board)
                return {r: f"board error: {type(exc).__name__}: {exc}" for r in refs}
            return {}

        # Boards on different buses switch in parallel; on one bus the port's owner orders them.
        results = await asyncio.gather(*(one(b, refs) for b, refs in per_board.items()))
        merged: dict[RelayRef, str] = {}
        for r in results:
            merged.update(r)
        return merged

    async def read_all(self) -> tuple[dict[RelayRef, bool], dict[str, str]]:
        """Poll every board (low priority): broadcast relay states, and boards that failed."""
        states: dict[RelayRef, bool] = {}
        errors: dict[str, str] = {}
        boards = sorted({r.board for r in self.layout.all_relays()})

        async def one(board: str) -> None:
            try:
                values = await self.banks[board].read(priority=Priority.POLL)
            except RelayBoardError as exc:
                errors[board] = exc.reason
                return
            except Exception as exc:  # see _write: a misbehaving board never stops the poll
                log.exception("broadcast: reading board %s failed unexpectedly", board)
                errors[board] = f"board error: {type(exc).__name__}: {exc}"
                return
            mine = [ref for ref in self.layout.all_relays() if ref.board == board]
            if any(ref.channel >= len(values) for ref in mine):
                errors[board] = f"read returned {len(values)} channels"
                return
            for ref in mine:
                states[ref] = values[ref.channel]

        await asyncio.gather(*(one(b) for b in boards))
        return states, errors

    # -- start-up and fail-safe ----------------------------------------------------------------

    async def _record_interrupted(self) -> None:
        start = max(0, self.journal.last_seq - INTERRUPTED_SCAN_EVENTS)
        seen: list[tuple[int, str, Mapping[str, Any]]] = []
        after = start
        while True:
            batch = await self.journal.read_after(after, limit=2000, classes=(EVIDENCE,))
            if not batch:
                break
            seen.extend(
                (e.seq, e.kind, e.payload) for e in batch if e.kind.startswith("broadcast.")
            )
            after = batch[-1].seq
        open_ = interrupted_broadcast(seen)
        if open_ is not None:
            await self.record("broadcast.interrupted", {**open_, "cause": "restart"})

    async def _fail_safe(self, exc: BaseException) -> None:
        cause = "shutdown" if isinstance(exc, asyncio.CancelledError) else "error"
        relays = self.layout.all_relays()
        amp = self.layout.amplifier
        try:
            zones = relays - {amp} if amp else relays
            failed = await asyncio.wait_for(
                self.execute(
                    Drive(
                        "failsafe-off",
                        off=frozenset(zones),
                        off_last=frozenset({amp}) if amp else frozenset(),
                    )
                ),
                FAILSAFE_DEADLINE_S * 2,
            )
        except Exception as inner:
            failed = {r: f"{type(inner).__name__}: {inner}" for r in relays}
        payload: dict[str, Any] = {
            "cause": cause,
            "error": "" if cause == "shutdown" else f"{type(exc).__name__}: {exc}",
            "relays": [str(r) for r in sorted(relays)],
            "verified": not failed,
        }
        if failed:
            payload["errors"] = {str(r): why for r, why in sorted(failed.items())}
        with contextlib.suppress(Exception):
            await self.record("broadcast.failsafe_off", payload)
        # Requests still queued are dropped, not replayed after a restart: their requesters
        # are told now, and a late broadcast nobody is waiting for never plays.
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            if isinstance(item, _Start):
                with contextlib.suppress(Exception):
                    await self.record(
                        "broadcast.refused",
                        {
                            "request_id": item.req.request_id,
                            "reason": f"controller stopped ({cause})",
                        },
                    )
        for ticket in list(self._tickets.values()):
            ticket.resolve("failed", {"reason": f"controller stopped ({cause})"})
        self._tickets.clear()
        self._requests.clear()
        self.core = BroadcastCore(self.layout)
