"""Cameras on the simulated bench: dark -> down after the hysteresis, back -> ok, wrong
credentials -> degraded with the reason, and an evidence snapshot on a gate tap."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.clock import SystemClock
from gateway.health.config import CameraConfig, SnapshotTrigger
from gateway.health.evidence import EvidenceStore
from gateway.health.hub import HealthHub
from gateway.health.model import State
from gateway.health.services import CameraMonitor, SnapshotService, make_camera
from hil_tests.sims.camera import CameraSim
from tests.health.helpers import events_of, open_journal, running, wait_until, write_password

INTERVAL_S = 0.1


def _cfg(cam: CameraSim, pw: Path, **kw: object) -> CameraConfig:
    return CameraConfig(
        name=cam.name, snapshot_url=cam.snapshot_url, rtsp_url=cam.rtsp_url, username="admin",
        password_file=str(pw), interval_s=INTERVAL_S, timeout_s=1.0, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _state(hub: HealthHub, device: str) -> State | None:
    h = hub.model.get(device)
    return None if h is None else h.state


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
async def test_dark_goes_down_after_hysteresis_and_back_to_ok(
    tmp_path: Path, algorithm: str
) -> None:
    pw = write_password(tmp_path, "gate", "s3cret")
    async with (
        CameraSim("gate", password="s3cret", algorithm=algorithm) as cam,  # type: ignore[arg-type]
        open_journal(tmp_path) as journal,
    ):
        hub = HealthHub(journal, SystemClock())
        cfg = _cfg(cam, pw)
        mon = CameraMonitor(cfg, make_camera(cfg, tmp_path), hub)
        async with running(hub, mon):
            await wait_until(lambda: _state(hub, "gate") is State.OK, what="camera ok")
            assert cam.served, "the monitor fetched real snapshots"
            await cam.go_dark()
            polls_at_dark = mon.polls
            await wait_until(lambda: _state(hub, "gate") is State.DOWN, what="camera down")
            # Hysteresis: at least worsen_after (3) failed polls, not the first failure.
            assert mon.polls - polls_at_dark >= 3
            assert "unreachable" in hub.model.get("gate").reason  # type: ignore[union-attr]
            await cam.come_back()
            await wait_until(lambda: _state(hub, "gate") is State.OK, what="camera back")
            await hub.flush()
        changes = [e.payload for e in await events_of(journal, "health.state")]
        assert [(c["previous"], c["state"]) for c in changes] == [
            ("unknown", "ok"), ("ok", "down"), ("down", "ok"),
        ]  # fmt: skip
        assert all(c["device"] == "gate" and c["kind"] == "camera" for c in changes)
        assert "refused" in changes[1]["reason"].lower() or "unreachable" in changes[1]["reason"]
        assert all(e.cls == "evidence" for e in await events_of(journal, "health.state"))
        samples = await events_of(journal, "health.sample")
        assert samples and all(e.cls == "telemetry" for e in samples)
        # Thinned: far fewer samples than polls (each state change forces one, plus the first).
        assert len(samples) < mon.polls


async def test_wrong_credentials_make_it_degraded_with_the_reason(tmp_path: Path) -> None:
    pw = write_password(tmp_path, "gate", "old-password")
    async with CameraSim("gate", password="old-password") as cam, open_journal(tmp_path) as j:
        hub = HealthHub(j, SystemClock())
        cfg = _cfg(cam, pw)
        mon = CameraMonitor(cfg, make_camera(cfg, tmp_path), hub)
        async with running(hub, mon):
            await wait_until(lambda: _state(hub, "gate") is State.OK)
            cam.password = "changed-on-the-camera"
            await wait_until(lambda: _state(hub, "gate") is State.DEGRADED, what="degraded")
            await hub.flush()
        [_, change] = [e.payload for e in await events_of(j, "health.state")]
        assert change["state"] == "degraded"
        assert "wrong credentials" in change["reason"] and "401" in change["reason"]
        assert cam.rejected >= 3


async def test_rtsp_dead_but_snapshot_fine_is_degraded(tmp_path: Path) -> None:
    async with CameraSim("gate", auth="none") as cam, open_journal(tmp_path) as j:
        hub = HealthHub(j, SystemClock())
        cfg = CameraConfig(
            name="gate", snapshot_url=cam.snapshot_url, auth="none", interval_s=INTERVAL_S,
            rtsp_url="rtsp://127.0.0.1:1/stream", timeout_s=0.5,
        )  # fmt: skip
        mon = CameraMonitor(cfg, make_camera(cfg, tmp_path), hub)
        async with running(hub, mon):
            await wait_until(lambda: _state(hub, "gate") is State.DEGRADED)
        assert "rtsp" in hub.model.get("gate").reason  # type: ignore[union-attr]


async def test_evidence_snapshot_on_a_gate_tap_lands_with_matching_hash(tmp_path: Path) -> None:
    pw = write_password(tmp_path, "gate", "pw")
    async with (
        CameraSim("gate", password="pw", algorithm="SHA-256") as cam,
        open_journal(tmp_path) as journal,
    ):
        cfg = _cfg(cam, pw)
        store = EvidenceStore(tmp_path / "data" / "media", budget_bytes=10_000_000)
        trig = SnapshotTrigger(
            kind="tap", field="checkpoint", equals="north-gate", cameras=("gate",)
        )
        svc = SnapshotService(
            journal, SystemClock(), [trig], {"gate": make_camera(cfg, tmp_path)}, store
        )
        async with running(svc):
            await journal.append("tap", {"checkpoint": "back-fence", "guard": "g-7"})
            tap = await journal.append("tap", {"checkpoint": "north-gate", "guard": "g-7"})
            await wait_until(lambda: svc.taken == 1, what="snapshot taken")
            await cam.go_dark()
            tap2 = await journal.append("tap", {"checkpoint": "north-gate", "guard": "g-8"})
            await wait_until(lambda: svc.failed == 1, what="snapshot failure recorded")
            await wait_until(lambda: journal.last_seq >= tap2.seq + 1, what="failure journaled")
        [shot] = await events_of(journal, "camera.snapshot")
        p = shot.payload
        assert p["trigger_seq"] == tap.seq and p["camera"] == "gate" and shot.cls == "evidence"
        data = (store.folder / p["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == p["sha256"] == cam.served[-1]
        assert p["bytes"] == len(data)
        assert store.verify(p["file"], p["sha256"])
        [failed] = await events_of(journal, "camera.snapshot_failed")
        assert failed.payload["trigger_seq"] == tap2.seq
        assert "unreachable" in failed.payload["reason"]
        assert store.usage()[0] == 1
