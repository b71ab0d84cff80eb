"""The channel's link: reconnect with backoff after a cut, acks kept while offline, heartbeat
finding a silent (blackholed) link — on real TLS through the HIL fault proxy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.commands.channel import Phase
from gateway.commands.config import CommandsSection
from hil_tests.netproxy import FaultProxy
from tests.commands.rig import GW, command_rig, wait_connected
from tests.sync.conftest import Centre
from wire.commands import BroadcastStart


async def until(cond: Callable[[], Awaitable[bool] | bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_acks_wait_out_a_cut_and_arrive_after_the_reconnect(
    centre: Centre, tmp_path: Path
) -> None:
    async with FaultProxy(target=("127.0.0.1", centre.running.port)) as proxy:
        url = f"https://127.0.0.1:{proxy.port}"
        section = CommandsSection(backoff_initial_s=0.1, backoff_max_s=0.3, heartbeat_s=5.0)
        async with command_rig(centre, tmp_path, centre_url=url, section=section) as rig:
            await wait_connected(centre)
            rec = await rig.order(BroadcastStart((1,), 1.0, "drill", "Exercise"))
            await rig.wait_status(rec.command_id, "on")
            proxy.cut()  # the broadcast ends while the link is down
            phases: list[Phase] = []
            await until(
                lambda: (
                    phases.append(rig.channel.phase)
                    or bool([p for p in phases if p is Phase.BACKOFF])
                )
            )
            await until(lambda: rig.channel.status()["acks_waiting"] >= 1)
            fin = await rig.events("command.finished")
            assert [f["outcome"] for f in fin] == ["done"]
            assert (await rig.store.commands(gateway_id=GW))[0].status == "on"
            proxy.heal()
            await rig.wait_status(rec.command_id, "done")
            assert rig.channel.connects >= 2
            assert rig.channel.status()["acks_waiting"] == 0


async def test_heartbeat_drops_a_silent_link_and_the_channel_comes_back(
    centre: Centre, tmp_path: Path
) -> None:
    async with FaultProxy(target=("127.0.0.1", centre.running.port)) as proxy:
        url = f"https://127.0.0.1:{proxy.port}"
        section = CommandsSection(
            backoff_initial_s=0.1, backoff_max_s=0.3, heartbeat_s=1.0, connect_timeout_s=1.0
        )
        async with command_rig(centre, tmp_path, centre_url=url, section=section) as rig:
            await wait_connected(centre)
            await until(lambda: rig.channel.phase is Phase.CONNECTED)
            proxy.blackhole()  # bytes stop, sockets stay open: only the heartbeat can tell
            # Heartbeats (1 s) notice it, not TCP's own timeouts (minutes): a bound that holds
            # on a busy machine and still tells the two apart.
            t0 = time.monotonic()
            await until(lambda: rig.channel.phase is not Phase.CONNECTED, timeout=60)
            assert time.monotonic() - t0 < 30.0
            assert rig.channel.last_error
            proxy.heal()
            await until(lambda: rig.channel.phase is Phase.CONNECTED, timeout=15)
            rec = await rig.order(BroadcastStart((2,), 0.3, "drill", "Test"))
            await rig.wait_status(rec.command_id, "done")


async def test_a_gateway_revoked_while_connected_loses_its_channel(
    centre: Centre, tmp_path: Path
) -> None:
    centre.running.commands.reauth_s = 0.1
    async with command_rig(centre, tmp_path) as rig:
        await until(lambda: rig.channel.phase is Phase.CONNECTED)
        await centre.running.repo.revoke(GW, time.time(), "box stolen")
        await until(lambda: GW not in centre.running.commands.connections, timeout=5)
        await until(lambda: rig.channel.phase is not Phase.CONNECTED, timeout=5)
        await asyncio.sleep(1.0)  # it keeps trying; the centre keeps refusing (403)
        assert GW not in centre.running.commands.connections
        assert rig.channel.phase is not Phase.CONNECTED
        assert "403" in rig.channel.last_error or "revoked" in rig.channel.last_error
