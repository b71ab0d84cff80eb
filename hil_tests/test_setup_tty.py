"""``compound-gw setup`` at a real terminal (tmux), in Chinese, from an empty machine to patrols.

What an installer does, typos included, against simulated devices and a real centre on
loopback TLS: two readers in install mode on one RS-485 line, a relay board on another, a
camera. The test reads the screen (``tmux capture-pane``) and types (``send-keys``):

1. a wrong gateway id, a zone mapping naming a board that does not exist, a wrong camera
   password and a wrong enrollment token: each is refused with advice and asked again, the
   answers before it kept;
2. the guard is enrolled by tapping the wristband, the route recorded by walking it (tapping
   both readers in order), a schedule chosen from the patterns with tomorrow's rounds shown;
3. the wizard is interrupted (Ctrl-C) at the schedule question and run again: nothing
   answered is asked again (resume means resume);
4. the real daemon runs on what was written: the guard's taps are credited to a round that
   ``compound-gw patrol today`` shows; a second guard is added with ``compound-gw guards add``
   while the daemon runs (the wristband from the tap it journals), and the daemon reloads
   (SIGHUP) without a restart: that guard's next tap is known.

Every wait is for text on the screen or an event in the journal, with a generous timeout and
the screen in the failure message; nothing sleeps and hopes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import tomli_w

from hil_tests.compound import LoopThread
from hil_tests.harness import DaemonProcess
from hil_tests.line import Rs485Bus
from hil_tests.sims.camera import CameraSim
from hil_tests.sims.osdp_reader import ReaderBench, journal_events
from hil_tests.sims.relay_board import RelayBoardSim, SimBoard
from tests.sync.conftest import Centre, centre, centre_dir  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parents[1]
TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
GUARD_BAND = "04a1b2c3d4e5f6"
SECOND_BAND = "04b2c3d4e5f607"
ANY_BAND = "0badcafe0001"
CAMERA_PASSWORD = "right-horse-battery"
WAIT_S = 180.0  # generous: the machine is shared and the bus scan alone takes ~20 s

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Terminal:
    """One tmux server of our own (its own socket), one session per program run."""

    def __init__(self, folder: Path) -> None:
        self.socket = str(folder / "tmux.sock")
        self.session = ""
        self.seen: dict[str, int] = {}

    def tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-u", "-S", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return out.stdout

    def run(self, session: str, argv: list[str], env: dict[str, str]) -> None:
        """Start ``argv`` in a new 200x50 session; ``__EXIT=<code>`` is printed when it ends."""
        self.session = session
        self.seen = {}
        words = " ".join(f"{k}={v}" for k, v in env.items())
        cmd = " ".join(argv)
        shell = f"cd {REPO} && env {words} {cmd}; echo __EXIT=$?; sleep 600"
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", session, "-x", "200", "-y",
                  "50", shell)  # fmt: skip
        self.tmux("set-option", "-t", session, "history-limit", "20000")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", self.session)

    def expect(self, needle: str, timeout: float = WAIT_S) -> str:
        """Wait until ``needle`` is on the screen once more than when last expected."""
        want = self.seen.get(needle, 0) + 1
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            count = text.count(needle)
            if count >= want:
                self.seen[needle] = count
                return text
            if "__EXIT=" in text and needle != "__EXIT=":
                raise AssertionError(f"the program ended before {needle!r}:\n{text[-6000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not on screen in {timeout} s:\n{text[-6000:]}")
            time.sleep(0.2)

    def type(self, text: str) -> None:
        if text:
            self.tmux("send-keys", "-t", self.session, "-l", text)
        self.tmux("send-keys", "-t", self.session, "Enter")

    def answer(self, prompt: str, text: str, timeout: float = WAIT_S) -> None:
        self.expect(prompt, timeout)
        self.type(text)

    def interrupt(self) -> None:
        self.tmux("send-keys", "-t", self.session, "C-c")

    def close(self) -> None:
        subprocess.run(
            ["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=30, check=False
        )


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    # A short socket path (AF_UNIX paths are limited to 108 bytes).
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gwtmux-") as folder:
        term = Terminal(Path(folder))
        try:
            yield term
        finally:
            term.close()


def wait_for(check: Callable[[], bool], timeout: float, what: str | Callable[[], str]) -> None:
    """``what`` may be a function, called on failure, so the message shows the last state."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"{said}: not within {timeout} s")
        time.sleep(0.2)


