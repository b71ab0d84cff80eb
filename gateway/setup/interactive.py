"""Questions at the terminal: every answer checked where it is typed, advice in words.

    asker = Asker(state.answers(), save=state.save)
    gateway_id = asker.value("gateway.id", _("gateway id"), parse_gateway_id)
    answers = interactive_answers(config_path, asker)      # the same Answers a file gives

Theory of operation
-------------------
Each question has a *parser*: a pure function from the typed text to a value that raises
:class:`AnswerError` (the one error type of this module) with advice a person can act on
("use lowercase letters, digits and '-', e.g. rose-garden-01"), never a regular expression.
:class:`Asker` asks, shows the advice and asks again until the answer is good; an answer once
accepted is saved in the state file under its key (``gateway.id``, ``relays.zones``...), so a
wizard run again after an interruption does not ask it again (``setup --redo STEP`` forgets
a step's answers). End of input (Ctrl-D, a closed pipe) raises :class:`InputEnded`: the wizard
stops cleanly, everything answered so far kept.

Secrets are not kept: camera passwords and the enrollment token are asked without echo in the
step that needs them and checked live there (a refused one is asked again).

Chinese input methods type full-width punctuation (comma, colon, slash, equals, the
ideographic comma and space); parsers accept it.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
import urllib.parse
import zoneinfo
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO, TypeVar

from gateway.errors import GatewayError
from gateway.i18n import _
from gateway.setup.answers import Answers, parse_answers
from gateway.setup.scan import list_serial_ports

T = TypeVar("T")

MAX_ANSWER_CHARS = 500
_FULL_WIDTH = str.maketrans(
    {"\uff0c": ",", "\uff1a": ":", "\uff0f": "/", "\uff1d": "=", "\u3001": ",", "\u3000": " "}
)


class AnswerError(GatewayError):
    """A typed answer is not acceptable; ``advice`` says in words what to type instead."""

    def __init__(self, advice: str) -> None:
        super().__init__(advice)
        self.advice = advice


class InputEnded(GatewayError):
    """The input ended (Ctrl-D, closed pipe): stop, keeping the answers given so far."""


# ============================================================================ parsers


def clean(text: str) -> str:
    """Typed text as a parser sees it: full-width punctuation folded, spaces trimmed.

    Control characters (a stray Esc sequence, a pasted tab) are refused with advice."""
    text = text.translate(_FULL_WIDTH).strip()
    if len(text) > MAX_ANSWER_CHARS:
        raise AnswerError(_("that is too long: at most {n} characters").format(n=MAX_ANSWER_CHARS))
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            raise AnswerError(
                _("the answer holds an invisible control character: type it again plainly")
            )
    return text


def _number(text: str, lo: int, hi: int, what: str) -> int:
    # ASCII digits only: int() also takes Arabic-Indic or full-width digits, which a person
    # did not mean as a number here.
    if re.fullmatch(r"[0-9]{1,6}", text) is None or not lo <= int(text) <= hi:
        raise AnswerError(
            _("{what} must be a whole number from {lo} to {hi}").format(what=what, lo=lo, hi=hi)
        )
    return int(text)


def parse_gateway_id(text: str) -> str:
    t = clean(text)
    if re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", t) is None:
        raise AnswerError(
            _(
                "use lowercase letters, digits and '-' (2 to 63 characters, no spaces), "
                "e.g. rose-garden-01"
            )
        )
    return t


def parse_required_text(text: str, max_chars: int = 120) -> str:
    t = clean(text)
    if not t:
        raise AnswerError(_("this cannot be empty"))
    if len(t) > max_chars:
        raise AnswerError(_("at most {n} characters, please").format(n=max_chars))
    return t


def parse_optional_text(text: str, max_chars: int = 120) -> str:
    t = clean(text)
    if len(t) > max_chars:
        raise AnswerError(_("at most {n} characters, please").format(n=max_chars))
    return t


def parse_timezone(text: str) -> str:
    t = clean(text)
    ok = re.fullmatch(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}", t) is not None
    if ok:
        try:
            zoneinfo.ZoneInfo(t)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            ok = False
    if not ok:
        raise AnswerError(_("type a time zone such as Asia/Shanghai (Region/City)"))
    return t


def parse_name(text: str, example: str = "north-gate") -> str:
    """A bus, checkpoint or camera name as the config takes it."""
    t = clean(text)
    if re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,62}", t) is None:
        raise AnswerError(
            _(
                "use lowercase letters, digits, '-', '_' or '.' (no spaces, at most 63), "
                "e.g. {example}"
            ).format(example=example)
        )
    return t


def parse_kind(text: str) -> str:
    t = clean(text).lower()
    if t not in ("auto", "osdp", "modbus"):
        raise AnswerError(
            _("type osdp (readers), modbus (relay boards) or auto (not sure: scans both)")
        )
    return t


def parse_ports(text: str, ports: list[str]) -> list[str]:
    """Numbers from the list shown (1-based) or device paths, comma-separated."""
    chosen: list[str] = []
    for part in (p.strip() for p in clean(text).split(",")):
        if not part:
            continue
        if re.fullmatch(r"[0-9]{1,4}", part):
            n = int(part)
            if not 1 <= n <= len(ports):
                raise AnswerError(
                    _("there is no port number {n}: choose from 1 to {last}").format(
                        n=n, last=len(ports)
                    )
                    if ports
                    else _("no port was found: type the device path, e.g. /dev/ttyUSB0")
                )
            path = ports[n - 1]
        elif part.startswith("/") and "\0" not in part and os.path.exists(part):
            path = part  # a port the listing does not know (another udev name, a test line)
        else:
            raise AnswerError(
                _("{part} is neither a number from the list nor an existing device path").format(
                    part=part[:60]
                )
            )
        if path not in chosen:
            chosen.append(path)
    if not chosen:
        raise AnswerError(_("choose at least one port (its number from the list)"))
    return chosen


def parse_id_list(text: str, example: str = "north-gate, b3-door") -> list[str]:
    ids: list[str] = []
    for part in (p.strip() for p in clean(text).split(",")):
        if not part:
            continue
        name = parse_name(part, "north-gate")
        if name in ids:
            raise AnswerError(_("{name} is listed twice").format(name=name))
        ids.append(name)
    if not ids:
        raise AnswerError(_("give at least one, separated by commas, e.g. {e}").format(e=example))
    return ids


def _channel(text: str, board: str, channels: int) -> int:
    """'CH3' or '3' as printed on the board (CH1 first) -> the config's 0-based channel."""
    m = re.fullmatch(r"(?i:ch)?\s*([0-9]{1,3})", text.strip())
    if m is None or not 1 <= int(m.group(1)) <= channels:
        raise AnswerError(
            _("board {board} has channels CH1 to CH{n}: type e.g. {board}/CH1").format(
                board=board, n=channels
            )
        )
    return int(m.group(1)) - 1


