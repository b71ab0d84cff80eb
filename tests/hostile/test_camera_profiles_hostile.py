"""Property tests of the camera profile parsers: whatever comes in, each raises only its
documented error, within a second of CPU.

| parser (``drivers.camera`` unless named) | input from | outcome for bad input |
|---|---|---|
| ``jpeg_dimensions`` | a camera's or ffmpeg's reply | CameraError(bad_image) |
| ``profile_snapshot_url``, ``parse_camera_address`` | config file | CameraError(config) |
| ``RtspCamera`` (constructor) | config and password files | CameraError(config) |
| ``health.cameras[]`` profile keys | config file | ConfigError naming the key |
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.camera import (
    CameraError,
    RtspCamera,
    jpeg_dimensions,
    parse_camera_address,
    profile_snapshot_url,
)
from gateway.config.schema import parse_section
from gateway.errors import ConfigError
from gateway.health.config import HealthSection
from hil_tests.sims.camera import make_jpeg
from tests.hostile.test_gateway_parsers import timed  # CPU seconds of the test's thread, < 1 s

GOOD_JPEG = make_jpeg("hostile", 400, 1920, 1080)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mutate(data: bytes, pos: int, junk: bytes, cut: int) -> bytes:
    pos %= len(data) + 1
    return (data[:pos] + junk + data[pos + len(junk) :])[: max(0, len(data) - cut)]


jpeg_like = st.one_of(
    st.binary(max_size=3000),
    st.binary(max_size=200).map(lambda b: b"\xff\xd8" + b),
    st.lists(st.sampled_from([b"\xff", b"\xd8", b"\xc0", b"\xda", b"\x00", b"\x02", b"\x11"]),
             max_size=400).map(b"".join),
    st.builds(_mutate, st.just(GOOD_JPEG), st.integers(0, 500), st.binary(max_size=6),
              st.integers(0, 450)),
    st.integers(0, len(GOOD_JPEG)).map(lambda n: GOOD_JPEG[:n]),
    st.just(b"\xff\xd8" + b"\xff" * 100_000),  # fill bytes without end
    st.just(b"\xff\xd8" + b"\xff\xd0" * 50_000),  # restart markers without end
    st.just(b"<html>503 Service Unavailable</html>"),
)  # fmt: skip


@SETTINGS
@given(jpeg_like)
def test_jpeg_dimensions_raises_only_camera_error(data: bytes) -> None:
    try:
        width, height = timed(jpeg_dimensions, data)
    except CameraError as exc:
        assert exc.fields["fault"] == "bad_image" and exc.reason.isprintable()
        return
    assert 1 <= width <= 65535 and 1 <= height <= 65535


def test_jpeg_dimensions_of_the_good_one() -> None:
    assert jpeg_dimensions(GOOD_JPEG) == (1920, 1080)


odd_text = st.text(
    alphabet=st.sampled_from("0123456789abcxyz.:-[]@/?#%_ \t\n\x00\xff\u0660\uff11\u4e2d:"),
    max_size=80,
)
address_like = st.one_of(
    odd_text,
    st.text(max_size=300),
    st.builds(lambda s, h, p: f"{s}{h}:{p}", st.sampled_from(["", "http://", "https://", "x://"]),
              st.sampled_from(["10.0.0.1", "[::1]", "[fe80::1%eth0]", "cam", "a..b", "-a"]),
              st.one_of(st.integers(-5, 70000).map(str), odd_text)),
    st.integers(0, 4400).map(lambda n: "9" * n),
)  # fmt: skip
channel_like = st.one_of(
    st.integers(-(2**70), 2**70), st.booleans(), st.none(), st.text(max_size=5)
)


@SETTINGS
@given(st.sampled_from(["hikvision", "dahua", "http", "rtsp", "", "HIKVISION"]), address_like,
       channel_like)  # fmt: skip
def test_profile_url_raises_only_camera_error(profile: str, address: str, channel: Any) -> None:
    try:
        url = timed(profile_snapshot_url, profile, address, channel)
    except CameraError as exc:
        assert exc.fields["fault"] == "config" and exc.reason.isprintable()
        return
    parts = urlsplit(url)
    assert parts.scheme in ("http", "https") and parts.hostname and not parts.username
    assert url.isascii() and url.isprintable() and " " not in url
    assert parse_camera_address(address)[1] == parts.netloc


@SETTINGS
@given(
    st.one_of(
        st.text(max_size=100),
        st.builds(lambda p, rest: f"{p}{rest}", st.sampled_from(["rtsp://", "file:", "http://"]),
                  odd_text),
    ),
    st.one_of(st.text(max_size=30), odd_text),
    st.one_of(st.text(max_size=30), odd_text),
)  # fmt: skip
def test_rtsp_camera_takes_only_safe_settings(url: str, username: str, password: str) -> None:
    try:
        cam = timed(RtspCamera, "c", url, username, password)
    except CameraError as exc:
        assert exc.fields["fault"] == "config"
        return
    script = cam.concat_script().decode()
    lines = script.splitlines()
    # No newline smuggled into the list ffmpeg reads: exactly our own lines.
    assert lines[0] == "ffconcat version 1.0" and lines[1].startswith("file '")
    assert len(lines) == (2 if url.startswith("file:") else 3)
    # The command line is the same whatever the URL and credentials: none of them is on it.
    assert cam.command() == RtspCamera("c", "rtsp://h/s").command()


camera_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(), odd_text,
    st.text(max_size=100), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["hikvision", "dahua", "http", "rtsp"]),
)  # fmt: skip
KEYS = ("profile", "address", "channel", "snapshot_url", "rtsp_url", "username", "auth")


@SETTINGS
@given(st.dictionaries(st.sampled_from(KEYS), camera_values, max_size=len(KEYS)))
def test_camera_section_raises_only_config_error_naming_a_camera_key(
    camera: dict[str, Any],
) -> None:
    data = {"cameras": [{"name": "c", **camera}]}
    try:
        timed(parse_section, HealthSection, data, "health")
    except ConfigError as exc:
        assert exc.key.startswith("health.cameras[0]")
