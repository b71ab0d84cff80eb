"""What a WeChat Work group robot accepts, as pure rules: message parts and pacing.

Theory of operation
-------------------
A group robot takes markdown content of at most 4096 bytes (UTF-8) per message and at most 20
messages a minute; past that it throttles the robot for minutes. A bulletin longer than one
message is cut into numbered parts at line boundaries (a line longer than a part is cut at
character boundaries, never inside a UTF-8 sequence), each part starting with its number,
``(2/3)``, and each within the limit *with* that header. Parts are identified by (day, group,
part number), so delivery can be made exactly once per part by the store.

:class:`Pacer` answers "when may the next message to this robot go?" from the times of the
messages already sent; time is an argument, nothing here sleeps or reads a clock.

    parts = split_markdown(text, limit=MARKDOWN_LIMIT)
    wait = Pacer().delay(sent_times, now)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

MARKDOWN_LIMIT: Final = 4096
TEXT_LIMIT: Final = 2048
MESSAGES_PER_MINUTE: Final = 20
WINDOW_S: Final = 60.0
MAX_PARTS: Final = 99  # "(nn/nn) " headers stay the same width; more is a runaway bulletin


class SplitError(ValueError):
    """Content that cannot be sent within the platform's limits (too many parts)."""


def _utf8_len(s: str) -> int:
    return len(s.encode("utf-8"))


def _header(i: int, n: int) -> str:
    return f"({i}/{n})\n"


def _cut_line(line: str, room: int) -> list[str]:
    """A line longer than ``room`` bytes, as pieces that each fit (character boundaries)."""
    pieces: list[str] = []
    piece = ""
    size = 0
    for ch in line:
        w = _utf8_len(ch)
        if size + w > room and piece:
            pieces.append(piece)
            piece, size = "", 0
        piece += ch
        size += w
    if piece:
        pieces.append(piece)
    return pieces


def split_markdown(text: str, *, limit: int = MARKDOWN_LIMIT) -> list[str]:
    """The content as messages of at most ``limit`` UTF-8 bytes each, numbered when > 1."""
    if _utf8_len(text) <= limit:
        return [text]
    room = limit - _utf8_len(_header(MAX_PARTS, MAX_PARTS))
    if room < 8:
        raise SplitError(f"a limit of {limit} bytes leaves no room for content")
    lines: list[str] = []
    for line in text.split("\n"):
        lines.extend(_cut_line(line, room) if _utf8_len(line) > room else [line])
    bodies: list[str] = []
    body = ""
    for line in lines:
        candidate = line if not body else body + "\n" + line
        if _utf8_len(candidate) > room and body:
            bodies.append(body)
            body = line
        else:
            body = candidate
    bodies.append(body)
    if len(bodies) > MAX_PARTS:
        raise SplitError(f"the content needs {len(bodies)} messages; at most {MAX_PARTS} are sent")
    n = len(bodies)
    return [_header(i, n) + b for i, b in enumerate(bodies, start=1)]


@dataclass(frozen=True, slots=True)
class Pacer:
    """At most ``per_window`` messages in any ``window_s`` seconds, per robot."""

    per_window: int = MESSAGES_PER_MINUTE
    window_s: float = WINDOW_S

    def delay(self, sent: Sequence[float], now: float) -> float:
        """Seconds to wait before the next message may go (0 when it may go now)."""
        recent = sorted(t for t in sent if now - t < self.window_s)
        if len(recent) < self.per_window:
            return 0.0
        # The oldest message still in the window must leave it first.
        oldest = recent[len(recent) - self.per_window]
        return max(0.0, oldest + self.window_s - now)