def parse_board_channel(text: str, boards: Mapping[str, int]) -> tuple[str, int] | None:
    """``board/CHn`` (the amplifier relay); empty means none."""
    t = clean(text)
    if not t:
        return None
    board, slash, ch = t.partition("/")
    board = board.strip()
    if not slash or board not in boards:
        raise AnswerError(_board_advice(boards))
    return board, _channel(ch, board, boards[board])


def _board_advice(boards: Mapping[str, int]) -> str:
    if not boards:
        return _("no relay board was found by the scan: leave this empty")
    listed = ", ".join(f"{b} (CH1..CH{n})" for b, n in boards.items())
    return _("write board/channel as printed on the board, e.g. {e}; boards: {listed}").format(
        e=f"{next(iter(boards))}/CH1", listed=listed
    )


def parse_zones(text: str, boards: Mapping[str, int]) -> list[tuple[int, str, int]]:
    """``1=relays-1/CH1, 2=relays-1/CH2`` -> [(zone, board, 0-based channel)]; empty: none."""
    zones: list[tuple[int, str, int]] = []
    used: dict[tuple[str, int], int] = {}
    for part in (p.strip() for p in clean(text).split(",")):
        if not part:
            continue
        number, eq, at = part.partition("=")
        if not eq:
            raise AnswerError(
                _("write each zone as number=board/channel, e.g. 1={e}").format(
                    e=f"{next(iter(boards), 'relays-1')}/CH1"
                )
            )
        zone = _number(number.strip(), 1, 64, _("a zone number"))
        if any(z == zone for z, _b, _c in zones):
            raise AnswerError(_("zone {n} is given twice").format(n=zone))
        where = parse_board_channel(at, boards)
        if where is None:
            raise AnswerError(_board_advice(boards))
        if where in used:
            raise AnswerError(
                _("zone {a} and zone {b} are on the same relay").format(a=used[where], b=zone)
            )
        used[where] = zone
        zones.append((zone, where[0], where[1]))
    return zones


