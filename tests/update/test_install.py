"""A/B install with fake versions at the process boundary: installs, rollbacks, refusals
journaled through the outbox into a real journal."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.journal import Journal, read_events
from gateway.update.bundle import UpdateRefused
from gateway.update.install import Installer
from gateway.update.outbox import Outbox, UpdateEventsService
from gateway.update.runner import SpawnRunner

from .conftest import HW, build
from .fakes import version_files


class Gateway:
    """An update root, its runner and its outbox; stops whatever it started at the end."""

    def __init__(self, tmp: Path, key: Ed25519PrivateKey, ready_timeout_s: float = 30.0) -> None:
        self.tmp = tmp
        self.key = key
        self.root = tmp / "opt"
        self.root.mkdir()
        self.log = tmp / "started.log"
        self.runner = SpawnRunner(
            self.root / "run.pid",
            ready_timeout_s=ready_timeout_s,
            settle_s=0.5,
            stop_timeout_s=5,
            env={"FAKE_GW_LOG": str(self.log), "FAKE_GW_LIFETIME": "60"},
        )
        self.outbox = Outbox(tmp / "data" / "update-events.jsonl")
        self.installer = Installer(
            self.root,
            public_key=key.public_key(),
            hardware=HW,
            runner=self.runner,
            record=self.outbox.record,
        )

    def bundle(self, release: int, behaviour: str = "good", **kw: object) -> Path:
        return build(self.tmp, self.key, release, version_files(f"v{release}", behaviour), **kw)  # type: ignore[arg-type]

    def started(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []

    def events(self) -> list[tuple[str, dict]]:
        if not self.outbox.path.exists():
            return []
        return [
            (e["kind"], e["payload"])
            for e in map(json.loads, self.outbox.path.read_text().splitlines())
        ]


@pytest.fixture
def gw(tmp_path: Path, key: Ed25519PrivateKey) -> Iterator[Gateway]:
    g = Gateway(tmp_path, key)
    yield g
    g.runner.stop()


def test_first_install_then_upgrade(gw: Gateway) -> None:
    first = gw.installer.install(gw.bundle(1))
    assert first.result == "installed" and first.slot == "a"
    assert os.readlink(gw.root / "current") == "a"
    second = gw.installer.install(gw.bundle(2))
    assert second.result == "installed" and second.slot == "b"
    assert os.readlink(gw.root / "current") == "b"
    assert gw.installer.slot_verified("a") and gw.installer.slot_verified("b")
    assert gw.started() == ["v1", "v2"]
    st = gw.installer.status()
    assert st["installed_release"] == 2 and st["step"] == "idle"
    assert st["slots"] == {
        "a": {"release": 1, "version": "1.1.0"},
        "b": {"release": 2, "version": "1.2.0"},
    }
    kinds = [k for k, _ in gw.events()]
    assert kinds == ["update.started", "update.installed", "update.started", "update.installed"]
    # The third install goes into slot a again, replacing v1.
    assert gw.installer.install(gw.bundle(3)).slot == "a"
    assert (gw.root / "a" / "VERSION").read_text() == "v3\n"


@pytest.mark.parametrize("behaviour", ["crash", "ready_then_crash", "bad_selfcheck"])
def test_bad_version_is_rolled_back(gw: Gateway, behaviour: str) -> None:
    gw.installer.install(gw.bundle(1))
    outcome = gw.installer.install(gw.bundle(2, behaviour))
    assert outcome.result == "rolled_back"
    assert outcome.reason in {"exited", "selfcheck_failed"}
    assert os.readlink(gw.root / "current") == "a"
    assert gw.started() == ["v1", "v2", "v1"]  # the old version was started again
    assert gw.runner.running_pid() is not None
    st = gw.installer.status()
    assert st["installed_release"] == 1 and st["failed_releases"] == [2]
    assert st["last_result"]["result"] == "rolled_back"
    kind, payload = gw.events()[-1]
    assert kind == "update.rolled_back" and payload["release"] == 2 and payload["previous_started"]
    # The same release is not tried again; a fixed, newer one is.
    with pytest.raises(UpdateRefused) as info:
        gw.installer.install(gw.bundle(2, name="again"))
    assert info.value.code == "failed_before"
    assert gw.installer.install(gw.bundle(3)).result == "installed"


def test_version_that_never_gets_ready_is_rolled_back_within_the_set_time(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    gw = Gateway(tmp_path, key, ready_timeout_s=2.0)
    try:
        gw.installer.install(gw.bundle(1))
        start = time.monotonic()
        outcome = gw.installer.install(gw.bundle(2, "silent"))
        took = time.monotonic() - start
        assert outcome.result == "rolled_back" and outcome.reason == "no_ready"
        assert took >= 2.0  # it waited the set time, and not forever
        assert took < 60
        assert os.readlink(gw.root / "current") == "a"
    finally:
        gw.runner.stop()


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"expires": 1}, "expired"),
        ({"hardware": ("cm4",)}, "wrong_hardware"),
    ],
)
def test_refusals_change_nothing_and_are_recorded(gw: Gateway, kwargs: dict, code: str) -> None:
    gw.installer.install(gw.bundle(1))
    before = gw.installer.status()
    with pytest.raises(UpdateRefused) as info:
        gw.installer.install(gw.bundle(2, **kwargs))
    assert info.value.code == code
    assert gw.installer.status() == before
    assert not (gw.root / "b").exists()
    kind, payload = gw.events()[-1]
    assert kind == "update.refused" and payload["code"] == code


def test_tampered_payload_refused_during_download(gw: Gateway) -> None:
    gw.installer.install(gw.bundle(1))
    bundle = gw.bundle(2)
    (bundle / "files" / "VERSION").write_bytes(b"v9\n")
    with pytest.raises(UpdateRefused) as info:
        gw.installer.install(bundle)
    assert info.value.code == "hash_mismatch"
    assert os.readlink(gw.root / "current") == "a"
    assert not (gw.root / "b").exists() and not (gw.root / "staging").exists()
    assert gw.installer.status()["step"] == "idle"
    assert gw.events()[-1][1]["code"] == "hash_mismatch"


def test_tampered_and_rolled_back_bundles_reach_the_journal(gw: Gateway, tmp_path: Path) -> None:
    gw.installer.install(gw.bundle(2))
    old = gw.bundle(1)
    with pytest.raises(UpdateRefused):
        gw.installer.install(old)
    tampered = gw.bundle(3)
    meta = json.loads((tampered / "metadata.json").read_text())
    meta["hardware"].append("cm4")
    (tampered / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(UpdateRefused):
        gw.installer.install(tampered)

    async def drain() -> int:
        journal = await Journal.open(tmp_path / "journal.db", gateway_id="gw-test")
        try:
            return await UpdateEventsService(journal, gw.outbox.path).drain_once()
        finally:
            await journal.close()

    assert asyncio.run(drain()) == 4
    assert not gw.outbox.path.exists()
    events = read_events(tmp_path / "journal.db")
    refused = [e.payload["code"] for e in events if e.kind == "update.refused"]
    assert refused == ["rollback", "bad_signature"]
    assert all(e.payload.get("outbox_id") for e in events if e.kind.startswith("update."))
    assert asyncio.run(drain()) == 0  # nothing journaled twice


def test_outbox_skips_garbage_lines(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.jsonl")
    box.record("update.refused", {"code": "expired"})
    with open(box.path, "ab") as f:
        f.write(b"{not json\n" + b'{"kind": "tap", "payload": {}, "outbox_id": "x"}\n' + b"\xff\n")
    box.record("update.installed", {"release": 2})
    taken = box.take()
    assert taken is not None
    assert [k for k, _ in Outbox.parse(taken)] == ["update.refused", "update.installed"]


def test_one_update_command_at_a_time(gw: Gateway) -> None:
    from gateway.update.install import UpdateStateError

    bundle = gw.bundle(1)
    with gw.installer.lock():
        with pytest.raises(UpdateStateError) as info:
            gw.installer.install(bundle)
        assert info.value.code == "busy"
        with pytest.raises(UpdateStateError):
            gw.installer.recover()
    assert gw.installer.install(bundle).result == "installed"


def test_damaged_state_file_is_a_state_error_not_a_crash(gw: Gateway) -> None:
    from gateway.update.install import UpdateStateError

    gw.installer.install(gw.bundle(1))
    gw.installer.state_path.write_bytes(b"\x00garbage")
    with pytest.raises(UpdateStateError) as info:
        gw.installer.status()
    assert info.value.code == "broken"


def test_a_failed_first_update_goes_back_to_the_packaged_version(gw: Gateway) -> None:
    """No earlier slot, but packaging's ``venv/``: ``current`` is removed (the unit then starts
    the packaged version) and the packaged version is started again."""
    packaged = gw.root / "venv" / "bin" / "compound-gw"
    packaged.parent.mkdir(parents=True)
    packaged.write_bytes(version_files("v0")["bin/compound-gw"])
    packaged.chmod(0o755)
    outcome = gw.installer.install(gw.bundle(1, "crash"))
    assert outcome.result == "failed"
    assert not (gw.root / "current").is_symlink()
    assert gw.started() == ["v1", "v0"]
    kind, payload = gw.events()[-1]
    assert kind == "update.failed" and payload["previous_started"] is True
    # the next good release installs as usual
    assert gw.installer.install(gw.bundle(2)).result == "installed"
    assert os.readlink(gw.root / "current") in ("a", "b")


def test_a_first_update_cut_off_after_its_switch_recovers_to_the_packaged_version(
    gw: Gateway,
) -> None:
    packaged = gw.root / "venv" / "bin" / "compound-gw"
    packaged.parent.mkdir(parents=True)
    packaged.write_bytes(version_files("v0")["bin/compound-gw"])
    packaged.chmod(0o755)
    assert gw.installer.install(gw.bundle(1)).slot == "a"
    gw.runner.stop()
    # the state a power cut during the first start of a first update leaves behind
    state = gw.installer.load_state()
    state.update(
        step="starting",
        target={"release": 2, "version": "1.2.0", "slot": "a"},
        previous_slot=None,
    )
    gw.installer._save(state)
    assert gw.installer.recover(start=True) == "switched_back"
    assert not (gw.root / "current").is_symlink()
    assert gw.started() == ["v1", "v0"]
    assert gw.installer.load_state()["step"] == "idle"
    kind, payload = gw.events()[-1]
    assert (kind, payload["action"]) == ("update.interrupted", "switched_back")
