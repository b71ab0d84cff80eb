"""Alerts to the group robots (the local mock of the webhook API): an Actual broadcast, a tamper
alert and a gateway offline each arrive once, in Chinese, naming the compound; only the kinds
the config routes; once per outage; exactly once across a restart; hostile config refused."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import i18n
from centre.commands.issue import summarise
from centre.commands.store import NewCommand, SqliteCommandStore
from centre.push.alerts import (
    ACTUAL_BROADCAST,
    GATEWAY_DOWN,
    TAMPER,
    Alert,
    AlertConfig,
    Place,
    alert_markdown,
    load_alert_config,
    parse_alert_config,
)
from centre.push.outbox import DAILY, SENT, PushOutbox
from centre.push.plan import MESSAGES_PER_MINUTE
from centre.push.robot import PushConfigError, Robot
from centre.push.scan import AlertScanner, CentreAlertSource
from centre.push.sender import RobotSender
from centre.store import NewAlert, SqliteRepository
from tests.bulletins.helpers import event, registry, upload
from tests.centre.push.conftest import START, VirtualClock
from tests.centre.push.mock_robot import MockRobot
from wire.commands import BroadcastStart

Opener = Callable[[], Awaitable[PushOutbox]]
Maker = Callable[..., RobotSender]
H = 3600.0
TZ = "Asia/Shanghai"
CONSOLE = "https://centre.example.org"
GATEWAYS = [
    ("gw-rose", "玫瑰园小区", "东湖街道"),
    ("gw-lily", "百合苑", "东湖街道"),
    ("gw-pine", "松林小区", "西山镇"),
]


def routes(*kinds: str, group: str = "district leaders", hours: float = 2.0) -> AlertConfig:
    return AlertConfig(
        {k: (group,) for k in kinds}, down_hours=hours, console_url=CONSOLE, scan_s=60.0
    )


@pytest.fixture
async def centre(tmp_path: Path) -> AsyncIterator[SqliteRepository]:
    """The centre's database: three compounds, each heard from at START."""
    repo = await registry(tmp_path, GATEWAYS)
    for gw, _c, _t in GATEWAYS:
        await upload(repo, gw, [event(1, "health.state", {"state": "up"}, START)], now=START)
    try:
        yield repo
    finally:
        await repo.close()


@pytest.fixture
async def commands(tmp_path: Path, centre: SqliteRepository) -> AsyncIterator[SqliteCommandStore]:
    store = await SqliteCommandStore.open(tmp_path / "centre.db")
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def source(
    tmp_path: Path, centre: SqliteRepository, commands: SqliteCommandStore
) -> AsyncIterator[CentreAlertSource]:
    s = await CentreAlertSource.open(tmp_path / "centre.db")
    try:
        yield s
    finally:
        await s.close()


async def broadcast(
    store: SqliteCommandStore, gateways: list[str], status: str, *, at: float, by: str
) -> None:
    """One order queued for several gateways, as the console's issue() queues it."""
    summary = summarise(BroadcastStart((1,), 60.0, "fire-drill", status))
    for gw in gateways:

        def build(seq: int, gw: str = gw) -> NewCommand:
            return NewCommand(f"cmd-{gw}-{seq}", "broadcast.start", summary, at, at + 120, b"{}")

        await store.enqueue(gw, build, now=at, issued_by=by)


def scanner_for(
    source: CentreAlertSource,
    outbox: PushOutbox,
    sender: RobotSender,
    robot: Robot,
    config: AlertConfig,
    clock: VirtualClock,
) -> AlertScanner:
    return AlertScanner(
        source, outbox, sender, [robot], config, tz=TZ, clock=clock, sleep=clock.sleep
    )


def local(at: float) -> str:
    return i18n.format_datetime(at, TZ, "zh-CN")


