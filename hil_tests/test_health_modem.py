"""The modem on the simulated bench: signal changes, ERROR replies, silence, unsolicited lines,
unplug and replug -- all handled without a crash, each with the right state and reason."""

from __future__ import annotations

import random
from pathlib import Path

from gateway.clock import SystemClock
from gateway.health.config import ModemConfig
from gateway.health.hub import HealthHub
from gateway.health.model import Hysteresis, State
from gateway.health.services import ModemLinkState, ModemMonitor
from hil_tests.sims.modem import ModemSim
from tests.health.helpers import events_of, open_journal, running, wait_until


def _state(hub: HealthHub) -> State | None:
    h = hub.model.get("modem")
    return None if h is None else h.state


def _reason(hub: HealthHub) -> str:
    h = hub.model.get("modem")
    return "" if h is None else h.reason


async def test_signal_error_silence_urc_unplug(tmp_path: Path) -> None:
    async with (
        ModemSim(tmp_path / "ttyModem", csq=(20, 99), creg=1, operator="Sim Mobile") as sim,
        open_journal(tmp_path) as journal,
    ):
        hub = HealthHub(journal, SystemClock(), policies={"modem": Hysteresis(2, 1)})
        cfg = ModemConfig(port=str(sim.path), interval_s=0.05, command_timeout_s=0.3)
        mon = ModemMonitor(cfg, hub, rng=random.Random(1), reconnect_initial_s=0.05)
        async with running(hub, mon):
            await wait_until(lambda: _state(hub) is State.OK, what="modem ok")
            assert "-73 dBm" in _reason(hub) and "Sim Mobile" in _reason(hub)

            sim.csq = (5, 99)  # -103 dBm, below the -100 default
            await wait_until(lambda: _state(hub) is State.DEGRADED, what="weak signal")
            assert "weak signal -103 dBm" in _reason(hub)
            sim.csq = (25, 0)
            await wait_until(lambda: _state(hub) is State.OK, what="signal back")

            sim.send_unsolicited("+CREG: 2")
            sim.urc_mid_response = "RING"
            await wait_until(lambda: mon.urc_count >= 2, what="unsolicited lines seen")
            assert _state(hub) is State.OK  # URCs are noted, not mistaken for answers
            sim.urc_mid_response = None

            sim.mode = "error"
            await wait_until(lambda: _state(hub) is State.DEGRADED, what="ERROR replies")
            assert "ERROR" in _reason(hub)
            sim.mode = "normal"
            await wait_until(lambda: _state(hub) is State.OK)

            sim.creg = 3
            await wait_until(lambda: _state(hub) is State.DOWN, what="registration denied")
            assert "denied" in _reason(hub)
            sim.creg = 5
            await wait_until(lambda: _state(hub) is State.OK, what="roaming is ok")

            sim.mode = "silent"
            await wait_until(lambda: _state(hub) is State.DOWN, what="silence")
            assert "no answer" in _reason(hub)
            assert mon.state is ModemLinkState.OPEN  # silent, not gone: the port stays open
            sim.mode = "normal"
            await wait_until(lambda: _state(hub) is State.OK)

            opens = mon.opens
            await sim.unplug()
            await wait_until(lambda: _state(hub) is State.DOWN, what="unplugged")
            assert "vanished" in _reason(hub) or "cannot open" in _reason(hub)
            await wait_until(lambda: mon.state is not ModemLinkState.OPEN)
            await sim.replug()
            await wait_until(lambda: _state(hub) is State.OK, what="replugged")
            assert mon.opens == opens + 1
            await hub.flush()
        states = [
            (e.payload["state"], e.payload["reason"])
            for e in await events_of(journal, "health.state")
        ]
        assert [s for s, _ in states] == [
            "ok", "degraded", "ok", "degraded", "ok", "down", "ok", "down", "ok", "down", "ok",
        ]  # fmt: skip
        samples = await events_of(journal, "health.sample")
        dbms = [e.payload.get("signal_dbm") for e in samples]
        assert -73 in dbms and -103 in dbms and -63 in dbms


async def test_unplug_and_replug_through_the_line_emulator(tmp_path: Path) -> None:
    import asyncio

    from hil_tests.line import SerialLine

    with SerialLine(host_link=tmp_path / "ttyModem", baud=115200) as line:
        async with (
            ModemSim(device=line.device_path, csq=(18, 99)) as sim,
            open_journal(tmp_path) as journal,
        ):
            hub = HealthHub(journal, SystemClock(), policies={"modem": Hysteresis(2, 1)})
            cfg = ModemConfig(port=line.host_path, interval_s=0.05, command_timeout_s=0.3)
            mon = ModemMonitor(cfg, hub, rng=random.Random(2), reconnect_initial_s=0.05)
            async with running(hub, mon):
                await wait_until(lambda: _state(hub) is State.OK, what="modem ok over the line")
                assert "-77 dBm" in _reason(hub)
                await asyncio.to_thread(line.unplug)
                await wait_until(lambda: _state(hub) is State.DOWN, what="adapter pulled")
                await asyncio.to_thread(line.replug)
                await wait_until(lambda: _state(hub) is State.OK, timeout=8, what="replugged")
                assert mon.opens >= 2
            assert sim.commands.count("AT+CSQ") >= 2