def parse_yes_no(text: str, default: bool = True) -> bool:
    t = clean(text).lower()
    if t == "":
        return default
    if t in ("y", "yes", "是", "好", "对", "1"):
        return True
    if t in ("n", "no", "否", "不", "不是", "0"):
        return False
    raise AnswerError(_("answer y (yes) or n (no)"))


def parse_centre_url(text: str) -> str:
    """The district centre's https URL; empty: enroll later."""
    t = clean(text)
    if not t:
        return ""
    try:
        parts = urllib.parse.urlsplit(t)
        port = parts.port
        host = parts.hostname
    except ValueError:
        host, port, parts = None, None, None
    if parts is None or parts.scheme != "https" or not host or " " in t or port == 0:
        raise AnswerError(
            _("type the centre's address as given, e.g. https://centre.example.cn:8443")
        )
    return t


def parse_fingerprint(text: str) -> str:
    """The centre CA's SHA-256 fingerprint, given with the token (colons and spaces allowed)."""
    t = clean(text).lower()
    t = t.removeprefix("sha256:").replace(":", "").replace(" ", "")
    if re.fullmatch(r"[0-9a-f]{64}", t) is None:
        raise AnswerError(
            _("the fingerprint is 64 characters 0-9 and a-f (colons may be left in): copy it again")
        )
    return "sha256:" + t


def parse_snapshot_url(text: str) -> str:
    t = clean(text)
    try:
        parts = urllib.parse.urlsplit(t)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in t
        _port = parts.port
    except ValueError:
        ok = False
    if not ok:
        raise AnswerError(
            _("type the camera's snapshot address, e.g. http://10.0.0.20/snapshot.jpg")
        )
    return t


_VENDORS = {
    "hikvision": "hikvision", "hik": "hikvision", "海康": "hikvision", "海康威视": "hikvision",
    "dahua": "dahua", "大华": "dahua",
}  # fmt: skip


def parse_camera_source(text: str) -> tuple[str, str, int]:
    """Where a camera's snapshots come from: ``(profile, url or address, channel)``.

    A URL (profile http), ``hikvision ADDRESS [CHANNEL]`` / ``dahua ADDRESS [CHANNEL]`` (the
    family's snapshot URL follows; Chinese names too), or ``rtsp`` (one frame of the RTSP
    address, asked next).
    """
    from drivers.camera import MAX_CHANNEL, CameraError, parse_camera_address

    words = clean(text).split()
    first = words[0].lower() if words else ""
    if first == "rtsp" and len(words) == 1:
        return "rtsp", "", 1
    profile = _VENDORS.get(first)
    if profile is None:
        return "http", parse_snapshot_url(text), 1
    advice = _(
        "type hikvision or dahua, the camera's address and its channel (1 = the first), "
        "e.g. hikvision 10.0.0.64 1"
    )
    if len(words) not in (2, 3):
        raise AnswerError(advice)
    try:
        parse_camera_address(words[1])
    except CameraError:
        raise AnswerError(advice) from None
    channel = _number(words[2], 1, MAX_CHANNEL, _("the channel")) if len(words) == 3 else 1
    return profile, words[1], channel