async def test_each_kind_arrives_once_with_its_text_naming_the_compound(
    open_outbox: Opener,
    make_sender: Maker,
    robot: Robot,
    mock_robot: MockRobot,
    clock: VirtualClock,
    centre: SqliteRepository,
    commands: SqliteCommandStore,
    source: CentreAlertSource,
) -> None:
    outbox = await open_outbox()
    config = routes(ACTUAL_BROADCAST, TAMPER, GATEWAY_DOWN)
    scanner = scanner_for(source, outbox, make_sender(outbox), robot, config, clock)
    # History from before alerts were switched on is not pushed.
    await centre.add_alerts([NewAlert("old", "journal.fork", "gw-lily", 1, START, {})], START)
    assert await scanner.scan_once() == 0

    t = START + 600
    await broadcast(commands, ["gw-rose", "gw-lily"], "Actual", at=t, by="console:王警官")
    await broadcast(commands, ["gw-pine"], "Exercise", at=t, by="console:王警官")
    await centre.add_alerts(
        [NewAlert("journal.edited/gw-pine/7", "journal.edited", "gw-pine", 7, t + 5, {})], t + 6
    )
    await upload(
        centre,
        "gw-rose",
        [event(2, "tamper.open", {"input": "cabinet"}, t + 9)],
        now=t + 10,
        batch="b2",
    )
    clock.now = t + 60
    assert await scanner.scan_once() == 3
    assert await scanner.scan_once() == 0  # found once, however often it looks
    assert await scanner.deliver_owed("district leaders") == 3
    assert await scanner.deliver_owed("district leaders") == 0

    texts = [r.content for r in mock_robot.accepted]
    assert [r.errcode for r in mock_robot.requests] == [0, 0, 0]
    actual, edited, opened = texts
    assert "实战广播" in actual and "已对 2 个小区下达实战广播" in actual
    assert "玫瑰园小区" in actual and "百合苑" in actual and "松林小区" not in actual
    assert "下达人：王警官" in actual and local(t) in actual
    assert f"({CONSOLE}/console/broadcast)" in actual
    assert "防篡改告警" in edited and "**松林小区**（西山镇）：日志记录被改动" in edited
    assert local(t + 5) in edited
    assert "/console/compound?township=%E8%A5%BF%E5%B1%B1%E9%95%87&name=" in edited
    assert "玫瑰园小区" in opened and "设备箱防拆开关被打开" in opened and local(t + 9) in opened
    for text in texts:  # what a person reads: names and local times, no ids or epoch numbers
        assert "gw-" not in text and "cmd-" not in text and str(int(t)) not in text
        assert not re.search(r"\b1[67]\d{8}\b", text)

    parts = await outbox.parts()
    assert {p.kind for p in parts} == {ACTUAL_BROADCAST, TAMPER}
    assert all(p.state == SENT for p in parts)
    assert {p.subject for p in parts} == {"玫瑰园小区、百合苑", "松林小区", "玫瑰园小区"}


async def test_a_kind_not_routed_is_never_pushed(
    open_outbox: Opener,
    make_sender: Maker,
    robot: Robot,
    mock_robot: MockRobot,
    clock: VirtualClock,
    centre: SqliteRepository,
    commands: SqliteCommandStore,
    source: CentreAlertSource,
) -> None:
    outbox = await open_outbox()
    scanner = scanner_for(source, outbox, make_sender(outbox), robot, routes(TAMPER), clock)
    await scanner.scan_once()
    await broadcast(commands, ["gw-rose"], "Actual", at=START + 60, by="cli")
    await centre.add_alerts(
        [NewAlert("buddy/1", "buddy_tap", "gw-lily", 3, START + 70, {})], START + 70
    )
    clock.now = START + 10 * H  # every gateway long silent: not routed either
    assert await scanner.scan_once() == 1
    await scanner.deliver_owed("district leaders")
    texts = [r.content for r in mock_robot.accepted]
    assert len(texts) == 1 and "百合苑" in texts[0] and "疑似代打卡" in texts[0]
    assert not any("实战广播" in x or "网关离线" in x for x in texts)


