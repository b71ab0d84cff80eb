# The frame reader's property, as code that runs unchanged on MicroPython and CPython:
# feed a stream in the given chunks (with the given gaps), drain next_frame() after each
# chunk, and describe what came out.  The reader's contract (osdp_frame.py): it never
# raises; damaged input is a BadFrame or skipped noise.  Any exception is reported as
# "RAISED <type>" so the caller's assertion names it.
import time

import osdp_frame as F

MAX_ITEMS = 10000


def _ticks():
    try:
        return time.ticks_ms()
    except AttributeError:
        return int(time.monotonic() * 1000)


def run_case(chunks, gaps):
    """-> (description, elapsed_ms)"""
    start = _ticks()
    out = []
    r = F.FrameReader()
    now = 0
    try:
        for i in range(min(len(chunks), len(gaps))):  # no zip(strict=) on MicroPython
            now += gaps[i]
            r.feed(chunks[i], now)
            for _ in range(MAX_ITEMS):
                f = r.next_frame()
                if f is None:
                    break
                if isinstance(f, F.Frame):
                    out.append("F%d.%d.%d.%d.%d" % (f.addr, f.code, len(f.data), f.mark,
                                                    0 if f.mac is None else 1))
                elif isinstance(f, F.BadFrame):
                    out.append("B%d.%s" % (f.addr, f.reason))
                else:
                    out.append("?%s" % type(f).__name__)
            else:
                out.append("LOOP")
                break
    except Exception as e:  # the property says this never happens; report it if it does
        out.append("RAISED %s" % type(e).__name__)
    out.append("D%d" % r.dropped)
    return " ".join(out), _ticks() - start
