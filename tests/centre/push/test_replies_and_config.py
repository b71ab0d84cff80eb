"""Robot replies are hostile input: one documented error type, recorded, never a crash. And the
webhook URL is a secret: read from a 0600 file, never in a log, a repr or the outbox."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from centre.push.outbox import PushOutbox
from centre.push.robot import (
    PushConfigError,
    Robot,
    RobotReply,
    RobotReplyError,
    load_robots,
    parse_reply,
    redact,
)
from centre.push.sender import DONE, RobotSender
from tests.centre.push.conftest import KEY
from tests.centre.push.mock_robot import MockRobot

Opener = Callable[[], Awaitable[PushOutbox]]
Maker = Callable[..., RobotSender]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
reply_objects = st.fixed_dictionaries(
    {},
    optional={
        "errcode": st.integers() | st.floats() | st.text(max_size=5) | st.booleans() | st.none(),
        "errmsg": json_values,
    },
)


def _bytes_of(value: object) -> bytes:
    try:
        return json.dumps(value).encode()
    except ValueError:
        return b"NaN"


hostile_bodies = (
    st.binary(max_size=300)
    | json_values.map(_bytes_of)
    | reply_objects.map(_bytes_of)
    | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass"))
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.sampled_from([200, 200, 200, 204, 302, 400, 403, 429, 500, 502]), body=hostile_bodies
)
def test_any_reply_parses_or_raises_only_robot_reply_error(status: int, body: bytes) -> None:
    try:
        reply = parse_reply(status, body)
    except RobotReplyError as exc:
        assert exc.reason and len(exc.reason) < 200
        return
    assert status == 200
    assert isinstance(reply, RobotReply) and isinstance(reply.errcode, int)
    assert isinstance(reply.errmsg, str) and reply.errmsg.isprintable()


def test_a_good_reply_and_an_errcode_reply() -> None:
    assert parse_reply(200, b'{"errcode":0,"errmsg":"ok"}') == RobotReply(0, "ok")
    busy = parse_reply(200, b'{"errcode":45009,"errmsg":"api freq out of limit"}')
    assert not busy.ok and not busy.permanent
    assert parse_reply(200, b'{"errcode":93000,"errmsg":"invalid webhook url"}').permanent


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, b"<html><body>portal login</body></html>", "not JSON"),
        (502, b"Bad Gateway", "HTTP status 502"),
        (200, b'{"errcode":"0","errmsg":"ok"}', "no integer errcode"),
        (200, b'{"errcode":0,"errcode":0}', "not JSON"),
        (200, b"[0]", "not a JSON object"),
        (200, b'{"errcode":0,"errmsg":"' + b"x" * 20000 + b'"}', "not JSON"),
    ],
)
async def test_a_hostile_reply_is_a_recorded_failure_then_retried(
    open_outbox: Opener,
    make_sender: Maker,
    robot: Robot,
    mock_robot: MockRobot,
    status: int,
    body: bytes,
    reason: str,
) -> None:
    outbox = await open_outbox()
    await outbox.enqueue("2025-12-04", robot.group, ["the only part"], now=0.0)
    mock_robot.script.append((status, body))
    report = await make_sender(outbox).deliver(robot, "2025-12-04")
    assert report.outcome == DONE
    first, second = await outbox.attempts("2025-12-04", robot.group)
    assert first.outcome == "malformed" and reason in first.detail
    assert second.outcome == "ok"
    assert len(first.detail) < 200  # the hostile bytes are not echoed into the outbox


async def test_the_webhook_key_never_reaches_a_log_or_the_outbox(
    open_outbox: Opener,
    make_sender: Maker,
    robot: Robot,
    mock_robot: MockRobot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    outbox = await open_outbox()
    await outbox.enqueue("2025-12-04", robot.group, ["one"], now=0.0)
    mock_robot.script.extend([(200, b'{"errcode":-1,"errmsg":"system busy"}'), (500, b"oops")])
    report = await make_sender(outbox).deliver(robot, "2025-12-04")
    assert report.outcome == DONE
    assert any("system busy" in r.getMessage() for r in caplog.records)  # it was logged...
    assert all(KEY not in r.getMessage() for r in caplog.records)  # ...without the key
    assert KEY not in repr(robot) and KEY[-4:] in redact(robot.url)
    raw = b"".join(p.read_bytes() for p in Path(outbox._path).parent.glob("push.db*"))
    assert KEY.encode() not in raw


def _config(tmp_path: Path, url: str, mode: int = 0o600) -> Path:
    (tmp_path / "leaders.url").write_text(url + "\n")
    os.chmod(tmp_path / "leaders.url", mode)
    cfg = tmp_path / "push.toml"
    cfg.write_text('[[robot]]\ngroup = "district leaders"\nwebhook_file = "leaders.url"\n')
    return cfg


def test_robots_load_from_a_0600_file(tmp_path: Path) -> None:
    url = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}"
    assert load_robots(_config(tmp_path, url)) == [Robot("district leaders", url)]


def test_a_webhook_file_others_can_read_is_refused(tmp_path: Path) -> None:
    url = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}"
    with pytest.raises(PushConfigError, match="must be 0600") as info:
        load_robots(_config(tmp_path, url, 0o644))
    assert KEY not in info.value.reason


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("ftp://example/send?key=1", "one webhook URL"),
        ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send", "no key"),
    ],
)
def test_a_webhook_file_without_a_webhook_url_is_refused(
    tmp_path: Path, text: str, match: str
) -> None:
    with pytest.raises(PushConfigError, match=match):
        load_robots(_config(tmp_path, text))


def test_config_errors_point_at_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "push.toml"
    cfg.write_text('[[robot]]\ngroup = ""\nwebhook_file = "x"\n')
    with pytest.raises(PushConfigError, match=r"robot\[0\]\.group"):
        load_robots(cfg)
    cfg.write_text("[[robot]]\ngroup = 3\n")
    with pytest.raises(PushConfigError, match=r"robot\[0\]\.group"):
        load_robots(cfg)
    cfg.write_text("robot = [")
    with pytest.raises(PushConfigError):
        load_robots(cfg)


def test_redact_keeps_only_the_end_of_the_key() -> None:
    shown = redact(f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}")
    assert shown == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…abcd"
    assert redact("https://h/p?key=short") == "https://h/p?key=…"