async def test_a_gateway_down_is_pushed_after_n_hours_once_per_outage_and_its_return(
    open_outbox: Opener,
    make_sender: Maker,
    robot: Robot,
    mock_robot: MockRobot,
    clock: VirtualClock,
    centre: SqliteRepository,
    source: CentreAlertSource,
) -> None:
    outbox = await open_outbox()
    config = routes(GATEWAY_DOWN, hours=2.0)
    scanner = scanner_for(source, outbox, make_sender(outbox), robot, config, clock)

    async def heard(gw: str, seq: int, at: float) -> None:
        await upload(
            centre, gw, [event(seq, "health.state", {"state": "up"}, at)], now=at, batch=f"b{seq}"
        )

    async def scan_at(at: float) -> list[str]:
        clock.now = at
        for gw, *_ in GATEWAYS[1:]:  # lily and pine keep in touch
            await heard(gw, int(at), at)
        await scanner.scan_once()
        before = len(mock_robot.accepted)
        await scanner.deliver_owed("district leaders")
        return [r.content for r in mock_robot.accepted[before:]]

    assert await scan_at(START + 1 * H) == []
    assert await scan_at(START + 2 * H - 60) == []  # not yet more than 2 h
    (down,) = await scan_at(START + 2 * H + 60)
    assert "网关离线" in down and "**玫瑰园小区**（东湖街道）" in down
    assert "已超过 2 小时未与中心联系" in down and f"最后联系时间：{local(START)}" in down
    assert await scan_at(START + 3 * H) == []  # the same outage: not again
    await outbox.close()  # a restart: the outage is remembered
    outbox = await open_outbox()
    scanner = scanner_for(source, outbox, make_sender(outbox), robot, config, clock)
    assert await scan_at(START + 3.5 * H) == []

    await heard("gw-rose", 5, START + 4 * H)
    (back,) = await scan_at(START + 4 * H + 30)
    assert "网关恢复" in back and "离线约 4 小时后已恢复联系" in back
    assert f"恢复时间：{local(START + 4 * H)}" in back
    assert await scan_at(START + 5 * H) == []
    (again,) = await scan_at(START + 6 * H + 120)  # a new outage is a new message
    assert "网关离线" in again and local(START + 4 * H) in again


async def test_a_restart_in_the_middle_neither_repeats_nor_skips_an_alert(
    open_outbox: Opener,
    make_sender: Maker,
    robot: Robot,
    mock_robot: MockRobot,
    clock: VirtualClock,
    centre: SqliteRepository,
    commands: SqliteCommandStore,
    source: CentreAlertSource,
) -> None:
    outbox = await open_outbox()
    config = routes(ACTUAL_BROADCAST, TAMPER)
    sender = make_sender(outbox)
    scanner = scanner_for(source, outbox, sender, robot, config, clock)
    await scanner.scan_once()
    new = [
        NewAlert(f"journal.deleted/gw-lily/{i}", "journal.deleted", "gw-lily", i, START + i, {})
        for i in range(1, 5)
    ]
    await centre.add_alerts(new, START + 10)
    assert await scanner.scan_once() == 4

    mock_robot.hold_at = 2  # the robot holds the second alert's POST: the centre stops then
    delivery = asyncio.create_task(scanner.deliver_owed("district leaders"))
    await asyncio.wait_for(mock_robot.held.wait(), 30)
    sender.request_stop()
    mock_robot.release.set()
    await asyncio.wait_for(delivery, 30)
    # The POST under way was finished and recorded; nothing after it was tried.
    assert [p.state for p in await outbox.parts()] == [SENT, SENT, "pending", "pending"]
    await outbox.close()
    mock_robot.hold_at = None

    await centre.add_alerts(  # found while the centre was down
        [NewAlert("journal.fork/gw-pine/9", "journal.fork", "gw-pine", 9, START + 20, {})],
        START + 20,
    )
    outbox = await open_outbox()
    scanner = scanner_for(source, outbox, make_sender(outbox), robot, config, clock)
    assert await scanner.scan_once() == 1
    assert await scanner.deliver_owed("district leaders") == 3

    texts = [r.content for r in mock_robot.accepted]
    assert len(texts) == len(mock_robot.requests) == 5
    assert [local(START + i) in x for i, x in zip([1, 2, 3, 4, 20], texts, strict=True)] == [
        True
    ] * 5
    assert "松林小区" in texts[4] and "日志出现分叉" in texts[4]
    assert all(p.state == SENT and not p.in_doubt for p in await outbox.parts())


