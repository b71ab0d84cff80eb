"""Options shared by every test folder, and the guards that make a hang end in a failure.

A hang must never cost CI its whole time budget with nothing to show for it. Three layers:

- each test: pytest-timeout (``timeout``/``timeout_method = "thread"`` in pyproject.toml) dumps
  the captured output and the stack of every thread, then ends the run with exit status 1. The
  thread method works wherever the main thread is stuck (a C call, a lock, a thread join), and
  the timer thread's name, shown in the dump, names the test;
- each async test: cancelled (with where it was awaiting) shortly before that limit, so a test
  stuck on an ``await`` fails alone and the run goes on; a teardown guard then stands in for
  pytest-timeout, whose timer a failure stops;
- the whole run: a watchdog thread ends a run that outlives ``COMPOUND_TEST_SESSION_LIMIT_S``
  (default 75 min, under CI's 90; off with --slow unless set) the same way;
- after the run: if the interpreter does not exit within ``EXIT_GRACE_S`` once pytest is done
  (a thread somebody joins forever, an executor that never shuts down), faulthandler dumps every
  thread's stack and exits with status 1.

And after every test, a thread the test started that is still alive (and would block the exit,
or is a journal writer) fails the test, naming the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import functools
import inspect
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

SESSION_LIMIT_ENV = "COMPOUND_TEST_SESSION_LIMIT_S"
DEFAULT_SESSION_LIMIT_S = 75 * 60.0
EXIT_GRACE_ENV = "COMPOUND_TEST_EXIT_GRACE_S"
EXIT_GRACE_S = 60.0
THREAD_LEAK_GRACE_S = 5.0
ASYNC_MARGIN_S = 45.0  # an async test is cancelled this long before pytest-timeout's limit
TEARDOWN_GRACE_MIN_S = 10.0  # at least this long for a cancelled test's report and teardown
# Threads no test may leave running: non-daemon ones block the interpreter's exit; a journal
# writer holds the database open.
ALWAYS_LEAKS = ("journal-writer",)

# Tests read the gateway's English source strings unless they ask for another language
# (monkeypatch COMPOUND_GW_LANG); tests/i18n checks that people get zh-CN by default.
os.environ["COMPOUND_GW_LANG"] = "en"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="also run slow soak and fault loops (tests marked 'slow')",
    )
    parser.addoption(
        "--bench",
        action="store",
        default=None,
        help="bench file for hil_tests (default: hil_tests/benches/sim.toml, all simulated)",
    )


HYPOTHESIS_PROFILE_ENV = "HYPOTHESIS_PROFILE"


def _hypothesis_profiles() -> None:
    """``ci`` (``make test``): each property test draws the same examples on every run of the
    same code (derandomize), so a red run is repeatable and a green commit stays green.
    ``explore`` (``make test-slow``, or ``HYPOTHESIS_PROFILE=explore``): fresh random examples
    every run, five times as many, to find new counterexamples; each one found becomes an
    ``@example`` or a fix."""
    from hypothesis import settings

    # No deadline: speed is the benchmarks' business (bench/), and a loaded CI machine must not
    # turn a slow example into a failure.
    settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
    settings.register_profile("explore", max_examples=500, deadline=None, print_blob=True)


def pytest_configure(config: pytest.Config) -> None:
    config.slow = config.getoption("--slow")  # type: ignore[attr-defined]
    from hypothesis import settings

    _hypothesis_profiles()
    settings.load_profile(
        os.environ.get(HYPOTHESIS_PROFILE_ENV)
        or ("explore" if config.getoption("--slow") else "ci")
    )
    limit = session_limit_s(config)
    if limit > 0 and not hasattr(config, "workerinput"):
        watchdog = SessionWatchdog(config, limit)
        config.stash[WATCHDOG] = watchdog
        watchdog.start()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        bound_async_test(item)
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# --------------------------------------------------------------------------- hang guards


def timeout_of(item: pytest.Item) -> float:
    """The test's pytest-timeout limit: its ``timeout`` mark, else the ini setting (0: none)."""
    mark = item.get_closest_marker("timeout")
    if mark is not None and mark.args:
        return float(mark.args[0])
    raw = item.config.getini("timeout")
    try:
        return float(raw or 0)
    except (TypeError, ValueError):
        return 0.0


def awaiting_chain(coro: Any) -> str:
    """Where a suspended coroutine waits: each frame down its ``cr_await`` chain.

    (``Task.print_stack`` shows only the outermost coroutine's frame.)
    """
    lines: list[str] = []
    while coro is not None and len(lines) < 50:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return "\n".join(lines) or "  (no coroutine frames)"


