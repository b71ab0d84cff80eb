"""Finding new alerts in the centre's database and pushing each to its groups once.

Theory of operation
-------------------
:class:`CentreAlertSource` reads the centre's database (``centre.db``) read-only. Each source
has a durable cursor in the push outbox (``push_cursors``), a position no timestamp can fake:

``commands``
    the command queue's rowid (rows are only ever added); an ``broadcast.start`` whose summary
    ends ``[Actual]`` is an Actual broadcast. The commands one order queued for several
    gateways (same time, issuer and summary, consecutive rows) make one message.
``alerts``
    the alert store's ``id`` (AUTOINCREMENT): every journal-chain and anti-fraud alert.
``events:<gateway>``
    per gateway, the highest seq read of its ``tamper.open`` events, never past the gateway's
    watermark (every seq below it is stored, so nothing can arrive behind the cursor later).

Each scan reads at most ``limit`` rows a source past its cursor (indexed range reads: the cost
is the new rows, not the history). The first scan ever only sets the cursors at the current
ends (a centre's history is not pushed when alerts are switched on); a gateway enrolled later
starts at 0.

Gateways down: a gateway whose last contact (``last_seen``, or its enrolment if it never came)
is more than ``hours`` old opens an outage keyed by (gateway, last contact) in
``push_outages``: one message per outage, however many scans see it. When its last contact
moves on, the outage ends, with a short follow-up when ``recovery`` is on. Revoked gateways are
not watched.

Everything one scan found (messages owed, rendered and split, per group; new cursors; outages
opened and ended) is committed in one outbox transaction
(:meth:`~centre.push.outbox.PushOutbox.commit_scan`): a crash before it repeats the scan, one
after it finds nothing twice. Delivery is the outbox's (:class:`~centre.push.sender.RobotSender`:
paced per robot with the daily bulletin, retried with backoff, exactly once per part), one task
per robot, oldest alert first; a failed alert does not hold back the next.

    async with await CentreAlertSource.open(paths.database) as source:
        scanner = AlertScanner(source, outbox, sender, robots, config, tz="Asia/Shanghai")
        await scanner.run()          # until scanner.request_stop()
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import quote

from centre.errors import CentreError
from centre.push.alerts import (
    ACTUAL_BROADCAST,
    GATEWAY_DOWN,
    GATEWAY_UP,
    TAMPER,
    Alert,
    AlertConfig,
    Place,
    alert_markdown,
)
from centre.push.daily import DEFAULT_LANGUAGE
from centre.push.outbox import Owed, PushOutbox
from centre.push.plan import split_markdown
from centre.push.robot import Robot
from centre.push.sender import STOPPED, RobotSender
from centre.sqlite_worker import SqliteWorker

log = logging.getLogger("centre.push")

SCAN_LIMIT: Final = 500  # rows a source per scan; a backlog is read over several scans
BASELINE: Final = "baseline"
COMMANDS: Final = "commands"
COMMANDS_TABLE: Final = "commands"
ALERTS: Final = "alerts"
EVENTS: Final = "events:"
ACTUAL_MARK: Final = "[Actual]"


@dataclass(frozen=True, slots=True)
class GatewayState:
    gateway_id: str
    township: str
    compound: str
    last_contact: float
    revoked: bool


@dataclass(slots=True)
class Found:
    """What one read of the centre's database found past the cursors."""

    alerts: list[Alert] = field(default_factory=list)
    cursors: dict[str, int] = field(default_factory=dict)
    gateways: list[GatewayState] = field(default_factory=list)


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class CentreAlertSource(SqliteWorker):
    """The centre's database, read-only (the centre writes it; this only reads)."""

    THREAD_NAME_PREFIX = "centre-push-scan"
    CLOSED_MESSAGE = "alert source is closed"

    def _connect(self) -> sqlite3.Connection:
        if not Path(self._path).is_file():
            raise CentreError(f"{self._path}: no centre database here (is --data right?)")
        uri = f"file:{quote(str(Path(self._path).resolve()))}?mode=ro"
        db = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10
        )
        db.execute("PRAGMA query_only = ON")
        return db

    async def read(self, cursors: dict[str, int], *, limit: int = SCAN_LIMIT) -> Found:
        """The alerts past ``cursors`` (at most ``limit`` rows a source), the cursors' new
        positions and every gateway's state; with no cursors yet, only the current ends."""
        return await self._run(lambda: self._read(dict(cursors), limit))

    def _read(self, cursors: dict[str, int], limit: int) -> Found:
        db = self.db
        found = Found(cursors=cursors)
        db.execute("BEGIN")  # one snapshot for every source
        try:
            tables = _tables(db)
            if "gateways" not in tables:
                return found
            gateways = db.execute(
                "SELECT gateway_id, township, compound, COALESCE(last_seen, enrolled_at),"
                " revoked_at IS NOT NULL, watermark FROM gateways ORDER BY gateway_id"
            ).fetchall()
            found.gateways = [
                GatewayState(str(r[0]), str(r[1]), str(r[2]), float(r[3]), bool(r[4]))
                for r in gateways
            ]
            places = {g.gateway_id: Place(g.township, g.compound) for g in found.gateways}
            baseline = BASELINE not in cursors
            if baseline:
                cursors[BASELINE] = 1
                if COMMANDS_TABLE in tables:
                    cursors[COMMANDS] = db.execute(
                        "SELECT COALESCE(MAX(rowid), 0) FROM commands"
                    ).fetchone()[0]
                if "alerts" in tables:
                    cursors[ALERTS] = db.execute(
                        "SELECT COALESCE(MAX(id), 0) FROM alerts"
                    ).fetchone()[0]
                for r in gateways:
                    cursors[EVENTS + str(r[0])] = int(r[5])
                return found
            if COMMANDS_TABLE in tables:
                self._broadcasts(found, places, limit)
            if "alerts" in tables:
                self._alerts(found, places, limit)
            for r in gateways:
                self._tamper_events(found, str(r[0]), int(r[5]), places, limit)
            return found
        finally:
            db.execute("COMMIT")

    def _broadcasts(self, found: Found, places: dict[str, Place], limit: int) -> None:
        rows = self.db.execute(
            "SELECT rowid, command_id, gateway_id, action, summary, issued_at, issued_by"
            " FROM commands WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (found.cursors.get(COMMANDS, 0), limit),
        ).fetchall()
        # One order: consecutive rows with the same time, issuer and summary.
        orders: list[tuple[tuple[float, str, str], str, list[Place]]] = []
        previous: tuple[float, str, str] | None = None
        for rowid, command_id, gw, action, summary, issued_at, issued_by in rows:
            found.cursors[COMMANDS] = int(rowid)
            if action != "broadcast.start" or not str(summary).endswith(ACTUAL_MARK):
                previous = None
                continue
            same = (float(issued_at), str(issued_by), str(summary))
            place = places.get(str(gw), Place("", ""))
            if same == previous:
                orders[-1][2].append(place)
            else:
                orders.append((same, str(command_id), [place]))
            previous = same
        for (issued_at, issued_by, _summary), command_id, where in orders:
            who = issued_by.removeprefix("console:")
            found.alerts.append(
                Alert(
                    f"alert:{ACTUAL_BROADCAST}:{command_id}",
                    ACTUAL_BROADCAST,
                    tuple(sorted(set(where), key=lambda p: (p.township, p.compound))),
                    issued_at,
                    "" if who == "cli" else who,
                )
            )

    def _alerts(self, found: Found, places: dict[str, Place], limit: int) -> None:
        rows = self.db.execute(
            "SELECT id, kind, gateway_id, compound, at FROM alerts WHERE id > ?"
            " ORDER BY id LIMIT ?",
            (found.cursors.get(ALERTS, 0), limit),
        ).fetchall()
        for alert_id, kind, gw, compound, at in rows:
            found.cursors[ALERTS] = int(alert_id)
            place = places.get(str(gw), Place("", str(compound)))
            if not place.compound and compound:
                place = Place(place.township, str(compound))
            found.alerts.append(
                Alert(f"alert:{TAMPER}:a{alert_id}", TAMPER, (place,), float(at), str(kind))
            )

    def _tamper_events(
        self, found: Found, gw: str, watermark: int, places: dict[str, Place], limit: int
    ) -> None:
        source = EVENTS + gw
        after = found.cursors.get(source, 0)
        if watermark <= after:
            return
        rows = self.db.execute(
            "SELECT seq, wall_time FROM events WHERE gateway_id = ? AND seq > ? AND seq <= ?"
            " AND kind = 'tamper.open' ORDER BY seq LIMIT ?",
            (gw, after, watermark, limit),
        ).fetchall()
        found.cursors[source] = int(rows[-1][0]) if len(rows) >= limit else watermark
        for seq, wall in rows:
            found.alerts.append(
                Alert(
                    f"alert:{TAMPER}:{gw}:{seq}", TAMPER, (places[gw],), float(wall), "tamper.open"
                )
            )