async def test_alerts_share_the_robots_twenty_a_minute_with_the_daily_bulletin(
    open_outbox: Opener,
    make_sender: Maker,
    robot: Robot,
    mock_robot: MockRobot,
    clock: VirtualClock,
    centre: SqliteRepository,
    commands: SqliteCommandStore,
    source: CentreAlertSource,
) -> None:
    outbox = await open_outbox()
    sender = make_sender(outbox)
    scanner = scanner_for(source, outbox, sender, robot, routes(TAMPER), clock)
    await scanner.scan_once()
    await outbox.enqueue("2025-12-04", robot.group, [f"日报 {i}" for i in range(18)], now=clock())
    assert (await sender.deliver(robot, "2025-12-04")).sent == 18
    await centre.add_alerts(
        [NewAlert(f"buddy/{i}", "buddy_tap", "gw-rose", i, START, {}) for i in range(5)], START
    )
    assert await scanner.scan_once() == 5
    assert await scanner.deliver_owed(robot.group) == 5
    assert [r.errcode for r in mock_robot.requests] == [0] * 23  # never throttled by the robot
    times = sorted(r.at for r in mock_robot.accepted)
    assert times[MESSAGES_PER_MINUTE] - times[0] >= 60.0
    kinds = [p.kind for p in await outbox.parts()]
    assert kinds.count(DAILY) == 18 and kinds.count(TAMPER) == 5


async def test_the_scan_loop_delivers_until_stopped(
    open_outbox: Opener,
    make_sender: Maker,
    robot: Robot,
    mock_robot: MockRobot,
    clock: VirtualClock,
    centre: SqliteRepository,
    source: CentreAlertSource,
) -> None:
    outbox = await open_outbox()
    scanner = scanner_for(source, outbox, make_sender(outbox), robot, routes(TAMPER), clock)
    await scanner.scan_once()
    loop = asyncio.create_task(scanner.run())
    await centre.add_alerts([NewAlert("fork/1", "journal.fork", "gw-rose", 1, START, {})], START)
    await mock_robot.wait_requests(1)
    scanner.request_stop()
    await asyncio.wait_for(loop, 30)
    assert len(mock_robot.accepted) == 1 and "日志出现分叉" in mock_robot.accepted[0].content


# -- the config ------------------------------------------------------------------------------

GROUPS = ["district leaders", "police"]


def test_a_config_routes_kinds_to_named_groups(tmp_path: Path) -> None:
    robots = [Robot(g, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k") for g in GROUPS]
    path = tmp_path / "push.toml"
    path.write_text("[[robot]]\ngroup = 'x'\nwebhook_file = 'x.url'\n", encoding="utf-8")
    assert load_alert_config(path, robots) is None  # no [alerts]: off
    path.write_text(
        "[alerts]\nconsole_url = 'https://centre.example.org'\n"
        "[alerts.tamper]\ngroups = ['police', 'district leaders']\n"
        "[alerts.gateway_down]\ngroups = ['police']\nhours = 3.5\nrecovery = false\n",
        encoding="utf-8",
    )
    config = load_alert_config(path, robots)
    assert config is not None
    assert config.groups(TAMPER) == ("police", "district leaders")
    assert config.groups(ACTUAL_BROADCAST) == ()
    assert config.groups(GATEWAY_DOWN) == ("police",) and config.down_hours == 3.5
    assert config.groups("gateway_up") == ()  # recovery = false


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"tamper": {"groups": ["nobody"]}}, "alerts.tamper.groups[0]"),
        ({"tamper": {"groups": []}}, "alerts.tamper.groups"),
        ({"tamper": {"groups": ["police", "police"]}}, "alerts.tamper.groups[1]"),
        ({"tamper": ["police"]}, "alerts.tamper"),
        ({"gateway_down": {"groups": ["police"], "hours": -1}}, "alerts.gateway_down.hours"),
        ({"gateway_down": {"groups": ["police"], "hours": math.nan}}, "alerts.gateway_down.hours"),
        ({"gateway_down": {"groups": ["police"], "hours": True}}, "alerts.gateway_down.hours"),
        ({"gateway_down": {"groups": ["police"], "hours": 1e9}}, "alerts.gateway_down.hours"),
        (
            {"gateway_down": {"groups": ["police"], "recovery": "yes"}},
            "alerts.gateway_down.recovery",
        ),
        ({"tamper": {"groups": ["police"], "hours": 2}}, "alerts.tamper.hours"),
        ({"console_url": "javascript:alert(1)"}, "alerts.console_url"),
        ({"console_url": "https://x.example/a b"}, "alerts.console_url"),
        ({"console_url": "https://x.example/?a=1"}, "alerts.console_url"),
        ({"scan_seconds": 0}, "alerts.scan_seconds"),
        ({"tampr": {"groups": ["police"]}}, "alerts.tampr"),
    ],
)
def test_a_wrong_config_is_refused_naming_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(PushConfigError) as err:
        parse_alert_config(table, GROUPS)
    assert str(err.value.reason).startswith(key + ":")


