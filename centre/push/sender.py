"""Delivering the outbox to group robots over HTTP (aiohttp), paced, retried, recorded.

Theory of operation
-------------------
:meth:`RobotSender.deliver` sends the stored parts of one day to one robot, in order, one at a
time. Before each POST it asks :class:`~centre.push.plan.Pacer` how long to wait, from the
attempts the outbox recorded for that robot in the last minute (so pacing holds across a
restart). Each POST is recorded before it goes and after it ends (:mod:`centre.push.outbox`).

A network error, a malformed reply (:class:`~centre.push.robot.RobotReplyError`) or a non-zero
``errcode`` puts the part back to wait ``backoff_delay(attempt)``; after ``max_attempts``, or at
once for an errcode another attempt cannot fix (an invalid key), the part is ``failed`` and the
delivery stops there: later parts never overtake an earlier one.

:meth:`RobotSender.close` asks every delivery to stop at its next wait; a POST already under way
is finished and recorded first, so a stop between parts neither skips nor repeats one. Time and
sleeping are injected (``clock``, ``sleep``) at this boundary so tests can run a paced minute
in an instant.

    async with aiohttp.ClientSession() as session:
        sender = RobotSender(outbox, session)
        report = await sender.deliver(robot, "2026-11-02")
        await sender.close()
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import aiohttp

from centre.push.outbox import ERRCODE, FAILED, MALFORMED, NETWORK, OK, Part, PushOutbox
from centre.push.plan import Pacer
from centre.push.robot import (
    MAX_ATTEMPTS,
    MAX_REPLY_BYTES,
    Robot,
    RobotReply,
    RobotReplyError,
    backoff_delay,
    markdown_body,
    parse_reply,
)

log = logging.getLogger("centre.push")

REQUEST_TIMEOUT_S: Final = 20.0

# How a delivery ended.
DONE: Final = "done"
GAVE_UP: Final = "failed"
STOPPED: Final = "stopped"


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one :meth:`RobotSender.deliver` call did."""

    day: str
    group: str
    outcome: str  # done | failed | stopped
    sent: int  # parts sent by this call
    reason: str = ""  # why it failed (the last errcode/errmsg or error)


class RobotSender:
    """Sends outbox parts to robots; one delivery per (day, group) at a time."""

    def __init__(
        self,
        outbox: PushOutbox,
        session: aiohttp.ClientSession,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        pacer: Pacer | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self._outbox = outbox
        self._session = session
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter
        self._pacer = pacer or Pacer()
        self._max_attempts = max_attempts
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._stopping = asyncio.Event()
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy: set[tuple[str, str]] = set()
        # Held from "may I send now?" to the recorded start of the POST, so deliveries of
        # several days to one robot cannot all see the same free slot.
        self._robot_locks: dict[str, asyncio.Lock] = {}

    def request_stop(self) -> None:
        """Ask every delivery to stop at its next wait (safe from a signal handler)."""
        self._stopping.set()

    async def close(self) -> None:
        """Stop every delivery at its next wait (a POST under way is finished and recorded)."""
        self.request_stop()
        await self._idle.wait()

    async def deliver(self, robot: Robot, day: str) -> DeliveryReport:
        """Send ``day``'s unsent parts to ``robot`` in order, until all are sent, one fails
        for good, or :meth:`close` is called."""
        key = (day, robot.group)
        if key in self._busy:
            raise RuntimeError(f"a delivery of {day} to {robot.group!r} is already running")
        self._busy.add(key)
        self._active += 1
        self._idle.clear()
        try:
            return await self._deliver(robot, day)
        finally:
            self._busy.discard(key)
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def _deliver(self, robot: Robot, day: str) -> DeliveryReport:
        sent = 0
        while not self._stopping.is_set():
            part = await self._outbox.next_part(day, robot.group)
            if part is None:
                return DeliveryReport(day, robot.group, DONE, sent)
            if part.state == FAILED:
                return DeliveryReport(day, robot.group, GAVE_UP, sent, part.detail)
            lock = self._robot_locks.setdefault(robot.group, asyncio.Lock())
            async with lock:
                if not await self._wait_for_slot(robot):
                    break
                attempt_id = await self._outbox.begin_attempt(
                    part.day, part.group, part.part, now=self._clock()
                )
            ok, give_up, reason = await self._attempt(robot, part, attempt_id)
            if ok:
                sent += 1
                continue
            if give_up:
                log.warning(
                    "push to %s (%s) part %d/%d of %s failed for good: %s",
                    robot.group,
                    robot.redacted,
                    part.part,
                    part.parts,
                    day,
                    reason,
                )
                return DeliveryReport(day, robot.group, GAVE_UP, sent, reason)
            if not await self._nap(backoff_delay(part.attempts + 1, self._jitter())):
                break
        return DeliveryReport(day, robot.group, STOPPED, sent)

    async def _wait_for_slot(self, robot: Robot) -> bool:
        """Wait until the robot may take one more message; False when stopping first."""
        while True:
            now = self._clock()
            times = await self._outbox.send_times(robot.group, since=now - self._pacer.window_s)
            wait = self._pacer.delay(times, now)
            if wait <= 0:
                return not self._stopping.is_set()
            if not await self._nap(wait):
                return False

    async def _attempt(self, robot: Robot, part: Part, attempt_id: int) -> tuple[bool, bool, str]:
        """One POST of one part (its start already recorded), and its end recorded:
        (ok, give up, reason)."""
        attempts = part.attempts + 1
        errcode: int | None = None
        permanent = False
        try:
            reply = await self._post(robot, part.content)
        except RobotReplyError as exc:
            outcome, detail = MALFORMED, exc.reason
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # Only the class name: aiohttp's messages can carry the URL, and with it the key.
            outcome, detail = NETWORK, f"network error: {exc.__class__.__name__}"
        else:
            errcode, detail = reply.errcode, reply.errmsg
            outcome = OK if reply.ok else ERRCODE
            permanent = reply.permanent
        give_up = outcome != OK and (permanent or attempts >= self._max_attempts)
        await self._outbox.finish_attempt(
            attempt_id,
            outcome=outcome,
            errcode=errcode,
            detail=detail,
            give_up=give_up,
            now=self._clock(),
        )
        reason = detail if errcode is None else f"errcode {errcode}: {detail}"
        if outcome != OK:
            log.warning(
                "push to %s (%s) part %d/%d of %s, attempt %d: %s",
                robot.group,
                robot.redacted,
                part.part,
                part.parts,
                part.day,
                attempts,
                reason,
            )
        return outcome == OK, give_up, reason

    async def _post(self, robot: Robot, content: str) -> RobotReply:
        """POST one markdown message; the reply parsed (:class:`RobotReplyError` if it is not
        one). No redirects: a webhook that redirects is not the robot."""
        async with self._session.post(
            robot.url,
            data=markdown_body(content),
            headers={"Content-Type": "application/json"},
            timeout=self._timeout,
            allow_redirects=False,
        ) as resp:
            # At most one byte past the limit: an oversized reply is refused, never buffered.
            body = b""
            while len(body) <= MAX_REPLY_BYTES:
                chunk = await resp.content.read(MAX_REPLY_BYTES + 1 - len(body))
                if not chunk:
                    break
                body += chunk
            return parse_reply(resp.status, body)

    async def _nap(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless asked to stop first; False when stopping."""
        if self._stopping.is_set():
            return False
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()
            await asyncio.gather(sleeper, stopper, return_exceptions=True)
        return not self._stopping.is_set()
