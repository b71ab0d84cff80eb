"""Wiring: the broadcast capability's services, built from its config section.

    services = build_services(cfg, journal, clock, status_board)   # the daemon's factory call
    runtime = build_runtime(section, journal, clock)                # the same, for the lead/tests

:class:`BroadcastService` runs the serial ports' owner tasks, the controller and the status
poll in one task, in that order, and stops them in reverse: the controller's fail-safe off
still has its ports when the daemon shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.relay_modbus import ModbusRelayPort
from drivers.relays import BoardSpec, Profile, RelayBank
from gateway.broadcast.audio import AudioPlayer
from gateway.broadcast.button import ButtonTrigger
from gateway.broadcast.config import BoardSection, BroadcastSection
from gateway.broadcast.controller import BroadcastController, EventJournal
from gateway.broadcast.library import AnnouncementCache
from gateway.broadcast.plan import Notify, StartRequest
from gateway.broadcast.remote import CommandVerifier, RemoteTrigger
from gateway.broadcast.schedule import ScheduleTrigger
from gateway.broadcast.silent_test import SOURCE as SILENT_TEST_SOURCE
from gateway.broadcast.silent_test import SilentTest
from gateway.broadcast.sound import SoundProver
from gateway.clock import Clock

PORT_OPEN_WAIT_S = 3.0


def board_spec(b: BoardSection) -> BoardSpec:
    # A Waveshare board with its timer switched off in config is driven as plain coils.
    profile: Profile = b.profile
    if profile == "waveshare_v2" and not b.hardware_timer:
        profile = "coils"
    return BoardSpec(
        name=b.name,
        address=b.address,
        profile=profile,
        channels=b.channels,
        register_base=b.register_base,
    )


def build_ports(section: BroadcastSection) -> tuple[list[ModbusRelayPort], dict[str, RelayBank]]:
    ports: list[ModbusRelayPort] = []
    banks: dict[str, RelayBank] = {}
    for p in section.ports:
        port = ModbusRelayPort(
            p.port,
            baudrate=p.baud,
            timeout_s=p.timeout_s,
            retries=p.retries,
            deadline_s=p.deadline_s,
        )
        ports.append(port)
        for b in p.boards:
            banks[b.name] = port.board(board_spec(b))
    return ports, banks


class BroadcastService:
    """Service ``broadcast``: ports, controller and board status poll."""

    def __init__(
        self,
        ports: Sequence[ModbusRelayPort],
        controller: BroadcastController,
        *,
        poll_interval_s: float = 10.0,
        name: str = "broadcast",
        status: Any = None,
    ) -> None:
        self.name = name
        self.ports = list(ports)
        self.controller = controller
        self.poll_interval_s = poll_interval_s
        self.board_state: dict[str, str] = {}
        self.status = status  # the daemon's StatusBoard (publish(section, value)), optional

    async def run(self) -> None:
        port_tasks = [asyncio.create_task(p.run(), name=p.name) for p in self.ports]
        ctl: asyncio.Task[None] | None = None
        mon: asyncio.Task[None] | None = None
        try:
            await asyncio.gather(*(p.wait_open(PORT_OPEN_WAIT_S) for p in self.ports))
            ctl = asyncio.create_task(self.controller.run(), name="broadcast-controller")
            mon = asyncio.create_task(self._monitor(), name="broadcast-monitor")
            done, _ = await asyncio.wait(
                [ctl, mon, *port_tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for t in done:
                t.result()  # re-raise the crash for the supervisor
            raise RuntimeError("a broadcast task ended unexpectedly")
        finally:
            for t in [x for x in (mon, ctl) if x is not None]:
                if not t.done():
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
            for t in port_tasks:
                t.cancel()
            await asyncio.gather(*port_tasks, return_exceptions=True)

    async def _monitor(self) -> None:
        await self.controller.ready.wait()
        while True:
            await asyncio.sleep(self.poll_interval_s)
            await self.poll_once()

    async def poll_once(self) -> None:
        states, errors = await self.controller.read_all()
        boards = {r.board for r in self.controller.layout.all_relays()}
        for board in sorted(boards):
            state = "down" if board in errors else "up"
            if self.board_state.get(board) != state:
                payload: dict[str, Any] = {"board": board, "state": state}
                if board in errors:
                    payload["error"] = errors[board]
                await self.controller.record("relay_board.state", payload)
                self.board_state[board] = state
        if states:
            self.controller.submit_observed(states)
        if self.status is not None:
            self.status.publish(
                "broadcast",
                {
                    "phase": self.controller.phase,
                    "boards": dict(self.board_state),
                    "relays_on": sorted(str(r) for r, on in states.items() if on),
                },
            )


@dataclass(slots=True)
class BroadcastRuntime:
    """Everything the broadcast capability made; ``remote(verifier)`` for the command channel."""

    controller: BroadcastController
    service: BroadcastService
    services: list[Any] = field(default_factory=list)
    audio: AudioPlayer | None = None
    prover: SoundProver | None = None
    cache: AnnouncementCache | None = None

    def remote(self, verifier: CommandVerifier) -> RemoteTrigger:
        return RemoteTrigger(self.controller, verifier, cache=self.cache, audio=self.audio)


def build_runtime(
    section: BroadcastSection,
    journal: EventJournal,
    clock: Clock,
    *,
    timezone: str = "Asia/Shanghai",
    base_dir: Path = Path("."),
    pin_factory: Any = None,
    status: Any = None,
    banks: Mapping[str, RelayBank] | None = None,
    ports: Sequence[ModbusRelayPort] | None = None,
) -> BroadcastRuntime:
    if banks is None:
        ports, banks = build_ports(section)
    audio: AudioPlayer | None = None
    controller: BroadcastController

    async def on_notify(note: Notify, req: StartRequest | None) -> None:
        if req is not None and req.source == SILENT_TEST_SOURCE:
            return  # the silent test plays its own tone and judges its own capture
        if note.stage == "on" and req is not None:
            if note.detail.get("verified") is True:  # the fourth step: did sound come out?
                prover.start(req.request_id, controller.ticket(req.request_id))
            if audio is not None:
                await audio.start(req.announcement, req.request_id)
        elif note.stage in ("done", "failed") and audio is not None:
            await audio.stop()

    controller = BroadcastController(section.layout(), banks, journal, clock, on_notify=on_notify)
    prover = SoundProver(section.audio, controller.record)
    if section.audio.enabled:
        audio = AudioPlayer(section.audio, controller.record, base_dir)
    cache_dir = Path(section.audio.cache_dir)
    cache = AnnouncementCache(
        cache_dir if cache_dir.is_absolute() else base_dir / cache_dir, record=controller.record
    )
    service = BroadcastService(
        ports or [], controller, poll_interval_s=section.poll_interval_s, status=status
    )
    services: list[Any] = [service]
    if section.schedule:
        services.append(
            ScheduleTrigger(
                section.schedule,
                controller,
                clock,
                tz=section.timezone or timezone,
                grace_s=section.schedule_grace_s,
                require_synced=section.schedule_requires_synced_clock,
                cache=cache,
                audio=audio,
            )
        )
    if section.silent_test.enabled:
        services.append(
            SilentTest(
                section.silent_test,
                section.audio,
                controller,
                clock,
                zones=sorted(section.layout().zones),
                warmup_s=section.warmup_s if section.amplifier is not None else 0.0,
                tz=section.timezone or timezone,
                tone_dir=cache.folder,
            )
        )
    if section.button.enabled:
        services.append(
            ButtonTrigger(
                section.button,
                controller,
                clock,
                all_zones=sorted(section.layout().zones),
                pin_factory=pin_factory,
            )
        )
    return BroadcastRuntime(controller, service, services, audio, prover, cache)


def runtime_from_config(
    cfg: Any, journal: Any, clock: Clock, board: Any = None
) -> BroadcastRuntime | None:
    """The runtime ``cfg.broadcast`` describes, or None when broadcast is off or unconfigured
    (the command channel builds on the same runtime: one controller owns the relays)."""
    section = getattr(cfg, "broadcast", None)
    if section is None or not section.enabled or not section.ports:
        return None
    return build_runtime(
        section,
        journal,
        clock,
        timezone=cfg.gateway.timezone,
        base_dir=cfg.data_dir,
        status=board,
    )


def build_services(cfg: Any, journal: Any, clock: Clock, board: Any = None) -> list[Any]:
    """The daemon's factory: ``cfg.broadcast`` (once wired) to services; none if absent."""
    runtime = runtime_from_config(cfg, journal, clock, board)
    return runtime.services if runtime is not None else []
