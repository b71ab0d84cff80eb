"""Optional audio: play an announcement's clip through ALSA (``aplay``) while zones are on.

For systems whose amplifier has no message player of its own. Missing ``aplay`` or a missing
sound card is reported as an event (``broadcast.audio_unavailable``), never fatal::

    player = AudioPlayer(section.audio, controller.record)
    await player.start("anti-theft"); ...; await player.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from gateway.broadcast.config import AudioSection
from gateway.broadcast.library import sha256_of

log = logging.getLogger(__name__)

Recorder = Callable[[str, Mapping[str, Any]], Awaitable[None]]
RESTART_PAUSE_S = 0.5
# Announcements kept ready for requests that have not started yet; past this the oldest goes
# (its request then plays the local clip). Clearing them all dropped the one about to play.
MAX_PREPARED = 100


class AudioPlayer:
    def __init__(self, section: AudioSection, record: Recorder, base_dir: Path = Path(".")) -> None:
        self.section = section
        self.record = record
        self.base_dir = base_dir
        self._task: asyncio.Task[None] | None = None
        self.clips = {c.announcement: c.file for c in section.clips}
        self._prepared: dict[str, tuple[Path, str]] = {}  # request id -> (file, sha256)

    def prepare(self, request_id: str, path: Path, sha256: str) -> None:
        """A centre announcement (hash-verified) to play for this request, instead of any
        locally configured clip."""
        self._prepared.pop(request_id, None)
        while len(self._prepared) >= MAX_PREPARED:  # requests that never came on: oldest first
            del self._prepared[next(iter(self._prepared))]
        self._prepared[request_id] = (path, sha256)

    def clip_for(self, announcement: str) -> Path | None:
        name = self.clips.get(announcement) or self.section.default_file
        if not name:
            return None
        p = Path(name)
        return p if p.is_absolute() else self.base_dir / p

    async def start(self, announcement: str, request_id: str) -> None:
        await self.stop()
        prepared = self._prepared.pop(request_id, None)
        if not self.section.enabled:
            return
        clip: Path | None
        if prepared is not None:
            clip, sha = prepared
            got = await asyncio.to_thread(sha256_of, clip) if clip.exists() else "missing"
            if got != sha:  # changed since it was fetched: never play the wrong thing
                await self.record(
                    "broadcast.announcement_tampered",
                    {
                        "request_id": request_id,
                        "sha256": sha,
                        "got": got,
                        "where": "player",
                        "reason": "the file changed after it was verified; not played",
                    },
                )
                return
        else:
            clip = self.clip_for(announcement)
        if clip is None:
            return
        self._task = asyncio.create_task(self._play(clip, request_id), name="broadcast-audio")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _play(self, clip: Path, request_id: str) -> None:
        while True:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *self.section.command,
                    str(clip),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
            except OSError as exc:
                await self.record(
                    "broadcast.audio_unavailable", {"request_id": request_id, "reason": str(exc)}
                )
                return
            try:
                _, err = await proc.communicate()
            except asyncio.CancelledError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                raise
            if proc.returncode != 0:
                await self.record(
                    "broadcast.audio_unavailable",
                    {
                        "request_id": request_id,
                        "reason": err.decode(errors="replace")[-300:],
                        "exit_code": proc.returncode,
                    },
                )
                return
            if not self.section.repeat:
                return
            await asyncio.sleep(RESTART_PAUSE_S)
