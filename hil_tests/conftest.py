"""HIL fixtures: the real daemon in a temporary compound, and leak checks on every test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from hil_tests.benchfile import (
    Bench,
    SimLines,
    bench_from_config,
    preflight,
    sim_only_skip_reason,
    start_sim_lines,
)
from hil_tests.harness import LIVE, DaemonProcess, child_pids, fd_targets, open_fds

# The real-centre fixture some HIL tests borrow from tests/sync/conftest.py asks which backend
# holds its repository (SQLite unless a test says otherwise): the same fixtures as tests/.
from tests.pg_cluster import centre_backend, pg_cluster, pg_dsn  # noqa: F401 - fixtures

LEAK_GRACE_S = 3.0


@pytest.fixture(autouse=True)
def no_leaked_processes_or_fds() -> Iterator[None]:
    """A test that leaves a child process or an open fd (pty, socket, file) behind fails."""
    children_before = child_pids()
    fds_before = open_fds()
    daemons_before = set(LIVE)
    yield
    # A daemon the test left running (it failed before stopping it, or never did) is stopped
    # here, so it does not run on beside the next tests, and the test fails for it.
    left_running = [d for d in set(LIVE) - daemons_before if d.running]
    for daemon in left_running:
        daemon.close()
    if left_running:
        pytest.fail(f"daemons left running: {sorted(str(d.config_path) for d in left_running)}")
    deadline = time.monotonic() + LEAK_GRACE_S
    while True:
        leaked_children = child_pids() - children_before
        leaked_fds = open_fds() - fds_before
        if not leaked_children and not leaked_fds:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    details = []
    if leaked_children:
        details.append(f"child processes still running: {sorted(leaked_children)}")
    if leaked_fds:
        details.append(f"file descriptors left open: {fd_targets(leaked_fds)}")
    pytest.fail("; ".join(details))


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    """Collects every DaemonProcess a test makes, and closes them all afterwards."""
    made: list[DaemonProcess] = []
    yield made
    for d in made:
        d.close()


@pytest.fixture(scope="session")
def bench(pytestconfig: pytest.Config) -> Bench:
    """The bench under test: --bench PATH, or hil_tests/benches/sim.toml (all simulated)."""
    return bench_from_config(pytestconfig)


@pytest.fixture
def sim_lines(bench: Bench, tmp_path: Path) -> Iterator[SimLines]:
    """Line emulators for every simulated line of the bench, stopped after the test."""
    with start_sim_lines(bench, tmp_path) as lines:
        yield lines


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("sim_only"):
        reason = sim_only_skip_reason(bench_from_config(item.config))
        if reason:
            pytest.skip(reason)


# Exit status of a session stopped by the bench preflight (pytest's own "usage error" code is
# 4; this one is distinct so a script can tell "the bench is not there" from a test failure).
BENCH_PREFLIGHT_FAILED = 3


def pytest_sessionstart(session: pytest.Session) -> None:
    """``--bench FILE``: every real port, key file and camera must be there and answer before
    any test runs; otherwise one line per missing device and the session fails."""
    config = session.config
    if config.getoption("--bench") is None:
        return
    try:
        bench = bench_from_config(config)
    except ConfigError as exc:
        missing = [f"bench file: {exc.reason}"]
    else:
        missing = preflight(bench)
    if not missing:
        return
    name = config.getoption("--bench")
    lines = [f"bench {name}: {len(missing)} device(s) missing or silent, no test run:", *missing]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=True, bold=line is lines[0])
        else:
            print(line)
    pytest.exit(f"bench preflight failed: {len(missing)} device(s)", BENCH_PREFLIGHT_FAILED)
