"""HIL (issue 17): a tap with a snapshot rule produces an evidence image that reaches a real
centre with a matching hash, through the real daemon.

``compound-centre serve`` (a process), the HIL fault proxy, ``compound-gw run`` (a process) on
the simulated compound: the guard taps the reader the bench's snapshot rule watches, the
simulated camera serves a JPEG of its own (each one distinct, its sha256 recorded), the daemon
stores it and journals ``camera.snapshot``, the uploader brings the event to the centre and
the media uplink then the image, in small chunks. The centre's copy must hash to what the
camera served, and ``compound-gw status --json`` must report nothing left waiting.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.journal import read_events
from hil_tests.benchfile import load_bench
from hil_tests.compound import ROSTER, SimCompound
from hil_tests.demo import Centre
from hil_tests.netproxy import FaultProxy

pytestmark = [pytest.mark.hil, pytest.mark.sim_only]  # asserts on the simulator's records

COMPOUND = "HIL Compound"
BAND = next(iter(ROSTER))
CHUNK = 4096


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[SimCompound, Centre, FaultProxy]]:
    centre = Centre(tmp_path / "centre")
    assert centre.cli("init").returncode == 0
    tok = json.loads(centre.cli("token", "create", "--compound", COMPOUND, "--json").stdout)
    centre.start()
    compound = SimCompound(
        load_bench(),
        tmp_path / "site",
        gateway_id="gw-media-01",
        sync_keys=(
            "first_delay_max_s = 0.2",
            "idle_poll_s = 0.3",
            "backoff_initial_s = 0.2",
            "backoff_max_s = 1.0",
            f"media_chunk_bytes = {CHUNK}",  # a 20 kB JPEG goes in several chunks
        ),
    )
    try:
        compound.start()
        proxy = FaultProxy(target=("127.0.0.1", centre.port))
        compound.on_loop(proxy.start())
        try:
            prov = subprocess.run(
                [sys.executable, "-m", "gateway.cli", "provision",
                 "--config", str(compound.config_path),
                 "--centre", f"https://127.0.0.1:{proxy.port}",
                 "--ca-fingerprint", tok["ca_fingerprint"]],
                input=tok["token"] + "\n",
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert prov.returncode == 0, prov.stderr or prov.stdout
            yield compound, centre, proxy
        finally:
            compound.on_loop(proxy.stop())
    finally:
        compound.stop()
        centre.stop()


def stored_media(centre: Centre) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{centre.folder / 'centre.db'}?mode=ro", uri=True, timeout=5)
    try:
        return {str(sha): int(size) for sha, size in conn.execute("SELECT sha256, size FROM media")}
    except sqlite3.OperationalError:  # not migrated yet
        return {}
    finally:
        conn.close()


def test_a_tap_snapshot_reaches_the_centre_with_a_matching_hash(
    site: tuple[SimCompound, Centre, FaultProxy],
) -> None:
    compound, centre, _proxy = site
    cam_name = compound.bench.cameras[0].name
    camera = compound.cameras[cam_name]
    reader = compound.bench.readers[0].name
    gw = compound.daemon()
    gw.start()
    sim = compound.reader(reader)
    assert sim.wait_secure(15), "reader never reached Secure Channel"
    snaps: list = []  # type: ignore[type-arg]
    for _ in range(6):  # a guard who sees no light taps again, as guards do
        sim.tap(BAND)
        deadline = time.monotonic() + 5
        while not snaps and time.monotonic() < deadline:
            time.sleep(0.1)
            snaps = [e for e in read_events(compound.journal_path) if e.kind == "camera.snapshot"]
        if snaps:
            break
    assert snaps, "no camera.snapshot event after six taps"
    sha = snaps[0].payload["sha256"]
    assert sha in camera.served  # the daemon stored exactly what the camera served

    deadline = time.monotonic() + 60
    while sha not in stored_media(centre):
        assert time.monotonic() < deadline, "the image did not reach the centre"
        time.sleep(0.2)
    held = centre.folder / "media" / sha[:2] / f"{sha}.jpg"
    assert hashlib.sha256(held.read_bytes()).hexdigest() == sha
    assert stored_media(centre)[sha] == snaps[0].payload["bytes"]

    # The daemon's status board reports the image as sent, nothing waiting.
    deadline = time.monotonic() + 30
    while True:
        out = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "status", "--json",
             "--config", str(compound.config_path)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        media = json.loads(out.stdout).get("media") or {} if out.stdout else {}
        if media.get("uploaded", 0) >= 1 and media.get("waiting_images") == 0:
            break
        assert time.monotonic() < deadline, media
        time.sleep(0.5)
    assert media["wire_bytes"] == snaps[0].payload["bytes"]  # each byte once
    assert media["chunks"] >= 2


# --------------------------------------------------------------- a cut, and a tampered chunk

SLOW_BPS = 16_000  # 2 kB/s up: a 20 kB image takes about 10 s, long enough to step in


def tap_until_snapshot(compound: SimCompound) -> Any:
    """Tap the snapshot rule's reader until the daemon journals ``camera.snapshot``."""
    sim = compound.reader(compound.bench.readers[0].name)
    assert sim.wait_secure(15), "reader never reached Secure Channel"
    for _ in range(6):  # a guard who sees no light taps again, as guards do
        sim.tap(BAND)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            snaps = [e for e in read_events(compound.journal_path) if e.kind == "camera.snapshot"]
            if snaps:
                return snaps[0]
            time.sleep(0.1)
    raise AssertionError("no camera.snapshot event after six taps")