def parse_rtsp_url(text: str) -> str:
    t = clean(text)
    if t and (not t.startswith("rtsp://") or " " in t):
        raise AnswerError(
            _("an RTSP address starts with rtsp://, e.g. rtsp://10.0.0.20:554/stream1")
        )
    return t


def parse_auth(text: str) -> str:
    t = clean(text).lower()
    if t not in ("digest", "basic", "none"):
        raise AnswerError(_("type digest, basic or none (most cameras: digest)"))
    return t


def parse_guard_id(text: str) -> str:
    t = clean(text)
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", t) is None:
        raise AnswerError(
            _("a guard number uses letters, digits, '-', '_' or '.', no spaces, e.g. g-017")
        )
    return t


def parse_count(text: str, lo: int, hi: int) -> int:
    return _number(clean(text), lo, hi, _("the number"))


def parse_time_of_day(text: str) -> str:
    """``22:00``, ``7:30`` or ``2200`` -> ``HH:MM``."""
    t = clean(text)
    m = re.fullmatch(r"([0-9]{1,2}):?([0-9]{2})", t) or re.fullmatch(r"([0-9]{1,2})()", t)
    if m is not None:
        hours, minutes = int(m.group(1)), int(m.group(2) or 0)
        if hours < 24 and minutes < 60:
            return f"{hours:02d}:{minutes:02d}"
    raise AnswerError(_("type a time of day as hours:minutes, 24-hour clock, e.g. 22:00"))


def parse_times(text: str) -> list[str]:
    out: list[str] = []
    for part in (p.strip() for p in clean(text).split(",")):
        if not part:
            continue
        t = parse_time_of_day(part)
        if t in out:
            raise AnswerError(_("{t} is listed twice").format(t=t))
        out.append(t)
    if not out:
        raise AnswerError(_("give at least one time, e.g. 12:30, 18:00"))
    return sorted(out)


def parse_every_hours(text: str) -> float:
    t = clean(text)
    if re.fullmatch(r"[0-9]{1,2}(\.[0-9]{1,2})?", t) is not None:
        hours = float(t)
        minutes = hours * 60
        if 0.25 <= hours <= 24 and abs(minutes - round(minutes)) < 1e-9:
            return hours
    raise AnswerError(_("type hours between 0.25 and 24, e.g. 2 (a round every 2 hours)"))


def parse_choice(text: str, n: int) -> int:
    return _number(clean(text), 1, n, _("the choice"))


# ============================================================================ asking


class Asker:
    """Asks questions, re-asks with advice, and keeps accepted answers (by key) for resume."""

    def __init__(
        self,
        saved: dict[str, str],
        save: Callable[[], None] = lambda: None,
        *,
        read_line: Callable[[str], str] = input,
        out: TextIO | None = None,
        read_secret: Callable[[str], str] | None = None,
    ) -> None:
        self.saved = saved
        self._save = save
        self.read_line = read_line
        self.out = out or sys.stdout
        self.read_secret = read_secret

    def _read(self, prompt: str) -> str:
        try:
            return self.read_line(prompt)
        except EOFError:
            raise InputEnded(_("input ended: the answers given so far are kept")) from None
        except UnicodeDecodeError:
            return "\x00"  # bytes that are not UTF-8: re-asked like any control character

    def value(
        self,
        key: str,
        question: str,
        parse: Callable[[str], T],
        default: str = "",
        *,
        remember: bool = True,
    ) -> T:
        """The answer to ``question``, parsed; the saved one when ``key`` was answered before."""
        if remember and key in self.saved:
            try:
                return parse(self.saved[key])
            except AnswerError:
                del self.saved[key]  # a saved answer the rules now refuse: ask again
        shown = f" [{default}]" if default else ""
        while True:
            text = self._read(f"{question}{shown}: ")
            if not text.strip() and default:
                text = default
            try:
                value = parse(text)
            except AnswerError as exc:
                self.out.write(f"  ! {exc.advice}\n")
                self.out.flush()
                continue
            if remember:
                self.saved[key] = text
                self._save()
            return value

    def confirm(self, question: str, default: bool = True) -> bool:
        hint = "[Y/n]" if default else "[y/N]"
        return self.value(
            "", f"{question} {hint}", lambda t: parse_yes_no(t, default), remember=False
        )

    def secret(self, prompt: str) -> str:
        """A secret, without echo; never saved. Empty answers are asked again."""
        import getpass

        reader = self.read_secret or getpass.getpass
        while True:
            try:
                text = reader(prompt)
            except EOFError:
                raise InputEnded(_("input ended: the answers given so far are kept")) from None
            text = text.strip()
            if text and all(unicodedata.category(c) != "Cc" for c in text):
                return text
            self.out.write(_("  ! nothing usable was typed: type it again") + "\n")
            self.out.flush()

    def forget(self, prefix: str) -> None:
        for key in [k for k in self.saved if k == prefix or k.startswith(prefix + ".")]:
            del self.saved[key]
        self._save()