def patrol_day(start_local: dt.datetime, window_min: int, summary_hour: int = 8) -> str:
    """The patrol day a round belongs to: its window ends after D at summary_hour."""
    end = start_local + dt.timedelta(minutes=window_min)
    return (end - dt.timedelta(hours=summary_hour, seconds=1)).date().isoformat()


def run_cli(argv: list[str], *, lang: str = "en", timeout: float = 120) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "COMPOUND_GW_LANG": lang},
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


async def test_setup_at_a_terminal_in_chinese(
    tmp_path: Path,
    terminal: Terminal,
    centre: Centre,  # noqa: F811
) -> None:
    token = await centre.token("玫瑰园", township="North")
    loop = LoopThread()
    relay_line = Rs485Bus(host_link=tmp_path / "tty-relays", baud=9600, devices=1).start()
    board = SimBoard(1, "waveshare_v2", channels=8)
    relays = RelayBoardSim(relay_line.device_paths[0], [board], baudrate=9600)
    camera = CameraSim("gate", username="admin", password=CAMERA_PASSWORD, auth="digest")
    readers = ReaderBench(tmp_path / "bench", {"a": 2}, install_mode=(("a", 1), ("a", 2)))
    daemon: DaemonProcess | None = None
    try:
        loop.run(relays.__aenter__())
        loop.run(camera.__aenter__())
        readers.start()
        site = tmp_path / "site"
        site.mkdir()
        config = site / "gateway.toml"
        start = await asyncio.to_thread(
            installer_session,
            terminal,
            config,
            readers,
            relay_line.host_path,
            camera,
            centre,
            token,
        )

        # The gateway can do patrol work: the data file holds the guard, route and schedule.
        data = (site / "patrol-data.toml").read_text()
        assert GUARD_BAND in data and 'guard = "g-017"' in data and "main-rounds" in data
        state = json.loads((site / "gateway.toml.setup-state.json").read_text())
        assert "right-horse-battery" not in json.dumps(state) and token not in json.dumps(state)

        # 4. the daemon on what was written; a bench clock (counts as synchronised)
        # A test daemon serves its page on loopback, on a free port (not the field's 8080).
        written = tomllib.loads(config.read_text())
        written["web"] = {**written.get("web", {}), "host": "127.0.0.1", "port": 0}
        config.write_text(tomli_w.dumps(written))
        # The bench clock (it counts as synchronised, as NTP would) starts 20 s before the round
        # that was scheduled: a gateway judges no round that began before its journal did.
        anchor = time.time()
        daemon = DaemonProcess(
            config,
            env={"GPIOZERO_PIN_FACTORY": "mock", "COMPOUND_GW_LANG": "en"},
            args=("--sim-clock", f"{start.timestamp() - 20}@{anchor}", "--sim-rate", "1"),
        )
        await asyncio.to_thread(daemon.start, 60)
        await asyncio.to_thread(daemon_work, daemon, config, readers, start, anchor + 21)
        assert await asyncio.to_thread(daemon.terminate) == 0
    finally:
        if daemon is not None:
            daemon.close()
        readers.stop()
        loop.run(camera.__aexit__(None, None, None))
        loop.run(relays.__aexit__(None, None, None))
        loop.stop()
        relay_line.stop()


