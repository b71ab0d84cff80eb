"""Snapshot profiles against simulated cameras (issue 17, "cameras people actually install").

Hikvision (ISAPI) and Dahua (CGI) cameras are configured by address and channel only; each
fetches its own JPEG from the documented path through Digest auth; a wrong password is a clear
``auth`` fault. RTSP runs the real ffmpeg: one frame from a local clip (the same concat-on-stdin
and MJPEG-out pipeline as for a camera), the RTSP Digest against the simulator's DESCRIBE (a
wrong password is refused, the right one, with awkward characters, accepted), the password never
on ffmpeg's command line, and a wedged camera killing ffmpeg at the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from drivers.camera import CameraError, RtspCamera, jpeg_dimensions, open_camera
from gateway.clock import SystemClock
from gateway.config.schema import parse_section
from gateway.health.config import HealthSection, SnapshotTrigger
from gateway.health.evidence import EvidenceStore
from gateway.health.services import SnapshotService, make_camera
from hil_tests.sims.camera import CameraSim
from tests.health.helpers import events_of, open_journal, running, wait_until, write_password

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")


def _health(tmp_path: Path, *cameras: dict[str, Any]) -> HealthSection:
    """Camera sections as an installer writes them (parsed, checked), passwords in 0600 files."""
    cams = []
    for cam in cameras:
        pw = write_password(tmp_path, cam["name"], cam.pop("password"))
        cams.append({"username": "admin", "password_file": str(pw), "timeout_s": 2.0, **cam})
    return parse_section(HealthSection, {"cameras": cams}, "health")


async def _fault(cam: Any) -> CameraError:
    with pytest.raises(CameraError) as err:
        await cam.snapshot()
    return err.value


async def test_each_vendor_profile_fetches_its_own_camera_and_channel(tmp_path: Path) -> None:
    async with (
        CameraSim("hik", password="hk-pw", channels=4, width=1920, height=1080) as hik,
        CameraSim("dahua", password="dh-pw", channels=4, width=1280, height=720) as dahua,
        CameraSim("old", password="old-pw", width=640, height=360) as old,
    ):
        section = _health(
            tmp_path,
            {"name": "hik", "profile": "hikvision", "address": hik.address, "channel": 2,
             "password": "hk-pw"},
            {"name": "dahua", "profile": "dahua", "address": dahua.address, "channel": 3,
             "password": "dh-pw"},
            {"name": "old", "snapshot_url": old.snapshot_url, "password": "old-pw"},
        )  # fmt: skip
        shots = {}
        for cfg, sim in zip(section.cameras, (hik, dahua, old), strict=True):
            async with make_camera(cfg, tmp_path) as cam:
                shot = await cam.snapshot()
            assert hashlib.sha256(shot.data).hexdigest() == sim.served[-1]
            assert len(sim.served) == 1 and sim.rejected == 0
            shots[cfg.name] = shot.data
        assert hik.paths == ["/ISAPI/Streaming/channels/201/picture"]
        assert dahua.paths == ["/cgi-bin/snapshot.cgi?channel=3"]
        assert old.paths == ["/snapshot.jpg"]
        assert b"sim camera hik channel 2" in shots["hik"]
        assert b"sim camera dahua channel 3" in shots["dahua"]
        assert jpeg_dimensions(shots["hik"]) == (1920, 1080)
        assert jpeg_dimensions(shots["dahua"]) == (1280, 720)
        assert jpeg_dimensions(shots["old"]) == (640, 360)


@pytest.mark.parametrize("profile", ["hikvision", "dahua"])
async def test_wrong_password_and_missing_channel_are_named(profile: str, tmp_path: Path) -> None:
    async with CameraSim("c", password="right", channels=2) as sim:
        wrong, absent = _health(
            tmp_path,
            {"name": "wrong", "profile": profile, "address": sim.address, "password": "bad-pass-9"},
            {"name": "absent", "profile": profile, "address": sim.address, "channel": 3,
             "password": "right"},
        ).cameras  # fmt: skip
        async with make_camera(wrong, tmp_path) as cam:
            err = await _fault(cam)
        assert err.fields["fault"] == "auth" and "wrong credentials (HTTP 401)" in err.reason
        assert "bad-pass-9" not in err.reason and sim.rejected >= 1 and sim.served == []
        async with make_camera(absent, tmp_path) as cam:
            err = await _fault(cam)
        status = 404 if profile == "hikvision" else 400
        assert err.fields["fault"] == "http" and f"HTTP {status}" in err.reason
        assert sim.served == []


async def test_evidence_snapshots_from_two_vendor_cameras(tmp_path: Path) -> None:
    async with (
        CameraSim("hik", password="pw1", algorithm="SHA-256") as hik,
        CameraSim("dahua", password="pw2") as dahua,
        open_journal(tmp_path) as journal,
    ):
        section = _health(
            tmp_path,
            {"name": "hik", "profile": "hikvision", "address": hik.address, "password": "pw1"},
            {"name": "dahua", "profile": "dahua", "address": dahua.address, "password": "pw2"},
        )
        store = EvidenceStore(tmp_path / "media", budget_bytes=10_000_000)
        trig = SnapshotTrigger(kind="tap", cameras=("hik", "dahua"))
        cams = {c.name: make_camera(c, tmp_path) for c in section.cameras}
        svc = SnapshotService(journal, SystemClock(), [trig], cams, store)
        async with running(svc):
            await journal.append("tap", {"checkpoint": "north-gate"})
            await wait_until(lambda: svc.taken == 2, what="two snapshots taken")
        shots = {
            e.payload["camera"]: e.payload for e in await events_of(journal, "camera.snapshot")
        }
        assert shots["hik"]["sha256"] == hik.served[-1]
        assert shots["dahua"]["sha256"] == dahua.served[-1]
        assert shots["hik"]["sha256"] != shots["dahua"]["sha256"]


async def test_selftest_checks_profile_cameras_by_their_profile(tmp_path: Path) -> None:
    from gateway.config import load_config
    from gateway.setup.selftest import _cameras

    async with (
        CameraSim("hik", password="pw1", channels=2) as hik,
        CameraSim("dahua", password="pw2") as dahua,
    ):
        write_password(tmp_path, "hik", "pw1")
        write_password(tmp_path, "dahua", "not-pw2")
        path = tmp_path / "gateway.toml"
        path.write_text(
            '[gateway]\nid = "gw-test"\ncompound = "Test"\ndata_dir = "data"\n'
            'runtime_dir = "run"\n\n'
            f'[[health.cameras]]\nname = "hik"\nprofile = "hikvision"\naddress = "{hik.address}"\n'
            'channel = 2\nusername = "admin"\npassword_file = "hik.pass"\n\n'
            f'[[health.cameras]]\nname = "dahua"\nprofile = "dahua"\naddress = "{dahua.address}"\n'
            'username = "admin"\npassword_file = "dahua.pass"\ntimeout_s = 2.0\n'
        )
        hik_result, dahua_result = await _cameras(load_config(path))
        assert hik_result["ok"] and hik_result["snapshot_bytes"] > 0 and len(hik.served) == 1
        assert hik.paths == ["/ISAPI/Streaming/channels/201/picture"]
        assert not dahua_result["ok"] and dahua_result["detail"].startswith("auth: ")
        assert "not-pw2" not in dahua_result["detail"] and dahua.served == []


# --- RTSP through the real ffmpeg -----------------------------------------------------------


def _clip(tmp_path: Path, size: str) -> Path:
    clip = tmp_path / f"clip-{size}.mkv"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i",
         f"testsrc=size={size}:rate=5", "-t", "1", "-y", str(clip)],
        check=True, timeout=60,
    )  # fmt: skip
    return clip


@needs_ffmpeg
async def test_ffmpeg_grabs_one_real_frame_as_a_jpeg(tmp_path: Path) -> None:
    # A local clip stands in for the stream: the same ffmpeg invocation, list on stdin, JPEG out.
    for size, dims in (("352x288", (352, 288)), ("320x240", (320, 240))):
        cam = RtspCamera("clip", f"file:{_clip(tmp_path, size)}", timeout_s=30.0)
        shot = await cam.snapshot()
        assert jpeg_dimensions(shot.data) == dims
        assert shot.data[-2:] == b"\xff\xd9" and shot.content_type == "image/jpeg"


def _rtsp_camera(tmp_path: Path, sim: CameraSim, password: str, timeout_s: float) -> Any:
    [cfg] = _health(
        tmp_path,
        {"name": "rtsp-cam", "profile": "rtsp", "rtsp_url": sim.rtsp_url, "password": password,
         "timeout_s": timeout_s},
    ).cameras  # fmt: skip
    cam = make_camera(cfg, tmp_path)
    assert isinstance(cam, RtspCamera)
    return cam


@needs_ffmpeg
async def test_rtsp_digest_wrong_password_is_refused_right_one_accepted(tmp_path: Path) -> None:
    right = "p@ss:w'rd/中文"  # characters a URL must escape, and a quote for the ffconcat list
    async with CameraSim("c", password=right) as sim:
        err = await _fault(_rtsp_camera(tmp_path, sim, "not-the-password", 20.0))
        assert err.fields["fault"] == "auth" and "401" in err.reason
        assert "not-the-password" not in err.reason and "***@" in err.reason
        assert sim.rtsp_authorised == 0 and sim.rejected >= 1
        err = await _fault(_rtsp_camera(tmp_path, sim, right, 20.0))
        # Past the Digest: the simulator has no stream, and says so with 503.
        assert sim.rtsp_authorised == 1
        assert err.fields["fault"] == "rtsp_protocol" and "503" in err.reason
        assert "p@ss" not in err.reason


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@needs_ffmpeg
async def test_wedged_camera_ffmpeg_is_killed_at_the_timeout(tmp_path: Path) -> None:
    async with CameraSim("c", password="s3cret-pw") as sim:
        sim.hang = True
        cam = _rtsp_camera(tmp_path, sim, "s3cret-pw", 1.0)
        task = asyncio.create_task(cam.snapshot())
        await wait_until(lambda: cam.last_pid is not None, what="ffmpeg started")
        cmdline = Path(f"/proc/{cam.last_pid}/cmdline").read_bytes()
        with pytest.raises(CameraError) as err:
            await task
        assert b"s3cret-pw" not in cmdline and b"rtsp://" not in cmdline
        assert err.value.fields["fault"] == "timeout" and "ffmpeg killed" in err.value.reason
        assert err.value.fields["pid"] == cam.last_pid and not _alive(cam.last_pid)


@needs_ffmpeg
async def test_cancelled_snapshot_leaves_no_ffmpeg(tmp_path: Path) -> None:
    async with CameraSim("c", password="pw") as sim:
        sim.hang = True
        cam = _rtsp_camera(tmp_path, sim, "pw", 30.0)
        task = asyncio.create_task(cam.snapshot())
        await wait_until(lambda: cam.last_pid is not None, what="ffmpeg started")
        pid = cam.last_pid
        assert pid is not None and _alive(pid)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not _alive(pid)


def _fake_ffmpeg(tmp_path: Path, body: str) -> str:
    path = tmp_path / "ffmpeg"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


async def test_ffmpeg_missing_or_answering_junk(tmp_path: Path) -> None:
    url = "rtsp://127.0.0.1:9/stream"
    missing = RtspCamera("c", url, ffmpeg=str(tmp_path / "no-such-ffmpeg"))
    err = await _fault(missing)
    assert err.fields["fault"] == "config" and "cannot run" in err.reason
    # Transport-level fakes: an ffmpeg that exits 0 with an HTML page, and one that fails.
    junk = RtspCamera("c", url, ffmpeg=_fake_ffmpeg(tmp_path, "cat >/dev/null\necho '<html>'\n"))
    err = await _fault(junk)
    assert err.fields["fault"] == "bad_image" and "no SOI" in err.reason
    cfg_stub = _fake_ffmpeg(tmp_path, "cat >/dev/null\necho 'Invalid data found' >&2\nexit 1\n")
    err = await _fault(RtspCamera("c", url, ffmpeg=cfg_stub))
    assert err.fields["fault"] == "rtsp_protocol" and "Invalid data found" in err.reason


def test_open_camera_refuses_what_it_cannot_use() -> None:
    from types import SimpleNamespace

    base = dict(name="c", snapshot_url="", rtsp_url="", address="", channel=1, auth="digest",
                username="u", timeout_s=1.0)  # fmt: skip
    for profile in ("http", "rtsp"):
        with pytest.raises(CameraError) as err:
            open_camera(SimpleNamespace(profile=profile, **base), "pw")  # type: ignore[arg-type]
        assert err.value.fields["fault"] == "config"


# --- the installer wizard's camera step -----------------------------------------------------


async def test_wizard_camera_step_takes_vendor_profiles_live(tmp_path: Path) -> None:
    from gateway.config import load_config
    from gateway.setup.answers import parse_answers
    from gateway.setup.state import StateFile
    from gateway.setup.wizard import Wizard

    async with (
        CameraSim("hik", password="hk-pw-7", channels=2) as hik,
        CameraSim("dahua", password="dh-pw-8", channels=3) as dahua,
    ):
        config = tmp_path / "site" / "gateway.toml"
        state_path = tmp_path / "site" / "state.json"
        state = StateFile.load(state_path)
        for step, result in (("ports", {"found": [], "ports": []}), ("scan", {"buses": []}),
                             ("pair", {"readers": {}}), ("name", {"points": []}),
                             ("relays", {"zones": []})):  # fmt: skip
            state.finish(step, result)

        def run(dahua_password: str) -> tuple[int, str]:
            answers = parse_answers(
                {
                    "gateway": {"id": "gw-cam-02", "compound": "Cam", "data_dir": "data",
                                "runtime_dir": "run"},
                    "cameras": [
                        {"name": "duty-room", "profile": "hikvision", "address": hik.address,
                         "channel": 2, "username": "admin",
                         "password_file": str(write_password(tmp_path, "hik", "hk-pw-7"))},
                        {"name": "yard", "profile": "dahua", "address": dahua.address,
                         "channel": 3, "username": "admin",
                         "password_file": str(write_password(tmp_path, "dh", dahua_password))},
                    ],
                    "enroll": {"skip": True},
                },
                tmp_path,
            )  # fmt: skip
            out = io.StringIO()
            owner = (65534, 65534) if os.geteuid() == 0 else None
            wizard = Wizard(
                answers, config_path=config, state=StateFile.load(state_path), out=out, owner=owner
            )
            return wizard.run(), out.getvalue()

        rc, out = await asyncio.to_thread(run, "not-dh-pw")
        assert rc == 1 and "camera yard: live snapshot failed (auth" in out, out
        assert "not-dh-pw" not in out and not config.exists()
        rc, out = await asyncio.to_thread(run, "dh-pw-8")
        assert rc == 0, out
        assert hik.paths[-1] == "/ISAPI/Streaming/channels/201/picture"
        assert dahua.paths[-1] == "/cgi-bin/snapshot.cgi?channel=3"
        cfg = load_config(config)
        duty, yard = cfg.health.cameras
        assert (duty.profile, duty.address, duty.channel) == ("hikvision", hik.address, 2)
        assert (yard.profile, yard.address, yard.channel) == ("dahua", dahua.address, 3)
        assert duty.snapshot_url == "" and yard.snapshot_url == ""


def test_wizard_answers_refuse_a_profile_without_its_key(tmp_path: Path) -> None:
    from gateway.errors import ConfigError
    from gateway.setup.answers import parse_answers

    with pytest.raises(ConfigError) as err:
        parse_answers(
            {"gateway": {"id": "gw-cam-03", "compound": "Cam"},
             "cameras": [{"name": "c", "profile": "dahua", "username": "admin"}]},
            tmp_path,
        )  # fmt: skip
    assert err.value.key.endswith("cameras[0].address")


async def test_wizard_camera_questions_at_the_terminal(tmp_path: Path) -> None:
    from gateway.setup.answers import parse_answers
    from gateway.setup.interactive import Asker
    from gateway.setup.state import StateFile
    from gateway.setup.wizard import Wizard

    async with CameraSim("hik", password="hk-pw-9", channels=2) as hik:
        lines = iter(
            [
                "duty-room",  # camera name
                f"dahua {hik.address} 0",  # refused: channels count from 1
                f"海康 {hik.address} 2",  # a Hikvision camera, channel 2, named in Chinese
                "",  # RTSP: none
                "",  # login kind: digest
                "",  # user: admin
                "back-lane",
                "rtsp",  # no snapshot URL: a frame of the RTSP stream
                "",  # RTSP left empty: refused for an rtsp camera, asked again
                "rtsp://10.9.9.9:554/stream1",
                "basic",
                "gw",
                "",  # no more cameras
            ]
        )

        def read_line(prompt: str) -> str:
            return next(lines)

        out = io.StringIO()
        answers = parse_answers({"gateway": {"id": "gw-cam-04", "compound": "Cam"}}, tmp_path)
        wizard = Wizard(
            answers,
            config_path=tmp_path / "gateway.toml",
            state=StateFile.load(tmp_path / "state.json"),
            out=out,
            asker=Asker({}, read_line=read_line, out=out),
        )
        await asyncio.to_thread(wizard.ask_cameras)
        duty, lane = wizard.a.cameras
        assert (duty.profile, duty.address, duty.channel) == ("hikvision", hik.address, 2)
        assert (lane.profile, lane.rtsp_url, lane.auth) == ("rtsp", "rtsp://10.9.9.9:554/stream1",
                                                            "basic")  # fmt: skip
        assert "channel must be a whole number from 1 to 256" in out.getvalue()
        # The live check of the hikvision answer, as the camera step runs it.
        check = await asyncio.to_thread(wizard._check_camera, duty, "hk-pw-9")
        assert check.ok and hik.paths == ["/ISAPI/Streaming/channels/201/picture"]
