"""The weekly silent test on a real controller and journal (SQLite), an in-memory relay board,
a fake player (a script that leaves a marker naming the file it was given) and a fake recorder
at the capture command that loops the played WAV back onto a noise floor (or gives silence, a
flat disconnected input, or nothing at all). The schedule's clock is a ManualClock."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import time
import zoneinfo
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers.relays import BoardSpec, Priority
from gateway.broadcast.config import AudioSection, BroadcastSection, SilentTestSection
from gateway.broadcast.controller import BroadcastController
from gateway.broadcast.level import measure
from gateway.broadcast.plan import Layout, RelayRef, StartRequest
from gateway.broadcast.silent_test import (
    DISCONNECTED,
    NO_SOUND,
    PASSED,
    SilentTest,
    judge,
    tone_pcm,
)
from gateway.clock import ManualClock, SystemClock
from gateway.config.schema import parse_section
from gateway.errors import ConfigError
from gateway.journal import Journal

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
AT = dt.datetime(2026, 12, 7, 10, 30, tzinfo=SH).timestamp()  # a Monday, 10:30
WAIT_S = 30.0

# argv: mode (loop | floor | zero | stall), marker file, seconds of output at most
FAKE_RECORDER = """
import os, struct, sys, time, wave
mode, marker, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
def floor(n, k=0):
    return [((k + i) * 7919) % 41 - 20 for i in range(n)]   # a noise floor, about -60 dBFS
out = sys.stdout.buffer
def put(vals):
    out.write(struct.pack("<%dh" % len(vals), *vals)); out.flush()
if mode == "zero":
    put([0] * int(16000 * seconds)); sys.exit(0)
if mode == "floor":
    put(floor(int(16000 * seconds))); sys.exit(0)
if mode == "stall":
    time.sleep(600); sys.exit(0)
put(floor(4800))                               # 0.3 s before the tone, then wait for it
deadline = time.monotonic() + 20
while not (os.path.exists(marker) and open(marker).read().strip()):
    if time.monotonic() > deadline:
        sys.exit(1)
    time.sleep(0.02)
with wave.open(open(marker).read().split()[0]) as w:
    n = w.getnframes()
    tone = struct.unpack("<%dh" % n, w.readframes(n))
