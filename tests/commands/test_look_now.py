"""Look now (issue 17): a signed ``camera.snapshot`` command over the real channel.

Real centre (queue, TLS WebSocket), real gateway channel and verifier, the real snapshot service
(built by the health factory and connected by the daemon's own :func:`connect_look_now`) taking
a picture from a simulated HTTP camera, and the broadcast controller on a simulated relay board
that must never move.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from centre.cli import main as centre_main
from gateway.clock import SystemClock
from gateway.config.schema import parse_section
from gateway.daemon import connect_look_now
from gateway.health.config import NAME_PATTERN, HealthSection
from gateway.health.services import CameraMonitor, SnapshotService, build_services
from gateway.sync.config import SyncSection
from gateway.sync.media import MediaUplink
from gateway.sync.uploader import Uploader
from hil_tests.sims.camera import CameraSim
from tests.commands.rig import GW, Rig, command_rig
from tests.sync.conftest import Centre
from wire.commands import CAMERA_RE, CameraSnapshot, build_command, seal_command


def test_the_wire_camera_pattern_is_the_config_one() -> None:
    assert CAMERA_RE.pattern == NAME_PATTERN


@contextlib.asynccontextmanager
async def look_rig(centre: Centre, tmp_path: Path) -> AsyncIterator[tuple[Rig, CameraSim]]:
    async with (
        command_rig(centre, tmp_path) as rig,
        CameraSim("duty-room", auth="none") as cam,
    ):
        section = parse_section(
            HealthSection,
            {"cameras": [{"name": "duty-room", "snapshot_url": cam.snapshot_url, "auth": "none"}]},
            "health",
        )
        services = build_services(
            section, rig.journal, SystemClock(), None, base_dir=tmp_path, data_dir=rig.gw_dir
        )
        (snap,) = [s for s in services if isinstance(s, SnapshotService)]
        assert connect_look_now([*services, rig.channel])  # the daemon's own wiring
        task = asyncio.create_task(snap.run())
        try:
            yield rig, cam
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for s in services:
                if isinstance(s, CameraMonitor):
                    await s.camera.close()


async def test_look_now_takes_stores_journals_and_acks_done_without_moving_a_relay(
    centre: Centre, tmp_path: Path
) -> None:
    async with look_rig(centre, tmp_path) as (rig, cam):
        rec = await rig.order(CameraSnapshot("duty-room"))
        assert rec.action == "camera.snapshot"
        done = await rig.wait_status(rec.command_id, "done")
        (shot,) = await rig.events("camera.snapshot")
        assert shot["request"] == rec.command_id
        assert shot["reason"] == "look_now"
        assert shot["camera"] == "duty-room"
        assert cam.served == [shot["sha256"]]  # exactly one picture, the one stored
        stored = (rig.gw_dir / "media" / shot["file"]).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == shot["sha256"]
        assert len(stored) == shot["bytes"]
        assert shot["sha256"] in done.reason
        (accepted,) = await rig.events("command.accepted")
        assert accepted["action"] == "camera.snapshot" and accepted["camera"] == "duty-room"
        (finished,) = await rig.events("command.finished")
        assert finished["outcome"] == "done" and finished["sha256"] == shot["sha256"]
        assert rig.board.changes == []  # not one relay moved
        assert await rig.events("broadcast.command_verified") == []
        stages = [a[1] for a in await rig.store.acks(GW) if a[0] == rec.command_id]
        assert stages == ["received", "done"]


async def test_an_unknown_camera_is_refused_journaled_and_no_picture_is_taken(
    centre: Centre, tmp_path: Path
) -> None:
    async with look_rig(centre, tmp_path) as (rig, cam):
        rec = await rig.order(CameraSnapshot("vault"))
        refused = await rig.wait_status(rec.command_id, "refused")
        assert refused.reason.startswith("unknown_camera:")
        (event,) = await rig.events("command.refused")
        assert event["code"] == "unknown_camera" and event["command_id"] == rec.command_id
        assert await rig.events("command.accepted") == []
        assert await rig.events("camera.snapshot") == []
        assert cam.served == []
        assert rig.board.changes == []


async def test_an_unreachable_camera_fails_with_why_and_is_journaled(
    centre: Centre, tmp_path: Path
) -> None:
    async with look_rig(centre, tmp_path) as (rig, cam):
        await cam.go_dark()
        rec = await rig.order(CameraSnapshot("duty-room"))
        failed = await rig.wait_status(rec.command_id, "failed")
        assert failed.reason.startswith("camera_unreachable:")
        (miss,) = await rig.events("camera.snapshot_failed")
        assert miss["request"] == rec.command_id and miss["code"] == "camera_unreachable"
        (finished,) = await rig.events("command.finished")
        assert finished["outcome"] == "failed" and finished["code"] == "camera_unreachable"
        assert await rig.events("camera.snapshot") == []
        assert rig.board.changes == []


async def test_an_expired_snapshot_command_is_refused_by_the_same_verifier(
    centre: Centre, tmp_path: Path
) -> None:
    async with look_rig(centre, tmp_path) as (rig, cam):

        def expired(seq: int, cid: str) -> bytes:
            cmd = build_command(
                command_id=cid,
                gateway=GW,
                seq=seq,
                action=CameraSnapshot("duty-room"),
                issued_at=time.time() - 600,
                public_key=rig.key.public_key(),
                ttl_s=60,
            )
            return seal_command(cmd, rig.key)

        rec = await rig.inject(expired, "look-old")
        refused = await rig.wait_status(rec.command_id, "refused")
        assert refused.reason.startswith("expired:")
        assert cam.served == []
        assert await rig.events("camera.snapshot") == []


async def test_the_centre_cli_orders_a_look_and_prints_the_image_when_it_arrives(
    centre: Centre, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """compound-centre snapshot → channel → camera → journal → uploader → media uplink → centre."""
    async with look_rig(centre, tmp_path) as (rig, cam):
        fast = SyncSection(
            first_delay_max_s=0.0, backoff_initial_s=0.05, backoff_max_s=0.3, idle_poll_s=0.05
        )
        clock = SystemClock()
        uploader = Uploader(rig.journal, clock, fast, data_dir=rig.gw_dir, rng=random.Random(1))
        uplink = MediaUplink(
            rig.journal, clock, fast, data_dir=rig.gw_dir, media_dir=rig.gw_dir / "media"
        )
        tasks = [asyncio.create_task(uploader.run()), asyncio.create_task(uplink.run())]
        try:
            args = ["--data", str(centre.paths.root), "snapshot", "--gateway", GW]
            args += ["--camera", "duty-room", "--wait", "20", "--json"]
            loop = asyncio.get_running_loop()
            code = await loop.run_in_executor(None, lambda: centre_main(args))
            out = json.loads(capsys.readouterr().out)
            assert code == 0, out
            assert out["status"] == "done" and out["sha256"] == cam.served[0]
            stored = Path(out["file"]).read_bytes()
            assert hashlib.sha256(stored).hexdigest() == out["sha256"]
            assert out["stored_at"] >= out["issued_at"]
            (shot,) = await rig.events("camera.snapshot")
            assert shot["request"] == out["command_id"]
            # an unknown camera: refused, said so, exit 1, nothing waited for
            args[args.index("duty-room")] = "vault"
            code = await loop.run_in_executor(None, lambda: centre_main(args))
            out = json.loads(capsys.readouterr().out)
            assert code == 1 and out["status"] == "refused" and "sha256" not in out
            assert out["reason"].startswith("unknown_camera:")
            assert rig.board.changes == []
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_gateway_without_cameras_refuses_look_now(centre: Centre, tmp_path: Path) -> None:
    async with command_rig(centre, tmp_path) as rig:
        assert not connect_look_now([rig.channel])  # nothing to connect: no snapshot service
        rec = await rig.order(CameraSnapshot("duty-room"))
        refused = await rig.wait_status(rec.command_id, "refused")
        assert refused.reason.startswith("unknown_camera:")
        assert await rig.events("command.accepted") == []
        assert rig.board.changes == []
