# A tiny test runner that works under MicroPython: run(globals()) calls every test_*
# function, prints PASS/FAIL lines and raises at the end if anything failed.
import sys


def run(ns):
    names = sorted(k for k in ns if k.startswith("test_") and callable(ns[k]))
    failed = []
    for n in names:
        try:
            ns[n]()
            print("PASS", n)
        except Exception as e:
            print("FAIL", n)
            sys.print_exception(e) if hasattr(sys, "print_exception") else print(repr(e))
            failed.append(n)
    print("SUMMARY %d passed %d failed" % (len(names) - len(failed), len(failed)))
    if failed:
        raise AssertionError("failed: " + ", ".join(failed))


def raises(exc, fn, *a):
    try:
        fn(*a)
    except exc:
        return True
    raise AssertionError("did not raise %s" % exc)
