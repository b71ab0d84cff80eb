"""A day's bulletin to every configured group: render once, enqueue per group, deliver.

robots = load_robots(data_dir / "push.toml")
async with await PushOutbox.open(data_dir / FILENAME) as outbox:
    await enqueue_daily(outbox, bulletin, robots, now=time.time())
    reports = await deliver_all(sender, robots, bulletin.day)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from centre.bulletins.model import DailyBulletin
from centre.push.daily import DEFAULT_LANGUAGE, daily_markdown
from centre.push.outbox import PushOutbox
from centre.push.plan import split_markdown
from centre.push.robot import Robot
from centre.push.sender import DeliveryReport, RobotSender


async def enqueue_daily(
    outbox: PushOutbox,
    bulletin: DailyBulletin,
    robots: Sequence[Robot],
    *,
    now: float,
    lang: str = DEFAULT_LANGUAGE,
    link_for: Callable[[str, str], str | None] | None = None,
) -> list[str]:
    """Split the day's bulletin into parts and owe them to each group once; returns the groups
    newly enqueued (a group enqueued before keeps the parts it was first given)."""
    parts = split_markdown(daily_markdown(bulletin, lang, link_for=link_for))
    fresh = []
    for robot in robots:
        if await outbox.enqueue(bulletin.day, robot.group, parts, now=now):
            fresh.append(robot.group)
    return fresh


async def deliver_all(
    sender: RobotSender, robots: Sequence[Robot], day: str
) -> list[DeliveryReport]:
    """Deliver ``day`` to every robot at once (each paced on its own), one report per robot."""
    return list(await asyncio.gather(*(sender.deliver(r, day) for r in robots)))


__all__ = ["deliver_all", "enqueue_daily"]