def installer_session(
    term: Terminal,
    config: Path,
    readers: ReaderBench,
    relay_path: str,
    camera: CameraSim,
    centre: Centre,  # noqa: F811
    token: str,
) -> dt.datetime:
    """The installer's whole session; returns the start of the round scheduled (local)."""
    argv = [sys.executable, "-m", "gateway.setup", "setup", "--config", str(config),
            "--data-dir", "data", "--runtime-dir", "run"]  # fmt: skip
    env = {"COMPOUND_GW_LANG": "zh-CN", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    reader_path = readers.lines["a"].host_path
    term.run("wizard", argv, env)

    # 1. who and where; a wrong id is refused with advice in words and asked again
    term.answer("网关编号（例如 rose-garden-01）", "Rose Garden 01")
    term.expect("请用小写字母、数字和“-”")
    term.answer("网关编号（例如 rose-garden-01）", "rose-garden-01")
    term.answer("小区名称", "玫瑰园")
    term.answer("街道/乡镇", "")
    term.answer("时区", "")
    term.answer("要扫描的串口", f"{reader_path},{relay_path}")
    term.answer(f"{reader_path} 的总线名称", "readers")
    term.answer("上面接的是", "osdp")
    term.answer(f"{relay_path} 的总线名称", "relays")
    term.answer("上面接的是", "modbus")
    term.answer("分局中心地址", centre.url)
    term.answer("中心 CA 指纹", "sha256:" + centre.fingerprint)

    # 2. scan, pairing; checkpoints named by tapping (questions that need the scan come after it)
    term.answer("巡更点编号，按刷卡的顺序", "north-gate, b3-door", timeout=240)
    term.expect("请在巡更点 'north-gate'")
    readers.reader("a", 1).tap(ANY_BAND)
    term.expect("请在巡更点 'b3-door'")
    readers.reader("a", 2).tap(ANY_BAND)
    term.expect("已刷卡：读卡器 readers/2 是巡更点 'b3-door'")

    # guards: the wristband comes from the tap, the number and name are typed
    term.expect("请在任意读卡器上刷下一位保安的腕带")
    readers.reader("a", 1).tap(GUARD_BAND)
    term.answer("  保安编号（例如 g-017）", "g-017")
    term.answer("  保安姓名", "张三")
    term.answer("再登记一位保安吗？", "n")

    # the route, recorded by walking it
    term.answer("路线编号", "")
    term.answer("路线名称", "北线")
    term.answer("一次巡逻经过几个巡更点", "")
    term.expect("现在请像保安一样走一遍路线")
    readers.reader("a", 1).tap(ANY_BAND)
    term.expect("1. north-gate（起点）")
    readers.reader("a", 2).tap(ANY_BAND)
    term.expect("2. b3-door（走了")
    term.answer("采用这些行走时间吗？", "y")

    # 3. Ctrl-C at the schedule question, then run again: nothing answered is asked again
    term.expect("请选择 1、2 或 3")
    term.interrupt()
    term.expect("在步骤 schedule 停止")
    term.expect("__EXIT=")
    assert "__EXIT=1" in term.screen()
    term.run("wizard-again", argv, env)
    screen = term.expect("请选择 1、2 或 3")
    for step in ("ports", "scan", "pair", "name", "guards", "route"):
        assert f"步骤 {step}：之前已完成，跳过" in screen, screen
    assert "网关编号" not in screen and "小区名称" not in screen, "asked again after resume"

    # the schedule: fixed times, one round that started five minutes ago, tomorrow previewed
    start = dt.datetime.now(TZ) - dt.timedelta(minutes=5)
    term.type("2")
    term.answer("巡逻开始时间", f"{start:%H:%M}")
    term.answer("一次巡逻从开始起最多可用多少分钟", "120")
    term.expect("明天的巡逻：")
    term.answer("采用这个计划吗？", "y")

    # relays: a board that does not exist is refused with the boards the scan found
    term.expect("relays-1：通道 CH1 到 CH8")
    term.answer("广播分区", "4=relays-2/ch1")
    term.expect("请按板上印的写“板/通道”")
    term.answer("广播分区", "1=relays-1/CH2")
    term.answer("功放电源继电器", "relays-1/CH1")
    term.answer("分区 1 有没有咔嗒声/声音？", "y")

    # cameras: a wrong password is refused by the camera itself, and asked again
    term.answer("摄像头名称（留空：没有更多摄像头）", "gate")
    term.answer("抓图地址", camera.snapshot_url)
    term.answer("RTSP 地址（留空：没有）", "")
    term.answer("登录方式", "")
    term.answer("用户名", "")
    term.answer("摄像头名称（留空：没有更多摄像头）", "")
    term.answer("摄像头 gate 的密码", "wrong-staple-77")
    term.expect("摄像头 gate 拒绝了或没有应答")
    term.answer("重新输入密码吗？", "y")
    term.answer("摄像头 gate 的密码", CAMERA_PASSWORD)

    # enrollment: a wrong token is refused by the centre, and asked again
    term.answer("一次性注册令牌", "not-the-token")
    term.expect("注册失败")
    term.answer("重新输入令牌吗？", "y")
    term.answer("一次性注册令牌", token)

    screen = term.expect("安装完成。下一步：1. 启动守护进程")
    term.expect("__EXIT=")
    assert "__EXIT=0" in term.screen(), screen[-4000:]
    assert "Traceback" not in screen
    assert "警告" not in screen, "the wizard warns although guards, route and schedule exist"
    for secret in (CAMERA_PASSWORD, "wrong-staple-77", token):
        assert secret not in screen
    return start.replace(second=0, microsecond=0)


def daemon_work(
    daemon: DaemonProcess, config: Path, readers: ReaderBench, start: dt.datetime, round_open: float
) -> None:
    """``round_open``: the real time at which the bench clock is inside the round's window."""
    status = config.parent / "run" / "status.json"

    def online() -> bool:
        try:
            board = json.loads(status.read_text())
        except (OSError, ValueError):
            return False
        rows = board.get("readers", {}).get("readers", [])
        return len(rows) == 2 and all(r.get("online") and r.get("sc_active") for r in rows)

    wait_for(online, WAIT_S, "readers online in Secure Channel under the daemon")
    journal = config.parent / "data" / "journal.db"

    def taps_by(guard: str, n: int) -> Callable[[], bool]:
        return lambda: len([e for e in journal_events(journal, "tap")
                            if e.payload.get("guard") == guard]) >= n  # fmt: skip

    wait_for(lambda: time.time() >= round_open, 60, "the round's window opening (bench clock)")
    readers.reader("a", 1).tap(GUARD_BAND)
    wait_for(taps_by("g-017", 1), WAIT_S, "g-017's tap at north-gate journaled")
    readers.reader("a", 2).tap(GUARD_BAND)
    wait_for(taps_by("g-017", 2), WAIT_S, "g-017's tap at b3-door journaled")
    assert not journal_events(journal, "unknown_wristband")

    # the round is credited and `patrol today` shows it
    day = patrol_day(start, 120)

    seen: list[str] = []

    def credited() -> bool:
        rc, out = run_cli(["patrol", "today", "--config", str(config), "--day", day, "--json"])
        assert rc == 0, out
        seen[:] = [out]
        rows = json.loads(out)
        return any(r["route"] == "main" and r["done"] == "2/2" and "g-017" in r["guards"]
                   for r in rows)  # fmt: skip

    wait_for(
        credited, WAIT_S, lambda: f"the round credited with both checkpoints (day {day}): {seen}"
    )
    rc, text = run_cli(["patrol", "today", "--config", str(config), "--day", day], lang="zh-CN")
    assert rc == 0 and "main-rounds@" in text and "g-017" in text, text

    # the status page shows the round too (in Chinese), from what the patrol service publishes
    listen = json.loads(status.read_text())["web"]["listen"]
    page: list[str] = []

    def on_the_page() -> bool:
        url = f"http://{listen}/?lang=zh-CN"
        with urllib.request.urlopen(url, timeout=10) as resp:
            page[:] = [resp.read().decode("utf-8")]
        return "g-017" in page[0] and f"{start:%H:%M}" in page[0] and "2/2" in page[0]

    wait_for(on_the_page, WAIT_S, lambda: f"the round on the status page: {page[-1:]}")
    assert "今天的巡逻" in page[0], page[0][:2000]

    # a second guard added while the daemon runs: wristband from the journaled unknown tap
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "guards", "add", "--config", str(config),
         "--guard", "g-023", "--name", "李四", "--timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        env={**os.environ, "COMPOUND_GW_LANG": "zh-CN", "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "请在任意读卡器上刷新腕带" in first, first
        readers.reader("a", 1).tap(SECOND_BAND)
        out, _ = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0, first + out
    assert "守护进程已重新加载：现在生效" in out, out
    (reloaded,) = journal_events(journal, "config.reloaded")
    assert reloaded.payload["guards"] == 2
    # the dedupe window is per reader and wristband: the other reader is a new tap
    readers.reader("a", 2).tap(SECOND_BAND)
    wait_for(taps_by("g-023", 1), WAIT_S, "g-023 known after the reload, without a restart")
    assert daemon.starts == 1
