"""Evidence media: fsynced files named by time/camera/hash, oldest-first pruning under a budget."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.health.evidence import EvidenceStore


def _jpeg(n: int, size: int = 1000) -> bytes:
    return b"\xff\xd8" + n.to_bytes(4, "big") * (size // 4) + b"\xff\xd9"


def test_save_names_by_time_and_hash_and_verifies(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "media", budget_bytes=1_000_000)
    data = _jpeg(1)
    saved = store.save("gate", data, wall=1_790_000_000.123)
    assert saved.sha256 == hashlib.sha256(data).hexdigest()
    assert saved.name == f"1790000000123-gate-{saved.sha256[:16]}.jpg"
    assert store.verify(saved.name, saved.sha256)
    assert not store.verify(saved.name, "0" * 64)
    (store.folder / saved.name).write_bytes(b"tampered")
    assert not store.verify(saved.name, saved.sha256)
    with pytest.raises(ValueError):
        store.path_of("../../etc/passwd")


def test_budget_deletes_oldest_first_never_the_new_one(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "media", budget_bytes=3500)
    names = [store.save("gate", _jpeg(i), wall=1000.0 + i).name for i in range(3)]
    assert store.usage() == (3, 3 * len(_jpeg(0)))
    fourth = store.save("gate", _jpeg(3), wall=1004.0)
    assert fourth.pruned == (names[0],)
    assert fourth.pruned_bytes == len(_jpeg(0))
    assert [n for n, _ in store.files()] == [*names[1:], fourth.name]
    # One file bigger than the whole budget is still kept (it is the newest evidence).
    big = store.save("gate", _jpeg(9, size=8000), wall=1005.0)
    assert [n for n, _ in store.files()] == [big.name]


def test_leftover_temp_files_are_cleaned(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "media", budget_bytes=10_000)
    store.folder.mkdir()
    (store.folder / "1000000000000-gate-0123456789abcdef.jpg.tmp").write_bytes(b"half")
    (store.folder / "notes.txt").write_text("not ours")
    store.save("gate", _jpeg(1), wall=2000.0)
    assert sorted(p.name for p in store.folder.iterdir())[-1] == "notes.txt"
    assert not list(store.folder.glob("*.tmp"))