def partial_at_centre(centre: Centre, gateway_id: str, sha: str) -> Path:
    return centre.folder / "media" / "partial" / f"{gateway_id}-{sha}.part"


def wait_partial(path: Path, at_least: int, timeout: float = 60) -> int:
    """Wait until the centre holds ``at_least`` bytes of the image; how many it holds."""
    deadline = time.monotonic() + timeout
    while True:
        size = path.stat().st_size if path.exists() else 0
        if size >= at_least:
            return size
        assert time.monotonic() < deadline, f"the centre holds {size} bytes, waited for {at_least}"
        time.sleep(0.05)


def daemon_media(compound: SimCompound, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """``compound-gw status --json``'s media section, once ``done`` holds for it."""
    deadline = time.monotonic() + 30
    while True:
        out = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "status", "--json",
             "--config", str(compound.config_path)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        media = (json.loads(out.stdout).get("media") or {}) if out.stdout else {}
        if done(media):
            return media
        assert time.monotonic() < deadline, media
        time.sleep(0.5)


def wait_stored(centre: Centre, sha: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while sha not in stored_media(centre):
        assert time.monotonic() < deadline, "the image did not reach the centre"
        time.sleep(0.2)


def test_a_link_cut_mid_image_resumes_without_resending_finished_chunks(
    site: tuple[SimCompound, Centre, FaultProxy],
) -> None:
    compound, centre, proxy = site
    throttle(compound, proxy)
    gw = compound.daemon()
    gw.start()
    snap = tap_until_snapshot(compound)
    sha, size = snap.payload["sha256"], snap.payload["bytes"]
    partial = partial_at_centre(centre, compound.gateway_id, sha)
    held = wait_partial(partial, 2 * CHUNK)  # two chunks or more finished at the centre
    on_loop(compound, proxy.cut)  # the 4G link drops mid-image
    daemon_media(compound, lambda m: m.get("errors", 0) >= 1)  # the uplink saw it fail
    assert sha not in stored_media(centre)
    on_loop(compound, proxy.heal)
    wait_stored(centre, sha)
    held_file = centre.folder / "media" / sha[:2] / f"{sha}.jpg"
    assert hashlib.sha256(held_file.read_bytes()).hexdigest() == sha
    media = daemon_media(compound, lambda m: m.get("uploaded", 0) >= 1)
    assert media["resumed"] >= 1, media
    # Bytes the daemon put on the wire: the image once, plus at most the chunk cut in flight.
    # Starting again from zero would send what the centre held at the cut a second time.
    assert size <= media["wire_bytes"] <= size + CHUNK, media
    assert media["wire_bytes"] < size + held, (media, held)
    gw.terminate(timeout=15)


def test_a_tampered_chunk_at_the_centre_is_refused_and_the_image_sent_again(
    site: tuple[SimCompound, Centre, FaultProxy],
) -> None:
    compound, centre, proxy = site
    throttle(compound, proxy)
    gw = compound.daemon()
    gw.start()
    snap = tap_until_snapshot(compound)
    sha, size = snap.payload["sha256"], snap.payload["bytes"]
    partial = partial_at_centre(centre, compound.gateway_id, sha)
    wait_partial(partial, CHUNK)
    # A byte of a finished chunk is changed where the centre keeps it (a bad disk, or a
    # forged chunk). The centre finds the whole image's hash wrong, discards it and refuses;
    # the daemon sends it all again.
    with partial.open("r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))
    on_loop(compound, proxy.heal)
    wait_stored(centre, sha)
    held_file = centre.folder / "media" / sha[:2] / f"{sha}.jpg"
    assert hashlib.sha256(held_file.read_bytes()).hexdigest() == sha
    media = daemon_media(compound, lambda m: m.get("uploaded", 0) >= 1)
    assert media["resent"] >= 1, media
    assert media["wire_bytes"] >= 2 * size - CHUNK, media  # sent (almost) twice
    assert not partial.exists()
    gw.terminate(timeout=15)


async def _call(fn: Callable[[], None]) -> None:
    fn()


def on_loop(compound: SimCompound, fn: Callable[[], None]) -> None:
    """Run a proxy switch on the loop the proxy lives on."""
    compound.on_loop(_call(fn))


def throttle(compound: SimCompound, proxy: FaultProxy) -> None:
    """A slow uplink, so the test can step in while an image is half sent."""
    on_loop(compound, lambda: proxy.set_mode("throttle", bandwidth_bps=SLOW_BPS))