def bound_async_test(item: pytest.Item) -> None:
    """An async test stuck awaiting fails alone, before pytest-timeout would end the run.

    Most hangs in this suite are an ``await`` that never completes while the event loop sits
    idle in ``select``. Cancelling the test's task shortly before the hard limit turns that into
    one failed test that says where it was waiting; the rest of the run goes on. A test failure
    stops pytest-timeout's timer, so from the cancellation on a teardown guard takes its place:
    if the test and its teardown are not over by the hard limit, every thread's stack is dumped
    and the run ends, as pytest-timeout would have done.
    """
    func = getattr(item, "obj", None)
    limit = timeout_of(item)
    if limit <= 0 or not inspect.iscoroutinefunction(func):
        return
    bound = max(limit * 0.8, limit - ASYNC_MARGIN_S)
    nodeid = item.nodeid

    @functools.wraps(func)
    async def bounded(*args: Any, **kwargs: Any) -> Any:
        task = asyncio.current_task()
        assert task is not None
        where: list[str] = []

        def expire() -> None:
            where.append(awaiting_chain(task.get_coro()))
            guard = threading.Timer(
                max(limit - bound, TEARDOWN_GRACE_MIN_S),
                dump_and_exit,
                (item.config, f"Timeout: {nodeid} ran longer than {limit:g} s (its teardown "
                 "did not end after the test was cancelled)"),
            )  # fmt: skip
            guard.name = f"teardown guard {nodeid}"
            guard.daemon = True
            item.stash[TEARDOWN_GUARD] = guard
            guard.start()
            task.cancel()

        handle = asyncio.get_running_loop().call_later(bound, expire)
        try:
            return await func(*args, **kwargs)
        except asyncio.CancelledError:
            if not where:
                raise
            task.uncancel()
            raise AssertionError(
                f"{nodeid} was still awaiting after {bound:g} s and was cancelled so the run "
                f"goes on; it was waiting here:\n{where[0]}"
            ) from None
        finally:
            handle.cancel()

    item.obj = bounded  # type: ignore[attr-defined]


TEARDOWN_GUARD = pytest.StashKey[threading.Timer]()


@pytest.hookimpl(wrapper=True, specname="pytest_runtest_protocol")
def end_teardown_guard(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    finally:
        guard = item.stash.get(TEARDOWN_GUARD, None)
        if guard is not None:
            guard.cancel()


def session_limit_s(config: pytest.Config) -> float:
    raw = os.environ.get(SESSION_LIMIT_ENV)
    if raw is not None:
        try:
            return float(raw)
        except ValueError:
            msg = f"{SESSION_LIMIT_ENV}={raw!r}: seconds, or 0 for none"
            raise pytest.UsageError(msg) from None
    return 0.0 if config.getoption("--slow") else DEFAULT_SESSION_LIMIT_S


def dump_and_exit(config: pytest.Config, why: str) -> None:
    """Show what every thread is doing, then end the process with status 1 (a failure)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        with contextlib.suppress(Exception):  # the dump matters more than the capture
            capman.suspend_global_capture(in_=True)
    err = sys.__stderr__
    try:
        if err is not None:
            err.write(f"\n{'+' * 30} {why} {'+' * 30}\n")
            err.flush()
            faulthandler.dump_traceback(file=err, all_threads=True)
            err.flush()
    finally:
        os._exit(1)


class SessionWatchdog:
    """Ends a run that takes longer than its limit, naming the test it was in."""

    def __init__(self, config: pytest.Config, limit_s: float) -> None:
        self.config = config
        self.limit_s = limit_s
        self.current = "(no test started yet)"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        if self._stop.wait(self.limit_s):
            return
        dump_and_exit(
            self.config,
            f"the test run exceeded {self.limit_s:.0f} s ({SESSION_LIMIT_ENV}); "
            f"test running: {self.current}",
        )


WATCHDOG = pytest.StashKey[SessionWatchdog]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> None:
    watchdog = item.config.stash.get(WATCHDOG, None)
    if watchdog is not None:
        watchdog.current = item.nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """pytest-timeout's thread method, plus a first line that names the test that hung."""
    if settings.method != "thread":
        return None
    import pytest_timeout  # type: ignore[import-untyped]

    def fire() -> None:
        capman = item.config.pluginmanager.getplugin("capturemanager")
        if capman is not None:
            with contextlib.suppress(Exception):
                capman.suspend_global_capture(item)
        item.config.get_terminal_writer().line(
            f"\nTimeout: {item.nodeid} ran longer than {settings.timeout:g} s; "
            "the stack of every thread follows, then the run ends"
        )
        pytest_timeout.timeout_timer(item, settings)

    timer = threading.Timer(settings.timeout, fire)
    timer.name = f"pytest_timeout {item.nodeid}"
    timer.daemon = True

    def cancel() -> None:
        timer.cancel()
        timer.join()

    item.cancel_timeout = cancel  # type: ignore[attr-defined]  # pytest-timeout's cancel hook
    timer.start()
    return True


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if WATCHDOG in config.stash:
        config.stash[WATCHDOG].stop()
    # After this, only the interpreter's own shutdown is left: joins of threads and executors.
    # faulthandler's watchdog is a C thread, so it fires even when Python cannot run any more.
    err = sys.__stderr__
    if err is not None and not hasattr(config, "workerinput"):
        grace = float(os.environ.get(EXIT_GRACE_ENV, EXIT_GRACE_S))
        faulthandler.dump_traceback_later(grace, exit=True, file=err)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """A test that leaves a thread behind which blocks the exit (or a journal writer) fails."""
    before = {t.ident for t in threading.enumerate()}
    yield

    def leaked() -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t.ident not in before
            and t.is_alive()
            and (not t.daemon or t.name.startswith(ALWAYS_LEAKS))
        ]

    deadline = time.monotonic() + THREAD_LEAK_GRACE_S
    while leaked() and time.monotonic() < deadline:
        time.sleep(0.05)
    left = leaked()
    if left:
        names = ", ".join(f"{t.name} (daemon={t.daemon})" for t in left)
        pytest.fail(f"threads left running after the test: {names}")
