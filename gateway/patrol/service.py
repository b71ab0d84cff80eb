"""The patrol service: replays the journal into the engine, follows it, journals the results.

    service = PatrolService(cfg.patrol, journal, clock)
    supervisor.add(service)          # or: build_services(cfg, journal, clock, board)

On start it replays the whole journal (restarts reach the same engine state), learns from the
``patrol.*`` events already there what was emitted before, and appends only what is new:
alerts not yet raised or resolved, verdicts and daily summaries whose content changed (as a new
``revision``). Then it follows new events with ``journal.wait_for_new`` and lets time pass every
``tick_s``. Emitted kinds (all evidence): ``patrol.alert``, ``patrol.alert_resolved``,
``patrol.round``, ``patrol.daily_summary`` (payloads: the engine's ``payload()``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gateway.clock import Clock
from gateway.events import EVIDENCE, Event
from gateway.patrol.config import PatrolSection
from gateway.patrol.engine import (
    AlertRaised,
    AlertResolved,
    DailySummary,
    Output,
    PatrolEngine,
    RoundVerdict,
)
from gateway.patrol.report import current_rows

log = logging.getLogger("gateway.patrol")

# Deadlines are judged this far behind the wall clock, so an event appended just before a
# deadline (its commit still in flight) is seen by it live exactly as it is on replay.
DEADLINE_LAG_S = 2.0
TICK_S = 5.0  # how often time is let pass when no event arrives
READ_BATCH = 1000
# A long-running engine forgets patrol days older than this (the journal keeps 30 days).
FORGET_AFTER_S = 40 * 86400.0

PATROL_KINDS = ("patrol.alert", "patrol.alert_resolved", "patrol.round", "patrol.daily_summary")


class JournalLike(Protocol):
    """The part of gateway.journal.Journal the service uses."""

    @property
    def last_seq(self) -> int: ...

    async def append(self, kind: str, payload: Any, *, cls: str = EVIDENCE) -> Event: ...

    async def read_after(self, seq: int, *, limit: int = 500) -> list[Event]: ...

    async def wait_for_new(self, after_seq: int, timeout: float | None = None) -> int: ...


_VOLATILE = ("at", "revision")


def _content(payload: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(payload).items() if k not in _VOLATILE}


@dataclass(slots=True)
class Ledger:
    """What the journal already holds of our output (derived from ``patrol.*`` events)."""

    raised: set[str] = field(default_factory=set)
    resolved: set[str] = field(default_factory=set)
    rounds: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)
    summaries: dict[str, tuple[dict[str, Any], int]] = field(default_factory=dict)

    def note(self, kind: str, payload: Any) -> None:
        if kind == "patrol.alert":
            self.raised.add(str(payload.get("alert")))
        elif kind == "patrol.alert_resolved":
            self.resolved.add(str(payload.get("alert")))
        elif kind == "patrol.round":
            self.rounds[str(payload.get("round"))] = (
                _content(payload),
                int(payload.get("revision", 0)),
            )
        elif kind == "patrol.daily_summary":
            self.summaries[str(payload.get("day"))] = (
                _content(payload),
                int(payload.get("revision", 0)),
            )

    def missing(self, outputs: Sequence[Output]) -> list[tuple[str, dict[str, Any]]]:
        """(kind, payload) of the outputs the journal does not hold yet, in order.

        Verdicts and summaries: only the last one per round/day counts (intermediate revisions
        a replay passes through were either journaled already or are superseded).
        """
        last_round: dict[str, int] = {}
        last_day: dict[str, int] = {}
        for i, out in enumerate(outputs):
            if isinstance(out, RoundVerdict):
                last_round[out.report.round_id] = i
            elif isinstance(out, DailySummary):
                last_day[out.day] = i
        todo: list[tuple[str, dict[str, Any]]] = []
        for i, out in enumerate(outputs):
            if isinstance(out, AlertRaised):
                if out.alert_id not in self.raised:
                    todo.append((out.kind, out.payload()))
                    self.raised.add(out.alert_id)
            elif isinstance(out, AlertResolved):
                if out.alert_id in self.raised and out.alert_id not in self.resolved:
                    todo.append((out.kind, out.payload()))
                    self.resolved.add(out.alert_id)
            elif isinstance(out, RoundVerdict):
                rid = out.report.round_id
                if last_round[rid] != i:
                    continue
                payload = out.payload()
                have = self.rounds.get(rid)
                if have is None or have[0] != _content(payload):
                    payload["revision"] = (have[1] if have else 0) + 1
                    todo.append((out.kind, payload))
                    self.rounds[rid] = (_content(payload), payload["revision"])
            elif isinstance(out, DailySummary):
                if last_day[out.day] != i:
                    continue
                payload = out.payload()
                have = self.summaries.get(out.day)
                if have is None or have[0] != _content(payload):
                    payload["revision"] = (have[1] if have else 0) + 1
                    todo.append((out.kind, payload))
                    self.summaries[out.day] = (_content(payload), payload["revision"])
        return todo


class PatrolService:
    """Supervised service judging patrols live from the journal (see the module doc)."""

    name = "patrol"

    def __init__(
        self,
        section: PatrolSection,
        journal: JournalLike,
        clock: Clock,
        *,
        tick_s: float = TICK_S,
        lag_s: float = DEADLINE_LAG_S,
        board: Any = None,
    ) -> None:
        self.section = section
        self.journal = journal
        self.clock = clock
        self.tick_s = tick_s
        self.lag_s = lag_s
        self.board = board
        self.engine: PatrolEngine | None = None
        self.ledger = Ledger()
        self.seq = 0
        self.emitted = 0
        self._reload = asyncio.Event()

    def reload(self, section: PatrolSection) -> None:
        """Judge with new routes and schedules (SIGHUP): the engine is rebuilt from the journal.

        Takes effect at the next wake-up (a new event or the next tick); outputs already in the
        journal are not emitted again (the ledger is read back from it), so a round judged
        before the reload keeps its verdict unless the new rules change it (a new revision).
        """
        self.section = section
        self._reload.set()

    async def run(self) -> None:
        while True:
            self._reload.clear()
            if not self.section.schedules:
                # Nothing to judge (no schedules yet): stay idle until a reload brings some.
                self.engine = None
                self._publish_idle()
                await self._reload.wait()
                continue
            await self._run_engine()

    async def _run_engine(self) -> None:
        # Each run starts from scratch: a crash leaves no half-updated state behind.
        self.engine = PatrolEngine(self.section)
        self.ledger = Ledger()
        self.seq = 0
        pending = await self._catch_up()
        forgot_at = self.engine.now
        while True:
            pending.extend(self.engine.advance(self.clock.wall() - self.lag_s, self.clock.synced()))
            await self._emit(pending)
            self._publish()
            if math.isfinite(self.engine.now) and (
                not math.isfinite(forgot_at) or self.engine.now - forgot_at > 86400.0
            ):
                forgot_at = self.engine.now
                self.engine.forget_before(forgot_at - FORGET_AFTER_S)
            if self._reload.is_set():
                return
            await self.journal.wait_for_new(self.seq, timeout=self.tick_s)
            pending = await self._catch_up()

    def _publish_idle(self) -> None:
        if self.board is not None:
            self.board.publish("patrol", {"day": None, "rounds": {}, "seq": self.seq,
                                          "waiting_for": "schedules"})  # fmt: skip

    async def _catch_up(self) -> list[Output]:
        """Feed every event after ``self.seq``; returns the engine's outputs."""
        assert self.engine is not None
        out: list[Output] = []
        while True:
            events = await self.journal.read_after(self.seq, limit=READ_BATCH)
            if not events:
                return out
            for ev in events:
                if ev.kind in PATROL_KINDS:
                    self.ledger.note(ev.kind, ev.payload)
                out.extend(self.engine.feed_events((ev.to_dict(),)))
            self.seq = events[-1].seq

    async def _emit(self, outputs: Sequence[Output]) -> None:
        for kind, payload in self.ledger.missing(outputs):
            await self.journal.append(kind, payload, cls=EVIDENCE)
            self.emitted += 1

    def _publish(self) -> None:
        if self.board is None or self.engine is None:
            return
        engine = self.engine
        if not math.isfinite(engine.now):
            # No synchronised time seen yet: nothing can be judged, say so.
            self.board.publish("patrol", {"day": None, "rounds": {}, "seq": self.seq,
                                          "waiting_for": "a synchronised clock"})  # fmt: skip
            return
        # The same rows as `compound-gw patrol today`, so the status page shows what it shows:
        # the patrol day in progress and the next day's rounds already open.
        day, today = current_rows(engine)
        states: dict[str, int] = {}
        for row in today:
            states[row["state"]] = states.get(row["state"], 0) + 1
        planned = {s.id: 0 for s in engine.section.schedules}
        for row in today:
            schedule = row["round"].partition("@")[0]  # round ids are '<schedule>@<start>'
            planned[schedule] = planned.get(schedule, 0) + 1
        self.board.publish(
            "patrol",
            {"day": day, "rounds": states, "seq": self.seq, "today": today, "schedules": planned},
        )


