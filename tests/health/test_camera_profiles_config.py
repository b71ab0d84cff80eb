"""Camera profiles in the [health] section: each profile's keys, errors naming the exact key,
and old ``snapshot_url``-only cameras still loading as profile ``http``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers.camera import HttpCamera, RtspCamera, open_camera, profile_snapshot_url
from gateway.config.schema import parse_section
from gateway.errors import ConfigError
from gateway.health.config import CameraConfig, HealthSection
from gateway.health.services import make_camera


def _health(**camera: Any) -> HealthSection:
    cam = {"name": "duty", "username": "gw", **camera}
    return parse_section(HealthSection, {"cameras": [cam]}, "health")


def test_old_snapshot_url_cameras_are_profile_http() -> None:
    cam = _health(snapshot_url="http://10.0.0.20/snap.jpg").cameras[0]
    assert cam.profile == "http" and cam.address == "" and cam.channel == 1
    built = open_camera(cam, "pw")
    assert isinstance(built, HttpCamera) and built.snapshot_url == "http://10.0.0.20/snap.jpg"


@pytest.mark.parametrize(
    ("camera", "url"),
    [
        ({"profile": "hikvision", "address": "10.0.0.64"},
         "http://10.0.0.64/ISAPI/Streaming/channels/101/picture"),
        ({"profile": "hikvision", "address": "10.0.0.64:8080", "channel": 3},
         "http://10.0.0.64:8080/ISAPI/Streaming/channels/301/picture"),
        ({"profile": "hikvision", "address": "https://nvr.local", "channel": 16},
         "https://nvr.local/ISAPI/Streaming/channels/1601/picture"),
        ({"profile": "dahua", "address": "10.0.0.108"},
         "http://10.0.0.108/cgi-bin/snapshot.cgi?channel=1"),
        ({"profile": "dahua", "address": "[fd00::6c]:81", "channel": 4},
         "http://[fd00::6c]:81/cgi-bin/snapshot.cgi?channel=4"),
    ],
)  # fmt: skip
def test_vendor_profiles_build_the_documented_url(camera: dict[str, Any], url: str) -> None:
    cam = _health(**camera).cameras[0]
    built = open_camera(cam, "pw")
    assert isinstance(built, HttpCamera) and built.snapshot_url == url
    assert built.auth == "digest"  # both families answer 401 with a Digest challenge


def test_rtsp_profile_opens_an_ffmpeg_camera() -> None:
    cam = _health(profile="rtsp", rtsp_url="rtsp://10.0.0.20:554/Streaming/Channels/101")
    built = open_camera(cam.cameras[0], "s3cret")
    assert isinstance(built, RtspCamera)
    assert "s3cret" not in " ".join(built.command())
    assert b"gw:s3cret@10.0.0.20:554" in built.concat_script()


@pytest.mark.parametrize(
    ("camera", "key", "reason"),
    [
        ({"profile": "hikvision"}, "address", "is required with profile = 'hikvision'"),
        ({"profile": "dahua", "address": "10.0.0.1/cgi-bin"}, "address", "must not hold a path"),
        ({"profile": "dahua", "address": "admin:pw@10.0.0.1"}, "address", "credentials"),
        ({"profile": "dahua", "address": "10.0.0.1:0"}, "address", "port 0"),
        ({"profile": "dahua", "address": "10.0.0.1:70000"}, "address", "is not host[:port]"),
        ({"profile": "dahua", "address": "ftp://10.0.0.1"}, "address", "is not http or https"),
        ({"profile": "dahua", "address": "10.0.0.256"}, "address", "not a host name"),
        ({"profile": "hikvision", "address": "a", "channel": 0}, "channel", "outside 1..256"),
        ({"profile": "hikvision", "address": "a", "channel": 257}, "channel", "outside 1..256"),
        ({"profile": "hikvision", "address": "a", "channel": "1"}, "channel", "an integer"),
        ({"profile": "hikvision", "address": "a", "snapshot_url": "http://a/x"}, "snapshot_url",
         "is not used with profile = 'hikvision'"),
        ({"profile": "http"}, "snapshot_url", "is required with profile = 'http'"),
        ({"snapshot_url": "http://a/x", "address": "a"}, "address", "is not used"),
        ({"snapshot_url": "http://a/x", "channel": 2}, "channel", "is not used"),
        ({"profile": "rtsp"}, "rtsp_url", "is required with profile = 'rtsp'"),
        ({"profile": "rtsp", "rtsp_url": "rtsp://gw:pw@10.0.0.1/s"}, "rtsp_url", "credentials"),
        ({"profile": "rtsp", "rtsp_url": "http://10.0.0.1/s"}, "rtsp_url", "rtsp://"),
        ({"profile": "axis", "snapshot_url": "http://a/x"}, "profile", "is not one of"),
    ],
)  # fmt: skip
def test_profile_errors_name_the_key(camera: dict[str, Any], key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        _health(**camera)
    assert err.value.key == f"health.cameras[0].{key}"
    assert reason in str(err.value)


def test_a_password_ffmpeg_cannot_take_is_a_config_error(tmp_path: Path) -> None:
    pw = tmp_path / "cam.pass"
    pw.write_text("line1\x07bell\n")
    pw.chmod(0o600)
    cfg = CameraConfig(
        name="duty", profile="rtsp", rtsp_url="rtsp://10.0.0.1/s", username="gw",
        password_file=str(pw),
    )  # fmt: skip
    with pytest.raises(ConfigError) as err:
        make_camera(cfg, tmp_path)
    assert err.value.key == "health.cameras[duty]" and "control characters" in str(err.value)


def test_hikvision_stream_id_is_channel_times_100_plus_1() -> None:
    for channel in (1, 2, 9, 10, 64, 256):
        url = profile_snapshot_url("hikvision", "h", channel)
        assert url.endswith(f"/channels/{channel * 100 + 1}/picture")
