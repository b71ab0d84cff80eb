"""Hostile relay boards (issue 14, item 12): whatever a board answers -- a valid CRC around a
byte count of 0, fewer registers than asked, a short echo, an exception code, garbage -- the
driver raises :class:`drivers.relays.RelayBoardError` and nothing else, the port's owner task
keeps serving, and the broadcast controller fails the relays off and records why.

The board is ``tests/hostile/drivers_rtu_responder.py``: a raw RTU responder on a pty, no
pymodbus on its side; the gateway side is the production ``ModbusRelayPort`` (pymodbus) and
the controller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.relay_modbus import ModbusRelayPort
from drivers.relays import BoardSpec, Priority, RelayBoardError, decode_read
from gateway.broadcast.controller import BroadcastController
from gateway.broadcast.plan import Layout, RelayRef, StartRequest
from gateway.clock import SystemClock
from tests.health.helpers import events_of, open_journal, wait_until
from tests.hostile.drivers_loopthread import LoopThread
from tests.hostile.drivers_rtu_responder import RawRtuBoard

T = TypeVar("T")
# The port's deadline is 0.8 s; the rest is slack for a loaded machine's scheduling of the pty
# and the loop thread (1.87 s was seen with the load average at 13). A port without a deadline
# that a hostile board can keep waiting still fails.
LIMIT_S = 2.5
HOLDING4 = BoardSpec(name="amp", address=1, profile="holding", channels=4)
COILS8 = BoardSpec(name="zones", address=1, profile="coils", channels=8)


def _port(path: str) -> ModbusRelayPort:
    # Short attempts: a reply pymodbus waits on (a byte count promising more) costs 0.1 s.
    return ModbusRelayPort(path, baudrate=19200, timeout_s=0.1, retries=0, deadline_s=0.8)


@pytest.fixture
def bench() -> Iterator[tuple[RawRtuBoard, ModbusRelayPort, LoopThread, asyncio.Task[None]]]:
    with RawRtuBoard() as board:
        lt = LoopThread()
        port = _port(board.path)

        async def start() -> asyncio.Task[None]:
            task = asyncio.create_task(port.run(), name="relay-port")
            assert await port.wait_open(5.0), "the relay port did not open"
            return task

        try:
            owner = lt.run(start())
            yield board, port, lt, owner
        finally:
            lt.close()


# -- regressions --------------------------------------------------------------------------------


def test_decode_read_of_a_short_answer_is_a_relay_board_error() -> None:
    with pytest.raises(RelayBoardError, match="read returned 0 values, need 4"):
        decode_read(HOLDING4, [])


@pytest.mark.parametrize(
    ("spec", "reply"),
    [
        (HOLDING4, b"\x01\x03\x00"),  # valid CRC, byte count 0
        (HOLDING4, b"\x01\x03\x04\x00\x01\x00\x00"),  # two registers where four were asked
        (COILS8, b"\x01\x01\x00"),  # coils, byte count 0
    ],
)
def test_short_read_is_a_relay_board_error_and_the_port_keeps_serving(
    bench: tuple[RawRtuBoard, ModbusRelayPort, LoopThread, asyncio.Task[None]],
    spec: BoardSpec,
    reply: bytes,
) -> None:
    board, port, lt, owner = bench
    bank = port.board(spec)
    board.answer = lambda req: reply
    with pytest.raises(RelayBoardError, match="read returned"):
        lt.run(bank.read(priority=Priority.ON))
    assert port.health(spec.address).jobs_failed == 1
    board.answer = None  # the board comes to its senses
    assert lt.run(bank.read(priority=Priority.ON)) == (False,) * spec.channels
    assert not owner.done(), "the port's owner task stopped"


# -- property -----------------------------------------------------------------------------------


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, bytes, int]:
    kind = draw(
        st.sampled_from(["same_fc", "exception", "other_fc", "count_lies", "silent", "normal"])
    )
    data = draw(st.binary(max_size=12))
    other = draw(st.integers(0, 255))
    return kind, data, other


def _answer(kind: str, data: bytes, other: int) -> Any:
    def answer(req: bytes) -> bytes | None:
        addr, fc = req[0], req[1]
        if kind == "same_fc":
            return bytes([addr, fc]) + data
        if kind == "exception":
            return bytes([addr, fc | 0x80, other])
        if kind == "other_fc":
            return bytes([addr, other]) + data
        if kind == "count_lies":
            return bytes([addr, fc, other]) + data[: max(0, other - 1)]
        if kind == "silent":
            return None
        return None

    return None if kind == "normal" else answer


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    answer=answers(),
    spec=st.sampled_from([HOLDING4, COILS8]),
    op=st.sampled_from(["read", "write_on", "write_off"]),
)
def test_any_answer_gives_a_state_or_a_relay_board_error(
    bench: tuple[RawRtuBoard, ModbusRelayPort, LoopThread, asyncio.Task[None]],
    answer: tuple[str, bytes, int],
    spec: BoardSpec,
    op: str,
) -> None:
    board, port, lt, owner = bench
    board.answer = _answer(*answer)
    bank = port.board(spec)
    started = time.monotonic()
    try:
        if op == "read":
            state = lt.run(bank.read(priority=Priority.ON))
        else:
            state = lt.run(bank.write({0: op == "write_on"}, priority=Priority.ON))
    except RelayBoardError:
        pass
    else:
        assert len(state) == spec.channels and all(isinstance(v, bool) for v in state)
    elapsed = time.monotonic() - started
    assert elapsed < LIMIT_S, f"{op} took {elapsed:.2f} s with {answer}"
    assert not owner.done(), "the port's owner task stopped"


# -- the broadcast controller -------------------------------------------------------------------


async def test_controller_fails_relays_off_when_the_board_answers_short(tmp_path: Path) -> None:
    """Item 12 as the service sees it: the start-up force-off reads back a byte count of 0.
    The controller keeps running, records off_failed with the reason, never switches a relay
    on, and completes the off once the board answers properly."""
    with RawRtuBoard() as board:
        board.answer = lambda req: bytes([req[0], 0x03, 0x00]) if req[1] == 0x03 else req
        port = _port(board.path)
        bank = port.board(HOLDING4)
        layout = Layout(zones={1: RelayRef("amp", 1), 2: RelayRef("amp", 2)}, warmup_s=0.0)
        async with open_journal(tmp_path) as journal:
            controller = BroadcastController(layout, {"amp": bank}, journal, SystemClock())
            port_task = asyncio.create_task(port.run())
            task = asyncio.create_task(controller.run())
            try:
                await wait_until(controller.ready.is_set, timeout=20.0, what="controller ready")

                async def kinds() -> list[str]:
                    return [e.kind for e in await events_of(journal)]

                failed: list[Any] = []

                async def off_failed() -> bool:
                    failed[:] = await events_of(journal, "broadcast.off_failed")
                    return bool(failed)

                deadline = time.monotonic() + 20.0
                while not await off_failed():
                    assert time.monotonic() < deadline, "no broadcast.off_failed recorded"
                    await asyncio.sleep(0.05)
                errors = failed[0].payload["errors"]
                assert set(errors) == {"amp:1", "amp:2"}
                assert all("read returned 0 values" in why for why in errors.values()), errors
                # A start while the board misbehaves: refused or failed, never verified on.
                ticket = controller.submit_start(StartRequest("r1", (1, 2), 30.0, "cli"))
                outcome = await ticket.wait("on", timeout=20.0)
                assert outcome.get("stage") in ("refused", "failed"), outcome
                assert not task.done(), "the controller stopped"
                assert all(v == 0x0200 for fc, _, v in board.writes if fc == 0x06), board.writes
                board.answer = None  # the board recovers: the pending off now verifies
                deadline = time.monotonic() + 20.0
                while "broadcast.off" not in await kinds():
                    assert time.monotonic() < deadline, "the retried off never verified"
                    await asyncio.sleep(0.05)
                assert board.on_channels(channels=4) == []
                assert not task.done() and not port_task.done()
            finally:
                for t in (task, port_task):
                    t.cancel()
                await asyncio.gather(task, port_task, return_exceptions=True)


class _BrokenBank:
    """A relay bank whose driver has a bug: any call raises a plain RuntimeError."""

    def __init__(self, spec: BoardSpec) -> None:
        self.spec = spec
        self.calls = 0

    async def read(self, *, priority: Priority = Priority.POLL) -> tuple[bool, ...]:
        self.calls += 1
        raise RuntimeError("driver bug")

    async def write(
        self, states: Any, *, hold_s: float | None = None, priority: Priority = Priority.CONTROL
    ) -> tuple[bool, ...]:
        self.calls += 1
        raise RuntimeError("driver bug")


async def test_controller_survives_any_exception_from_a_board(tmp_path: Path) -> None:
    """One board raising something that is not a RelayBoardError: its relays count as failed
    (recorded with the error), the healthy board is still switched off, and the controller
    keeps running."""
    with RawRtuBoard() as board:
        port = _port(board.path)
        good = port.board(COILS8)
        broken = _BrokenBank(BoardSpec(name="bad", address=2, channels=4))
        board.coils[3] = True  # a relay left on: the start-up force-off must clear it
        layout = Layout(zones={1: RelayRef("zones", 3), 2: RelayRef("bad", 0)}, warmup_s=0.0)
        async with open_journal(tmp_path) as journal:
            controller = BroadcastController(
                layout, {"zones": good, "bad": broken}, journal, SystemClock()
            )
            port_task = asyncio.create_task(port.run())
            task = asyncio.create_task(controller.run())
            try:
                deadline = time.monotonic() + 20.0
                while not (failed := await events_of(journal, "broadcast.off_failed")):
                    assert time.monotonic() < deadline, "no broadcast.off_failed recorded"
                    await asyncio.sleep(0.05)
                errors = failed[0].payload["errors"]
                assert list(errors) == ["bad:0"] and "RuntimeError: driver bug" in errors["bad:0"]
                assert failed[0].payload["relays"] == ["zones:3"]  # verified off
                assert board.coils[3] is False
                states, read_errors = await controller.read_all()
                assert (
                    "RuntimeError" in read_errors["bad"] and states[RelayRef("zones", 3)] is False
                )
                assert not task.done(), "the controller stopped"
            finally:
                for t in (task, port_task):
                    t.cancel()
                await asyncio.gather(task, port_task, return_exceptions=True)
