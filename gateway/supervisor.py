"""Supervised services: one crash never stops the others, and every restart is an event.

    sup = Supervisor(journal, SupervisorSection())
    sup.add(my_service)          # anything with .name and ``async def run(self)``
    await sup.start(); ...; await sup.stop()

Each service runs in its own task. When ``run()`` raises (or returns, which a long-lived service
must not do), the crash is journaled as ``service.crashed``, the supervisor waits a backoff with
jitter (doubling up to ``backoff_max_s``; reset once a run lasted ``stable_after_s``) and starts it
again, journaling ``service.restarted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.config import SupervisorSection
from gateway.errors import JournalError
from gateway.journal import Journal

log = logging.getLogger("gateway.supervisor")

STOP_GRACE_S = 3.0  # how long a service gets to finish after cancellation before we move on


class Service(Protocol):
    """A long-lived task: runs until cancelled; raising is a crash (restarted with backoff)."""

    name: str

    async def run(self) -> None: ...


@dataclass(slots=True)
class ServiceState:
    name: str
    state: str = "starting"  # starting | running | backoff | stopped
    restarts: int = 0
    crashes: int = 0
    last_error: str = ""
    started_at: float = 0.0
    next_restart_in: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def backoff_delay(attempt_backoff: float, rng: random.Random) -> float:
    """Equal jitter: half fixed, half random, so restarts of many gateways spread out."""
    return attempt_backoff / 2 + rng.uniform(0, attempt_backoff / 2)


class Supervisor:
    """Runs services, restarting crashed ones with backoff and journaling every crash."""

    def __init__(
        self,
        journal: Journal | None,
        settings: SupervisorSection | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.journal = journal
        self.settings = settings or SupervisorSection()
        self._rng = rng or random.Random()
        self._services: list[Service] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.states: dict[str, ServiceState] = {}

    def add(self, service: Service) -> None:
        if service.name in self.states:
            raise ValueError(f"two services named {service.name!r}")
        self._services.append(service)
        self.states[service.name] = ServiceState(service.name)

    async def start(self) -> None:
        for service in self._services:
            self.states[service.name].state = "running"
            self._tasks[service.name] = asyncio.create_task(
                self._keep_running(service), name=f"service:{service.name}"
            )

    async def stop(self) -> None:
        """Cancel every service and wait (bounded) for them to finish."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in pending:
                log.error("service %s did not stop within %.1f s", task.get_name(), STOP_GRACE_S)
            for task in done:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    task.result()
        for st in self.states.values():
            st.state = "stopped"
        self._tasks.clear()

    async def _record(self, kind: str, payload: dict[str, Any]) -> None:
        if self.journal is None:
            return
        try:
            await self.journal.append(kind, payload)
        except JournalError as exc:  # a full disk must not stop the supervisor itself
            log.error("could not journal %s: %s", kind, exc.reason)

    async def _keep_running(self, service: Service) -> None:
        cfg = self.settings
        st = self.states[service.name]
        backoff = cfg.backoff_initial_s
        while True:
            st.state = "running"
            st.started_at = time.monotonic()
            try:
                await service.run()
                error = "run() returned: a service must run until cancelled"
                detail = ""
            except asyncio.CancelledError:
                st.state = "stopped"
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                detail = "".join(traceback.format_exception(exc, limit=-4))[-2000:]
            ran_for = time.monotonic() - st.started_at
            if ran_for >= cfg.stable_after_s:
                backoff = cfg.backoff_initial_s
            st.crashes += 1
            st.last_error = error
            delay = backoff_delay(backoff, self._rng)
            st.state = "backoff"
            st.next_restart_in = delay
            log.error("service %s crashed after %.1f s: %s", service.name, ran_for, error)
            await self._record(
                "service.crashed",
                {
                    "service": service.name,
                    "error": error,
                    "traceback": detail,
                    "ran_for_s": round(ran_for, 3),
                    "restart_in_s": round(delay, 3),
                    "crashes": st.crashes,
                },
            )
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, cfg.backoff_max_s)
            st.restarts += 1
            await self._record(
                "service.restarted", {"service": service.name, "restarts": st.restarts}
            )

    def status(self) -> list[dict[str, Any]]:
        return [
            {
                "service": s.name,
                "state": s.state,
                "restarts": s.restarts,
                "crashes": s.crashes,
                "last_error": s.last_error,
            }
            for s in self.states.values()
        ]