put([t + f for t, f in zip(tone, floor(n, 4800))])
put(floor(int(16000 * seconds)))
"""


class MemoryBank:
    """An in-memory relay board: writes take effect and read back; every write is logged."""

    def __init__(self, channels: int = 4) -> None:
        self.spec = BoardSpec(name="main", address=1, channels=channels)
        self.coils = [False] * channels
        self.log: list[tuple[int, bool]] = []

    async def read(self, *, priority: Priority = Priority.POLL) -> tuple[bool, ...]:
        return tuple(self.coils)

    async def write(
        self,
        states: Mapping[int, bool],
        *,
        hold_s: float | None = None,
        priority: Priority = Priority.CONTROL,
    ) -> tuple[bool, ...]:
        for ch, on in sorted(states.items()):
            self.coils[ch] = on
            self.log.append((ch, on))
        return tuple(self.coils)

    def on(self) -> list[int]:
        return [ch for ch, on in enumerate(self.coils) if on]


@dataclass
class Rig:
    controller: BroadcastController
    journal: Journal
    bank: MemoryBank
    test: SilentTest
    clock: ManualClock
    marker: Path

    async def events(self, kind: str) -> list[dict[str, Any]]:
        evs = await self.journal.read_after(0, limit=10_000)
        return [dict(e.payload) for e in evs if e.kind == kind]

    async def kinds(self) -> list[str]:
        return [e.kind for e in await self.journal.read_after(0, limit=10_000)]


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, mode: str, **test: Any) -> AsyncIterator[Rig]:
    marker = tmp_path / "played"
    player = tmp_path / "player.sh"
    player.write_text(f'#!/bin/sh\necho "$1" > {marker}.tmp && mv {marker}.tmp {marker}\n')
    player.chmod(0o755)
    recorder = tmp_path / "fake_arecord.py"
    recorder.write_text(FAKE_RECORDER)
    audio = AudioSection(
        enabled=True,
        command=(str(player),),
        capture_command=(sys.executable, str(recorder), mode, str(marker), "5"),
    )
    section = SilentTestSection(
        enabled=True, day="mon", time="10:30", tone_s=1.0, lead_s=0.3, retry_s=600.0, **test
    )
    bank = MemoryBank()
    layout = Layout(
        zones={1: RelayRef("main", 1), 2: RelayRef("main", 2)},
        amplifier=RelayRef("main", 0),
        warmup_s=0.1,
        hardware_grace_s=1.0,
    )
    journal = await Journal.open(tmp_path / "journal.db", gateway_id="gw-test", clock=SystemClock())
    controller = BroadcastController(layout, {"main": bank}, journal, SystemClock())
    clock = ManualClock(wall=AT)
    silent = SilentTest(
        section, audio, controller, clock, zones=[1, 2], warmup_s=0.1, tone_dir=tmp_path / "ann"
    )
    task = asyncio.create_task(controller.run())
    try:
        await asyncio.wait_for(controller.ready.wait(), WAIT_S)
        yield Rig(controller, journal, bank, silent, clock, marker)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()


async def eventually(what: str, check: Any) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_a_tone_on_the_input_passes_and_the_relays_end_off(tmp_path: Path) -> None:
    async with rig(tmp_path, "loop", zones=(2,)) as r:
        await r.test.check(AT - 1.0, AT + 1.0)
        [result] = await r.events("broadcast.selftest")
        assert result["result"] == PASSED and result["zone"] == 2 and result["relays_off"] is True
        assert result["rms_dbfs"] > -45.0 and result["tone_hz"] == 25.0
        assert "broadcast.no_sound" not in await r.kinds()
        # amplifier and zone 2 on (never zone 1), then everything off
        assert (0, True) in r.bank.log and (2, True) in r.bank.log and (1, True) not in r.bank.log
        assert r.bank.on() == []
        played = Path(r.marker.read_text().strip())
        assert played.name == "silent-test-25hz-1s--30dbfs.wav"
        [requested] = [e for e in await r.events("broadcast.requested") if e["source"] == "test"]
        assert requested["status"] == "Test" and requested["zones"] == [2]
        # fires once a week: the same window again does nothing
        await r.test.check(AT - 1.0, AT + 1.0)
        assert len(await r.events("broadcast.selftest")) == 1


@pytest.mark.parametrize(("mode", "verdict"), [("floor", "silence"), ("zero", "disconnected")])
async def test_silence_or_a_disconnected_input_fails_with_the_no_sound_alert(
    tmp_path: Path, mode: str, verdict: str
) -> None:
    async with rig(tmp_path, mode, zones=(1,)) as r:
        await r.test.check(AT - 1.0, AT + 1.0)
        [result] = await r.events("broadcast.selftest")
        want = NO_SOUND if mode == "floor" else DISCONNECTED
        assert result["result"] == want and result["verdict"] == verdict
        [alert] = await r.events("broadcast.no_sound")
        assert alert["test"] == "silent" and alert["zone"] == 1 and alert["result"] == NO_SOUND
        assert r.bank.on() == [] and result["relays_off"] is True


async def test_skipped_during_a_broadcast_retried_later_that_day(tmp_path: Path) -> None:
    async with rig(tmp_path, "loop", zones=(1,)) as r:
        ticket = r.controller.submit_start(StartRequest("b1", (1, 2), 60.0, "cli", "drill"))
        await ticket.wait("on", timeout=WAIT_S)
        await r.test.check(AT - 1.0, AT + 1.0)
        [skip] = await r.events("broadcast.selftest_skipped")
        assert skip["zone"] == 1 and skip["final"] is False and skip["retry_at"] == "10:40"
        assert "broadcast" in skip["reason"]
        assert await r.events("broadcast.selftest") == []
        assert sorted(r.bank.on()) == [0, 1, 2]  # the broadcast plays on, untouched
        assert not [e for e in await r.events("broadcast.requested") if e["source"] == "test"]
        # before the retry time nothing happens; after it (the broadcast over) the test runs
        r.controller.submit_stop("cli", "drill over")
        await ticket.wait("done", timeout=WAIT_S)
        await r.test.check(AT + 1.0, AT + 300.0)
        assert await r.events("broadcast.selftest") == []
        await r.test.check(AT + 300.0, AT + 601.0)
        results = await r.events("broadcast.selftest")
        assert len(results) == 1, await r.events("broadcast.selftest_skipped")
        result = results[0]
        assert result["result"] == PASSED and r.bank.on() == []


async def test_still_busy_at_the_end_of_the_day_is_recorded_as_final(tmp_path: Path) -> None:
    async with rig(tmp_path, "loop", zones=(1,)) as r:
        ticket = r.controller.submit_start(StartRequest("b1", (1,), 60.0, "cli", "drill"))
        await ticket.wait("on", timeout=WAIT_S)
        await r.test.check(AT - 1.0, AT + 1.0)
        late = AT + 14 * 3600.0  # 00:30 the next day
        await r.test.check(AT + 1.0, late)
        skips = await r.events("broadcast.selftest_skipped")
        assert [s["final"] for s in skips] == [False, True]
        assert skips[-1]["zones"] == [1] and "broadcast" in skips[-1]["reason"]
        r.controller.submit_stop("cli", "drill over")
        await ticket.wait("done", timeout=WAIT_S)
        await r.test.check(late, late + 60.0)
        assert await r.events("broadcast.selftest") == []


async def test_a_broadcast_replaces_the_test_and_is_not_stopped_by_it(tmp_path: Path) -> None:
    async with rig(tmp_path, "stall", zones=(1,)) as r:
        running = asyncio.create_task(r.test.test_zone(1, "manual"))
        await eventually("the zone on", lambda: 1 in r.bank.on())
        ticket = r.controller.submit_start(StartRequest("b1", (2,), 60.0, "remote", "order"))
        await ticket.wait("on", timeout=WAIT_S)
        outcome = await asyncio.wait_for(running, WAIT_S)
        assert outcome["result"] == "skipped" and "broadcast" in outcome["reason"]
        await asyncio.sleep(0.2)  # a stray stop would be taken from the inbox by now
        assert sorted(r.bank.on()) == [0, 2] and r.controller.phase == "on"
        assert ticket.outcome("done") is None


async def test_cancelled_mid_test_the_relays_go_off(tmp_path: Path) -> None:
    async with rig(tmp_path, "stall", zones=(1,)) as r:
        running = asyncio.create_task(r.test.test_zone(1, "manual"))
        await eventually("the zone on", lambda: 1 in r.bank.on())
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await eventually("relays off", lambda: r.bank.on() == [] and r.controller.phase == "idle")
        [stop] = await r.events("broadcast.stop_requested")
        assert stop["playing"] == "selftest:manual:zone1"


def test_a_short_tick_is_found_where_the_whole_capture_reads_silence() -> None:
    floor = tone_pcm(3000.0, 1.5, -80.0)  # a faint floor under the tick
    tick = tone_pcm(1000.0, 0.04, -30.0)
    at = 16000 * 2 // 2 * 2  # 0.5 s in (bytes, whole frames)
    pcm = bytearray(floor)
    for i in range(0, len(tick), 2):
        a = int.from_bytes(pcm[at + i : at + i + 2], "little", signed=True)
        b = int.from_bytes(tick[i : i + 2], "little", signed=True)
        pcm[at + i : at + i + 2] = (a + b).to_bytes(2, "little", signed=True)
    assert measure(bytes(pcm)).verdict == "silence"  # diluted over 1.5 s
    result, level = judge(bytes(pcm), 0.04, -45.0)
    assert result == PASSED and level.samples == 640
    assert judge(bytes(floor), 0.04, -45.0)[0] == NO_SOUND
    assert judge(bytes(3200), 0.04, -45.0)[0] == DISCONNECTED


def config(**silent: Any) -> dict[str, Any]:
    return {
        "ports": [{"port": "/dev/null", "boards": [{"name": "main", "address": 1}]}],
        "zones": [{"number": 1, "board": "main", "channel": 1}],
        "audio": {"enabled": True, "capture_command": ["arecord"]},
        "silent_test": {"enabled": True, **silent},
    }


def test_config_off_by_default_and_errors_name_the_key() -> None:
    sec = parse_section(BroadcastSection, {"zones": []}, "broadcast")
    assert sec.silent_test.enabled is False
    sec = parse_section(BroadcastSection, config(day="sun", zones=[1]), "broadcast")
    assert sec.silent_test.day == "sun" and sec.silent_test.zones == (1,)
    cases: list[tuple[dict[str, Any], str, str]] = [
        (config(day="funday"), "broadcast.silent_test.day", "sun"),
        (config(zones=[7]), "broadcast.silent_test.zones[0]", "no zone 7"),
        (config(time="10h30"), "broadcast.silent_test.time", "."),
        (config(tone_s=0.001), "broadcast.silent_test.tone_s", "0.02"),
        ({**config(), "max_duration_s": 5}, "broadcast.silent_test.tone_s", "max_duration_s"),
    ]
    no_input = config()
    no_input["audio"] = {"enabled": True}
    cases.append((no_input, "broadcast.silent_test.enabled", "capture_command"))
    no_player = config()
    no_player["audio"] = {"enabled": False, "capture_command": ["arecord"]}
    cases.append((no_player, "broadcast.silent_test.enabled", "enabled = true"))
    for data, key, words in cases:
        with pytest.raises(ConfigError, match=words) as err:
            parse_section(BroadcastSection, data, "broadcast")
        assert err.value.key == key, (key, err.value)


async def test_a_stop_naming_another_request_leaves_the_broadcast_alone(tmp_path: Path) -> None:
    async with rig(tmp_path, "loop") as r:
        ticket = r.controller.submit_start(StartRequest("b1", (1,), 60.0, "cli", "drill"))
        await ticket.wait("on", timeout=WAIT_S)
        r.controller.submit_stop("test", "silent test over", request_id="selftest:old:zone1")
        probe = r.controller.submit_start(StartRequest("probe", (9,), 1.0, "cli"))
        assert (await probe.wait("refused", timeout=WAIT_S))["reason"].startswith("unknown zone")
        assert r.controller.phase == "on" and sorted(r.bank.on()) == [0, 1]
        assert await r.events("broadcast.stop_requested") == []
        r.controller.submit_stop("test", "", request_id="b1")  # naming it: it stops
        assert (await ticket.wait("done", timeout=WAIT_S))["verified"] is True
        assert r.bank.on() == []


def test_the_status_page_says_what_the_silent_test_found_in_chinese() -> None:
    from gateway.events import Event
    from gateway.web.render import LoginInfo, render_dashboard
    from gateway.web.view import build_view

    t = AT + 60.0

    def ev(seq: int, kind: str, payload: dict[str, Any]) -> Event:
        return Event(seq, kind, "evidence", payload, t + seq, t + seq, "boot", True)

    events = [
        ev(1, "broadcast.selftest_skipped", {"zone": 1, "reason": "a broadcast is under way"}),
        ev(2, "broadcast.selftest", {"zone": 2, "result": "disconnected", "verdict": "x"}),
        ev(3, "broadcast.schedule_refused", {"entry": "fraud", "reason": "no link"}),
    ]
    view = build_view(
        events, {}, {"events": 3}, now=t + 100, tz="Asia/Shanghai", gateway_id="gw", compound="C"
    )
    page = render_dashboard(view, login=LoginInfo(logged_in=False), refresh_s=0, lang="zh-CN")
    for words in (
        "每周静音测试已推迟",
        "正在广播",
        "每周静音测试",
        "音频输入未连接",
        "定时广播被拒绝",
    ):
        assert words in page, words
    assert "selftest" not in page and "disconnected" not in page


async def test_the_duty_room_button_during_a_silent_test_starts_a_broadcast(
    tmp_path: Path,
) -> None:
    from gateway.broadcast.button import ButtonTrigger
    from gateway.broadcast.config import ButtonSection

    async with rig(tmp_path, "stall", zones=(1,)) as r:
        running = asyncio.create_task(r.test.test_zone(1, "manual"))
        await eventually("the zone on", lambda: 1 in r.bank.on())
        assert r.controller.active_source == "test"
        button = ButtonTrigger(
            ButtonSection(enabled=True, zones=(2,), seconds=30.0),
            r.controller,
            SystemClock(),
            all_zones=(1, 2),
        )
        await button.pressed(SystemClock().monotonic())
        outcome = await asyncio.wait_for(running, WAIT_S)
        assert outcome["result"] == "skipped"
        [press] = await r.events("broadcast.button")
        assert press["decision"] == "start"  # not "stop": the test is not a broadcast
        await eventually("the button's zone on", lambda: sorted(r.bank.on()) == [0, 2])
        assert r.controller.active_source == "button"


async def test_the_runtime_wires_it_and_keeps_the_clip_and_the_prover_out(tmp_path: Path) -> None:
    """build_runtime from a parsed section: the service is there; a test request plays only
    the tone (not the default clip) and leaves the broadcast's sound prover alone."""
    from gateway.broadcast.service import build_runtime

    marker = tmp_path / "played"
    player = tmp_path / "player.sh"
    player.write_text(f'#!/bin/sh\necho "$1" >> {marker}\n')
    player.chmod(0o755)
    recorder = tmp_path / "fake_arecord.py"
    recorder.write_text(FAKE_RECORDER)
    data = {
        "ports": [{"port": "/dev/null", "boards": [{"name": "main", "address": 1}]}],
        "zones": [{"number": 1, "board": "main", "channel": 1}],
        "warmup_s": 0.0,
        "audio": {
            "enabled": True,
            "command": [str(player)],
            "default_file": "default.wav",
            "capture_command": [sys.executable, str(recorder), "floor", str(marker), "5"],
            "capture_delay_s": 0.0,
        },
        "silent_test": {"enabled": True, "tone_s": 0.5, "lead_s": 0.2},
    }
    section = parse_section(BroadcastSection, data, "broadcast")
    journal = await Journal.open(tmp_path / "journal.db", gateway_id="gw-test", clock=SystemClock())
    bank = MemoryBank()
    runtime = build_runtime(
        section, journal, SystemClock(), banks={"main": bank}, base_dir=tmp_path
    )
    [silent] = [s for s in runtime.services if isinstance(s, SilentTest)]
    task = asyncio.create_task(runtime.controller.run())
    try:
        await asyncio.wait_for(runtime.controller.ready.wait(), WAIT_S)
        outcome = await silent.test_zone(1, "manual")
        assert outcome["result"] == NO_SOUND and bank.on() == []
        lines = marker.read_text().split()
        assert [Path(p).name for p in lines] == ["silent-test-25hz-0.5s--30dbfs.wav"]
        assert Path(lines[0]).parent == tmp_path / "announcements"
        kinds = [e.kind for e in await journal.read_after(0, limit=1000)]
        assert "broadcast.sound" not in kinds and "broadcast.selftest" in kinds
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()
