"""People-facing formatting: local times, durations, ages, yes/no; never an epoch or a repr."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from i18n import format_age, format_bool, format_datetime, format_duration, format_number

TZ = "Asia/Shanghai"
# 2026-12-05 09:30:15 in Shanghai
WALL = dt.datetime(2026, 12, 5, 9, 30, 15, tzinfo=zoneinfo.ZoneInfo(TZ)).timestamp()


def test_datetime_in_the_compound_zone_each_language() -> None:
    assert format_datetime(WALL, TZ, "zh-CN") == "2026年12月5日 09:30"
    assert format_datetime(WALL, TZ, "en") == "5 Dec 2026, 09:30"
    # Same zone, other clock: the zone is honoured, not the machine's.
    assert format_datetime(WALL, "Europe/London", "en") == "5 Dec 2026, 01:30"


def test_datetime_drops_what_now_makes_obvious() -> None:
    assert format_datetime(WALL, TZ, "zh-CN", now=WALL + 3600, seconds=True) == "09:30:15"
    assert format_datetime(WALL, TZ, "zh-CN", now=WALL + 3 * 86400) == "12月5日 09:30"
    assert format_datetime(WALL, TZ, "en", now=WALL + 3 * 86400) == "5 Dec 09:30"


@pytest.mark.parametrize("bad", [None, "x", True, float("nan"), float("inf"), 1e30, [1]])
def test_not_a_time_gives_nothing_never_a_repr(bad: object) -> None:
    assert format_datetime(bad, TZ, "zh-CN") == ""
    assert format_duration(bad, "zh-CN") == ""
    assert format_age(bad, "zh-CN") == ""


def test_durations_use_the_two_largest_units() -> None:
    assert format_duration(7500, "zh-CN") == "2小时5分钟"
    assert format_duration(7500, "en") == "2 hours 5 minutes"
    assert format_duration(86400 + 5, "en") == "1 day"
    assert format_duration(42, "en") == "42 seconds"
    assert format_duration(0, "zh-CN") == "0秒钟"


def test_ages() -> None:
    assert format_age(180, "zh-CN") == "3分钟前"
    assert format_age(180, "en") == "3 minutes ago"
    assert format_age(2, "zh-CN") == "刚刚"
    assert format_age(2, "en") == "just now"


def test_yes_no_and_numbers() -> None:
    assert (format_bool(True, "zh-CN"), format_bool(False, "zh-CN")) == ("是", "否")
    assert (format_bool(True, "en"), format_bool(False, "en")) == ("yes", "no")
    assert format_bool(None, "en") == ""
    assert format_number(1234.5678, "zh-CN") == "1,234.568"
