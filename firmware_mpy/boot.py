# Runs before main.py.  Holding the safe-mode button at reset skips the application
# (and so the watchdog), leaving a plain REPL for mpremote.
import board
import machine

_p = machine.Pin(board.pins()["safe"], machine.Pin.IN, machine.Pin.PULL_UP)
SAFE_MODE = _p.value() == 0