class AlertScanner:
    """Scans the centre's database for alerts and delivers them (see the module doc)."""

    def __init__(
        self,
        source: CentreAlertSource,
        outbox: PushOutbox,
        sender: RobotSender,
        robots: Sequence[Robot],
        config: AlertConfig,
        *,
        tz: str,
        lang: str = DEFAULT_LANGUAGE,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.source = source
        self.outbox = outbox
        self.sender = sender
        self.config = config
        self.robots = {r.group: r for r in robots if r.group in config.all_groups}
        self.tz = tz
        self.lang = lang
        self.clock = clock
        self._sleep = sleep
        self._stopping = asyncio.Event()
        self._wake: dict[str, asyncio.Event] = {g: asyncio.Event() for g in self.robots}

    def request_stop(self) -> None:
        """Stop the loop (a POST under way is finished and recorded first)."""
        self._stopping.set()
        self.sender.request_stop()
        for event in self._wake.values():
            event.set()

    async def scan_once(self) -> int:
        """Find what is new since the last scan and owe it to its groups; returns how many
        messages were newly owed."""
        now = self.clock()
        before = await self.outbox.cursors()
        found = await self.source.read(before)
        alerts = list(found.alerts)
        opened: list[tuple[str, float]] = []
        recovered: list[tuple[str, float, float]] = []
        outages = await self.outbox.open_outages()
        threshold = self.config.down_hours * 3600.0
        for g in found.gateways:
            outage = outages.get(g.gateway_id)
            place = Place(g.township, g.compound)
            if outage is not None:
                if g.revoked:
                    recovered.append((g.gateway_id, outage.since, now))  # closed, not pushed
                elif g.last_contact > outage.since:
                    recovered.append((g.gateway_id, outage.since, g.last_contact))
                    alerts.append(
                        Alert(
                            f"alert:{GATEWAY_UP}:{g.gateway_id}:{outage.since:.3f}",
                            GATEWAY_UP,
                            (place,),
                            g.last_contact,
                            hours=(g.last_contact - outage.since) / 3600.0,
                        )
                    )
                continue
            if not g.revoked and now - g.last_contact > threshold:
                opened.append((g.gateway_id, g.last_contact))
                alerts.append(
                    Alert(
                        f"alert:{GATEWAY_DOWN}:{g.gateway_id}:{g.last_contact:.3f}",
                        GATEWAY_DOWN,
                        (place,),
                        g.last_contact,
                        hours=self.config.down_hours,
                    )
                )
        owed: list[Owed] = []
        for alert in alerts:
            groups = [g for g in self.config.groups(alert.kind) if g in self.robots]
            if not groups:
                continue  # a kind not routed: recorded as scanned, never pushed
            text = alert_markdown(alert, self.lang, tz=self.tz, console_url=self.config.console_url)
            parts = split_markdown(text)
            owed += [Owed(alert.key, g, alert.kind, alert.subject, parts) for g in groups]
        moved = {k: v for k, v in found.cursors.items() if before.get(k) != v}
        if not (owed or moved or opened or recovered):
            return 0  # a quiet scan writes nothing
        added = await self.outbox.commit_scan(
            owed, moved, opened=opened, recovered=recovered, now=now
        )
        if added:
            log.info("alerts: %d message(s) owed to the groups", added)
            for group in {o.group for o in owed}:
                self._wake[group].set()
        return added

    async def deliver_owed(self, group: str) -> int:
        """Deliver every alert still owed to ``group``, oldest first; returns how many were
        delivered in full now."""
        robot = self.robots[group]
        done = 0
        for key in await self.outbox.owed_alerts(group):
            report = await self.sender.deliver(robot, key)
            if report.outcome == STOPPED:
                break
            done += report.outcome != "failed"
        return done

    async def _deliveries(self, group: str) -> None:
        wake = self._wake[group]
        while not self._stopping.is_set():
            wake.clear()
            try:
                await self.deliver_owed(group)
            except (sqlite3.Error, OSError) as exc:
                log.warning("alerts: delivery to %s stopped: %s", group, exc)
            if not self._stopping.is_set():
                await wake.wait()

    async def run(self) -> None:
        """Scan every ``scan_s`` seconds and deliver what is owed, until :meth:`request_stop`."""
        tasks = [
            asyncio.create_task(self._deliveries(g), name=f"push-alerts-{g}") for g in self.robots
        ]
        try:
            for event in self._wake.values():
                event.set()  # what a previous run left owed
            while not self._stopping.is_set():
                try:
                    await self.scan_once()
                except (sqlite3.Error, OSError) as exc:
                    log.warning("alerts: scan failed (tried again next time): %s", exc)
                await self._nap(self.config.scan_s)
        finally:
            self.request_stop()
            await self.sender.close()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _nap(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)


__all__ = ["AlertScanner", "CentreAlertSource", "GatewayState"]
