"""The daemon: one asyncio process running every service under the supervisor.

    exit_code = asyncio.run(run_daemon(load_config(path)))

Start-up order: open the journal (recovering if corrupt), journal ``daemon.started`` (saying
whether the previous run stopped cleanly), start the services, then tell systemd READY=1.
SIGTERM/SIGINT: STOPPING=1, stop services, journal ``daemon.stopped``, close the journal, exit 0.
SIGHUP: reload the patrol data (roster, routes, schedules: :func:`reload_patrol_data`) without
a restart; ``config.reloaded`` is journaled, or ``config.reload_refused`` when the files are
invalid (the old data stays in force).
While running, the status board is written to ``<runtime_dir>/status.json`` (a tmpfs under
/run in the field, so it costs the SD card nothing) for ``compound-gw status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.clock import Clock, SystemClock
from gateway.config import GatewayConfig
from gateway.control import ControlServer, socket_path
from gateway.errors import JournalError
from gateway.journal import Journal, read_events
from gateway.supervisor import Service, Supervisor

log = logging.getLogger("gateway.daemon")

STATUS_INTERVAL_S = 2.0  # checked this often; written only when something changed ...
STATUS_HEARTBEAT_S = 30.0  # ... or this long after the last write (readers judge staleness)
MAINTENANCE_INTERVAL_S = 3600.0


# --------------------------------------------------------------------------- logging


class LogfmtFormatter(logging.Formatter):
    """One line per record: ``level=info logger=gateway.daemon msg="..."``; journald-friendly.

    Under systemd (JOURNAL_STREAM set) each line starts with a ``<N>`` syslog priority so the
    journal files it at the right level, and the timestamp is left to journald.
    """

    _PRIO = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}

    def __init__(self, journald: bool) -> None:
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage().replace("\n", " | ")
        parts = [f"level={record.levelname.lower()}", f"logger={record.name}", f"msg={msg!r}"]
        if record.exc_info:
            exc = self.formatException(record.exc_info).replace("\n", " | ")
            parts.append(f"exc={exc!r}")
        line = " ".join(parts)
        if self.journald:
            return f"<{self._PRIO.get(record.levelname, 6)}>{line}"
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"ts={ts}Z {line}"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter(journald=bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# --------------------------------------------------------------------------- systemd


def sd_notify(message: str) -> bool:
    """Send a datagram to systemd's NOTIFY_SOCKET, if set. Returns whether it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify(%s) failed: %s", message.split("\n", maxsplit=1)[0], exc)
        return False
    return True


class SystemdWatchdog:
    """Pings WATCHDOG=1 at half the interval systemd asked for, while the journal writer lives."""

    name = "systemd-watchdog"

    def __init__(self, journal: Journal, interval_usec: int) -> None:
        self.journal = journal
        self.period = max(0.05, interval_usec / 1e6 / 2)

    async def run(self) -> None:
        while True:
            if self.journal.writer_alive():
                sd_notify("WATCHDOG=1")
            await asyncio.sleep(self.period)


# --------------------------------------------------------------------------- status board


