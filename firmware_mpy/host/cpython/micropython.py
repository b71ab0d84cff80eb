# CPython stand-in for MicroPython's `micropython` module (host tests only).


def const(x):
    return x
