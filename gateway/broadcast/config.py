"""The ``[broadcast]`` configuration section (the lead wires it into GatewayConfig).

    section = parse_section(BroadcastSection, toml_data["broadcast"], "broadcast")
    layout = section.layout()

Example (TOML)::

    [broadcast]
    warmup_s = 2.0
    max_duration_s = 600
    amplifier = { board = "main", channel = 0 }

    [[broadcast.ports]]
    port = "/dev/ttyUSB1"
    boards = [{ name = "main", address = 1, profile = "waveshare_v2" }]

    [[broadcast.zones]]
    number = 1
    name = "north blocks"
    board = "main"
    channel = 1

    [[broadcast.schedule]]
    name = "evening-anti-theft"
    time = "19:30"
    zones = [1, 2, 3]
    seconds = 90

    [[broadcast.schedule]]              # a centre announcement, played only if its hash matches
    name = "weekly-fraud-warning"
    time = "10:00"
    days = ["sat"]
    zones = [1]
    seconds = 120
    announcement = "fraud-2026-49"
    announcement_sha256 = "9cb2..."     # 64 hex digits, from `compound-centre announce list`

    [broadcast.silent_test]             # weekly check of each zone's sound chain (off by default)
    enabled = true
    day = "mon"
    time = "10:30"
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from gateway.broadcast.plan import Layout, RelayRef
from gateway.config.schema import setting, timezone_problem

# An announcement id (wire.commands.ANNOUNCEMENT_RE): starts with a letter or digit, so never
# "." or ".."; empty where the setting is optional.
ANNOUNCEMENT_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}"
OPTIONAL_ANNOUNCEMENT_ID = f"(?:{ANNOUNCEMENT_ID})?"
NAME = r"[a-z0-9][a-z0-9_-]{0,39}"
SHA256_RE = re.compile(r"[0-9a-f]{64}")
AUDIO_ON = "set [broadcast.audio] enabled = true"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class BoardSection:
    name: str = setting(doc="board name, used by zones and the amplifier", pattern=NAME)
    address: int = setting(doc="Modbus address (1..247)", min=1, max=247)
    profile: Literal["coils", "waveshare_v2", "holding"] = setting(
        "coils", doc="board kind: coils, waveshare_v2 (hardware timed pulse) or holding"
    )
    channels: int = setting(8, min=1, max=32, doc="relay channels on the board")
    register_base: int = setting(1, min=0, max=65535, doc="holding profile: register of channel 1")
    hardware_timer: bool = setting(
        True, doc="use the board's own timed pulse where the profile has one"
    )


@dataclass(frozen=True, slots=True)
class PortSection:
    port: str = setting(doc="serial device of the RS-485 adapter (a udev symlink is best)")
    boards: tuple[BoardSection, ...] = setting(doc="boards on this bus", min_items=1)
    baud: int = setting(
        9600, choices=(2400, 4800, 9600, 19200, 38400, 57600, 115200), doc="line speed, 8N1"
    )
    timeout_s: float = setting(
        0.35, min=0.02, max=5.0, doc="one Modbus attempt waits this long for an answer"
    )
    retries: int = setting(1, min=0, max=3, doc="extra attempts after a timeout")
    deadline_s: float = setting(
        2.0, min=0.1, max=30.0, doc="a request (queue wait included) gives up after this"
    )


@dataclass(frozen=True, slots=True)
class RelaySection:
    board: str = setting(doc="board name", pattern=NAME)
    channel: int = setting(doc="channel on the board, from 0", min=0, max=31)


@dataclass(frozen=True, slots=True)
class ZoneSection:
    number: int = setting(doc="zone number operators use (1..64)", min=1, max=64)
    board: str = setting(doc="board name", pattern=NAME)
    channel: int = setting(doc="channel on the board, from 0", min=0, max=31)
    name: str = setting("", doc="what the zone covers")


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    name: str = setting(doc="entry name (in events)", pattern=NAME)
    time: str = setting(
        doc="local time HH:MM or HH:MM:SS", pattern=r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?"
    )
    zones: tuple[int, ...] = setting(doc="zone numbers", min_items=1)
    seconds: float = setting(doc="how long the zones stay on", min=1.0, max=6000.0)
    days: tuple[str, ...] = setting((), doc="mon..sun; empty means every day")
    announcement: str = setting(
        "", doc="announcement id (audio clip)", pattern=OPTIONAL_ANNOUNCEMENT_ID
    )
    announcement_sha256: str = setting(
        "",
        doc="sha256 of a centre announcement (64 lowercase hex digits): played only if the "
        "copy held, or fetched from the centre, hashes to it; empty: a local clip",
    )

    def check(self) -> Iterable[tuple[str, str]]:
        for i, day in enumerate(self.days):
            if day not in DAYS:
                yield f"days[{i}]", f"{day!r} is not one of {', '.join(DAYS)}"
        if self.announcement_sha256:
            if not SHA256_RE.fullmatch(self.announcement_sha256):
                why = "must be the announcement's sha256, 64 lowercase hex digits"
                yield "announcement_sha256", f"{why} (`compound-centre announce list` shows it)"
            if not self.announcement:
                yield "announcement", "a centre announcement (announcement_sha256) needs its id"


@dataclass(frozen=True, slots=True)
class ButtonSection:
    enabled: bool = setting(False, doc="duty-room button and status LED present")
    pin: str = setting("GPIO17", doc="gpiozero pin of the button")
    pull_up: bool = setting(True, doc="button wired to ground (internal pull-up)")
    bounce_s: float = setting(0.05, min=0.0, max=1.0, doc="debounce time")
    led_pin: str = setting("", doc="gpiozero pin of the status LED (empty: none)")
    zones: tuple[int, ...] = setting((), doc="zones the button plays (empty: all)")
    seconds: float = setting(60.0, min=1.0, max=6000.0, doc="broadcast length")
    lockout_s: float = setting(
        10.0,
        min=0.0,
        max=3600.0,
        doc="presses within this time of the last accepted one are refused",
    )
    announcement: str = setting(
        "", doc="announcement id (audio clip)", pattern=OPTIONAL_ANNOUNCEMENT_ID
    )


@dataclass(frozen=True, slots=True)
class ClipSection:
    announcement: str = setting(doc="announcement id", pattern=ANNOUNCEMENT_ID)
    file: str = setting(doc="WAV file played with aplay")


@dataclass(frozen=True, slots=True)
class AudioSection:
    enabled: bool = setting(False, doc="play clips through ALSA when the amplifier has no player")
    command: tuple[str, ...] = setting(("aplay", "-q"), doc="player command; the file is appended")
    clips: tuple[ClipSection, ...] = setting((), doc="announcement id -> file")
    default_file: str = setting("", doc="clip for broadcasts without a known announcement")
    repeat: bool = setting(True, doc="replay the clip until the broadcast ends")
    capture_command: tuple[str, ...] = setting(
        (),
        doc="proof of sound: command writing raw s16le mono 16 kHz PCM of the audio input to "
        "stdout (empty: no input wired, the step is 'not checked')",
    )
    capture_s: float = setting(
        3.0, doc="seconds of audio judged at the start of a broadcast", min=0.2, max=30.0
    )
    capture_delay_s: float = setting(
        0.5, doc="wait this long after the zones verify on", min=0.0, max=30.0
    )
    threshold_dbfs: float = setting(
        -45.0, doc="RMS at or above this is 'sound confirmed'", min=-100.0, max=0.0
    )
    cache_dir: str = setting(
        "announcements", doc="centre announcements fetched by hash (relative: to the data folder)"
    )


@dataclass(frozen=True, slots=True)
class SilentTestSection:
    """The weekly silent test: each zone in turn, a tone nobody notices, the input judged."""

    enabled: bool = setting(
        False, doc="run the weekly silent test (needs audio.enabled and audio.capture_command)"
    )
    day: str = setting("mon", doc="weekday, mon..sun", choices=DAYS)
    time: str = setting(
        "10:30", doc="local time HH:MM", pattern=r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?"
    )
    zones: tuple[int, ...] = setting((), doc="zones tested, one at a time (empty: all)")
    tone_hz: float = setting(25.0, min=10.0, max=8000.0, doc="tone frequency")
    tone_s: float = setting(2.0, min=0.02, max=10.0, doc="tone length")
    tone_dbfs: float = setting(-30.0, min=-60.0, max=-6.0, doc="tone level")
    lead_s: float = setting(
        0.5, min=0.0, max=5.0, doc="the capture runs this long before the tone starts"
    )
    retry_s: float = setting(
        900.0, min=10.0, max=21600.0, doc="a test skipped for a broadcast is tried again after"
    )

    def seconds(self, warmup_s: float) -> float:
        """How long the zone is held on at most (the test switches it off once judged)."""
        return warmup_s + self.lead_s + self.tone_s + 15.0


@dataclass(frozen=True, slots=True)
class BroadcastSection:
    enabled: bool = setting(True, doc="drive the broadcast relays")
    ports: tuple[PortSection, ...] = setting((), doc="RS-485 buses with relay boards")
    zones: tuple[ZoneSection, ...] = setting((), doc="loudspeaker zones")
    amplifier: RelaySection | None = setting(None, doc="amplifier power relay (optional)")
    warmup_s: float = setting(2.0, min=0.0, max=30.0, doc="amplifier warm-up before zones")
    max_duration_s: float = setting(
        600.0, min=1.0, max=6000.0, doc="longest broadcast accepted from any source"
    )
    hardware_grace_s: float = setting(
        5.0, min=0.5, max=60.0, doc="board timers release this long after the planned end"
    )
    poll_interval_s: float = setting(
        10.0, min=0.5, max=3600.0, doc="status poll of each board (finds stray relays)"
    )
    timezone: str = setting("", doc="time zone of the schedule (empty: the gateway's)")
    schedule: tuple[ScheduleEntry, ...] = setting((), doc="scheduled broadcasts")
    schedule_requires_synced_clock: bool = setting(
        False,
        doc="skip (and record) scheduled runs while the wall clock is not synchronised",
    )
    schedule_grace_s: float = setting(
        120.0, min=1.0, max=3600.0, doc="a run missed by more than this is recorded, not played"
    )
    button: ButtonSection = field(
        default_factory=ButtonSection, metadata={"doc": "duty-room button"}
    )
    audio: AudioSection = field(default_factory=AudioSection, metadata={"doc": "optional audio"})
    silent_test: SilentTestSection = field(
        default_factory=SilentTestSection, metadata={"doc": "weekly silent test per zone"}
    )

    def boards(self) -> dict[str, BoardSection]:
        return {b.name: b for p in self.ports for b in p.boards}

    def check(self) -> Iterable[tuple[str, str]]:
        if self.timezone:
            problem = timezone_problem(self.timezone)
            if problem is not None:
                yield "timezone", problem
        seen_boards: set[str] = set()
        for pi, port in enumerate(self.ports):
            addresses: set[int] = set()
            for bi, board in enumerate(port.boards):
                key = f"ports[{pi}].boards[{bi}]"
                if board.name in seen_boards:
                    yield f"{key}.name", f"board name {board.name!r} is used twice"
                if board.address in addresses:
                    yield f"{key}.address", f"address {board.address} is used twice on this bus"
                seen_boards.add(board.name)
                addresses.add(board.address)
        boards = self.boards()
        used: dict[tuple[str, int], str] = {}

        def claim(key: str, board: str, channel: int) -> Iterable[tuple[str, str]]:
            if board not in boards:
                yield f"{key}.board", f"no board named {board!r}"
                return
            if channel >= boards[board].channels:
                yield f"{key}.channel", f"{channel} is outside 0..{boards[board].channels - 1}"
            if (board, channel) in used:
                yield key, f"relay {board}:{channel} is already {used[(board, channel)]}"
            used[(board, channel)] = key

        if self.amplifier is not None:
            yield from claim("amplifier", self.amplifier.board, self.amplifier.channel)
        numbers: set[int] = set()
        for i, zone in enumerate(self.zones):
            if zone.number in numbers:
                yield f"zones[{i}].number", f"zone {zone.number} is defined twice"
            numbers.add(zone.number)
            yield from claim(f"zones[{i}]", zone.board, zone.channel)
        for i, entry in enumerate(self.schedule):
            for zi, z in enumerate(entry.zones):
                if z not in numbers:
                    yield f"schedule[{i}].zones[{zi}]", f"no zone {z}"
            if entry.seconds > self.max_duration_s:
                yield f"schedule[{i}].seconds", "is above max_duration_s"
            if entry.announcement_sha256 and not self.audio.enabled:
                why = "a centre announcement is played by the gateway"
                yield f"schedule[{i}].announcement_sha256", f"{why}: {AUDIO_ON}"
        yield from self._check_silent_test(numbers)
        for zi, z in enumerate(self.button.zones):
            if z not in numbers:
                yield f"button.zones[{zi}]", f"no zone {z}"
        # A button that is not there (no section, or enabled = false) starts nothing, so its
        # length (60 s by default) must not veto a shorter max_duration_s.
        if self.button.enabled and self.button.seconds > self.max_duration_s:
            yield "button.seconds", "is above max_duration_s"

    def _check_silent_test(self, numbers: set[int]) -> Iterable[tuple[str, str]]:
        test = self.silent_test
        if not test.enabled:
            return
        for zi, z in enumerate(test.zones):
            if z not in numbers:
                yield f"silent_test.zones[{zi}]", f"no zone {z}"
        if not self.audio.enabled:
            why = "the silent test plays its tone through the gateway"
            yield "silent_test.enabled", f"{why}: {AUDIO_ON}"
        if not self.audio.capture_command:
            why = "the silent test listens on the audio input"
            yield "silent_test.enabled", f"{why}: set [broadcast.audio] capture_command"
        if test.seconds(self.warmup_s) > self.max_duration_s:
            yield "silent_test.tone_s", "the test would hold a zone on longer than max_duration_s"

    def layout(self) -> Layout:
        """The pure core's view of this section."""
        amp = self.amplifier
        return Layout(
            zones={z.number: RelayRef(z.board, z.channel) for z in self.zones},
            amplifier=RelayRef(amp.board, amp.channel) if amp else None,
            warmup_s=self.warmup_s,
            max_duration_s=self.max_duration_s,
            hardware_grace_s=self.hardware_grace_s,
        )
