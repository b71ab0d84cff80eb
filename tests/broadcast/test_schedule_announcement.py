"""A schedule entry naming a centre announcement: the held copy plays (hash verified), a missing
one is fetched first, a tampered or unobtainable one refuses the run with the reason recorded,
never another clip. The centre is a fake fetcher, the player a script that records what it got,
the clock a ManualClock; config errors name the key."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from gateway.broadcast.audio import AudioPlayer
from gateway.broadcast.config import AudioSection, BroadcastSection, ClipSection, ScheduleEntry
from gateway.broadcast.library import TAMPERED, UNAVAILABLE, UNKNOWN, AnnouncementCache
from gateway.broadcast.schedule import ScheduleTrigger
from gateway.clock import ManualClock
from gateway.config.schema import parse_section
from gateway.errors import ConfigError
from tests.broadcast.test_announcement_cache import GOOD, SHA, FakeCentre
from tests.broadcast.test_remote_audio import RecordingController

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
AT = dt.datetime(2026, 12, 5, 10, 0, tzinfo=SH).timestamp()  # a Saturday
ENTRY = ScheduleEntry(
    name="fraud-warning", time="10:00", zones=(1,), seconds=30.0, days=("sat",),
    announcement="fraud-2026-49", announcement_sha256=SHA,
)  # fmt: skip
RID = "schedule:fraud-warning@2026-12-05T10:00:00"


class Rig:
    def __init__(self, tmp_path: Path, centre: FakeCentre | None, *, audio: bool = True) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.ctl = RecordingController()
        self.marker = tmp_path / "played"
        script = tmp_path / "player.sh"
        script.write_text(f'#!/bin/sh\nsha256sum "$1" >> {self.marker}\n')
        script.chmod(0o755)
        (tmp_path / "local.wav").write_bytes(b"a local clip with the same id")
        section = AudioSection(
            enabled=True,
            command=(str(script),),
            repeat=False,
            clips=(ClipSection(announcement="fraud-2026-49", file="local.wav"),),
        )
        self.player = AudioPlayer(section, self.ctl.record, tmp_path) if audio else None
        self.cache = AnnouncementCache(tmp_path / "ann", centre, self.ctl.record)
        self.trigger = ScheduleTrigger(
            [ENTRY], self.ctl, ManualClock(wall=AT), cache=self.cache, audio=self.player
        )

    async def fire(self) -> None:
        await self.trigger.check(AT - 1.0, AT + 1.0)

    def kinds(self) -> list[str]:
        return [k for k, _ in self.ctl.records]

    def refusal(self) -> dict[str, Any]:
        refused = [p for k, p in self.ctl.records if k == "broadcast.schedule_refused"]
        assert len(refused) == 1, self.ctl.records
        return refused[0]

    async def played(self) -> str:
        assert self.player is not None
        await self.player.start(ENTRY.announcement, RID)
        for _ in range(500):
            if self.marker.exists() and self.marker.read_text():
                break
            await asyncio.sleep(0.01)
        await self.player.stop()
        return self.marker.read_text() if self.marker.exists() else ""


async def test_a_held_announcement_plays_without_the_link(tmp_path: Path) -> None:
    held = Rig(tmp_path, FakeCentre({SHA: GOOD}))
    await held.cache.ensure(ENTRY.announcement, SHA)  # fetched earlier (e.g. by a command)
    rig = Rig(tmp_path, None)  # the same cache folder, no link now
    await rig.fire()
    assert [s.request_id for s in rig.ctl.starts] == [RID]
    assert rig.ctl.starts[0].announcement == "fraud-2026-49"
    assert rig.ctl.records == []
    sha, path = (await rig.played()).split()
    assert sha == SHA and path.endswith(f"{SHA}.wav")  # the centre's file, not local.wav


async def test_a_missing_announcement_is_fetched_before_the_run_starts(tmp_path: Path) -> None:
    centre = FakeCentre({SHA: GOOD})
    rig = Rig(tmp_path, centre)
    await rig.fire()
    assert centre.calls == [0]
    assert rig.kinds() == ["broadcast.announcement_fetched"]
    assert [s.request_id for s in rig.ctl.starts] == [RID]
    assert (await rig.played()).split()[0] == SHA
    # fires once: the same window again starts nothing and fetches nothing
    await rig.fire()
    assert len(rig.ctl.starts) == 1 and centre.calls == [0]


async def test_a_tampered_held_copy_without_the_link_is_refused_and_recorded(
    tmp_path: Path,
) -> None:
    held = Rig(tmp_path, FakeCentre({SHA: GOOD}))
    await held.cache.ensure(ENTRY.announcement, SHA)
    (tmp_path / "ann" / f"{SHA}.wav").write_bytes(b"someone else's message")
    rig = Rig(tmp_path, None)
    await rig.fire()
    assert rig.ctl.starts == []
    assert rig.kinds() == ["broadcast.announcement_tampered", "broadcast.schedule_refused"]
    refused = rig.refusal()
    assert refused["code"] == UNAVAILABLE and "no link" in refused["reason"]
    assert refused["entry"] == "fraud-warning" and refused["sha256"] == SHA
    assert refused["run"] == "fraud-warning@2026-12-05T10:00:00"
    assert not (tmp_path / "ann" / f"{SHA}.wav").exists()


async def test_a_tampered_download_or_an_unknown_hash_is_refused_with_its_code(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path / "a", FakeCentre({SHA: GOOD + b"!"}))
    await rig.fire()
    assert rig.ctl.starts == [] and rig.refusal()["code"] == TAMPERED
    rig = Rig(tmp_path / "b", FakeCentre({}))
    await rig.fire()
    assert rig.ctl.starts == [] and rig.refusal()["code"] == UNKNOWN
    rig = Rig(tmp_path / "c", FakeCentre({SHA: GOOD}), audio=False)
    await rig.fire()
    assert rig.ctl.starts == [] and "no audio player" in rig.refusal()["reason"]


async def test_a_schedule_without_a_hash_needs_no_centre(tmp_path: Path) -> None:
    rig = Rig(tmp_path, None)
    local = ScheduleEntry(
        name="evening", time="10:00", zones=(1,), seconds=30.0, announcement="fraud-2026-49"
    )
    rig.trigger = ScheduleTrigger(
        [local], rig.ctl, ManualClock(wall=AT), cache=rig.cache, audio=rig.player
    )
    await rig.fire()
    assert len(rig.ctl.starts) == 1 and rig.ctl.records == []


def config(**entry: Any) -> dict[str, Any]:
    return {
        "ports": [{"port": "/dev/null", "boards": [{"name": "main", "address": 1}]}],
        "zones": [{"number": 1, "board": "main", "channel": 1}],
        "audio": {"enabled": True},
        "schedule": [
            {"name": "fraud", "time": "10:00", "zones": [1], "seconds": 60,
             "announcement": "fraud-2026-49", "announcement_sha256": SHA, **entry}
        ],
    }  # fmt: skip


def test_config_takes_a_centre_announcement_and_names_the_key_of_a_bad_one() -> None:
    sec = parse_section(BroadcastSection, config(), "broadcast")
    assert sec.schedule[0].announcement_sha256 == SHA
    for bad in ("9cb2", SHA.upper(), SHA + "0", "g" * 64):
        with pytest.raises(ConfigError, match="64 lowercase hex digits") as err:
            parse_section(BroadcastSection, config(announcement_sha256=bad), "broadcast")
        assert err.value.key == "broadcast.schedule[0].announcement_sha256"
    with pytest.raises(ConfigError, match="needs its id") as err:
        parse_section(BroadcastSection, config(announcement=""), "broadcast")
    assert err.value.key == "broadcast.schedule[0].announcement"
    no_audio = config()
    no_audio["audio"] = {"enabled": False}
    with pytest.raises(ConfigError, match="enabled = true") as err:
        parse_section(BroadcastSection, no_audio, "broadcast")
    assert err.value.key == "broadcast.schedule[0].announcement_sha256"


async def test_announcements_are_fetched_ahead_while_the_link_is_up(tmp_path: Path) -> None:
    centre = FakeCentre({SHA: GOOD})
    rig = Rig(tmp_path, centre)
    await rig.trigger.prefetch()
    assert centre.calls == [0] and rig.kinds() == ["broadcast.announcement_fetched"]
    assert (tmp_path / "ann" / f"{SHA}.wav").read_bytes() == GOOD
    await rig.trigger.prefetch()  # held: not fetched (nor hashed) again
    await rig.fire()  # the run uses the held copy
    assert centre.calls == [0] and [s.request_id for s in rig.ctl.starts] == [RID]
    # no link: nothing tried; an unknown hash is not retried before the hour is over
    offline = Rig(tmp_path / "b", None)
    await offline.trigger.prefetch()
    assert offline.ctl.records == []
    unknown = FakeCentre({})
    later = Rig(tmp_path / "c", unknown)
    await later.trigger.prefetch()
    await later.trigger.prefetch()
    assert unknown.calls == [0] and later.ctl.records == []


async def test_the_trigger_service_prefetches_in_the_background(tmp_path: Path) -> None:
    centre = FakeCentre({SHA: GOOD})
    rig = Rig(tmp_path, centre)
    rig.trigger.check_s = 0.01
    task = asyncio.create_task(rig.trigger.run())
    try:
        for _ in range(3000):
            if (tmp_path / "ann" / f"{SHA}.wav").exists():
                break
            await asyncio.sleep(0.01)
        assert (tmp_path / "ann" / f"{SHA}.wav").read_bytes() == GOOD
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("bad", ["..", ".", ".drafts", "-x", "a/b", "公告"])
def test_an_announcement_id_that_could_name_a_folder_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_section(BroadcastSection, config(announcement=bad), "broadcast")
    assert err.value.key == "broadcast.schedule[0].announcement"
