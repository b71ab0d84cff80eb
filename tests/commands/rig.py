"""The whole command path on one loop: centre (TLS, queue, channel) → gateway channel →
verifier → broadcast controller → Modbus RTU on a virtual serial line → simulated board.

    async with command_rig(centre, tmp_path) as rig:
        rec = await rig.order(BroadcastStart((1, 2), 1.0, "drill", "Exercise"))
        await rig.wait_status(rec.command_id, "done")
        rig.board.changes        # what the relays really did
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from centre.commands.issue import issue, load_command_key
from centre.commands.store import CommandRecord, NewCommand, SqliteCommandStore
from gateway.broadcast.config import BroadcastSection
from gateway.broadcast.service import BroadcastRuntime, build_runtime
from gateway.clock import Clock, SystemClock
from gateway.commands.channel import CommandChannel
from gateway.commands.config import CommandsSection
from gateway.commands.service import PendingVerifier, limits_for
from gateway.config.schema import parse_section
from gateway.journal import Journal
from gateway.sync.config import SyncSection
from hil_tests.sims.relay_board import RelayBoardSim, SimBoard
from tests.broadcast.benchkit import board_config, section_data, serial_line
from tests.sync.conftest import Centre, enroll
from wire.commands import Action

GW = "gw-rose-01"
FAST = CommandsSection(backoff_initial_s=0.05, backoff_max_s=0.5, heartbeat_s=5.0)


@dataclass
class Rig:
    centre: Centre
    key: Ed25519PrivateKey
    board: SimBoard
    journal: Journal
    runtime: BroadcastRuntime
    channel: CommandChannel
    gw_dir: Path
    channel_task: asyncio.Task[None]

    @property
    def store(self) -> SqliteCommandStore:
        return self.centre.running.commands.store  # type: ignore[return-value]

    async def order(self, action: Action, *, ttl_s: float = 120.0) -> CommandRecord:
        """What ``compound-centre broadcast`` does, in process."""
        (rec,) = await issue(
            self.store, [GW], self.key, action, ttl_s=ttl_s, now=time.time(), issued_by="test"
        )
        self.centre.running.commands.wake()
        return rec

    async def inject(self, make: Callable[[int, str], bytes], command_id: str) -> CommandRecord:
        """Queue raw envelope bytes (built for the centre's next seq) as if the centre sent them."""
        now = time.time()

        def build(seq: int) -> NewCommand:
            return NewCommand(
                command_id, "broadcast.start", "injected", now, now + 120, make(seq, command_id)
            )

        rec = await self.store.enqueue(GW, build, now=now, issued_by="test")
        self.centre.running.commands.wake()
        return rec

    async def wait_status(
        self, command_id: str, status: str, timeout: float = 15.0
    ) -> CommandRecord:
        deadline = time.monotonic() + timeout
        while True:
            (rec,) = [
                r for r in await self.store.commands(gateway_id=GW) if r.command_id == command_id
            ]
            if rec.status == status:
                return rec
            if self.channel_task.done():
                self.channel_task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"{command_id} is {rec.status} ({rec.reason}), not {status}")
            await asyncio.sleep(0.02)

    async def events(self, kind: str) -> list[dict[str, Any]]:
        return [e.payload for e in await self.journal.read_after(0, limit=10_000) if e.kind == kind]


async def wait_connected(centre: Centre, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while GW not in centre.running.commands.connections:
        if time.monotonic() > deadline:
            raise AssertionError("the gateway never connected its command channel")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def command_rig(
    centre: Centre,
    tmp_path: Path,
    *,
    clock: Clock | None = None,
    section: CommandsSection = FAST,
    centre_url: str = "",
    channel_cls: type[CommandChannel] = CommandChannel,
    baud: int = 9600,
) -> AsyncIterator[Rig]:
    clock = clock or SystemClock()
    gw_dir = tmp_path / "gw"
    await enroll(centre, gw_dir, gateway_id=GW)
    board = SimBoard(1, "coils")
    with serial_line(baud) as line:
        async with RelayBoardSim(line.device_path, [board], baudrate=baud):
            data = section_data(
                line.host_path,
                [board_config("coils", 1, "main")],
                {1: ("main", 1), 2: ("main", 2), 3: ("main", 3), 4: ("main", 4)},
                max_duration_s=600,
            )
            data["ports"][0]["baud"] = baud
            # A loaded CI machine can hold the simulated board's answer past the Pi's 0.35 s
            # (seen: "board did not answer"); these tests judge the command path, not timing.
            data["ports"][0].update(timeout_s=1.0, retries=3, deadline_s=10.0)
            bsection = parse_section(BroadcastSection, data, "broadcast")
            journal = await Journal.open(gw_dir / "journal.db", gateway_id=GW, clock=clock)
            runtime = build_runtime(bsection, journal, clock)
            service = asyncio.create_task(runtime.service.run())
            channel = channel_cls(
                journal,
                clock,
                SyncSection(centre_url=centre_url),
                section,
                data_dir=gw_dir,
                trigger=runtime.remote(PendingVerifier()),
            )
            channel.configure_verifier(
                gateway_id=GW,
                state_path=gw_dir / section.state_file,
                limits=limits_for(section, bsection),
            )
            task = asyncio.create_task(channel.run())
            try:
                await asyncio.wait_for(runtime.controller.ready.wait(), 5)
                if not centre_url:
                    await wait_connected(centre)
                yield Rig(
                    centre,
                    load_command_key(centre.paths),
                    board,
                    journal,
                    runtime,
                    channel,
                    gw_dir,
                    task,
                )
            finally:
                for t in (task, service):
                    t.cancel()
                await asyncio.gather(task, service, return_exceptions=True)
                await journal.close()
