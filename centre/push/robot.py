"""The WeChat Work group robot's wire format, as pure functions: request bodies, replies, secrets.

Theory of operation
-------------------
A group robot is one webhook URL, ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY``;
whoever holds the URL can post to the group, so the URL is a secret: it is read from a file only
its owner may read (0600), and logs, errors and the outbox name a robot by :func:`redact`. A
message is a POST of ``{"msgtype": "markdown", "markdown": {"content": ...}}``; the robot answers
HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``, or a non-zero ``errcode`` saying why not
(45009: more than 20 messages a minute; 93000: the key is not valid; 40058: content too long).

Every reply is untrusted input (a proxy's error page, a captive portal, a hostile peer):
:func:`parse_reply` returns a :class:`RobotReply` or raises :class:`RobotReplyError`, and nothing
else, whatever the bytes.

    body = markdown_body("**日报** (1/2)")
    reply = parse_reply(200, b'{"errcode":0,"errmsg":"ok"}')   # RobotReply(0, "ok")
    delay = backoff_delay(attempt=3, jitter=0.5)
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs, urlsplit

from centre.errors import CentreError
from wire import EncodingError, decode, encode

MAX_REPLY_BYTES: Final = 16 * 1024  # a real reply is ~30 bytes; anything large is not one
MAX_ERRMSG: Final = 500  # characters of errmsg kept in the outbox
# Backoff between attempts at one part: FIRST, doubled each time, at most MAX, times a jitter
# factor in [1 - JITTER, 1]. Eight attempts span about 10 minutes before a part is given up.
BACKOFF_FIRST_S: Final = 5.0
BACKOFF_MAX_S: Final = 300.0
BACKOFF_JITTER: Final = 0.25
MAX_ATTEMPTS: Final = 8
# Replies that another attempt cannot fix: the part is failed at once (an operator must act).
ERRCODE_INVALID_KEY: Final = 93000
ERRCODE_TOO_LONG: Final = 40058
ERRCODE_BAD_MSGTYPE: Final = 40008
ERRCODE_FREQUENCY: Final = 45009
PERMANENT_ERRCODES: Final = frozenset({ERRCODE_INVALID_KEY, ERRCODE_TOO_LONG, ERRCODE_BAD_MSGTYPE})


class RobotReplyError(CentreError):
    """A robot's reply that is not a well-formed answer (the only error :func:`parse_reply`
    raises). ``reason`` says what was wrong, in a few words; the raw bytes are never echoed."""

    status = 502
    code = "robot_reply_malformed"


class PushConfigError(CentreError):
    """The push configuration or a robot's key file is wrong; ``reason`` names the key or file."""

    status = 400
    code = "push_config"


@dataclass(frozen=True, slots=True)
class RobotReply:
    """A well-formed reply: ``errcode`` 0 means delivered."""

    errcode: int
    errmsg: str

    @property
    def ok(self) -> bool:
        return self.errcode == 0

    @property
    def permanent(self) -> bool:
        """True when another attempt cannot succeed (a bad key, content the robot refuses)."""
        return self.errcode in PERMANENT_ERRCODES


def markdown_body(content: str) -> bytes:
    """The POST body of one markdown message."""
    return encode({"msgtype": "markdown", "markdown": {"content": content}})


def parse_reply(status: int, body: bytes) -> RobotReply:
    """The robot's answer to one POST, or :class:`RobotReplyError`."""
    if status != 200:
        raise RobotReplyError(f"HTTP status {status}")
    try:
        value = decode(body, max_bytes=MAX_REPLY_BYTES)
    except EncodingError as exc:
        raise RobotReplyError(f"reply is not JSON: {exc.reason}") from None
    if not isinstance(value, dict):
        raise RobotReplyError("reply is not a JSON object")
    errcode = value.get("errcode")
    if isinstance(errcode, bool) or not isinstance(errcode, int):
        raise RobotReplyError("reply has no integer errcode")
    if not -(2**31) <= errcode < 2**31:
        raise RobotReplyError("reply errcode is out of range")
    errmsg = value.get("errmsg", "")
    if not isinstance(errmsg, str):
        raise RobotReplyError("reply errmsg is not a string")
    # Kept for the console: printable characters only, bounded.
    errmsg = "".join(ch if ch.isprintable() else "?" for ch in errmsg[:MAX_ERRMSG])
    return RobotReply(errcode, errmsg)


def backoff_delay(attempt: int, jitter: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based); ``jitter`` in [0, 1)."""
    base = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, min(attempt - 1, 30)))
    return base * (1.0 - BACKOFF_JITTER * min(max(jitter, 0.0), 1.0))


def redact(url: str) -> str:
    """A webhook URL fit for a log: host and path, and only the last 4 characters of the key."""
    parts = urlsplit(url)
    key = "".join(parse_qs(parts.query).get("key", [""])[:1])
    tail = key[-4:] if len(key) >= 12 else ""
    return f"{parts.scheme}://{parts.netloc}{parts.path}?key=…{tail}"


@dataclass(frozen=True, slots=True)
class Robot:
    """One group's robot: the group's name (shown to people) and its webhook URL (a secret)."""

    group: str
    url: str

    def __repr__(self) -> str:  # the URL must never reach a log through a repr
        return f"Robot(group={self.group!r}, url={redact(self.url)!r})"

    @property
    def redacted(self) -> str:
        return redact(self.url)


def read_webhook_file(path: Path) -> str:
    """The webhook URL kept in ``path`` (the file must be 0600 or stricter, like an ssh key)."""
    try:
        st = os.stat(path)
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PushConfigError(
            f"{path}: cannot read the webhook file ({exc.__class__.__name__})"
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PushConfigError(
            f"{path}: the webhook file is readable by others (mode {st.st_mode & 0o777:o});"
            " it must be 0600"
        )
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.netloc or "\n" in text:
        raise PushConfigError(f"{path}: does not hold one webhook URL (https://...?key=...)")
    if not parse_qs(parts.query).get("key"):
        raise PushConfigError(f"{path}: the webhook URL has no key=... parameter")
    return text


def load_robots(config: Path) -> list[Robot]:
    """The robots a push config names::

        [[robot]]
        group = "district leaders"
        webhook_file = "robot-leaders.url"   # relative to the config file; 0600

    Errors point at the key (``robot[2].webhook_file: ...``).
    """
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PushConfigError(f"{config}: {exc}") from None
    entries = data.get("robot")
    if not isinstance(entries, list) or not entries:
        raise PushConfigError(f"{config}: no [[robot]] entries")
    robots: list[Robot] = []
    for i, entry in enumerate(entries):
        where = f"{config}: robot[{i}]"
        if not isinstance(entry, dict):
            raise PushConfigError(f"{where}: must be a table")
        group, file = entry.get("group"), entry.get("webhook_file")
        if not isinstance(group, str) or not group.strip():
            raise PushConfigError(f"{where}.group: a non-empty name is required")
        if not isinstance(file, str) or not file:
            raise PushConfigError(f"{where}.webhook_file: a file name is required")
        group = group.strip()
        if group in {r.group for r in robots}:
            raise PushConfigError(f"{where}.group: {group!r} is named twice")
        robots.append(Robot(group, read_webhook_file(config.parent / file)))
    return robots


__all__ = [
    "BACKOFF_FIRST_S",
    "BACKOFF_MAX_S",
    "MAX_ATTEMPTS",
    "PushConfigError",
    "Robot",
    "RobotReply",
    "RobotReplyError",
    "backoff_delay",
    "load_robots",
    "markdown_body",
    "parse_reply",
    "read_webhook_file",
    "redact",
]
