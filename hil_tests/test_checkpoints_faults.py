"""Acceptance under faults: SIGKILL during a tap storm, a reader with the wrong key, line noise
at a bit-error rate of 1e-4, and a bus unplugged and plugged back. The tap service runs as its
own process (``python -m gateway.checkpoints``) against simulated readers on paced lines.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from hil_tests.sims.osdp_reader import (
    GREEN,
    ReaderBench,
    ServiceProcess,
    journal_events,
)

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]

GUARDS = {f"{0x04A1B2C30000 + i:012x}": f"g-{i:03d}" for i in range(200)}


def _ids(bench: ReaderBench) -> list[str]:
    return [f"{b}/{a}" for b, a in sorted(bench.readers)]


def _wait_event(journal: Path, kind: str, pred, timeout: float) -> list:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists():
            hits = [e for e in journal_events(journal, kind) if pred(e)]
            if hits:
                return hits
        time.sleep(0.2)
    return []


# --------------------------------------------------------------------------- SIGKILL storm


def _storm(tmp_path: Path, kills: int) -> int:
    """SIGKILL the service ``kills`` times during a tap storm; returns the greens shown."""
    rng = random.Random(kills)
    with ReaderBench(
        tmp_path, {"a": 4, "b": 4}, baud=115200, roster=GUARDS, dedupe_window_s=0.5
    ) as bench:
        journal = tmp_path / "journal.db"
        proc = ServiceProcess(bench.config_path, journal)
        greens: Counter[tuple[str, str]] = Counter()
        taps_made = 0
        try:
            for _round in range(kills):
                proc.start()
                assert proc.wait_online(_ids(bench), 30), proc.log_path.read_text()[-2000:]
                stop = threading.Event()
                lock = threading.Lock()

                def walker(key: tuple[str, int], stop: threading.Event = stop,
                           lock: threading.Lock = lock) -> None:  # fmt: skip
                    nonlocal taps_made
                    sim = bench.reader(*key)
                    local = random.Random(hash(key) ^ rng.getrandbits(32))
                    while not stop.is_set():
                        band = local.choice(list(GUARDS))
                        t = sim.tap(band)
                        led = sim.wait_led(None, after=t, timeout=3.0)
                        with lock:
                            taps_made += 1
                            if led is not None and led.color == GREEN:
                                greens[(bench.checkpoint_id(*key), band)] += 1
                        if led is None:
                            # The service is gone: a late LED could not be told apart from the
                            # next tap's, so this walker stops until the next round.
                            return
                        time.sleep(local.uniform(0.0, 0.05))

                threads = [threading.Thread(target=walker, args=(k,)) for k in bench.readers]
                for th in threads:
                    th.start()
                time.sleep(rng.uniform(0.3, 2.0))
                proc.kill()  # SIGKILL in the middle of the storm
                stop.set()
                for th in threads:
                    th.join()
            proc.start()
            assert proc.wait_online(_ids(bench), 30)
        finally:
            proc.stop()
        # One green LED per durable append, never before it: so at every reader the greens it
        # showed cannot outnumber the taps journaled for it. (Which tap a green belongs to is
        # ambiguous after a kill: a read queued in the reader is delivered to the next run.)
        recorded: Counter[str] = Counter()
        for kind in ("tap", "tap.repeat"):
            for e in journal_events(journal, kind):
                recorded[e.payload["checkpoint"]] += 1
        shown = {bench.checkpoint_id(*k): sim.green_count() for k, sim in bench.readers.items()}
        missing = {cp: n - recorded[cp] for cp, n in shown.items() if n > recorded[cp]}
        assert sum(greens.values()) > 0, "the storm produced no green taps at all"
        assert not missing, f"green LEDs without a journaled tap: {missing}"
        print(f"{kills} SIGKILLs, {taps_made} taps, {sum(shown.values())} green, none lost")
        return sum(shown.values())


def test_sigkill_storm_20_times_loses_no_green_tap(tmp_path: Path) -> None:
    # Issue 4's acceptance, at full size in the default run (about two minutes).
    assert _storm(tmp_path, 20) > 0


# --------------------------------------------------------------------------- wrong key


def test_wrong_key_reader_is_refused_reported_and_yields_no_taps(tmp_path: Path) -> None:
    band = next(iter(GUARDS))
    with ReaderBench(
        tmp_path, {"a": 3}, baud=115200, roster=GUARDS, wrong_key=(("a", 2),),
        install_mode=(("a", 3),),
    ) as bench:  # fmt: skip
        journal = tmp_path / "journal.db"
        proc = ServiceProcess(bench.config_path, journal).start()
        try:
            assert proc.wait_online(["a/1"], 30)
            for address in (2, 3):
                refused = _wait_event(
                    journal, "reader.state",
                    lambda e, a=address: e.payload["reader"] == f"a/{a}"
                    and e.payload["state"] == "offline"
                    and e.payload["reason"] == "secure_channel_refused",
                    20,
                )  # fmt: skip
                assert refused, f"reader a/{address} was not reported as refused"
                assert refused[0].payload["checkpoint"] == f"cp-a-{address}"
            t2 = bench.reader("a", 2).tap(band)
            t3 = bench.reader("a", 3).tap(band)
            t1 = bench.reader("a", 1).tap(band)
            assert bench.reader("a", 1).wait_led(GREEN, after=t1, timeout=10) is not None
            time.sleep(1.0)  # reader 1's tap went through long since: 2 and 3 had their chance
            assert bench.reader("a", 2).leds_since(t2) == []
            assert bench.reader("a", 3).leds_since(t3) == []
            assert not bench.reader("a", 2).sc_active
            status = proc.readers_status()
            assert status["a/2"]["online"] is False
            assert status["a/2"]["reason"] == "secure_channel_refused"
            assert status["a/2"]["refusals"] >= 1
        finally:
            assert proc.stop() == 0
        taps = journal_events(journal, "tap")
        assert [e.payload["checkpoint"] for e in taps] == ["cp-a-1"]


# --------------------------------------------------------------------------- noise


# Noise stays on until this many characters were delivered corrupted: at 1e-4 and the bus's
# traffic (~5 kbit/s) a dozen taps see about 4 corruptions, so "none happened" had a chance of
# about e^-4. Counting what was really delivered makes the check certain, not likely.
MIN_CORRUPTED_CHARS = 8
NOISE_MAX_S = 120.0


def test_line_noise_ber_1e4_no_crash_no_bogus_taps_errors_counted(tmp_path: Path) -> None:
    rng = random.Random(4)
    with ReaderBench(tmp_path, {"a": 4}, baud=9600, roster=GUARDS, dedupe_window_s=0.5) as bench:
        journal = tmp_path / "journal.db"
        proc = ServiceProcess(bench.config_path, journal).start()
        scripted: Counter[tuple[str, str]] = Counter()
        greens = 0
        try:
            assert proc.wait_online(_ids(bench), 30)
            bench.lines["a"].set_faults(bit_error_rate=1e-4)
            n = 0
            deadline = time.monotonic() + NOISE_MAX_S
            while n < 12 or bench.lines["a"].stats.corrupted < MIN_CORRUPTED_CHARS:
                assert time.monotonic() < deadline, (
                    f"only {bench.lines['a'].stats.corrupted} characters corrupted in "
                    f"{NOISE_MAX_S:.0f} s of noise: is the bus idle?"
                )
                n += 1
                key = sorted(bench.readers)[n % 4]
                band = rng.choice(list(GUARDS))
                t = bench.reader(*key).tap(band)
                scripted[(bench.checkpoint_id(*key), band)] += 1
                if bench.reader(*key).wait_led(GREEN, after=t, timeout=4) is not None:
                    greens += 1
            bench.lines["a"].clear_faults()
            stats = bench.lines["a"].stats  # every corruption counted here was delivered
            assert proc.proc is not None and proc.proc.poll() is None, "the service crashed"
            time.sleep(2.5)  # libosdp's reply timeout, then one status publish
            table = proc.readers_status()
        finally:
            bench.lines["a"].clear_faults()
            assert proc.stop() == 0
        assert stats.corrupted >= MIN_CORRUPTED_CHARS
        recorded: Counter[tuple[str, str]] = Counter()
        for kind in ("tap", "tap.repeat"):
            for e in journal_events(journal, kind):
                recorded[(e.payload["checkpoint"], e.payload["wristband"])] += 1
        bogus = {k: v for k, v in recorded.items() if v > scripted.get(k, 0)}
        assert not bogus, f"taps that nobody made: {bogus}"
        assert journal_events(journal, "unknown_wristband") == []
        # libosdp 3.2 drops a reader's link on one damaged reply; the bus revives it within
        # about a second, so most taps still confirm. A tap that does not shows no green and
        # the guard taps again: the safety property is "no bogus taps", checked above.
        assert greens >= 0.5 * n, f"only {greens}/{n} taps confirmed under noise"
        board = __import__("json").loads(proc.status.read_text())["readers"]
        # Each corrupted character was in a frame: a damaged reply is a bad frame, a damaged
        # command goes unanswered (or NAKed), and either may cost a drop-out.
        bad_frames = sum(b["bad_frames"] + b["naks"] + b["unanswered"] for b in board["buses"])
        bad_frames += sum(r["offline_transitions"] for r in board["readers"])
        assert bad_frames > 0, (
            f"line errors were not counted: {stats.corrupted} characters were delivered "
            f"corrupted, buses: {board['buses']}"
        )
        assert table, "no reader table published"
        print(f"BER 1e-4: {n} taps, {greens} green, {stats.corrupted} chars corrupted, "
              f"{bad_frames} errors counted (bad frames, NAKs, unanswered, drop-outs)")  # fmt: skip


# --------------------------------------------------------------------------- unplug / replug


def test_unplug_replug_reconnects_and_records_the_outage(tmp_path: Path) -> None:
    bands = list(GUARDS)
    with ReaderBench(tmp_path, {"a": 3, "b": 2}, baud=115200, roster=GUARDS) as bench:
        journal = tmp_path / "journal.db"
        proc = ServiceProcess(bench.config_path, journal).start()
        try:
            assert proc.wait_online(_ids(bench), 30)
            t = bench.reader("a", 1).tap(bands[0])
            assert bench.reader("a", 1).wait_led(GREEN, after=t, timeout=20)
            bench.lines["a"].unplug()
            assert _wait_event(  # recorded while the bus is still out
                journal, "reader.state",
                lambda e: e.payload["state"] == "offline" and e.payload["reason"] == "bus_lost",
                10,
            )  # fmt: skip
            # The other bus goes on while bus a is gone.
            t = bench.reader("b", 1).tap(bands[1])
            assert bench.reader("b", 1).wait_led(GREEN, after=t, timeout=20)
            time.sleep(2.0)
            bench.lines["a"].replug()
            assert proc.wait_online(["a/1", "a/2", "a/3"], 40), proc.readers_status()
            t = bench.reader("a", 2).tap(bands[2])
            assert bench.reader("a", 2).wait_led(GREEN, after=t, timeout=20), "taps did not resume"
        finally:
            assert proc.stop() == 0
        every_state = journal_events(journal, "reader.state")
        states = [e for e in every_state if e.payload["reader"].startswith("a/")]
        lost = [e for e in states if e.payload["state"] == "offline"
                and e.payload["reason"] == "bus_lost"]  # fmt: skip
        assert {e.payload["reader"] for e in lost} == {"a/1", "a/2", "a/3"}
        for rid in ("a/1", "a/2", "a/3"):
            seq = [(e.payload["state"], e.payload["reason"]) for e in states
                   if e.payload["reader"] == rid]  # fmt: skip
            i = seq.index(("offline", "bus_lost"))
            assert ("online", "secure_channel_active") in seq[:i], (rid, seq)  # up before
            assert seq[-1] == ("online", "secure_channel_active"), (rid, seq)  # and back after
        # The other bus was never lost.
        assert not [
            e for e in every_state
            if e.payload["reader"].startswith("b/") and e.payload["reason"] == "bus_lost"
        ]
        taps = {e.payload["wristband"] for e in journal_events(journal, "tap")}
        assert taps == {bands[0], bands[1], bands[2]}


# --------------------------------------------------------------------------- a sluggish reader

# Each reply leaves 80 ms late (inside libosdp's 200 ms reply window, with the cryptogram's
# wire time at 9600 baud): with four readers sharing the line, one reader's secure-channel
# handshake then takes well over a second, longer than the bus's one-second retry of a reader
# that still answers.
SLUGGISH_REPLY_S = 0.08


@pytest.mark.timeout(180)
def test_a_sluggish_reader_comes_back_after_a_drop_out(tmp_path: Path) -> None:
    """A slow reader (or a starved host) makes every handshake long. The bus must let a
    handshake libosdp is still working through finish: restarting it every second kept such a
    reader offline for good once it had dropped out (seen on loaded CI machines)."""

    def is_a2(state: str):  # type: ignore[no-untyped-def]
        return lambda e: e.payload["reader"] == "a/2" and e.payload["state"] == state

    with ReaderBench(
        tmp_path, {"a": 8}, baud=9600, roster=GUARDS, reply_delay_s=SLUGGISH_REPLY_S
    ) as bench:
        journal = tmp_path / "journal.db"
        proc = ServiceProcess(bench.config_path, journal).start()
        try:
            assert proc.wait_online(_ids(bench), 60), proc.readers_status()
            sim = bench.reader("a", 2)
            sim.stop()  # the reader drops out (a power blip)
            dropped = _wait_event(journal, "reader.state", is_a2("offline"), 30)
            assert dropped, proc.readers_status()
            sim.start()  # and is back: it answers again, slowly
            back = _wait_event(
                journal, "reader.state",
                lambda e: is_a2("online")(e) and e.seq > dropped[-1].seq, 60,
            )  # fmt: skip
            assert back, f"the sluggish reader never came back: {proc.readers_status()}"
            t = sim.tap(next(iter(GUARDS)))
            assert sim.wait_led(GREEN, after=t, timeout=20), "no green after the reader came back"
        finally:
            assert proc.stop() == 0, proc.log_path.read_text()[-3000:]
