"""Proof of sound: capture the audio input at the start of a broadcast and judge its level.

Where ``broadcast.audio.capture_command`` is set (the amplifier's line-out or a microphone
near a speaker wired back to the gateway's audio input), each broadcast that verified on gets a
fourth step: after ``capture_delay_s`` the command runs and its stdout (raw s16le mono 16 kHz
PCM) is read for ``capture_s`` seconds and judged by :mod:`gateway.broadcast.level`. The result
is journaled as ``broadcast.sound`` and resolves the ticket's ``sound`` stage:

- ``confirmed``: the level check heard sound;
- ``no_sound``: silence or a disconnected input; also journaled as the alert
  ``broadcast.no_sound`` (relays closed but nothing came out);
- ``not_checked``: no capture command configured (then nothing is journaled: the ack alone
  says it), or the capture itself failed (journaled, with the reason). Never a ``confirmed``
  without having heard it.

Typical command: ``["arecord", "-q", "-D", "hw:1", "-f", "S16_LE", "-c", "1", "-r", "16000",
"-t", "raw"]`` (the prover stops it once it has enough)::

    prover = SoundProver(section.audio, controller.record)
    prover.start(request_id, ticket)     # a task; the ticket's "sound" stage resolves
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from gateway.broadcast.config import AudioSection
from gateway.broadcast.level import SOUND, LevelError, measure

log = logging.getLogger(__name__)

Recorder = Callable[[str, Mapping[str, Any]], Awaitable[None]]
CONFIRMED: Final = "confirmed"
NO_SOUND: Final = "no_sound"
NOT_CHECKED: Final = "not_checked"
RATE: Final = 16_000
EXTRA_WAIT_S: Final = 10.0  # beyond capture_s before a silent capture command is given up


class Resolvable(Protocol):
    def resolve(self, stage: str, detail: Mapping[str, Any]) -> None: ...


class SoundProver:
    def __init__(self, section: AudioSection, record: Recorder) -> None:
        self.section = section
        self.record = record
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def configured(self) -> bool:
        return bool(self.section.capture_command)

    def start(self, request_id: str, ticket: Resolvable | None) -> None:
        task = asyncio.create_task(self._prove(request_id, ticket), name="broadcast-sound")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _prove(self, request_id: str, ticket: Resolvable | None) -> None:
        detail: dict[str, Any] = {"request_id": request_id}
        try:
            if not self.configured:
                detail |= {"result": NOT_CHECKED, "reason": "no audio input configured"}
            else:
                await asyncio.sleep(self.section.capture_delay_s)
                detail |= await self.judge()
        except asyncio.CancelledError:
            detail |= {"result": NOT_CHECKED, "reason": "gateway stopping"}
            raise
        except Exception as exc:  # the check must never take the broadcast with it
            log.exception("broadcast: sound check failed")
            detail |= {"result": NOT_CHECKED, "reason": f"{type(exc).__name__}: {exc}"[:200]}
        finally:
            # Journaled where an input is configured; without one every broadcast would carry
            # the same "not checked" line (the ack still says so).
            with contextlib.suppress(Exception):
                if self.configured:
                    await self.record("broadcast.sound", detail)
                if detail.get("result") == NO_SOUND:
                    await self.record("broadcast.no_sound", detail)
            if ticket is not None:
                ticket.resolve("sound", detail)

    async def judge(self) -> dict[str, Any]:
        """Capture and judge once: {"result", level fields...} or {"result": not_checked}."""
        want = int(self.section.capture_s * RATE) * 2
        pcm = await self._capture(want)
        if isinstance(pcm, str):
            return {"result": NOT_CHECKED, "reason": pcm}
        if len(pcm) < want // 2:
            return {
                "result": NOT_CHECKED,
                "reason": f"the capture gave {len(pcm)} of {want} bytes",
            }
        try:
            level = measure(pcm[: len(pcm) // 2 * 2], threshold_dbfs=self.section.threshold_dbfs)
        except LevelError as exc:
            return {"result": NOT_CHECKED, "reason": str(exc)}
        return {"result": CONFIRMED if level.verdict == SOUND else NO_SOUND, **level.describe()}

    async def _capture(self, want: int) -> bytes | str:
        """``want`` bytes of PCM from the capture command's stdout, or why not (a str)."""
        return await capture_pcm(
            self.section.capture_command, want, self.section.capture_s + EXTRA_WAIT_S
        )


async def capture_pcm(command: Sequence[str], want: int, timeout_s: float) -> bytes | str:
    """``want`` bytes of PCM from ``command``'s stdout (stopped once it has them or after
    ``timeout_s``), or why not (a str)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return f"capture command could not run: {exc}"
    assert proc.stdout is not None and proc.stderr is not None
    buf = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while len(buf) < want:
                chunk = await proc.stdout.read(want - len(buf))
                if not chunk:
                    break
                buf += chunk
    except TimeoutError:
        pass
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        # Drain both pipes to their end, not only stderr: a reader left paused on a full
        # stdout buffer never sees the end of the pipe, and then wait() never returns.
        _, err = await proc.communicate()
    if not buf:
        why = err.decode(errors="replace").strip()[-200:] or f"exit {proc.returncode}"
        return f"capture gave no audio: {why}"
    return bytes(buf)
