# LED and buzzer behaviour, sans-IO: who decides what the guard sees, at time now_ms.
#
# The panel owns the LED while it polls us (osdp_LED permanent + temporary states, as
# the spec describes).  When nobody polls, the node speaks for itself with patterns a
# guard can tell apart even on a single-colour LED, because the *rhythm* differs:
#   OFFLINE   one short red blink every 3 s           (not polled, nothing stored)
#   STORED    amber double blink every 2 s            (taps stored, not yet delivered)
#   UNPROVISIONED  fast blue blink, 2.5 Hz            (no address/key yet)
# A tap gets immediate local feedback over whatever is showing:
#   TAP_SENT  green 0.4 s        TAP_STORED  amber 3 x 0.1 s     TAP_REJECT red 1 s

from micropython import const

BLACK = const(0)
RED = const(1)
GREEN = const(2)
AMBER = const(3)
BLUE = const(4)

# patterns: tuples of (duration_ms, colour), repeated
OFFLINE = ((100, RED), (2900, BLACK))
STORED = ((100, AMBER), (150, BLACK), (100, AMBER), (1650, BLACK))
UNPROVISIONED = ((200, BLUE), (200, BLACK))
TAP_SENT = ((400, GREEN),)
TAP_STORED = ((100, AMBER), (100, BLACK), (100, AMBER), (100, BLACK), (100, AMBER))
TAP_REJECT = ((1000, RED),)


def pattern_colour(steps, start_ms, now_ms):
    """Colour of a repeating pattern at now_ms."""
    total = 0
    for d, _ in steps:
        total += d
    if total <= 0:
        return steps[0][1]
    t = (now_ms - start_ms) % total
    for d, c in steps:
        if t < d:
            return c
        t -= d
    return steps[-1][1]


def osdp_steps(on_100ms, off_100ms, on_colour, off_colour):
    """An osdp_LED state (times in 100 ms units) as a pattern."""
    if off_100ms == 0:
        return ((1000, on_colour),)
    if on_100ms == 0:
        return ((1000, off_colour),)
    return ((on_100ms * 100, on_colour), (off_100ms * 100, off_colour))


class Indicator:
    """ind.apply_osdp(record, now); ind.local = STORED; ind.colour(now) -> colour code."""

    def __init__(self):
        self.permanent = ((1000, BLACK),)
        self._perm_start = 0
        self.temporary = None
        self._temp_start = 0
        self._temp_end = 0
        self.local = None  # node-owned pattern while the panel is away
        self._local_start = 0
        self._flash = None
        self._flash_start = 0
        self._flash_end = 0

    def apply_osdp(self, r, now_ms):
        """One 14-byte osdp_LED record (reader, led, temp x7, perm x5)."""
        tcode, ton, toff, tcol_on, tcol_off, tlo, thi = r[2:9]
        pcode, pon, poff, pcol_on, pcol_off = r[9:14]
        if tcode == 1:
            self.temporary = None
        elif tcode == 2:
            self.temporary = osdp_steps(ton, toff, tcol_on, tcol_off)
            self._temp_start = now_ms
            self._temp_end = now_ms + (tlo | (thi << 8)) * 100
        if pcode == 1:
            self.permanent = osdp_steps(pon, poff, pcol_on, pcol_off)
            self._perm_start = now_ms

    def set_local(self, steps, now_ms):
        if steps is not self.local:
            self.local = steps
            self._local_start = now_ms

    def flash(self, steps, now_ms):
        """Short feedback over everything else; plays the steps once."""
        self._flash = steps
        self._flash_start = now_ms
        total = 0
        for d, _ in steps:
            total += d
        self._flash_end = now_ms + total

    def colour(self, now_ms):
        if self._flash is not None:
            if now_ms < self._flash_end:
                return pattern_colour(self._flash, self._flash_start, now_ms)
            self._flash = None
        if self.local is not None:
            return pattern_colour(self.local, self._local_start, now_ms)
        if self.temporary is not None:
            if now_ms < self._temp_end:
                return pattern_colour(self.temporary, self._temp_start, now_ms)
            self.temporary = None
        return pattern_colour(self.permanent, self._perm_start, now_ms)


class Beeper:
    """osdp_BUZ semantics: b.command(tone, on, off, count, now); b.is_on(now)."""

    def __init__(self):
        self._on = 0
        self._off = 0
        self._start = 0
        self._end = 0  # -1: until told otherwise

    def command(self, tone, on_100ms, off_100ms, count, now_ms):
        if tone != 2 or on_100ms == 0:  # 0 = no tone, 1 = off, 2 = default tone
            self._end = 0
            return
        self._on = on_100ms * 100
        self._off = off_100ms * 100
        self._start = now_ms
        self._end = -1 if count == 0 else now_ms + count * (self._on + self._off)

    def beep(self, ms, now_ms):
        self._on = ms
        self._off = 0
        self._start = now_ms
        self._end = now_ms + ms

    def is_on(self, now_ms):
        if self._end == 0 or (self._end > 0 and now_ms >= self._end):
            self._end = 0
            return False
        period = self._on + self._off
        return (now_ms - self._start) % period < self._on
