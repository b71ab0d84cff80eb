"""Centre announcements on the gateway: fetched by hash, verified before use, resumed, tampered
files refused and deleted. The centre is a fake at the fetch transport (bytes by hash)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gateway.broadcast.library import (
    TAMPERED,
    UNKNOWN,
    AnnouncementCache,
    AnnouncementUnavailable,
)

GOOD = b"RIFF" + bytes(range(256)) * 40
SHA = hashlib.sha256(GOOD).hexdigest()


class FakeCentre:
    """Serves ``files`` by hash from an offset; ``serve`` can replace what goes out."""

    def __init__(self, files: Mapping[str, bytes], cut_after: int | None = None) -> None:
        self.files = dict(files)
        self.cut_after = cut_after
        self.calls: list[int] = []

    async def fetch(self, sha256: str, dest: Path, offset: int) -> None:
        self.calls.append(offset)
        if sha256 not in self.files:
            raise AnnouncementUnavailable(
                "the centre has no announcement with this sha256", UNKNOWN
            )
        data = self.files[sha256][offset:]
        with open(dest, "ab") as f:
            if self.cut_after is not None:
                f.write(data[: self.cut_after])
                self.cut_after = None
                raise AnnouncementUnavailable("fetch failed: link dropped")
            f.write(data)


def cache(tmp_path: Path, centre: FakeCentre | None) -> tuple[AnnouncementCache, list[Any]]:
    events: list[Any] = []

    async def record(kind: str, payload: Mapping[str, Any]) -> None:
        events.append((kind, dict(payload)))

    return AnnouncementCache(tmp_path / "ann", centre, record), events


async def test_missing_announcement_is_fetched_verified_and_then_served_locally(
    tmp_path: Path,
) -> None:
    centre = FakeCentre({SHA: GOOD})
    c, events = cache(tmp_path, centre)
    path = await c.ensure("fraud", SHA)
    assert path.read_bytes() == GOOD and path.name == f"{SHA}.wav"
    assert events[0][0] == "broadcast.announcement_fetched" and events[0][1]["bytes"] == len(GOOD)
    assert await c.ensure("fraud", SHA) == path
    assert centre.calls == [0]  # the second time from the cache


async def test_a_dropped_download_resumes_from_where_it_stopped(tmp_path: Path) -> None:
    centre = FakeCentre({SHA: GOOD}, cut_after=3000)
    c, events = cache(tmp_path, centre)
    with pytest.raises(AnnouncementUnavailable, match="link dropped"):
        await c.ensure("fraud", SHA)
    assert not (tmp_path / "ann" / f"{SHA}.wav").exists()
    path = await c.ensure("fraud", SHA)
    assert path.read_bytes() == GOOD
    assert centre.calls == [0, 3000]
    assert events[-1][1]["resumed_from"] == 3000


async def test_a_tampered_download_is_refused_and_deleted(tmp_path: Path) -> None:
    centre = FakeCentre({SHA: GOOD[:-1] + b"\x00"})
    c, events = cache(tmp_path, centre)
    with pytest.raises(AnnouncementUnavailable) as exc:
        await c.ensure("fraud", SHA)
    assert exc.value.code == TAMPERED and "hashes to" in exc.value.reason
    assert list((tmp_path / "ann").iterdir()) == []
    assert [k for k, _ in events] == ["broadcast.announcement_tampered"]


async def test_a_bad_partial_gets_one_clean_retry(tmp_path: Path) -> None:
    centre = FakeCentre({SHA: GOOD})
    c, _ = cache(tmp_path, centre)
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / f"{SHA}.part").write_bytes(b"garbage from an older attempt")
    assert (await c.ensure("fraud", SHA)).read_bytes() == GOOD
    assert centre.calls == [len(b"garbage from an older attempt"), 0]


async def test_a_cached_file_changed_on_disk_is_fetched_again(tmp_path: Path) -> None:
    centre = FakeCentre({SHA: GOOD})
    c, events = cache(tmp_path, centre)
    path = await c.ensure("fraud", SHA)
    path.write_bytes(b"something else")
    assert (await c.ensure("fraud", SHA)).read_bytes() == GOOD
    assert "broadcast.announcement_tampered" in [k for k, _ in events]


async def test_unknown_at_the_centre_and_no_link(tmp_path: Path) -> None:
    c, _ = cache(tmp_path, FakeCentre({}))
    with pytest.raises(AnnouncementUnavailable) as exc:
        await c.ensure("fraud", SHA)
    assert exc.value.code == UNKNOWN
    c, _ = cache(tmp_path / "b", None)
    with pytest.raises(AnnouncementUnavailable, match="no link"):
        await c.ensure("fraud", SHA)
