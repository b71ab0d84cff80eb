"""``compound-gw demo``: the real daemon on a simulated compound, a short scripted scenario.

    compound-gw demo            # human summary
    compound-gw demo --json     # one JSON object of counts

Every capability adds a step here, so a newcomer sees it work. Steps share one
:class:`DemoCompound` (the temporary folder, the daemon, the simulators) and add their counts to
the report. Nothing is left running: the daemon and every simulator stop, even on failure.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.journal import check_integrity, read_events
from hil_tests.harness import DaemonProcess, minimal_config, write_config


@dataclass
class DemoCompound:
    folder: Path
    config_text: str = ""
    daemon: DaemonProcess | None = None
    report: dict[str, Any] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def journal_path(self) -> Path:
        return self.folder / "data" / "journal.db"

    def say(self, line: str) -> None:
        self.lines.append(line)

    def start_daemon(self) -> DaemonProcess:
        if self.daemon is None:
            cfg = write_config(self.folder, self.config_text)
            self.daemon = DaemonProcess(cfg)
        self.daemon.start()
        return self.daemon

    def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:  # a demo must always clean up everything it can
                print(f"demo cleanup: {exc}", file=sys.stderr)
        if self.daemon is not None:
            self.daemon.close()


Step = Callable[[DemoCompound], None]


def step_daemon_lifecycle(c: DemoCompound) -> None:
    """Start the daemon, pull its power (SIGKILL), start it again."""
    t0 = time.monotonic()
    gw = c.start_daemon()
    c.say(f"daemon started (pid {gw.pid}) and reported READY in {time.monotonic() - t0:.2f} s")
    gw.kill()
    c.say("daemon killed with SIGKILL (a power cut) ...")
    t0 = time.monotonic()
    gw.start()
    c.say(f"... restarted and READY again in {time.monotonic() - t0:.2f} s")
    c.report["daemon"] = {"starts": gw.starts}


def step_stop_and_verify(c: DemoCompound) -> None:
    """SIGTERM, then check the journal: gap-free, integrity ok, nothing duplicated."""
    assert c.daemon is not None
    t0 = time.monotonic()
    rc = c.daemon.terminate(timeout=10)
    c.say(f"daemon stopped on SIGTERM with exit code {rc} in {time.monotonic() - t0:.2f} s")
    events = read_events(c.journal_path, limit=10_000_000)
    seqs = [e.seq for e in events]
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(seqs) if b > a + 1)
    duplicated = len(seqs) - len(set(seqs))
    integrity = check_integrity(c.journal_path, full=True)
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    unclean = sum(1 for e in events if e.payload.get("previous_stop") == "unclean")
    c.report["daemon"].update(exit_code=rc, unclean_stops_detected=unclean)
    c.report.update(
        events_journaled=len(events),
        lost=gaps,
        duplicated=duplicated,
        journal_integrity=integrity,
        kinds=kinds,
    )
    c.say(
        f"journal: {len(events)} events, sequence gaps {gaps}, duplicates {duplicated}, "
        f"integrity {integrity}; the restart after the kill was recorded as unclean ({unclean})"
    )


STEPS: list[Step] = [step_daemon_lifecycle, step_stop_and_verify]


def run(folder: Path) -> DemoCompound:
    c = DemoCompound(folder, config_text=minimal_config("gw-demo"))
    c.report.setdefault("synced", 0)
    try:
        for step in STEPS:
            step(c)
    finally:
        c.close()
    return c


def main(json_output: bool = False, keep: bool = False) -> int:
    folder = Path(tempfile.mkdtemp(prefix="compound-demo-"))
    t0 = time.monotonic()
    try:
        c = run(folder)
    except Exception as exc:
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        return 1
    c.report["wall_time_s"] = round(time.monotonic() - t0, 2)
    ok = c.report.get("lost") == 0 and c.report.get("duplicated") == 0
    ok = ok and c.report["daemon"].get("exit_code") == 0
    if json_output:
        print(json.dumps(c.report, sort_keys=True))
    else:
        print("Compound Gateway demo: the real daemon on a simulated compound")
        for line in c.lines:
            print(f"  - {line}")
        print(f"  {'OK' if ok else 'PROBLEM'}: {json.dumps(c.report, sort_keys=True)}")
        print(f"  (compound folder: {folder if keep else 'removed'})")
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1
