"""The download pacer keeps a release within the link's budget: the average rate never goes
above ``rate`` bytes a second, and a slow link (time passing anyway) is not slowed further."""

from __future__ import annotations

import pytest

from gateway.update.fetch import Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_pacer_holds_the_average_to_the_budget() -> None:
    clock = Clock()
    p = Pacer(1000.0, clock=clock)
    assert p.delay(500) == pytest.approx(0.5)  # 500 bytes at once: wait half a second
    clock.now += 0.5
    assert p.delay(500) == pytest.approx(0.5)  # 1000 bytes by t+1 s
    clock.now += 3.0  # a slow link: 1000 bytes in 3.5 s, well under the budget
    assert p.delay(1000) == 0.0
    assert p.delay(2000) == pytest.approx(0.5)  # 4000 bytes by t+4 s; now is t+3.5


def test_zero_rate_means_unpaced() -> None:
    p = Pacer(0, clock=Clock())
    assert p.delay(10**9) == 0.0
