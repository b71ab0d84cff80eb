"""The weekly silent test: does each zone's sound chain still work, without disturbing anyone?

Once a week (``[broadcast.silent_test]``: weekday and local time), each configured zone in turn
(all zones by default) is switched on through the controller like a short broadcast of source
``test`` (the lowest rank: it never interrupts a broadcast, and any broadcast replaces it), a
tone nobody notices is played (default 2 s at 25 Hz, -30 dBFS, faded in and out; or e.g. 40 ms
at 1 kHz), the audio input is captured from ``lead_s`` before the tone to after it, and judged
with the same level check as a broadcast's proof of sound (:mod:`gateway.broadcast.level`):

- the whole capture flat: ``disconnected`` (nothing plugged in, dead card);
- otherwise the loudest stretch as long as the tone at or above the threshold: ``passed``,
  else ``no_sound``.

Each zone's result is journaled as ``broadcast.selftest``; ``no_sound`` and ``disconnected`` are
also journaled as the alert ``broadcast.no_sound`` (with ``test`` = ``silent``), exactly as a
broadcast that heard nothing, so the centre sees it. A capture that could not run is
``not_checked`` with the reason (as for a broadcast: never a pass without having heard it).

Never during a broadcast: a zone found busy (or a test replaced by a broadcast) is recorded as
``broadcast.selftest_skipped`` and tried again ``retry_s`` later the same local day; what is
still untested when the day ends is recorded once more with ``final`` = true. Relays fail off:
the test switches its zone off as soon as it has judged, on any error and on cancellation
(a stop naming the test's own request, so a broadcast that replaced it is never stopped), and
the request's duration bounds it anyway (the board timer too, where there is one)::

    test = SilentTest(section.silent_test, section.audio, controller, clock, zones=[1, 2])
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
import math
import struct
import wave
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from gateway.broadcast.config import AudioSection, ScheduleEntry, SilentTestSection
from gateway.broadcast.level import DISCONNECTED, SOUND, Level, LevelError, measure
from gateway.broadcast.plan import StartRequest
from gateway.broadcast.schedule import CHECK_INTERVAL_S, due_runs
from gateway.broadcast.sound import RATE, capture_pcm
from gateway.clock import Clock

log = logging.getLogger(__name__)

SOURCE: Final = "test"
PASSED: Final = "passed"
NO_SOUND: Final = "no_sound"
NOT_CHECKED: Final = "not_checked"
RELAYS_FAILED: Final = "relays_failed"
SKIPPED: Final = "skipped"
FADE_S: Final = 0.005  # fade in/out: no click on the speakers
ON_WAIT_S: Final = 30.0  # beyond the warm-up, for the zone to verify on
OFF_WAIT_S: Final = 30.0
PLAYER_WAIT_S: Final = 15.0  # beyond the tone, for the player to finish


def tone_pcm(hz: float, seconds: float, dbfs: float, rate: int = RATE) -> bytes:
    """A sine of ``seconds`` at ``hz`` and peak ``dbfs``, faded in and out, as s16le mono."""
    n = max(1, int(rate * seconds))
    amp = 32767 * 10 ** (dbfs / 20)
    fade = max(1, min(int(rate * FADE_S), n // 2))
    out = []
    for i in range(n):
        gain = min(1.0, i / fade, (n - 1 - i) / fade)
        out.append(int(amp * gain * math.sin(2 * math.pi * hz * i / rate)))
    return struct.pack(f"<{n}h", *out)


def tone_wav(hz: float, seconds: float, dbfs: float, rate: int = RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(tone_pcm(hz, seconds, dbfs, rate))
    return buf.getvalue()


def judge(pcm: bytes, window_s: float, threshold_dbfs: float) -> tuple[str, Level]:
    """(passed | no_sound | disconnected, the level behind it) for a capture around a tone of
    ``window_s``: the whole capture decides "disconnected", its loudest window the rest."""
    pcm = pcm[: len(pcm) // 2 * 2]
    whole = measure(pcm, threshold_dbfs=threshold_dbfs)
    if whole.verdict == DISCONNECTED:
        return DISCONNECTED, whole
    win = max(2, int(RATE * window_s)) * 2
    if win >= len(pcm):
        best = whole
    else:
        hop = max(2, win // 4 * 2)
        starts = list(range(0, len(pcm) - win + 1, hop))
        if starts[-1] != len(pcm) - win:
            starts.append(len(pcm) - win)
        best = max(
            (measure(pcm[i : i + win], threshold_dbfs=threshold_dbfs) for i in starts),
            key=lambda lv: lv.rms_dbfs,
        )
    return (PASSED if best.verdict == SOUND else NO_SOUND), best


class TestTicket(Protocol):
    async def wait(self, stage: str, timeout: float | None = None) -> dict[str, Any]: ...

    def outcome(self, stage: str) -> dict[str, Any] | None: ...


class TestController(Protocol):
    @property
    def phase(self) -> str: ...

    def submit_start(self, req: StartRequest) -> Any: ...

    def submit_stop(
        self, source: str, reason: str = "", *, request_id: str | None = None
    ) -> None: ...

    async def record(self, kind: str, payload: Mapping[str, Any]) -> None: ...


@dataclass(slots=True)
class _Pending:
    day: dt.date
    zones: list[int]
    next_at: float
    skips: int = 0
    last_reason: str = field(default="")


class SilentTest:
    """Service ``broadcast-silent-test``: the weekly run on the injected clock's local time."""

    def __init__(
        self,
        section: SilentTestSection,
        audio: AudioSection,
        controller: TestController,
        clock: Clock,
        *,
        zones: Sequence[int],
        warmup_s: float = 0.0,
        tz: str = "Asia/Shanghai",
        tone_dir: Path = Path("."),
        check_s: float = CHECK_INTERVAL_S,
        name: str = "broadcast-silent-test",
    ) -> None:
        self.name = name
        self.section = section
        self.audio = audio
        self.controller = controller
        self.clock = clock
        self.zones = tuple(section.zones or sorted(zones))
        self.warmup_s = warmup_s
        self.tz = zoneinfo.ZoneInfo(tz)
        self.tone_dir = Path(tone_dir)
        self.check_s = check_s
        self.entry = ScheduleEntry(
            name="silent-test",
            time=section.time,
            zones=self.zones,
            seconds=section.seconds(warmup_s),
            days=(section.day,),
        )
        self._fired: dict[str, float] = {}
        self._pending: dict[str, _Pending] = {}
        self._tone: Path | None = None

    # -- scheduling ----------------------------------------------------------------------------

    async def run(self) -> None:
        last = self.clock.wall()
        while True:
            await asyncio.sleep(self.check_s)
            now = self.clock.wall()
            if now < last:  # the wall clock stepped back: keep what fired, rescan from now
                last = now
                continue
            await self.check(last, now)
            last = now

    def _day(self, at: float) -> dt.date:
        return dt.datetime.fromtimestamp(at, self.tz).date()

    def _local_hm(self, at: float) -> str:
        return dt.datetime.fromtimestamp(at, self.tz).strftime("%H:%M")

    async def check(self, last: float, now: float) -> None:
        """Start the runs due in ``(last, now]`` and retry the zones skipped earlier today."""
        # A run found late the same local day (box off, clock stepped) still runs that day.
        play, missed = due_runs([self.entry], last, now, self.tz, 86400.0, self._fired.keys())
        for run in [*play, *missed]:
            self._fired[run.key] = run.at
            self._pending[run.key] = _Pending(self._day(run.at), list(self.zones), run.at)
        today = self._day(now)
        for key, pending in list(self._pending.items()):
            if pending.day != today:
                await self.controller.record(
                    "broadcast.selftest_skipped",
                    {
                        "run": key,
                        "zones": list(pending.zones),
                        "reason": pending.last_reason or "the day ended before the test ran",
                        "final": True,
                    },
                )
                del self._pending[key]
                continue
            if now < pending.next_at:
                continue
            while pending.zones:
                zone = pending.zones[0]
                outcome = await self.test_zone(zone, key)
                if outcome.get("result") == SKIPPED:
                    pending.skips += 1
                    pending.last_reason = str(outcome.get("reason", ""))
                    retry_at = self.clock.wall() + self.section.retry_s
                    pending.next_at = retry_at
                    await self.controller.record(
                        "broadcast.selftest_skipped",
                        {
                            "run": key,
                            "zone": zone,
                            "reason": pending.last_reason,
                            "retry_at": (
                                self._local_hm(retry_at) if self._day(retry_at) == today else ""
                            ),
                            "final": False,
                        },
                    )
                    break
                pending.zones.pop(0)
            if not pending.zones:
                del self._pending[key]
        for key, at in list(self._fired.items()):
            if at < now - 8 * 86400:
                del self._fired[key]

    # -- one zone ------------------------------------------------------------------------------

    def tone_file(self) -> Path:
        """The tone as a WAV file (written once; rewritten if it went missing)."""
        s = self.section
        path = self.tone_dir / f"silent-test-{s.tone_hz:g}hz-{s.tone_s:g}s-{s.tone_dbfs:g}dbfs.wav"
        if self._tone != path or not path.exists():
            self.tone_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(tone_wav(s.tone_hz, s.tone_s, s.tone_dbfs))
            tmp.replace(path)
            self._tone = path
        return path

    async def test_zone(self, zone: int, run: str = "manual") -> dict[str, Any]:
        """Test one zone now; journals the result (not a skip: the caller does) and returns it."""
        rid = f"selftest:{run}:zone{zone}"
        base: dict[str, Any] = {"run": run, "zone": zone, "request_id": rid}
        if self.controller.phase != "idle":
            return {**base, "result": SKIPPED, "reason": "a broadcast is under way"}
        ticket: TestTicket = self.controller.submit_start(
            StartRequest(
                request_id=rid,
                zones=(zone,),
                duration_s=self.section.seconds(self.warmup_s),
                source=SOURCE,
                reason="weekly silent test",
                status="Test",
            )
        )
        try:
            detail = await self._listen(ticket, base)
        except asyncio.CancelledError:
            # The zone goes off now (only if the test's request still plays).
            self.controller.submit_stop(SOURCE, "silent test cancelled", request_id=rid)
            raise
        except Exception as exc:  # a fault of ours: recorded, and the zone still goes off
            log.exception("broadcast: silent test of zone %s failed", zone)
            detail = {**base, "result": NOT_CHECKED, "reason": f"{type(exc).__name__}: {exc}"[:200]}
        if detail["result"] == SKIPPED:
            return detail
        detail["relays_off"] = await self._switch_off(ticket, rid)
        await self.controller.record("broadcast.selftest", detail)
        if detail["result"] in (NO_SOUND, DISCONNECTED):
            await self.controller.record(
                "broadcast.no_sound",
                {**detail, "result": NO_SOUND, "test": "silent"},
            )
        return detail

    async def _listen(self, ticket: TestTicket, base: dict[str, Any]) -> dict[str, Any]:
        on = await ticket.wait("on", timeout=self.warmup_s + ON_WAIT_S)
        if on.get("verified") is not True:
            refused = ticket.outcome("refused")
            failed = ticket.outcome("failed")
            if failed is not None:
                return {**base, "result": RELAYS_FAILED, "reason": "the zone did not switch on"}
            why = (refused or {}).get("reason") or "a broadcast started"
            return {**base, "result": SKIPPED, "reason": str(why)}
        s = self.section
        listen_s = s.lead_s + s.tone_s + 0.5
        want = int(listen_s * RATE) * 2
        tone = await asyncio.to_thread(self.tone_file)
        listening = asyncio.create_task(self._capture_around(tone, want, listen_s))
        ended = asyncio.ensure_future(ticket.wait("done"))
        try:
            await asyncio.wait({listening, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (listening, ended):
                if not task.done():
                    task.cancel()
            await asyncio.gather(listening, ended, return_exceptions=True)
        if ticket.outcome("failed") is not None:
            return {**base, "result": RELAYS_FAILED, "reason": "the zone did not stay on"}
        if ticket.outcome("done") is not None:  # a broadcast replaced the test meanwhile
            return {**base, "result": SKIPPED, "reason": "a broadcast started"}
        pcm, player_error = listening.result()
        detail: dict[str, Any] = {
            **base,
            "tone_hz": s.tone_hz,
            "tone_s": s.tone_s,
            "tone_dbfs": s.tone_dbfs,
        }
        if player_error:
            detail["player_error"] = player_error
        if isinstance(pcm, str):
            return {**detail, "result": NOT_CHECKED, "reason": pcm}
        if len(pcm) < want // 2:
            why = f"the capture gave {len(pcm)} of {want} bytes"
            return {**detail, "result": NOT_CHECKED, "reason": why}
        try:
            result, level = judge(pcm, s.tone_s, self.audio.threshold_dbfs)
        except LevelError as exc:
            return {**detail, "result": NOT_CHECKED, "reason": str(exc)}
        return {**detail, **level.describe(), "result": result}

    async def _capture_around(
        self, tone: Path, want: int, listen_s: float
    ) -> tuple[bytes | str, str]:
        """The capture from ``lead_s`` before the tone to after it, and the player's error."""
        capture = asyncio.create_task(
            capture_pcm(self.audio.capture_command, want, listen_s + 10.0), name="silent-capture"
        )
        try:
            await asyncio.sleep(self.section.lead_s)
            player_error = await self._play(tone)
            # asyncio.wait, not await: a cancellation of ours must not cancel the capture a
            # second time while it reaps its process (the finally below cancels it once).
            await asyncio.wait({capture})
            return capture.result(), player_error
        finally:
            if not capture.done():
                capture.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await capture

    async def _play(self, tone: Path) -> str:
        """Play the tone once with the audio section's player; why it failed, or ""."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.audio.command,
                str(tone),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            return f"player could not run: {exc}"[:200]
        try:
            async with asyncio.timeout(self.section.tone_s + PLAYER_WAIT_S):
                _, err = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            return "player did not finish"
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            return (err.decode(errors="replace").strip()[-200:]) or f"exit {proc.returncode}"
        return ""

    async def _switch_off(self, ticket: TestTicket, rid: str) -> bool:
        """Stop the test's own request and wait for the verified off (True when verified)."""
        if ticket.outcome("done") is None:
            self.controller.submit_stop(SOURCE, "silent test over", request_id=rid)
        try:
            done = await ticket.wait("done", timeout=OFF_WAIT_S)
        except TimeoutError:
            return False
        return done.get("verified") is True
