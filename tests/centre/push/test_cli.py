"""``compound-centre push``: the day's bulletin from the centre's own store to the robots, once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from centre.cli import main
from tests.bulletins.test_cli import seed
from tests.centre.push.conftest import KEY
from tests.centre.push.mock_robot import MockRobot

ROOT = Path(__file__).resolve().parents[3]


class ThreadedRobot:
    """The mock robot on its own event loop in a thread (the CLI runs its own loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mock-robot")
        self.thread.start()
        self.robot: MockRobot = self._call(self._start())

    def _call(self, coro, timeout: float = 30):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    async def _start(self) -> MockRobot:
        robot = MockRobot(keys={KEY}, clock=time.time)
        await robot.start()
        return robot

    def wait_held(self, timeout: float) -> None:
        async def held() -> None:
            await asyncio.wait_for(self.robot.held.wait(), timeout)

        try:
            self._call(held(), timeout + 5)
        except TimeoutError:
            raise AssertionError(f"no request reached the robot in {timeout} s") from None

    def release(self) -> None:
        self.loop.call_soon_threadsafe(self.robot.release.set)

    def close(self) -> None:
        self._call(self.robot.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture
def threaded_robot() -> Iterator[ThreadedRobot]:
    r = ThreadedRobot()
    try:
        yield r
    finally:
        r.close()


def configure(data: Path, groups: dict[str, str]) -> None:
    entries = []
    for i, (group, url) in enumerate(groups.items()):
        f = data / f"robot-{i}.url"
        f.write_text(url)
        os.chmod(f, 0o600)
        entries.append(f'[[robot]]\ngroup = "{group}"\nwebhook_file = "{f.name}"\n')
    (data / "push.toml").write_text("\n".join(entries))


def test_push_daily_sends_once_and_status_says_so(
    tmp_path: Path, threaded_robot: ThreadedRobot, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(tmp_path)
    mock = threaded_robot.robot
    configure(tmp_path, {"district leaders": mock.url(KEY), "police": mock.url("wrong-key-0000")})
    argv = ["--data", str(tmp_path), "push", "daily", "--date", "2026-11-02"]

    assert main(argv) == 1  # the police robot's key is wrong
    out = capsys.readouterr().out
    assert "district leaders: done, 1 part(s) sent now" in out
    assert "police: failed, 0 part(s) sent now: errcode 93000: invalid webhook url" in out
    assert len(mock.accepted) == 1
    text = mock.accepted[0].content
    assert (
        "2026-11-02 巡逻日报" in text and "**Rose Garden**" in text and "需说明的小区（1）" in text
    )

    assert main(argv) == 1  # again: nothing more for the leaders; the failed part waits
    assert "district leaders: done, 0 part(s) sent now" in capsys.readouterr().out
    assert len(mock.accepted) == 1

    assert main(["--data", str(tmp_path), "push", "status", "--date", "2026-11-02"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "2026-11-02 district leaders part 1/1: sent",
        "2026-11-02 police part 1/1: failed: errcode 93000 invalid webhook url, hint: [mock]",
    ]
    assert main(["--data", str(tmp_path), "push", "status", "--json"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(r["group"], r["state"], r["attempts"]) for r in rows] == [
        ("district leaders", "sent", 1),
        ("police", "failed", 1),
    ]
    assert all(KEY not in json.dumps(r) for r in rows)

    mock.keys.add("wrong-key-0000")  # the district fixes the robot; the operator retries
    assert main([*argv, "--retry-failed"]) == 0
    assert "police: done, 1 part(s) sent now" in capsys.readouterr().out
    assert sorted(r.key for r in mock.accepted) == sorted([KEY, "wrong-key-0000"])


def test_push_daily_refuses_a_bad_config_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(tmp_path)
    (tmp_path / "push.toml").write_text('[[robot]]\ngroup = "x"\nwebhook_file = "missing.url"\n')
    assert main(["--data", str(tmp_path), "push", "daily", "--date", "2026-11-02"]) == 2
    assert "cannot read the webhook file" in capsys.readouterr().err


def test_sigterm_mid_post_lets_the_post_finish_and_be_recorded(
    tmp_path: Path, threaded_robot: ThreadedRobot, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(tmp_path)
    mock = threaded_robot.robot
    mock.hold_at = 1  # the robot takes the message and holds its reply
    configure(tmp_path, {"district leaders": mock.url(KEY)})
    argv = ["--data", str(tmp_path), "push", "daily", "--date", "2026-11-02"]
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "centre.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
            cwd=ROOT,
        )
    try:
        threaded_robot.wait_held(timeout=60)
        proc.send_signal(signal.SIGTERM)  # systemd stops the centre mid-POST
        deadline = time.monotonic() + 60
        while "stop requested" not in errors.read_text():
            assert time.monotonic() < deadline, f"SIGTERM not handled: {errors.read_text()}"
            time.sleep(0.05)
        threaded_robot.release()
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = errors.read_text()
    assert KEY not in out + err
    assert "district leaders: stopped, 1 part(s) sent now" in out, err
    assert proc.returncode == 1

    assert main(argv) == 0  # the next run has nothing left: the part was recorded as sent
    assert "district leaders: done, 0 part(s) sent now" in capsys.readouterr().out
    assert main(["--data", str(tmp_path), "push", "status"]) == 0
    assert capsys.readouterr().out.splitlines() == ["2026-11-02 district leaders part 1/1: sent"]
    assert len(mock.accepted) == 1


def test_push_alerts_once_pushes_what_is_new_and_refuses_a_config_without_alerts(
    tmp_path: Path, threaded_robot: ThreadedRobot, capsys: pytest.CaptureFixture[str]
) -> None:
    from centre.store import NewAlert, SqliteRepository

    seed(tmp_path)
    mock = threaded_robot.robot
    configure(tmp_path, {"district leaders": mock.url(KEY)})
    argv = ["--data", str(tmp_path), "push", "alerts", "--once"]
    assert main(argv) == 2  # no [alerts] table: nothing would ever be pushed
    assert "no alert kind is routed" in capsys.readouterr().err

    with (tmp_path / "push.toml").open("a") as f:
        f.write('\n[alerts.tamper]\ngroups = ["district leaders"]\n')
    assert main(argv) == 0  # the first scan places the cursors: history is not pushed
    assert "0 alert message(s) newly owed" in capsys.readouterr().out

    async def alert() -> None:
        async with await SqliteRepository.open(tmp_path / "centre.db") as repo:
            new = NewAlert("journal.edited/gw-rose/3", "journal.edited", "gw-rose", 3, 1.8e9, {})
            assert await repo.add_alerts([new], time.time()) == 1

    asyncio.run(alert())
    assert main(argv) == 0
    assert "1 alert message(s) newly owed, 1 delivered now" in capsys.readouterr().out
    assert main(argv) == 0
    assert "0 alert message(s) newly owed, 0 delivered now" in capsys.readouterr().out
    assert len(mock.accepted) == 1
    text = mock.accepted[0].content
    assert "防篡改告警" in text and "**Rose Garden**（North）" in text and "日志记录被改动" in text

    assert main(["--data", str(tmp_path), "push", "status"]) == 0
    assert "sent" in capsys.readouterr().out


def test_push_alerts_without_a_centre_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(tmp_path, {"district leaders": f"https://qyapi.example/send?key={KEY}"})
    with (tmp_path / "push.toml").open("a") as f:
        f.write('\n[alerts.tamper]\ngroups = ["district leaders"]\n')
    assert main(["--data", str(tmp_path), "push", "alerts", "--once"]) == 2
    assert "has no centre database" in capsys.readouterr().err