# ============================================================================ before the scan


def interactive_answers(
    config_path: Path,
    asker: Asker,
    *,
    data_dir: str = "/var/lib/compound-gw",
    runtime_dir: str = "/run/compound-gw",
) -> Answers:
    """Questions that do not need the scan (who, where, which ports, centre address)."""
    print(_("Compound Gateway setup. Press Enter to accept [defaults]."))
    data: dict[str, Any] = {
        "gateway": {
            "id": asker.value(
                "gateway.id", _("gateway id (e.g. rose-garden-01)"), parse_gateway_id
            ),
            "compound": asker.value("gateway.compound", _("compound name"), parse_required_text),
            "township": asker.value("gateway.township", _("township"), parse_optional_text),
            "timezone": asker.value(
                "gateway.timezone", _("time zone"), parse_timezone, "Asia/Shanghai"
            ),
            "data_dir": data_dir,
            "runtime_dir": runtime_dir,
        }
    }
    ports = list_serial_ports()
    paths = [p.path for p in ports]
    if "ports.chosen" not in asker.saved:
        print(_("serial ports found:"))
        for i, p in enumerate(ports, 1):
            print(f"  {i}. {p.path}" + ("" if p.path == p.device else f" -> {p.device}"))
    chosen = asker.value(
        "ports.chosen",
        _("ports to scan (numbers or paths, comma-separated)"),
        lambda t: parse_ports(t, paths),
        ",".join(str(i) for i in range(1, len(ports) + 1)),
    )
    data["ports"] = []
    for n, path in enumerate(chosen, 1):
        name = asker.value(
            f"ports.{n}.name",
            _("bus name for {path}").format(path=path),
            lambda t: parse_name(t, "bus1"),
            f"bus{n}",
        )
        kind = asker.value(
            f"ports.{n}.kind",
            _("  wired to it: osdp (readers), modbus (relay boards) or auto"),
            parse_kind,
            "auto",
        )
        data["ports"].append({"path": path, "name": name, "kind": kind})
    centre = asker.value(
        "enroll.centre_url",
        _("district centre address (empty: enroll later)"),
        parse_centre_url,
    )
    data["enroll"] = {"centre_url": centre, "skip": not centre, "ca_fingerprint": ""}
    if centre:
        data["enroll"]["ca_fingerprint"] = asker.value(
            "enroll.ca_fingerprint", _("centre CA fingerprint (sha256:...)"), parse_fingerprint
        )
    return parse_answers(data, config_path.resolve().parent)


__all__ = [
    "AnswerError",
    "Asker",
    "InputEnded",
    "clean",
    "interactive_answers",
    "parse_auth",
    "parse_board_channel",
    "parse_camera_source",
    "parse_centre_url",
    "parse_choice",
    "parse_count",
    "parse_every_hours",
    "parse_fingerprint",
    "parse_gateway_id",
    "parse_guard_id",
    "parse_id_list",
    "parse_kind",
    "parse_name",
    "parse_optional_text",
    "parse_ports",
    "parse_required_text",
    "parse_rtsp_url",
    "parse_snapshot_url",
    "parse_time_of_day",
    "parse_times",
    "parse_timezone",
    "parse_yes_no",
    "parse_zones",
]