class StatusBoard:
    """What services want ``compound-gw status`` to show, written to a small JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.sections: dict[str, Any] = {}
        self._last_content = ""
        self._last_write = -1e18
        self.writes = 0

    def publish(self, section: str, value: Any) -> None:
        self.sections[section] = value

    def write(self, now: float | None = None) -> bool:
        """Write the file if a section changed, or as a heartbeat; returns whether it wrote.

        The ``daemon`` section (pid, time of writing) does not count as a change, so an idle
        gateway writes the file only every STATUS_HEARTBEAT_S.
        """
        if self.path is None:
            return False
        now = time.monotonic() if now is None else now
        content = json.dumps(
            {k: v for k, v in self.sections.items() if k != "daemon"}, sort_keys=True, default=str
        )
        if content == self._last_content and now - self._last_write < STATUS_HEARTBEAT_S:
            return False
        text = json.dumps(self.sections, sort_keys=True, default=str)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)
        self._last_content = content
        self._last_write = now
        self.writes += 1
        return True


class StatusWriter:
    name = "status-board"

    def __init__(self, board: StatusBoard, supervisor: Supervisor, journal: Journal) -> None:
        self.board = board
        self.supervisor = supervisor
        self.journal = journal

    async def run(self) -> None:
        await asyncio.sleep(0.2)  # let the other services publish their first state
        while True:
            self.board.publish("services", self.supervisor.status())
            self.board.publish("daemon", {"pid": os.getpid(), "updated": time.time()})
            await asyncio.to_thread(self.board.write)
            await asyncio.sleep(STATUS_INTERVAL_S)


class JournalMaintenance:
    """Retention: prunes synced events older than the configured age, hourly."""

    name = "journal-maintenance"

    def __init__(self, journal: Journal, retention_days: float) -> None:
        self.journal = journal
        self.retention_s = retention_days * 86400

    async def run(self) -> None:
        while True:
            if self.retention_s > 0:
                pruned = await self.journal.prune(self.retention_s)
                if pruned:
                    log.info("retention pruned %d synced events", pruned)
            await asyncio.sleep(MAINTENANCE_INTERVAL_S)


# --------------------------------------------------------------------------- capabilities

ServiceFactory = Callable[[GatewayConfig, Journal, Clock, StatusBoard], Iterable[Service]]


def capability_factories() -> list[ServiceFactory]:
    """Each capability's service factory, in start order.

    A factory returns no services when its section configures nothing, so an empty config
    runs just the journal's own services.
    """
    from gateway.checkpoints.service import daemon_factory as checkpoint_services
    from gateway.commands.service import broadcast_and_commands  # broadcast + its channel
    from gateway.health.services import daemon_factory as health_services
    from gateway.patrol.service import build_services as patrol_services
    from gateway.sync.service import build_services as sync_services
    from gateway.update.outbox import build_services as update_services
    from gateway.web import build_services as web_services

    return [
        health_services,
        checkpoint_services,
        broadcast_and_commands,
        patrol_services,
        sync_services,
        web_services,
        update_services,
    ]


def connect_look_now(services: Iterable[Any]) -> bool:
    """Hand the snapshot service's "take now" to the command channel (issue 17, look now),
    through their published methods (``take_now``/``camera_names`` and ``attach_snapshots``),
    so neither capability imports the other. False when either is absent (no cameras, or no
    command channel): a ``camera.snapshot`` command is then refused as ``unknown_camera``."""
    found = list(services)
    takers = [s for s in found if callable(getattr(s, "take_now", None))]
    channels = [s for s in found if callable(getattr(s, "attach_snapshots", None))]
    if not takers or not channels:
        return False
    for channel in channels:
        channel.attach_snapshots(takers[0].camera_names(), takers[0].take_now)
    return True


# --------------------------------------------------------------------------- reload


async def reload_patrol_data(
    config_path: Path, journal: Any, services: Iterable[Any]
) -> tuple[bool, str]:
    """Re-read the config and its patrol data file; hand the roster to the tap path and the
    routes and schedules to the patrol service. Returns (applied, words for a person).

    Only the patrol data is applied live: other changes in the config (buses, relays, the
    centre) need a restart, and the event says so. An invalid file is refused as a whole and
    the data in force stays; the refusal is journaled with the key that is wrong.
    """
    from gateway.config import load_config
    from gateway.errors import ConfigError

    try:
        cfg = await asyncio.to_thread(load_config, config_path)
    except ConfigError as exc:
        log.warning("reload refused: %s", exc)
        await journal.append(
            "config.reload_refused",
            {"file": str(config_path), "key": exc.key, "reason": exc.detail},
        )
        return False, f"refused, the data in force is kept: {exc}"
    roster = {g.wristband: g.guard for g in cfg.checkpoints.roster}
    for service in services:
        if hasattr(service, "set_roster"):
            service.set_roster(roster)
        if hasattr(service, "reload") and getattr(service, "name", "") == "patrol":
            service.reload(cfg.patrol)
    payload = {
        "guards": len(roster),
        "routes": len(cfg.patrol.routes),
        "schedules": len(cfg.patrol.schedules),
        "applied": ["roster", "routes", "schedules", "shifts"],
        "note": "other config changes need a restart",
    }
    await journal.append("config.reloaded", payload)
    log.info("reloaded patrol data: %d guards, %d routes, %d schedules",
             payload["guards"], payload["routes"], payload["schedules"])  # fmt: skip
    return True, (
        f"reloaded: {payload['guards']} guards, {payload['routes']} routes, "
        f"{payload['schedules']} schedules"
    )


# --------------------------------------------------------------------------- the daemon


def previous_stop(journal_path: Path) -> dict[str, Any]:
    """How the last run ended, read from the journal's tail before we write anything."""
    if not journal_path.exists():
        return {"previous_stop": "first_start"}
    try:
        tail = read_events(journal_path, last=1)
    except (JournalError, OSError, ValueError) as exc:
        return {"previous_stop": "unknown", "why": str(exc)}
    except Exception as exc:  # a damaged file: the journal's own recovery deals with it
        return {"previous_stop": "unknown", "why": f"{type(exc).__name__}: {exc}"}
    if not tail:
        return {"previous_stop": "first_start"}
    last = tail[0]
    return {
        "previous_stop": "clean" if last.kind == "daemon.stopped" else "unclean",
        "last_seq_before": last.seq,
        "last_event_wall": last.wall_time,
    }