def build_services(cfg: Any, journal: Any, clock: Clock, board: Any = None) -> list[PatrolService]:
    """Daemon factory: one patrol service when ``cfg`` has a patrol section, else none.

    Without schedules the service idles (no journal replay) until a reload brings some.
    """
    section = getattr(cfg, "patrol", None)
    if not isinstance(section, PatrolSection):
        return []
    return [PatrolService(section, journal, clock, board=board)]


def load_engine(
    section: PatrolSection, journal_path: str | Path, now: float | None = None
) -> PatrolEngine:
    """An engine replayed from a journal file (read-only; for the CLI while the daemon runs).

    ``print(render_today(today_rows(load_engine(cfg.patrol, cfg.journal_path, time.time()))))``
    """
    from gateway.journal import read_events  # the CLI path only: keep daemon start-up lean

    engine = PatrolEngine(section)
    seq = 0
    while True:
        events: Iterable[Event] = read_events(journal_path, after_seq=seq, limit=5000)
        batch = list(events)
        if not batch:
            break
        engine.feed_events(ev.to_dict() for ev in batch)
        seq = batch[-1].seq
    if now is not None:
        engine.advance(now)
    return engine


__all__ = ["DEADLINE_LAG_S", "Ledger", "PatrolService", "build_services", "load_engine"]
