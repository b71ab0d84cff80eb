"""The centre's announcement library on disk: originals kept, one playable form each.

Layout under ``<centre data>/announcements/<id>/``::

    meta.json      {"id", "title", "language", "sha256", "bytes", "duration_s", "source",
                    "original", "created_at"}
    original.mp3   the upload as received (or text.txt for text-to-speech)
    play.wav       16 kHz mono 16-bit WAV, loudness normalised; sha256 is over these bytes

Every file is written to a temporary name, fsynced and renamed, the folder last, so a crash
leaves either the whole announcement or none of it. An announcement never changes: a new week's
message is a new announcement (a new id and hash), so a gateway's cached copy is never stale::

    lib = AnnouncementLibrary(Path("centre-data"))
    ann = lib.add_upload(Path("fraud.mp3"), title="防诈骗提示", language="zh-CN")
    ann = lib.add_text("请勿向陌生人转账。", title="转账提醒")
    lib.playable_by_hash(ann.sha256)      # Path of play.wav, or None

Typed text can be heard before it is published: :meth:`AnnouncementLibrary.preview_text`
renders it into a **draft** under ``announcements/.drafts/<draft id>/`` (never listed, never
served to gateways), owned by the person who typed it; :meth:`~AnnouncementLibrary.publish_draft`
stores it as an announcement and drops the draft, :meth:`~AnnouncementLibrary.discard_draft`
drops it. Drafts older than :data:`DRAFT_TTL_S` are swept at the next preview::

    draft = lib.preview_text("请勿向陌生人转账。", title="转账提醒", owner="zhang.wei")
    lib.draft_audio(draft.id, owner="zhang.wei")     # Path of the draft's play.wav
    ann = lib.publish_draft(draft.id, owner="zhang.wei")
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from centre.announce.level import Level, LevelError, judge
from centre.announce.media import MAX_UPLOAD_BYTES, MediaError, check_playable, normalise, speak

# The command's announcement field (wire.commands), never empty here. It names a folder of the
# library: it starts with a letter or digit, so "..", "." and ".drafts" are never ids.
ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
SHA256_RE: Final = re.compile(r"[0-9a-f]{64}")
LANGUAGES: Final = ("zh-CN", "en")
UPLOAD_SUFFIXES: Final = frozenset({".wav", ".mp3", ".m4a"})
MAX_TITLE: Final = 120
FOLDER: Final = "announcements"
DRAFTS: Final = ".drafts"
DRAFT_RE: Final = re.compile(r"[0-9a-f]{32}")
DRAFT_TTL_S: Final = 3600.0


class AnnouncementError(Exception):
    """A library request that cannot be met (bad id, title, language, unknown, duplicate)."""

    def __init__(self, reason: str, code: str = "bad_request") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class Announcement:
    id: str
    title: str
    language: str
    sha256: str
    bytes: int
    duration_s: float
    source: str  # "upload" or "text"
    original: str  # file name of the original inside the announcement's folder
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> Announcement:
        try:
            return cls(
                str(d["id"]),
                str(d["title"]),
                str(d["language"]),
                str(d["sha256"]),
                int(d["bytes"]),
                float(d["duration_s"]),
                str(d["source"]),
                str(d["original"]),
                float(d["created_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AnnouncementError("damaged announcement record", "damaged") from exc


@dataclass(frozen=True, slots=True)
class Draft:
    """Rendered text-to-speech not yet in the library: heard first, then saved or dropped."""

    id: str
    owner: str
    title: str
    language: str
    text: str
    duration_s: float
    verdict: str  # centre.announce.level: sound / quiet / silent
    rms_dbfs: float
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> Draft:
        try:
            return cls(
                str(d["id"]),
                str(d["owner"]),
                str(d["title"]),
                str(d["language"]),
                str(d["text"]),
                float(d["duration_s"]),
                str(d["verdict"]),
                float(d["rms_dbfs"]),
                float(d["created_at"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AnnouncementError("damaged draft record", "damaged") from exc


def level_of(wav: bytes) -> Level:
    """The level check of a playable WAV; a WAV it cannot judge counts as silent."""
    try:
        return judge(wav)
    except LevelError:
        return Level("silent", -120.0, -120.0)


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def check_fields(ann_id: str | None, title: str, language: str) -> None:
    if ann_id is not None and not ID_RE.fullmatch(ann_id):
        raise AnnouncementError(f"the id must match {ID_RE.pattern}", "bad_id")
    if not title.strip() or len(title) > MAX_TITLE:
        raise AnnouncementError(f"the title must have 1..{MAX_TITLE} characters", "bad_title")
    if language not in LANGUAGES:
        raise AnnouncementError(
            f"the language must be one of {', '.join(LANGUAGES)}", "bad_language"
        )


class AnnouncementLibrary:
    def __init__(self, centre_root: Path) -> None:
        self.root = Path(centre_root) / FOLDER

    # -- adding ---------------------------------------------------------------------------

    def add_upload(
        self, upload: Path, *, title: str, language: str = "zh-CN", ann_id: str | None = None
    ) -> Announcement:
        """Convert and store an upload (WAV, MP3, M4A). MediaError / AnnouncementError."""
        check_fields(ann_id, title, language)
        suffix = upload.suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise MediaError("only WAV, MP3 or M4A files are accepted")
        if upload.stat().st_size > MAX_UPLOAD_BYTES:
            raise MediaError(f"the file is above {MAX_UPLOAD_BYTES} bytes")
        wav = normalise(upload)
        return self._store(
            wav, upload.read_bytes(), f"original{suffix}", title, language, ann_id, "upload"
        )

    def add_bytes(
        self,
        data: bytes,
        suffix: str,
        *,
        title: str,
        language: str = "zh-CN",
        ann_id: str | None = None,
    ) -> Announcement:
        """The same as :meth:`add_upload` for bytes received over HTTP."""
        check_fields(ann_id, title, language)
        if len(data) > MAX_UPLOAD_BYTES:
            raise MediaError(f"the file is above {MAX_UPLOAD_BYTES} bytes")
        suffix = suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise MediaError("only WAV, MP3 or M4A files are accepted")
        with tempfile.TemporaryDirectory(prefix="announce-up-") as tmp:
            p = Path(tmp) / f"upload{suffix}"
            p.write_bytes(data)
            return self.add_upload(p, title=title, language=language, ann_id=ann_id)

    def add_text(
        self, text: str, *, title: str, language: str = "zh-CN", ann_id: str | None = None
    ) -> Announcement:
        """Text-to-speech (offline, espeak-ng Mandarin), normalised like an upload."""
        check_fields(ann_id, title, language)
        if language != "zh-CN":
            raise AnnouncementError("text-to-speech speaks Mandarin (zh-CN) only", "bad_language")
        wav = speak(text)
        return self._store(
            wav, " ".join(text.split()).encode(), "text.txt", title, language, ann_id, "text"
        )

    # -- drafts: text-to-speech heard before it is published -------------------------------

    @property
    def drafts(self) -> Path:
        return self.root / DRAFTS

    def preview_text(
        self,
        text: str,
        *,
        title: str,
        owner: str,
        language: str = "zh-CN",
        now: float | None = None,
    ) -> Draft:
        """Render ``text`` into a draft owned by ``owner`` (MediaError / AnnouncementError)."""
        check_fields(None, title, language)
        if language != "zh-CN":
            raise AnnouncementError("text-to-speech speaks Mandarin (zh-CN) only", "bad_language")
        now = time.time() if now is None else now
        self.sweep_drafts(now)
        wav = speak(text)
        level = level_of(wav)
        draft = Draft(
            secrets.token_hex(16),
            owner,
            title.strip(),
            language,
            " ".join(text.split()),
            round(check_playable(wav), 3),
            level.verdict,
            level.rms_dbfs,
            round(now, 3),
        )
        self.drafts.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".new.", dir=self.drafts))
        try:
            _fsync_write(tmp / "play.wav", wav)
            _fsync_write(
                tmp / "meta.json", json.dumps(draft.to_dict(), ensure_ascii=False).encode()
            )
            os.rename(tmp, self.drafts / draft.id)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return draft

    def draft(self, draft_id: str, *, owner: str) -> Draft:
        """The draft ``draft_id`` of ``owner``; someone else's draft is not found."""
        if not DRAFT_RE.fullmatch(draft_id):
            raise AnnouncementError("not a draft id", "no_draft")
        try:
            meta = json.loads((self.drafts / draft_id / "meta.json").read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise AnnouncementError(
                "no such draft (saved, discarded or expired)", "no_draft"
            ) from exc
        draft = Draft.from_dict(meta)
        if draft.owner != owner:
            raise AnnouncementError("no such draft (saved, discarded or expired)", "no_draft")
        return draft

    def draft_audio(self, draft_id: str, *, owner: str) -> Path:
        return self.drafts / self.draft(draft_id, owner=owner).id / "play.wav"

    def publish_draft(
        self, draft_id: str, *, owner: str, ann_id: str | None = None
    ) -> Announcement:
        """Store the draft as an announcement (the same bytes that were heard) and drop it."""
        draft = self.draft(draft_id, owner=owner)
        check_fields(ann_id, draft.title, draft.language)
        folder = self.drafts / draft.id
        try:
            wav = (folder / "play.wav").read_bytes()
        except OSError as exc:
            raise AnnouncementError(
                "no such draft (saved, discarded or expired)", "no_draft"
            ) from exc
        ann = self._store(
            wav, draft.text.encode(), "text.txt", draft.title, draft.language, ann_id, "text"
        )
        shutil.rmtree(folder, ignore_errors=True)
        return ann

    def discard_draft(self, draft_id: str, *, owner: str) -> Draft:
        draft = self.draft(draft_id, owner=owner)
        shutil.rmtree(self.drafts / draft.id, ignore_errors=True)
        return draft

    def sweep_drafts(self, now: float) -> int:
        """Drop drafts (and half-written ones) older than :data:`DRAFT_TTL_S`; how many."""
        dropped = 0
        if not self.drafts.is_dir():
            return 0
        for folder in self.drafts.iterdir():
            try:
                if now - folder.stat().st_mtime > DRAFT_TTL_S:
                    shutil.rmtree(folder, ignore_errors=True)
                    dropped += 1
            except OSError:
                continue
        return dropped

    def _store(
        self,
        wav: bytes,
        original: bytes,
        original_name: str,
        title: str,
        language: str,
        ann_id: str | None,
        source: str,
    ) -> Announcement:
        sha = hashlib.sha256(wav).hexdigest()
        ann_id = ann_id or f"ann-{sha[:12]}"
        final = self.root / ann_id
        if final.exists():
            raise AnnouncementError(f"announcement {ann_id} already exists", "exists")
        ann = Announcement(
            ann_id,
            title.strip(),
            language,
            sha,
            len(wav),
            round(check_playable(wav), 3),
            source,
            original_name,
            round(time.time(), 3),
        )
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{ann_id}.", dir=self.root))
        try:
            _fsync_write(tmp / original_name, original)
            _fsync_write(tmp / "play.wav", wav)
            _fsync_write(tmp / "meta.json", json.dumps(ann.to_dict(), ensure_ascii=False).encode())
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return ann

    # -- reading --------------------------------------------------------------------------

    def list(self) -> list[Announcement]:
        out = []
        if self.root.is_dir():
            for meta in sorted(self.root.glob("*/meta.json")):
                if meta.parent.name.startswith("."):
                    continue
                try:
                    out.append(Announcement.from_dict(json.loads(meta.read_text("utf-8"))))
                except (OSError, ValueError, AnnouncementError):
                    continue
        return sorted(out, key=lambda a: (a.created_at, a.id))

    def get(self, ann_id: str) -> Announcement:
        if not ID_RE.fullmatch(ann_id):
            raise AnnouncementError(f"the id must match {ID_RE.pattern}", "bad_id")
        try:
            meta = json.loads((self.root / ann_id / "meta.json").read_text("utf-8"))
        except FileNotFoundError as exc:
            raise AnnouncementError(f"no announcement {ann_id}", "not_found") from exc
        except (OSError, ValueError) as exc:
            raise AnnouncementError(f"announcement {ann_id} is damaged", "damaged") from exc
        return Announcement.from_dict(meta)

    def playable(self, ann_id: str) -> Path:
        return self.root / self.get(ann_id).id / "play.wav"

    def playable_by_hash(self, sha256: str) -> Path | None:
        """play.wav whose bytes have this sha256 (checked on every call), or None."""
        if not SHA256_RE.fullmatch(sha256):
            return None
        for ann in self.list():
            if ann.sha256 == sha256:
                path = self.root / ann.id / "play.wav"
                try:
                    if hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
                        return path
                except OSError:
                    return None
        return None
