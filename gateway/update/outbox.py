"""Update events on their way into the journal.

The updater runs beside the daemon (and restarts it), so it never writes the journal itself:
the journal has one writer, the daemon. It appends each event as a JSON line to
``<data_dir>/update-events.jsonl`` (flock, fsync), and the daemon's :class:`UpdateEventsService`
moves the lines into the journal (at start and every few seconds), each with its ``outbox_id``.

Delivery is at least once: a power cut between the journal commit and the removal of the
drained file journals those lines again, with the same ``outbox_id``.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OUTBOX_NAME = "update-events.jsonl"
DRAINING_SUFFIX = ".draining"
LINE_MAX = 64 * 1024
FILE_MAX = 16 * 1024 * 1024
KIND_PREFIX = "update."


def _lock(outbox: Path) -> int:
    fd = os.open(outbox.with_name(outbox.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


class Outbox:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, kind: str, payload: dict[str, Any]) -> None:
        """Append one event durably (returns after fsync)."""
        line = json.dumps(
            {"kind": kind, "payload": payload, "outbox_id": uuid.uuid4().hex},
            ensure_ascii=False,
            sort_keys=True,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock(self.path)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line.encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            os.close(lock)

    def take(self) -> Path | None:
        """Move the outbox aside for draining (or return the one left by a crash)."""
        draining = self.path.with_name(self.path.name + DRAINING_SUFFIX)
        if draining.exists():
            return draining
        lock = _lock(self.path)
        try:
            if not self.path.exists():
                return None
            os.replace(self.path, draining)
        finally:
            os.close(lock)
        return draining

    @staticmethod
    def parse(path: Path) -> list[tuple[str, dict[str, Any]]]:
        """The well-formed update events of a drained file; bad lines are skipped and logged."""
        events: list[tuple[str, dict[str, Any]]] = []
        with open(path, "rb") as f:
            data = f.read(FILE_MAX)
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw[:LINE_MAX])
                kind, payload, oid = obj["kind"], obj["payload"], obj["outbox_id"]
                if not (
                    isinstance(kind, str)
                    and kind.startswith(KIND_PREFIX)
                    and len(kind) < 64
                    and isinstance(payload, dict)
                    and isinstance(oid, str)
                ):
                    raise ValueError("not an update event")
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                log.warning("skipping a bad line in %s: %s", path.name, type(exc).__name__)
                continue
            events.append((kind, {**payload, "outbox_id": oid}))
        return events


class UpdateEventsService:
    """Daemon service: journal what the updater wrote to the outbox."""

    name = "update-events"

    def __init__(self, journal: Any, outbox: Path, interval_s: float = 5.0) -> None:
        self.journal = journal
        self.outbox = Outbox(outbox)
        self.interval_s = interval_s

    async def drain_once(self) -> int:
        path = await asyncio.to_thread(self.outbox.take)
        if path is None:
            return 0
        events = await asyncio.to_thread(Outbox.parse, path)
        for kind, payload in events:
            await self.journal.append(kind, payload)
        path.unlink(missing_ok=True)
        return len(events)

    async def run(self) -> None:
        while True:
            await self.drain_once()
            await asyncio.sleep(self.interval_s)


def build_services(cfg: Any, journal: Any, clock: Any = None, board: Any = None) -> list[Any]:
    """Factory for ``gateway.daemon.capability_factories``."""
    return [UpdateEventsService(journal, Path(cfg.data_dir) / OUTBOX_NAME)]
