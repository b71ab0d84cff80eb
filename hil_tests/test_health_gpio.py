"""GPIO on gpiozero's mock pin factory: tamper -> evidence within a second, mains loss, the LED."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from gateway.clock import SystemClock
from gateway.health.config import GpioConfig
from gateway.health.hub import HealthHub
from gateway.health.model import State
from gateway.health.services import GpioMonitor
from tests.health.helpers import events_of, open_journal, running, wait_until

TAMPER, MAINS, LED = 17, 22, 27


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()
    f.close()
    Device.pin_factory = None


async def test_tamper_pin_gives_evidence_within_one_second(
    tmp_path: Path, factory: MockFactory
) -> None:
    cfg = GpioConfig(tamper_pin=TAMPER, mains_pin=MAINS, led_pin=LED, bounce_s=0.0)
    async with open_journal(tmp_path) as journal:
        hub = HealthHub(journal, SystemClock())
        mon = GpioMonitor(cfg, hub, pin_factory=factory)
        async with running(hub, mon):
            # Pull-ups/downs at start: tamper floats high (open), mains low (lost).
            await wait_until(lambda: hub.model.get("cabinet") is not None)
            await hub.flush()
            factory.pin(TAMPER).drive_low()  # door shut
            factory.pin(MAINS).drive_high()  # mains back
            await wait_until(lambda: hub.model.get("cabinet").state is State.OK)  # type: ignore[union-attr]
            await wait_until(lambda: mon.led_pattern == "on", what="steady LED")
            await hub.flush()
            before = journal.last_seq
            factory.pin(TAMPER).drive_high()  # door forced open
            # A bound, not a speed (tamper latency is bench/'s): only "never" fails here.
            await wait_until(lambda: journal.last_seq > before, timeout=30, what="tamper event")
            [ev] = await journal.read_after(before, kinds=["tamper.open"])
            assert ev.cls == "evidence" and ev.payload["pin"] == TAMPER
            assert ev.payload["at_start"] is False
            await wait_until(lambda: mon.led_pattern == "fast", what="fast blink on tamper")
            led_states = {s.state for s in factory.pin(LED).states}
            assert led_states == {True, False}
            factory.pin(MAINS).drive_low()
            await wait_until(lambda: hub.model.get("power").state is State.DEGRADED)  # type: ignore[union-attr]
            await hub.flush()
        wanted = ("tamper.open", "tamper.closed", "power.mains_lost", "power.mains_restored")
        kinds = [e.kind for e in await events_of(journal, *wanted)]
        assert kinds == [
            "tamper.open", "power.mains_lost",  # at start
            "tamper.closed", "power.mains_restored", "tamper.open", "power.mains_lost",
        ]  # fmt: skip
        cabinet = [e.payload for e in await events_of(journal, "health.state")
                   if e.payload["device"] == "cabinet"]  # fmt: skip
        assert [c["state"] for c in cabinet] == ["down", "ok", "down"]
        assert cabinet[-1]["reason"] == "cabinet open (tamper switch)"
