"""A hang in the test suite ends in a failure with a stack dump, never in an idle run.

Each case runs an inner pytest in a subprocess with this repository's own settings (its
pyproject.toml and root conftest.py, copied beside a small test file) and tiny limits, and checks
that it ends with exit status 1 and shows where every thread was. The bounds on the outer
subprocess are generous: they only turn a regression into a failure instead of a hang here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUTER_TIMEOUT_S = 240


def run_inner(
    tmp_path: Path, test_source: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str]:
    folder = tmp_path / "inner"
    folder.mkdir()
    shutil.copy2(REPO / "pyproject.toml", folder / "pyproject.toml")
    shutil.copy2(REPO / "conftest.py", folder / "conftest.py")
    (folder / "test_inner.py").write_text(textwrap.dedent(test_source))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_inner.py", *args],
        cwd=folder,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=OUTER_TIMEOUT_S,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_a_hanging_test_fails_the_run_with_every_threads_stack(tmp_path: Path) -> None:
    """A test stuck on an executor thread: the incident's shape.

    A timeout raised inside the test (pytest-timeout's signal method) is not enough here: the
    event loop's teardown then waits for the executor thread forever. The thread method ends
    the run wherever it is stuck.
    """
    rc, out = run_inner(
        tmp_path,
        """
        import asyncio
        import threading

        NEVER = threading.Event()

        def wait_for_nothing_forever():
            NEVER.wait()

        async def test_waits_on_an_executor_thread():
            await asyncio.get_running_loop().run_in_executor(None, wait_for_nothing_forever)
        """,
        "-o",
        "timeout=2",
    )
    assert rc == 1, out
    assert "Timeout" in out, out
    assert "Timeout: test_inner.py::test_waits_on_an_executor_thread ran longer than 2 s" in out
    assert "wait_for_nothing_forever" in out.split("ran longer than 2 s", 1)[1], "stacks follow"
    assert "wait_for_nothing_forever" in out, "and shows the thread it waits for"
    assert "passed" not in out


def test_a_failure_before_closing_a_journal_ends_the_run_promptly(tmp_path: Path) -> None:
    """The incident: an assertion before journal.close() left the run idle for 15 minutes."""
    rc, out = run_inner(
        tmp_path,
        """
        import asyncio

        from gateway.clock import ManualClock
        from gateway.journal import Journal

        async def test_fails_with_the_journal_open(tmp_path):
            journal = await Journal.open(tmp_path / "j.db", gateway_id="gw", clock=ManualClock())
            await journal.append("tap", {"n": 1})
            await asyncio.sleep(0.01)
            assert journal.last_seq == 99, "deliberate failure before close()"
            await journal.close()
        """,
        "-o",
        "timeout=120",
    )
    assert rc == 1, out
    assert "deliberate failure before close()" in out
    assert "1 failed" in out, out
    assert "Timeout" not in out, "ended by the failure, not by the timeout"


def test_a_thread_that_blocks_the_exit_is_reported_and_the_exit_still_happens(
    tmp_path: Path,
) -> None:
    rc, out = run_inner(
        tmp_path,
        """
        import threading

        STUCK = threading.Event()

        def wait_forever_for_nobody():
            STUCK.wait()

        def test_leaves_a_thread_behind():
            threading.Thread(target=wait_forever_for_nobody, name="stuck-worker").start()
        """,
        "-o",
        "timeout=120",
        env={"COMPOUND_TEST_EXIT_GRACE_S": "3"},
    )
    assert rc == 1, out
    assert "threads left running after the test: stuck-worker" in out, out
    # The leaked non-daemon thread blocks the interpreter's exit: the exit watchdog ends it.
    assert "wait_forever_for_nobody" in out, out


def test_a_run_longer_than_its_limit_is_ended_naming_the_test(tmp_path: Path) -> None:
    rc, out = run_inner(
        tmp_path,
        """
        import time

        def test_fast():
            pass

        def test_takes_its_time():
            for _ in range(600):
                time.sleep(0.1)
        """,
        "-o",
        "timeout=0",
        env={"COMPOUND_TEST_SESSION_LIMIT_S": "3"},
    )
    assert rc == 1, out
    assert "the test run exceeded 3 s" in out, out
    assert "test running: test_inner.py::test_takes_its_time" in out, out
    assert "test_takes_its_time" in out.split("the test run exceeded", 1)[1], "its stack"


def test_an_async_test_stuck_awaiting_fails_alone_and_the_run_goes_on(tmp_path: Path) -> None:
    """The CI incident: a test awaiting forever with the loop idle ended the whole run."""
    rc, out = run_inner(
        tmp_path,
        """
        import asyncio

        async def test_awaits_forever():
            await asyncio.Event().wait()

        async def test_after_it():
            await asyncio.sleep(0)
            assert True is not False
        """,
        "-o",
        "timeout=5",
    )
    assert rc == 1, out
    assert "test_awaits_forever was still awaiting after 4 s" in out, out
    assert "in test_awaits_forever" in out, "and says where it was waiting"
    assert 'test_inner.py", line 5, in test_awaits_forever' in out, out
    assert "1 failed, 1 passed" in out, out
    assert "ran longer than 5 s" not in out, "the run was not ended"
