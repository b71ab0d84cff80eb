"""The supervisor restarts crashed services with backoff and keeps the others running."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from gateway.clock import ManualClock
from gateway.config import SupervisorSection
from gateway.journal import Journal, read_events
from gateway.supervisor import Supervisor, backoff_delay


class Crasher:
    name = "crasher"

    def __init__(self, crashes: int) -> None:
        self.crashes_left = crashes
        self.starts: list[float] = []

    async def run(self) -> None:
        self.starts.append(asyncio.get_running_loop().time())
        if self.crashes_left > 0:
            self.crashes_left -= 1
            raise RuntimeError("relay board on fire")
        await asyncio.Event().wait()


class Ticker:
    name = "ticker"

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0.005)


class Quitter:
    name = "quitter"

    async def run(self) -> None:
        return None


async def test_crashed_service_restarts_with_growing_backoff_others_keep_running(
    tmp_path: Path,
) -> None:
    journal = await Journal.open(tmp_path / "j.db", gateway_id="gw-test", clock=ManualClock())
    settings = SupervisorSection(backoff_initial_s=0.02, backoff_max_s=0.16, stable_after_s=30)
    sup = Supervisor(journal, settings, rng=random.Random(1))
    crasher, ticker = Crasher(crashes=4), Ticker()
    sup.add(crasher)
    sup.add(ticker)
    await sup.start()
    # Bounds, not speed: the backoffs add up to ~0.3 s; 60 s only turns a hang into a failure.
    deadline = asyncio.get_running_loop().time() + 60
    while len(crasher.starts) < 5 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    ticks_mid = ticker.ticks
    while ticker.ticks <= ticks_mid and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    status = {s["service"]: s for s in sup.status()}
    await sup.stop()
    await journal.close()

    assert len(crasher.starts) == 5, "four crashes, four restarts"
    assert ticker.ticks > ticks_mid, "one crashing service must not stop the others"
    events = read_events(tmp_path / "j.db")
    crashed = [e for e in events if e.kind == "service.crashed"]
    restarted = [e for e in events if e.kind == "service.restarted"]
    assert len(crashed) == 4 and len(restarted) == 4
    assert crashed[0].payload["service"] == "crasher"
    assert "relay board on fire" in crashed[0].payload["error"]
    # Backoff doubles (with jitter between half and all of it): 0.02, 0.04, 0.08, 0.16.
    delays = [e.payload["restart_in_s"] for e in crashed]
    for delay, base in zip(delays, [0.02, 0.04, 0.08, 0.16], strict=True):
        assert base / 2 - 0.001 <= delay <= base + 0.001, (delays, base)
    assert delays[-1] > delays[0]
    # Each restart came no sooner than its announced delay (a busy machine only makes it later).
    gaps = [b - a for a, b in zip(crasher.starts, crasher.starts[1:], strict=False)]
    for gap, delay in zip(gaps, delays, strict=True):
        assert gap >= delay - 0.005, (gaps, delays)
    assert status["crasher"]["restarts"] == 4
    assert status["ticker"]["restarts"] == 0


async def test_a_service_that_returns_counts_as_a_crash(tmp_path: Path) -> None:
    journal = await Journal.open(tmp_path / "j.db", gateway_id="gw-test", clock=ManualClock())
    sup = Supervisor(journal, SupervisorSection(backoff_initial_s=0.01, backoff_max_s=0.02))
    sup.add(Quitter())
    await sup.start()
    deadline = asyncio.get_running_loop().time() + 60
    while sup.states["quitter"].crashes < 1 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    await sup.stop()
    await journal.close()
    crashed = [e for e in read_events(tmp_path / "j.db") if e.kind == "service.crashed"]
    assert crashed and "returned" in crashed[0].payload["error"]


def test_backoff_jitter_stays_between_half_and_full() -> None:
    rng = random.Random(3)
    values = [backoff_delay(8.0, rng) for _ in range(1000)]
    assert min(values) >= 4.0 and max(values) <= 8.0
    assert max(values) - min(values) > 3.0  # actually jittered
