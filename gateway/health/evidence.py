"""Evidence snapshots as files beside the journal, named by time, camera and hash, under a budget.

A snapshot is written to a temporary name, fsynced and renamed, and its folder fsynced, *before*
the ``camera.snapshot`` event naming its SHA-256 is appended: an event never points at a file
that a power cut could lose. Past ``budget_bytes`` the oldest files go first (names start with
the wall time in milliseconds, so name order is age order); the file just written is never
the one deleted. Blocking: call from a worker thread.

    store = EvidenceStore(Path("/var/lib/compound-gw/media"), budget_bytes=256 << 20)
    saved = store.save("gate", jpeg_bytes, wall=time.time())
    saved.sha256, saved.name, store.verify(saved.name, saved.sha256)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_NAME = re.compile(r"(\d{13})-([a-z0-9._-]+)-([0-9a-f]{16})\.jpg")


@dataclass(frozen=True, slots=True)
class SavedMedia:
    """A stored snapshot, and what the budget made room with."""

    name: str
    sha256: str
    size: int
    pruned: tuple[str, ...] = field(default=())
    pruned_bytes: int = 0


class EvidenceStore:
    """The media folder. Not thread-safe on its own: the snapshot service serialises calls."""

    def __init__(self, folder: Path, budget_bytes: int) -> None:
        self.folder = folder
        self.budget_bytes = budget_bytes

    def save(self, camera: str, data: bytes, wall: float) -> SavedMedia:
        self.folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(data).hexdigest()
        name = f"{int(wall * 1000):013d}-{camera}-{digest[:16]}.jpg"
        path = self.folder / name
        tmp = self.folder / (name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        self._fsync_dir()
        pruned, freed = self.prune(keep=name)
        return SavedMedia(name, digest, len(data), tuple(pruned), freed)

    def _fsync_dir(self) -> None:
        dir_fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def files(self) -> list[tuple[str, int]]:
        """(name, size) of every stored snapshot, oldest first."""
        out = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folder):
                if _NAME.fullmatch(entry.name):
                    with contextlib.suppress(FileNotFoundError):
                        out.append((entry.name, entry.stat().st_size))
        return sorted(out)

    def usage(self) -> tuple[int, int]:
        """(files, bytes) stored."""
        files = self.files()
        return len(files), sum(s for _, s in files)

    def prune(self, keep: str | None = None) -> tuple[list[str], int]:
        """Delete the oldest snapshots until the total fits the budget; return names and bytes."""
        files = self.files()
        total = sum(s for _, s in files)
        removed: list[str] = []
        freed = 0
        for name, size in files:
            if total <= self.budget_bytes:
                break
            if name == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                (self.folder / name).unlink()
            removed.append(name)
            freed += size
            total -= size
        # Leftover temporary files are from a crash mid-write: never referenced by an event.
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folder):
                if entry.name.endswith(".jpg.tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        return removed, freed

    def path_of(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a snapshot name: {name!r}")
        return self.folder / name

    def verify(self, name: str, sha256: str) -> bool:
        """True if the named file exists and hashes to ``sha256`` (for the uploader and tests)."""
        try:
            data = self.path_of(name).read_bytes()
        except (OSError, ValueError):
            return False
        return hashlib.sha256(data).hexdigest() == sha256
