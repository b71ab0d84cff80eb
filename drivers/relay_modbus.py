"""Modbus RTU relay boards on one serial port: the only module that calls pymodbus.

pymodbus changes its API between minor releases (pinned to 3.16.x); keeping every call here
means the next upgrade touches one file. Theory of operation:

* One :class:`ModbusRelayPort` per serial port, one **owner task** (:meth:`run`). Every
  request to every board on the port is a *job* in a priority queue; the owner runs one job
  at a time, so the half-duplex bus never sees two masters. Broadcast off/on
  (:class:`~drivers.relays.Priority`) jump ahead of status polling.
* Every job has a **deadline**. The caller stops waiting at the deadline whatever the owner is
  doing; the owner drops jobs whose caller has given up, and each transaction attempt is
  bounded by a short timeout (default 0.35 s) with one retry. A board that does not answer
  costs its own job at most ``(1 + retries) * timeout`` and then the next job runs: a dead
  board never stalls the others beyond that.
* A board that failed its last jobs is marked *down*; its polls get no retry, so a dead board
  on the bus costs the live ones as little as possible.
* The port itself reconnects through an explicit state machine
  (``CLOSED -> OPENING -> OPEN -> BACKOFF -> OPENING``) with named backoff constants and
  jitter; while it is down, queued jobs fail at once rather than at their deadline.

Usage::

    port = ModbusRelayPort("/dev/ttyUSB0", baudrate=9600)
    bank = port.board(BoardSpec(name="zones", address=1, profile="waveshare_v2"))
    task = asyncio.create_task(port.run())
    state = await bank.write({0: True}, hold_s=95.0, priority=Priority.ON)
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import random
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU

from drivers.relays import (
    FC_READ_COILS,
    FC_READ_HOLDING,
    FC_WRITE_COIL,
    FC_WRITE_COILS,
    FC_WRITE_REGISTER,
    BoardSpec,
    ModbusOp,
    Priority,
    RelayBoardError,
    decode_read,
    mismatches,
    read_op,
    write_ops,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 0.35
DEFAULT_RETRIES = 1
DEFAULT_DEADLINE_S = 2.0
# Reconnect backoff for the port itself (a pulled USB adapter, a port not yet there).
RECONNECT_INITIAL_S = 0.5
RECONNECT_MAX_S = 15.0
RECONNECT_FACTOR = 2.0
RECONNECT_JITTER = 0.2
# After this many failed jobs in a row a board counts as down (its polls lose their retry).
DOWN_AFTER_FAILURES = 2

_EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
}


class PortState(enum.Enum):
    CLOSED = "closed"
    OPENING = "opening"
    OPEN = "open"
    BACKOFF = "backoff"


class _RawWriteCoil(ModbusPDU):
    """FC05 with any 16-bit value (pymodbus's write_coil only sends 0xFF00/0x0000).

    Waveshare boards take flash-on times (and 0x5500 "flip") through this function code. The
    same class decodes the board's echo, so the echo can be checked word for word.
    """

    function_code = FC_WRITE_COIL
    rtu_frame_size = 8

    def __init__(
        self, address: int = 0, value: int = 0, dev_id: int = 0, transaction_id: int = 0
    ) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id, address=address)
        self.value = value

    def encode(self) -> bytes:
        return struct.pack(">HH", self.address, self.value)

    def decode(self, data: bytes) -> None:
        self.address, self.value = struct.unpack(">HH", data[:4])


@dataclass(slots=True)
class _Job:
    address: int
    ops: tuple[ModbusOp, ...]
    priority: Priority
    deadline: float
    future: asyncio.Future[list[Any]]
    retries: int
    board: str


@dataclass(slots=True)
class BoardHealth:
    """What the port knows about one board (read by health monitoring)."""

    failures_in_row: int = 0
    jobs_ok: int = 0
    jobs_failed: int = 0
    last_error: str = ""

    @property
    def down(self) -> bool:
        return self.failures_in_row >= DOWN_AFTER_FAILURES


@dataclass(slots=True)
class PortStats:
    state: PortState = PortState.CLOSED
    opens: int = 0
    boards: dict[int, BoardHealth] = field(default_factory=dict)


class ModbusRelayPort:
    """One serial port and its owner task; hands out :class:`ModbusRelayBoard` per address."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        deadline_s: float = DEFAULT_DEADLINE_S,
        name: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self.retries = retries
        self.deadline_s = deadline_s
        self.name = name or f"relays:{port}"
        self.stats = PortStats()
        self._queue: asyncio.PriorityQueue[tuple[int, int, _Job]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._client: AsyncModbusSerialClient | None = None
        self._rng = rng or random.Random()
        self._opened = asyncio.Event()
        # Modbus RTU frames need 3.5 silent character times between them (fixed 1.75 ms
        # above 19200 baud); the owner keeps that gap before every request it sends.
        self.t35_s = 35.0 / baudrate if baudrate <= 19200 else 0.00175
        self._bus_quiet_at = 0.0

    # -- public ------------------------------------------------------------------------------

    @property
    def state(self) -> PortState:
        return self.stats.state

    def board(self, spec: BoardSpec) -> ModbusRelayBoard:
        """The :class:`~drivers.relays.RelayBank` for the board at ``spec.address``."""
        self.stats.boards.setdefault(spec.address, BoardHealth())
        return ModbusRelayBoard(self, spec)

    def health(self, address: int) -> BoardHealth:
        return self.stats.boards.setdefault(address, BoardHealth())

    async def wait_open(self, timeout: float) -> bool:
        """Wait until the port is open (True) or ``timeout`` passes (False)."""
        try:
            await asyncio.wait_for(self._opened.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def submit(
        self,
        address: int,
        ops: Sequence[ModbusOp],
        *,
        priority: Priority,
        deadline_s: float | None = None,
        board: str = "",
    ) -> list[Any]:
        """Queue ``ops`` for the board at ``address``; results in order (reads: values).

        Raises RelayBoardError when the board fails or ``deadline_s`` passes first.
        """
        loop = asyncio.get_running_loop()
        budget = self.deadline_s if deadline_s is None else deadline_s
        health = self.health(address)
        retries = 0 if (priority == Priority.POLL and health.down) else self.retries
        job = _Job(
            address=address,
            ops=tuple(ops),
            priority=priority,
            deadline=loop.time() + budget,
            future=loop.create_future(),
            retries=retries,
            board=board or str(address),
        )
        if self.state == PortState.BACKOFF:
            raise RelayBoardError("serial port is down", port=self.port, board=job.board)
        self._queue.put_nowait((int(priority), next(self._order), job))
        try:
            # wait_for cancels the job's future on timeout or when the caller is cancelled;
            # the owner skips (or stops caring about) a job whose future is done.
            return await asyncio.wait_for(job.future, budget)
        except TimeoutError:
            raise RelayBoardError(
                "no answer before the request deadline",
                port=self.port,
                board=job.board,
                deadline_s=budget,
            ) from None

    async def run(self) -> None:
        """The owner task: open the port, serve jobs, reconnect with backoff; until cancelled."""
        delay = RECONNECT_INITIAL_S
        try:
            while True:
                self._set_state(PortState.OPENING)
                client = await self._open()
                if client is None:
                    self._set_state(PortState.BACKOFF)
                    self._fail_queued("serial port is down")
                    await asyncio.sleep(delay * (1 + self._rng.uniform(0, RECONNECT_JITTER)))
                    delay = min(RECONNECT_MAX_S, delay * RECONNECT_FACTOR)
                    continue
                delay = RECONNECT_INITIAL_S
                self._client = client
                self._set_state(PortState.OPEN)
                self.stats.opens += 1
                self._opened.set()
                try:
                    await self._serve(client)
                finally:
                    self._opened.clear()
                    self._client = None
                    client.close()
                self._set_state(PortState.BACKOFF)
                self._fail_queued("serial port is down")
                await asyncio.sleep(delay * (1 + self._rng.uniform(0, RECONNECT_JITTER)))
        finally:
            self._set_state(PortState.CLOSED)
            self._fail_queued("relay port closed")

    # -- owner internals ---------------------------------------------------------------------

    def _set_state(self, state: PortState) -> None:
        if state != self.stats.state:
            log.info("%s: %s -> %s", self.name, self.stats.state.value, state.value)
        self.stats.state = state

    async def _open(self) -> AsyncModbusSerialClient | None:
        _quiet_pymodbus()
        client = AsyncModbusSerialClient(
            self.port,
            framer=FramerType.RTU,
            baudrate=self.baudrate,
            timeout=self.timeout_s,
            retries=0,  # retries are ours: between attempts a more urgent job may not wait long
            reconnect_delay=0,  # reconnects are ours too (the state machine in run())
            name=self.name,
        )
        client.register(_RawWriteCoil)
        try:
            ok = await client.connect()
        except (OSError, ModbusException) as exc:
            log.warning("%s: cannot open %s: %s", self.name, self.port, exc)
            client.close()
            return None
        if not ok:
            client.close()
            return None
        return client

    def _fail_queued(self, reason: str) -> None:
        while not self._queue.empty():
            _, _, job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RelayBoardError(reason, port=self.port, board=job.board))

    async def _serve(self, client: AsyncModbusSerialClient) -> None:
        loop = asyncio.get_running_loop()
        while True:
            _, _, job = await self._queue.get()
            if job.future.done():
                continue  # the caller gave up (deadline) or was cancelled
            if loop.time() >= job.deadline:
                job.future.set_exception(
                    RelayBoardError("request deadline passed in the queue", board=job.board)
                )
                continue
            try:
                results = await self._run_job(client, job)
            except asyncio.CancelledError:
                if not job.future.done():
                    job.future.set_exception(
                        RelayBoardError("relay port closed", port=self.port, board=job.board)
                    )
                raise
            except RelayBoardError as exc:
                self._note(job.address, exc)
                if not job.future.done():
                    job.future.set_exception(exc)
                if not client.connected:
                    return  # the port went away: reconnect
                continue
            self._note(job.address, None)
            if not job.future.done():
                job.future.set_result(results)

    def _note(self, address: int, exc: RelayBoardError | None) -> None:
        health = self.health(address)
        if exc is None:
            health.failures_in_row = 0
            health.jobs_ok += 1
        else:
            health.failures_in_row += 1
            health.jobs_failed += 1
            health.last_error = exc.reason

    async def _run_job(self, client: AsyncModbusSerialClient, job: _Job) -> list[Any]:
        loop = asyncio.get_running_loop()
        results: list[Any] = []
        for op in job.ops:
            attempt = 0
            while True:
                remaining = job.deadline - loop.time()
                if remaining <= 0:
                    raise RelayBoardError("request deadline passed", board=job.board)
                gap = self._bus_quiet_at - loop.time()
                if gap > 0:
                    await asyncio.sleep(gap)
                try:
                    # The deadline bounds the attempt even if pymodbus's own timeout slips.
                    result = await asyncio.wait_for(
                        _execute(client, job.address, op), remaining + 0.05
                    )
                except (ModbusIOException, TimeoutError) as exc:
                    if not client.connected:
                        raise RelayBoardError(
                            "serial port lost", port=self.port, board=job.board
                        ) from exc
                    attempt += 1
                    if attempt > job.retries:
                        raise RelayBoardError(
                            "board did not answer",
                            board=job.board,
                            address=job.address,
                            function=op.function,
                            attempts=attempt,
                        ) from exc
                    continue
                except ConnectionException as exc:
                    raise RelayBoardError(
                        "serial port lost", port=self.port, board=job.board
                    ) from exc
                except ModbusException as exc:
                    raise RelayBoardError(
                        f"modbus error: {exc}", board=job.board, address=job.address
                    ) from exc
                except RelayBoardError:
                    raise
                except Exception as exc:
                    # The answer passed its CRC but could not be taken apart (a short PDU, a
                    # field pymodbus did not expect): the board's fault, reported as such, so
                    # the owner task and every other board on the bus carry on.
                    raise RelayBoardError(
                        f"malformed answer: {type(exc).__name__}: {exc}",
                        board=job.board,
                        address=job.address,
                        function=op.function,
                    ) from exc
                finally:
                    self._bus_quiet_at = loop.time() + self.t35_s
                results.append(result)
                break
        return results


async def _execute(client: AsyncModbusSerialClient, device_id: int, op: ModbusOp) -> Any:
    """One transaction; returns read values, or None for a write whose echo checked out."""
    if op.function == FC_READ_COILS:
        resp = await client.read_coils(op.address, count=op.count, device_id=device_id)
        _check_response(resp, op, device_id)
        return _enough(list(resp.bits[: op.count]), op, device_id)
    if op.function == FC_READ_HOLDING:
        resp = await client.read_holding_registers(op.address, count=op.count, device_id=device_id)
        _check_response(resp, op, device_id)
        return _enough(list(resp.registers[: op.count]), op, device_id)
    if op.function == FC_WRITE_COIL:
        resp = await client.execute(False, _RawWriteCoil(op.address, op.value, dev_id=device_id))
        _check_response(resp, op, device_id)
        if (resp.address, resp.value) != (op.address, op.value):
            raise RelayBoardError(
                "write echo differs",
                address=device_id,
                sent=[op.address, op.value],
                echo=[resp.address, resp.value],
            )
        return None
    if op.function == FC_WRITE_COILS:
        resp = await client.write_coils(op.address, list(op.bits), device_id=device_id)
        _check_response(resp, op, device_id)
        if (resp.address, resp.count) != (op.address, len(op.bits)):
            raise RelayBoardError("write echo differs", address=device_id)
        return None
    if op.function == FC_WRITE_REGISTER:
        resp = await client.write_register(op.address, op.value, device_id=device_id)
        _check_response(resp, op, device_id)
        if (resp.address, list(resp.registers[:1])) != (op.address, [op.value]):
            raise RelayBoardError("write echo differs", address=device_id)
        return None
    raise RelayBoardError(f"unsupported function {op.function}")


def _enough(values: list[Any], op: ModbusOp, device_id: int) -> list[Any]:
    """A read's values, refused when the board sent fewer than asked (a byte count of 0...)."""
    if len(values) < op.count:
        raise RelayBoardError(
            f"read returned {len(values)} values, need {op.count}",
            address=device_id,
            function=op.function,
            values=len(values),
        )
    return values


def _check_response(resp: ModbusPDU, op: ModbusOp, device_id: int) -> None:
    if resp.isError():
        code = int(getattr(resp, "exception_code", 0))
        raise RelayBoardError(
            f"board refused: {_EXCEPTION_NAMES.get(code, f'exception {code}')}",
            address=device_id,
            function=op.function,
            exception_code=code,
        )
    if resp.function_code != op.function:
        # A late answer to an earlier, timed-out request: never take it for this one.
        raise RelayBoardError(
            "answer to a different request", address=device_id, function=resp.function_code
        )


def _quiet_pymodbus() -> None:
    # Every timeout is reported by us as a RelayBoardError (and by the gateway as an event);
    # pymodbus would log each one again with a frame dump. Respect any level set on purpose.
    pm = logging.getLogger("pymodbus")
    if pm.level == logging.NOTSET:
        pm.setLevel(logging.CRITICAL)


class ModbusRelayBoard:
    """A :class:`~drivers.relays.RelayBank` on a :class:`ModbusRelayPort`."""

    def __init__(self, port: ModbusRelayPort, spec: BoardSpec) -> None:
        self._port = port
        self._spec = spec

    @property
    def spec(self) -> BoardSpec:
        return self._spec

    @property
    def port(self) -> ModbusRelayPort:
        return self._port

    async def read(
        self, *, priority: Priority = Priority.POLL, deadline_s: float | None = None
    ) -> tuple[bool, ...]:
        """Every channel's state, read from the board."""
        op = read_op(self._spec)
        (values,) = await self._port.submit(
            self._spec.address,
            [op],
            priority=priority,
            deadline_s=deadline_s,
            board=self._spec.name,
        )
        return decode_read(self._spec, values)

    async def write(
        self,
        states: Mapping[int, bool],
        *,
        hold_s: float | None = None,
        priority: Priority = Priority.CONTROL,
        deadline_s: float | None = None,
    ) -> tuple[bool, ...]:
        """Set ``states``, read the board back in the same job, and verify; returns the state."""
        ops = [*write_ops(self._spec, states, hold_s=hold_s), read_op(self._spec)]
        results = await self._port.submit(
            self._spec.address,
            ops,
            priority=priority,
            deadline_s=deadline_s,
            board=self._spec.name,
        )
        actual = decode_read(self._spec, results[-1])
        wrong = mismatches(states, actual)
        if wrong:
            raise RelayBoardError(
                "read-back differs from what was written",
                board=self._spec.name,
                expected={str(k): v for k, v in sorted(states.items())},
                actual={str(k): v for k, v in sorted(wrong.items())},
                mismatched=sorted(wrong),
            )
        return actual
