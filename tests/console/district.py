"""A district for the console's acceptance tests: a real centre and enrolled simulated gateways.

Each gateway is the real gateway code on one event loop (the pieces of tests/commands/rig.py,
for any gateway id): its journal, the uploader (journal → centre over mTLS), the command
channel (centre → gateway WebSocket), the verifier and the broadcast controller driving a
simulated Modbus relay board on a virtual serial line::

    async with running_district(tmp_path, [("gw-rose-01", "North", "Rose Garden"), ...]) as d:
        d.url                                  # https://127.0.0.1:PORT (the centre)
        await d.gateways["gw-rose-01"].journal.append("patrol.round", {...})
        password = await d.user("alice", Role.OFFICER)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import secrets
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from centre.pki import CentrePaths, init_centre
from centre.server import RunningCentre, running_centre
from centre.tokens import hash_token, new_token
from centre.web.permissions import Role
from gateway.broadcast.config import BroadcastSection
from gateway.broadcast.service import build_runtime
from gateway.clock import SystemClock
from gateway.commands.channel import CommandChannel
from gateway.commands.config import CommandsSection
from gateway.commands.service import PendingVerifier, limits_for
from gateway.config.schema import parse_section
from gateway.daemon import connect_look_now
from gateway.health.config import HealthSection
from gateway.health.hub import HealthHub
from gateway.health.services import CameraMonitor, SnapshotService, build_services
from gateway.journal import Journal
from gateway.sync.config import SyncSection
from gateway.sync.media import MediaUplink
from gateway.sync.provision import provision
from gateway.sync.uploader import Uploader
from hil_tests.sims.camera import CameraSim
from hil_tests.sims.relay_board import RelayBoardSim, SimBoard
from tests.broadcast.benchkit import board_config, section_data, serial_line

WAIT_S = 30.0  # every wait on a loaded machine: generous, and ended by a condition
FAST_COMMANDS = CommandsSection(backoff_initial_s=0.05, backoff_max_s=0.5, heartbeat_s=5.0)
FAST_SYNC = SyncSection(
    batch_max_events=200,
    first_delay_max_s=0.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.5,
    idle_poll_s=0.2,
    request_timeout_s=10.0,
)


class DutyRoomCamera(CameraSim):
    """The simulated camera serving a picture a browser can show: a real JPEG (made once with
    Debian's ffmpeg), each frame made distinct by a comment segment with its number."""

    _base: bytes | None = None

    @classmethod
    def base_jpeg(cls) -> bytes:
        if cls._base is None:
            out = subprocess.run(
                ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=1",
                 "-frames:v", "1", "-f", "mjpeg", "-"],
                check=True, capture_output=True, timeout=60,
            ).stdout  # fmt: skip
            assert out[:2] == b"\xff\xd8", "ffmpeg gave no JPEG"
            cls._base = out
        return cls._base

    async def _snapshot(self, request: web.Request, channel: int = 1) -> web.StreamResponse:
        resp = await super()._snapshot(request, channel)
        if resp.content_type != "image/jpeg":
            return resp
        # The port tells the compounds apart: every camera is named "duty-room".
        note = f"duty room {self.name}:{self.http_port} frame {self.frames}".encode()
        base = self.base_jpeg()
        data = base[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + base[2:]
        self.served[-1] = hashlib.sha256(data).hexdigest()
        return web.Response(body=data, content_type="image/jpeg")


@dataclass
class SimGateway:
    gateway_id: str
    township: str
    compound: str
    journal: Journal
    board: SimBoard
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    camera: CameraSim | None = None  # the duty-room camera, with ``cameras=True``
    gw_dir: Path | None = None
    services: list[Any] = field(default_factory=list)

    def check(self) -> None:
        """Raise what a background task died of (a wait then fails with the real reason)."""
        for t in self.tasks:
            if t.done() and not t.cancelled():
                t.result()


@dataclass
class District:
    paths: CentrePaths
    running: RunningCentre
    fingerprint: str
    gateways: dict[str, SimGateway] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.running.url

    async def user(
        self, name: str, role: Role, *, township: str | None = None, compound: str | None = None
    ) -> str:
        """A console account with a fresh random password (returned)."""
        password = secrets.token_urlsafe(12)
        assert self.running.console is not None
        await self.running.console.console.add_user(
            "cli:test", name, password, role, township=township, compound=compound
        )
        return password


async def wait_until(predicate, what: str, timeout: float = WAIT_S, check=None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _gateway(
    district: District,
    root: Path,
    gateway_id: str,
    township: str,
    compound: str,
    *,
    cameras: bool = False,
    sync: SyncSection = FAST_SYNC,
) -> AsyncIterator[SimGateway]:
    token = new_token()
    now = time.time()
    await district.running.repo.create_token(hash_token(token), compound, township, now, now + 900)
    gw_dir = root / gateway_id
    await provision(
        district.url,
        token,
        data_dir=gw_dir,
        gateway_id=gateway_id,
        compound=compound,
        ca_fingerprint=district.fingerprint,
    )
    clock = SystemClock()
    board = SimBoard(1, "coils")
    with serial_line(9600) as line:
        async with RelayBoardSim(line.device_path, [board], baudrate=9600):
            data = section_data(
                line.host_path,
                [board_config("coils", 1, "main")],
                {1: ("main", 1), 2: ("main", 2)},
                max_duration_s=600,
            )
            bsection = parse_section(BroadcastSection, data, "broadcast")
            journal = await Journal.open(gw_dir / "journal.db", gateway_id=gateway_id, clock=clock)
            runtime = build_runtime(bsection, journal, clock)
            channel = CommandChannel(
                journal,
                clock,
                SyncSection(),
                FAST_COMMANDS,
                data_dir=gw_dir,
                trigger=runtime.remote(PendingVerifier()),
            )
            channel.configure_verifier(
                gateway_id=gateway_id,
                state_path=gw_dir / FAST_COMMANDS.state_file,
                limits=limits_for(FAST_COMMANDS, bsection),
            )
            uploader = Uploader(
                journal, clock, sync, data_dir=gw_dir, rng=random.Random(gateway_id)
            )
            gw = SimGateway(gateway_id, township, compound, journal, board, gw_dir=gw_dir)
            gw.tasks = [
                asyncio.create_task(runtime.service.run()),
                asyncio.create_task(channel.run()),
                asyncio.create_task(uploader.run()),
            ]
            async with contextlib.AsyncExitStack() as stack:
                try:
                    if cameras:
                        gw.camera = await stack.enter_async_context(
                            DutyRoomCamera("duty-room", auth="none")
                        )
                        gw.services = _camera_services(gw, gw.camera, channel, clock, sync)
                        gw.tasks += [asyncio.create_task(s.run()) for s in gw.services]
                    await asyncio.wait_for(runtime.controller.ready.wait(), WAIT_S)
                    yield gw
                finally:
                    for t in gw.tasks:
                        t.cancel()
                    await asyncio.gather(*gw.tasks, return_exceptions=True)
                    for s in gw.services:
                        if isinstance(s, CameraMonitor):
                            await s.camera.close()
                    await journal.close()


def _camera_services(
    gw: SimGateway, cam: CameraSim, channel: CommandChannel, clock: SystemClock, sync: SyncSection
) -> list[Any]:
    """The gateway's camera side as the daemon wires it: the health hub and camera poller
    (a ``health.state`` event names the camera to the centre), the snapshot service connected
    to the command channel (look now), and the media uplink that brings images to the centre."""
    assert gw.gw_dir is not None
    section = parse_section(
        HealthSection,
        {"cameras": [{"name": cam.name, "snapshot_url": cam.snapshot_url, "auth": "none",
                      "interval_s": 5.0}]},
        "health",
    )  # fmt: skip
    built = build_services(section, gw.journal, clock, None, base_dir=gw.gw_dir, data_dir=gw.gw_dir)
    assert connect_look_now([*built, channel])  # the daemon's own wiring
    kept = [s for s in built if isinstance(s, HealthHub | CameraMonitor | SnapshotService)]
    uplink = MediaUplink(gw.journal, clock, sync, data_dir=gw.gw_dir, media_dir=gw.gw_dir / "media")
    return [*kept, uplink]


_TEMPLATE: dict[str, tuple[CentrePaths, str]] = {}


def _centre_template(cache: Path) -> tuple[CentrePaths, str]:
    """One CA per test session (key generation is the slow part); each test copies it."""
    if "t" not in _TEMPLATE:
        paths = CentrePaths(cache / "centre-template")
        fp = init_centre(
            paths, hostnames=["localhost"], ips=["127.0.0.1"], now=time.time(), name="Test"
        )
        _TEMPLATE["t"] = (paths, fp)
    return _TEMPLATE["t"]


@contextlib.asynccontextmanager
async def running_district(
    tmp_path: Path,
    gateways: Sequence[tuple[str, str, str]],
    *,
    cache: Path | None = None,
    cameras: bool = False,
    sync: SyncSection = FAST_SYNC,
    dsn: str | None = None,
) -> AsyncIterator[District]:
    """A centre on loopback TLS and ``gateways`` (id, township, compound), all running; with
    ``cameras`` each has a simulated ``duty-room`` camera, look now and the media uplink.
    ``sync`` is the gateways' uploader and uplink settings (quick retries by default; a bench
    passes the shipped defaults). With ``dsn`` the centre's database is that PostgreSQL
    (main repository, command queue and console store), else its SQLite files."""
    template, fp = _centre_template(cache or tmp_path)
    root = tmp_path / "centre"
    shutil.copytree(template.root, root)
    if dsn is not None:
        (root / "centre.toml").write_text(f'[database]\ndsn = "{dsn}"\n', encoding="utf-8")
    paths = CentrePaths(root)
    async with running_centre(paths, host="127.0.0.1", port=0) as running:
        district = District(paths, running, fp)
        async with contextlib.AsyncExitStack() as stack:
            for gateway_id, township, compound in gateways:
                district.gateways[gateway_id] = await stack.enter_async_context(
                    _gateway(
                        district,
                        tmp_path / "gateways",
                        gateway_id,
                        township,
                        compound,
                        cameras=cameras,
                        sync=sync,
                    )
                )
            yield district


def tone_wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A 440 Hz tone as 16-bit mono WAV: an announcement to upload in tests."""
    import io
    import math
    import struct
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
            for i in range(int(seconds * rate))
        ))  # fmt: skip
    return buf.getvalue()