toml_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from([*GROUPS, "https://centre.example.org", "groups", "hours"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "groups",
                    "hours",
                    "recovery",
                    "console_url",
                    "scan_seconds",
                    ACTUAL_BROADCAST,
                    TAMPER,
                    GATEWAY_DOWN,
                    "x",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(toml_values)
def test_any_config_loads_or_raises_only_push_config_error(value: object) -> None:
    try:
        config = parse_alert_config(value, GROUPS)
    except PushConfigError as exc:
        assert exc.reason and "\n" not in exc.reason
        return
    for kind in (ACTUAL_BROADCAST, TAMPER, GATEWAY_DOWN):
        assert set(config.groups(kind)) <= set(GROUPS)
    assert math.isfinite(config.down_hours) and config.down_hours > 0


# -- the text and the outbox file ------------------------------------------------------------


def test_names_are_inert_and_english_is_available() -> None:
    hostile = Place("<b>北</b>", "[点我](http://evil.example) **x**")
    alert = Alert("alert:tamper:a1", TAMPER, (hostile,), START, "buddy_tap")
    text = alert_markdown(alert, tz=TZ, console_url=CONSOLE)
    assert "](http://evil" not in text and "<b>" not in text and "\uff3b点我\uff3d" in text
    link = re.search(r"\[在控制台查看\]\((\S+)\)$", text)
    assert link and link.group(1).startswith(f"{CONSOLE}/console/compound?township=%3Cb%3E")
    english = alert_markdown(alert, "en", tz=TZ)
    assert "Tamper alert" in english and "suspected proxy tap" in english
    assert "console" not in english  # no console_url: no link
    many = Alert(
        "alert:actual_broadcast:c1",
        ACTUAL_BROADCAST,
        tuple(Place("东湖街道", f"小区{i:02d}") for i in range(25)),
        START,
    )
    text = alert_markdown(many, tz=TZ)
    assert "已对 25 个小区下达实战广播" in text and "另有 5 个小区" in text
    assert "小区19" in text and "小区20" not in text and "下达人" not in text


async def test_an_outbox_from_before_the_alerts_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "push.db")
    db.executescript(
        "CREATE TABLE push_parts (day TEXT NOT NULL, grp TEXT NOT NULL, part INTEGER NOT NULL,"
        " parts INTEGER NOT NULL, content TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending',"
        " attempts INTEGER NOT NULL DEFAULT 0, errcode INTEGER, detail TEXT NOT NULL DEFAULT '',"
        " in_doubt INTEGER NOT NULL DEFAULT 0, enqueued_at REAL NOT NULL, sent_at REAL,"
        " PRIMARY KEY (day, grp, part));"
        "INSERT INTO push_parts (day, grp, part, parts, content, enqueued_at)"
        " VALUES ('2025-12-04', 'g', 1, 1, 'x', 1.0);"
    )
    db.close()
    async with await PushOutbox.open(tmp_path / "push.db") as outbox:
        (part,) = await outbox.parts()
        assert (part.day, part.kind, part.subject) == ("2025-12-04", DAILY, "")
        assert await outbox.owed_alerts("g") == []  # a bulletin is not an alert