async def run_daemon(
    cfg: GatewayConfig,
    *,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    extra_services: Iterable[Service] = (),
    config_path: Path | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set). Returns the exit code.

    With ``config_path``, SIGHUP reloads the patrol data (:func:`reload_patrol_data`).
    """
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)

    data_dir = cfg.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    runtime_dir = cfg.path(cfg.gateway.runtime_dir)
    runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    how_last_ended = await asyncio.to_thread(previous_stop, cfg.journal_path)

    journal = await Journal.open(
        cfg.journal_path,
        gateway_id=cfg.gateway.id,
        clock=clock,
        telemetry_budget_bytes=cfg.journal.telemetry_budget_bytes,
        max_group=cfg.journal.max_group,
    )
    board = StatusBoard(runtime_dir / "status.json")
    supervisor = Supervisor(journal, cfg.supervisor)
    try:
        await journal.append(
            "daemon.started",
            {"version": __version__, "pid": os.getpid(), "boot_id": clock.boot_id} | how_last_ended,
        )
        services: list[Service] = [
            JournalMaintenance(journal, cfg.journal.retention_days),
            StatusWriter(board, supervisor, journal),
        ]
        for factory in capability_factories():
            services.extend(factory(cfg, journal, clock, board))
        connect_look_now(services)
        services.extend(extra_services)
        # Last, so it sees every service it may drive (gateway/control.py: selftest's verbs).
        services.append(
            ControlServer(
                socket_path(runtime_dir),
                services=list(services),
                journal=journal,
                clock=clock,
                version=__version__,
            )
        )
        watchdog_usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        if watchdog_usec > 0:
            services.append(SystemdWatchdog(journal, watchdog_usec))
        for service in services:
            supervisor.add(service)
        reloads: set[asyncio.Task[tuple[bool, str]]] = set()

        def on_hangup() -> None:
            assert config_path is not None
            task = asyncio.create_task(reload_patrol_data(config_path, journal, services))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        if config_path is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGHUP, on_hangup)
        await supervisor.start()
        sd_notify(
            f"READY=1\nSTATUS=running, journal at seq {journal.last_seq}\nMAINPID={os.getpid()}"
        )
        log.info(
            "daemon ready: gateway %s, journal %s at seq %d, %d services",
            cfg.gateway.id,
            cfg.journal_path,
            journal.last_seq,
            len(services),
        )
        await stop.wait()
        sd_notify("STOPPING=1")
        log.info("stopping on %s", received[0] if received else "request")
        if reloads:
            await asyncio.wait(reloads, timeout=5.0)
    finally:
        await supervisor.stop()
        with contextlib.suppress(JournalError):
            await journal.append(
                "daemon.stopped", {"reason": received[0] if received else "request"}
            )
        await journal.close()
        if board.path is not None:
            with contextlib.suppress(OSError):
                board.path.unlink()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    log.info("stopped cleanly; journal closed at seq %d", journal.last_seq)
    return 0
