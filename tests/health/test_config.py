"""The [health] section: parsed with the house schema, errors name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config.schema import documented_keys, parse_section
from gateway.errors import ConfigError
from gateway.health.config import HealthSection, read_password_file

GOOD = {
    "cameras": [
        {"name": "gate", "snapshot_url": "http://10.0.0.20/snap.jpg", "username": "gw",
         "password_file": "secrets/gate.pass", "rtsp_url": "rtsp://10.0.0.20/s1"},
        {"name": "yard", "snapshot_url": "http://10.0.0.21/snap.jpg", "auth": "none"},
    ],
    "snapshot_triggers": [{"kind": "tap", "field": "checkpoint", "equals": "north-gate",
                           "cameras": ["gate"]}],
    "modem": {"port": "/dev/ttyModem"},
    "gpio": {"tamper_pin": 17, "led_pin": 27},
    "system": {"interval_s": 120},
    "hysteresis": [{"kind": "camera", "worsen_after": 5}],
}  # fmt: skip


def test_good_section_parses() -> None:
    h = parse_section(HealthSection, GOOD, "health")
    assert [c.name for c in h.cameras] == ["gate", "yard"]
    assert h.modem is not None and h.modem.baudrate == 115200
    assert h.gpio.tamper_pin == 17 and h.gpio.mains_pin is None
    assert h.hysteresis[0].recover_after == 2
    assert parse_section(HealthSection, {}, "health").modem is None


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"cameras": [{"name": "x", "snapshot_url": "ftp://a"}]}, "health.cameras[0].snapshot_url"),
        ({"cameras": [{"name": "x", "snapshot_url": "http://a"}]}, "health.cameras[0].username"),
        ({"snapshot_triggers": [{"kind": "tap", "cameras": ["nope"]}]},
         "health.snapshot_triggers[0].cameras[0]"),
        ({"gpio": {"tamper_pin": 17, "led_pin": 17}}, "health.gpio.led_pin"),
        ({"gpio": {"tamper_pin": 99}}, "health.gpio.tamper_pin"),
        ({"modem": {"port": "/dev/x", "weak_dbm": 0}}, "health.modem.weak_dbm"),
        ({"system": {"temp_warn_c": 90, "temp_crit_c": 80}}, "health.system.temp_crit_c"),
        ({"camras": []}, "health.camras"),
    ],
)  # fmt: skip
def test_bad_values_name_the_key(patch: dict[str, object], key: str) -> None:
    data = {**GOOD, **patch}
    with pytest.raises(ConfigError) as err:
        parse_section(HealthSection, data, "health")
    assert err.value.key == key


def test_every_key_is_documented() -> None:
    undocumented = [k for k, doc in documented_keys(HealthSection) if not doc]
    assert undocumented == []


def test_password_file_must_be_private_and_is_read_verbatim(tmp_path: Path) -> None:
    p = tmp_path / "cam.pass"
    p.write_text("cafe1234\n")  # looks like hex: must not be decoded
    p.chmod(0o644)
    with pytest.raises(ConfigError, match="0644"):
        read_password_file(p, "health.cameras[0].password_file")
    p.chmod(0o600)
    assert read_password_file(p, "k") == "cafe1234"
    with pytest.raises(ConfigError, match="cannot read"):
        read_password_file(tmp_path / "missing", "k")
