# Uptime in milliseconds that never wraps.
#
# time.ticks_ms() wraps (2**30 ms, ~12 days, on most ports); tap ages and offline timers
# must not.  Uptime accumulates ticks_diff() steps into a plain int.  On CPython (host
# tests) time.monotonic() stands in.  Usage: up = Uptime(); now = up.ms()

import time

try:
    _ticks = time.ticks_ms
    _diff = time.ticks_diff
    sleep_ms = time.sleep_ms
    sleep_us = time.sleep_us
    ticks_us = time.ticks_us
    ticks_diff = time.ticks_diff
except AttributeError:  # CPython
    def _ticks():
        return int(time.monotonic() * 1000)

    def _diff(a, b):
        return a - b

    def sleep_ms(n):
        time.sleep(n / 1000)

    def sleep_us(n):
        time.sleep(n / 1000000)

    def ticks_us():
        return int(time.monotonic() * 1000000)

    def ticks_diff(a, b):
        return a - b


class Uptime:
    """Monotonic milliseconds since this object was made; call ms() at least every 6 days."""

    def __init__(self):
        self._last = _ticks()
        self._ms = 0

    def ms(self):
        t = _ticks()
        self._ms += _diff(t, self._last)
        self._last = t
        return self._ms
