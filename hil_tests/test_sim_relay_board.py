"""The relay driver against the simulated boards on a paced 9600-baud virtual line."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from drivers.relay_modbus import ModbusRelayPort
from drivers.relays import BoardSpec, ModbusOp, Priority, RelayBoardError
from hil_tests.sims.relay_board import RelayBoardSim, SimBoard
from tests.broadcast.benchkit import serial_line

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]  # asserts on the simulator's records

PROFILES = ["coils", "waveshare_v2", "holding"]


@pytest.fixture
async def bus() -> AsyncIterator[tuple[ModbusRelayPort, dict[int, SimBoard]]]:
    boards = [SimBoard(1, "waveshare_v2"), SimBoard(2, "coils"), SimBoard(3, "holding")]
    with serial_line() as line:
        async with RelayBoardSim(line.device_path, boards):
            port = ModbusRelayPort(line.host_path, timeout_s=0.3, retries=1, deadline_s=2.0)
            task = asyncio.create_task(port.run())
            try:
                assert await port.wait_open(3)
                yield port, {b.address: b for b in boards}
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize(
    ("address", "profile"), [(1, "waveshare_v2"), (2, "coils"), (3, "holding")]
)
async def test_each_profile_writes_and_verifies(bus, address, profile):
    port, sims = bus
    bank = port.board(BoardSpec(profile, address, profile))
    state = await bank.write({0: True, 1: True, 2: True, 6: True}, priority=Priority.ON)
    assert state == (True, True, True, False, False, False, True, False)
    assert sims[address].coils == list(state)
    state = await bank.write({1: False, 6: False}, priority=Priority.OFF)
    assert state == (True, False, True, *([False] * 5))
    assert await bank.read() == state
    assert [(c.channel, c.on) for c in sims[address].changes] == [
        (0, True),
        (1, True),
        (2, True),
        (6, True),
        (1, False),
        (6, False),
    ]


async def test_waveshare_flash_on_releases_in_the_board(bus):
    port, sims = bus
    bank = port.board(BoardSpec("w", 1, "waveshare_v2"))
    t0 = time.monotonic()
    assert await bank.write({3: True}, hold_s=0.5, priority=Priority.ON) == (
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        False,
    )
    assert sims[1].flash_writes == [(3, 5)]
    await asyncio.sleep(0.8)
    assert await bank.read() == (False,) * 8
    (on, off) = sims[1].changes
    assert on.cause == "flash" and off.cause == "flash-expired"
    assert off.t - on.t == pytest.approx(0.5, abs=0.1)
    assert on.t - t0 < 0.2


async def test_plain_coil_board_refuses_a_timed_value(bus):
    port, sims = bus
    with pytest.raises(RelayBoardError, match="illegal data value"):
        await port.submit(2, [ModbusOp(5, 0, value=0x5500)], priority=Priority.CONTROL)
    assert sims[2].coils == [False] * 8


async def test_welded_relay_fails_verification(bus):
    port, sims = bus
    sims[2].stuck = {4}
    bank = port.board(BoardSpec("c", 2, "coils"))
    with pytest.raises(RelayBoardError, match="read-back differs") as err:
        await bank.write({4: True, 5: True}, priority=Priority.ON)
    assert err.value.fields["actual"] == {"4": False}


async def test_silent_board_is_reported_and_others_keep_working(bus):
    port, sims = bus
    sims[2].silent = True
    dead = port.board(BoardSpec("c", 2, "coils"))
    live = port.board(BoardSpec("w", 1, "waveshare_v2"))
    t0 = time.monotonic()
    dead_job = asyncio.create_task(dead.write({0: True}, priority=Priority.ON))
    await asyncio.sleep(0.01)
    live_state = await live.write({0: True}, priority=Priority.ON)
    live_done = time.monotonic() - t0
    with pytest.raises(RelayBoardError, match="did not answer"):
        await dead_job
    dead_done = time.monotonic() - t0
    assert live_state[0] is True and sims[1].coils[0] is True
    # The live board waited at most for the dead board's attempts (2 x 0.3 s), never longer.
    assert live_done < 2 * 0.3 + 0.3
    assert dead_done < 2.0  # within the request deadline
    assert port.health(2).failures_in_row == 1 and port.health(1).failures_in_row == 0
    # Once down, its polls lose the retry: one timeout, then the bus is free again.
    with pytest.raises(RelayBoardError):
        await dead.read()
    assert port.health(2).down
    t1 = time.monotonic()
    with pytest.raises(RelayBoardError):
        await dead.read()
    assert time.monotonic() - t1 < 0.3 + 0.2


async def test_switching_jobs_overtake_queued_polls(bus):
    port, sims = bus
    sims[3].delay_s = 0.05
    slow = port.board(BoardSpec("h", 3, "holding"))
    live = port.board(BoardSpec("w", 1, "waveshare_v2"))
    order: list[str] = []

    async def poll(i: int) -> None:
        await slow.read(priority=Priority.POLL)
        order.append(f"poll{i}")

    async def switch() -> None:
        await live.write({7: True}, priority=Priority.ON)
        order.append("on")

    polls = [asyncio.create_task(poll(i)) for i in range(5)]
    await asyncio.sleep(0.005)
    await asyncio.gather(switch(), *polls)
    assert order.index("on") <= 1, order


async def test_deadline_bounds_a_request_stuck_behind_a_slow_board(bus):
    port, sims = bus
    sims[3].delay_s = 0.25  # answers, slowly (inside the 0.3 s timeout)
    slow = port.board(BoardSpec("h", 3, "holding"))
    polls = [asyncio.create_task(slow.read()) for _ in range(6)]
    await asyncio.sleep(0.01)  # the polls are queued first
    t0 = time.monotonic()
    with pytest.raises(RelayBoardError, match="deadline"):
        await port.submit(1, [ModbusOp(1, 0, count=8)], priority=Priority.POLL, deadline_s=0.4)
    assert time.monotonic() - t0 < 0.6
    await asyncio.gather(*polls, return_exceptions=True)


async def test_unplugged_adapter_fails_fast_and_the_port_reconnects(tmp_path):
    sim = SimBoard(1, "coils")
    with serial_line(host_link=tmp_path / "tty-relays") as line:
        async with RelayBoardSim(line.device_path, [sim]):
            port = ModbusRelayPort(str(tmp_path / "tty-relays"), timeout_s=0.3, deadline_s=2.0)
            bank = port.board(BoardSpec("c", 1, "coils"))
            task = asyncio.create_task(port.run())
            try:
                assert await port.wait_open(3)
                assert (await bank.write({0: True}))[0] is True
                line.unplug()
                t0 = time.monotonic()
                with pytest.raises(RelayBoardError):
                    await bank.write({0: False}, priority=Priority.OFF)
                assert time.monotonic() - t0 < 2.0
                for _ in range(100):
                    if port.state.value == "backoff":
                        break
                    await asyncio.sleep(0.02)
                assert port.state.value == "backoff"
                with pytest.raises(RelayBoardError, match="down"):
                    await bank.read()  # refused at once while the adapter is gone
                line.replug()
                assert await port.wait_open(5)
                assert port.stats.opens == 2
                assert (await bank.write({0: False}, priority=Priority.OFF))[0] is False
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
