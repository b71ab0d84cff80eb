"""A whole simulated compound from a bench file: lines, simulators, keys, the gateway's config.

    with SimCompound(load_bench(), tmp_path) as compound:
        gw = compound.daemon()            # DaemonProcess for the real `compound-gw run`
        gw.start()
        compound.reader("north-gate").tap("04a1b2c3d4e5f6")
        compound.board("amp-main").coils  # what the relays really did

Serial lines come from the line emulator (paced at the bench's baud); OSDP readers are
libosdp PeripheralDevices with Secure Channel and keys generated here (0600 files); relay
boards, cameras and the modem run on an asyncio loop in a background thread. The gateway
config written to ``folder/gateway.toml`` names the emulators' host links exactly as a real
install names /dev/serial/by-id paths. Everything stops on exit, even after a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from gateway.config import write_secret_file
from hil_tests.benchfile import Bench, SimLines, start_sim_lines
from hil_tests.harness import DaemonProcess, minimal_config
from hil_tests.sims.camera import CameraSim
from hil_tests.sims.modem import ModemSim
from hil_tests.sims.osdp_reader import SimReader
from hil_tests.sims.relay_board import RelayBoardSim, SimBoard

T = TypeVar("T")

# The demo compound's guards and their wristbands (raw card data, hex).
ROSTER = {
    "04a1b2c3d4e5f6": "g-017",
    "04b2c3d4e5f607": "g-023",
    "04c3d4e5f60718": "g-031",
}
CAMERA_PASSWORD = "cam-pass-{name}"


class LoopThread:
    """An asyncio loop in a daemon thread, for simulators that need one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sim-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(drain(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class SimCompound:
    """Every simulated device of ``bench`` running, and a gateway config that points at them."""

    def __init__(
        self,
        bench: Bench,
        folder: Path,
        *,
        gateway_id: str = "gw-sim",
        seed: int = 1,
        extra_config: str = "",
        broadcast_keys: tuple[str, ...] = (),
        sync_keys: tuple[str, ...] = (),
        runtime_dir: str = "run",
        patrol_toml: str | None = None,
    ) -> None:
        self.bench = bench
        self.folder = Path(folder)
        self.gateway_id = gateway_id
        self.rng = random.Random(seed)
        self.extra_config = extra_config
        self.broadcast_keys = broadcast_keys
        self.sync_keys = sync_keys
        self.runtime_dir = runtime_dir
        self.patrol_toml = patrol_toml
        self.lines: SimLines | None = None
        self.readers: dict[str, SimReader] = {}
        self.boards: dict[str, SimBoard] = {}
        self.board_sims: list[RelayBoardSim] = []
        self.cameras: dict[str, CameraSim] = {}
        self.modem: ModemSim | None = None
        self.loop: LoopThread | None = None
        self.config_path = self.folder / "gateway.toml"
        self._stack = contextlib.ExitStack()
        self._daemons: list[DaemonProcess] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SimCompound:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = self.folder / "keys"
        self.lines = self._stack.enter_context(start_sim_lines(self.bench, self.folder))
        self.loop = LoopThread()
        self._stack.callback(self.loop.stop)
        for r in self.bench.readers:
            key = self.rng.randbytes(16)
            write_secret_file(keys / f"{r.name}.scbk", key)
            sim = SimReader(self.lines.device_path(r.name), r.address, key, baud=self._baud(r.line))
            self.readers[r.name] = sim.start()
            self._stack.callback(sim.stop)
        for line in self.bench.lines:
            boards = self.bench.boards_on(line.name)
            if not boards:
                continue
            sims = []
            for b in boards:
                board = SimBoard(b.address, b.profile, channels=b.channels)
                self.boards[b.name] = board
                sims.append(board)
            server = RelayBoardSim(self.lines.device_path(boards[0].name), sims, baudrate=line.baud)
            self.loop.run(server.__aenter__())
            self.board_sims.append(server)
            self._stack.callback(self._exit_on_loop, server)
        for c in self.bench.cameras:
            cam = CameraSim(
                c.name,
                channels=c.channel,
                username=c.username,
                password=CAMERA_PASSWORD.format(name=c.name),
                auth=c.auth,  # type: ignore[arg-type]
            )
            self.loop.run(cam.__aenter__())
            self.cameras[c.name] = cam
            write_secret_file(keys / f"{c.name}.password", cam.password.encode(), hex_text=False)
            self._stack.callback(self._exit_on_loop, cam)
        if self.bench.modem is not None:
            modem = ModemSim(
                device=self.lines.device_path("modem"),
                csq=(self.bench.modem.csq[0], self.bench.modem.csq[1]),
                operator=self.bench.modem.operator,
            )
            self.loop.run(modem.start())
            self.modem = modem
            self._stack.callback(self._stop_on_loop, modem)
        self.config_path.write_text(self.config_text())

    def _exit_on_loop(self, sim: Any) -> None:
        assert self.loop is not None
        self.loop.run(sim.__aexit__(None, None, None))

    def _stop_on_loop(self, sim: Any) -> None:
        assert self.loop is not None
        self.loop.run(sim.stop())

    def stop(self) -> None:
        for d in self._daemons:
            d.close()
        self._stack.close()

    def __enter__(self) -> SimCompound:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ access

    def _baud(self, line: str) -> int:
        return self.bench.line(line).baud

    def reader(self, name: str) -> SimReader:
        return self.readers[name]

    def board(self, name: str) -> SimBoard:
        return self.boards[name]

    def daemon(self, env: dict[str, str] | None = None) -> DaemonProcess:
        """The real daemon on this compound (closed with the compound)."""
        d = DaemonProcess(self.config_path, env={"GPIOZERO_PIN_FACTORY": "mock", **(env or {})})
        self._daemons.append(d)
        return d

    @property
    def daemon_processes(self) -> list[DaemonProcess]:
        return self._daemons

    def set_extra_config(self, extra: str) -> None:
        """Rewrite the gateway config with ``extra`` TOML appended (read at the next start)."""
        self.extra_config = extra
        self.config_path.write_text(self.config_text())

    @property
    def journal_path(self) -> Path:
        return self.folder / "data" / "journal.db"

    def on_loop(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the simulators' loop (e.g. ``camera.go_dark()``)."""
        assert self.loop is not None
        return self.loop.run(coro, timeout)

    # ------------------------------------------------------------------ the gateway's config

    def zone_channels(self) -> list[tuple[int, str, int]]:
        """(zone, board, channel): the amplifier is channel 0 of the first board, zones follow."""
        zones: list[tuple[int, str, int]] = []
        boards = list(self.bench.relay_boards)
        number = 1
        for i, b in enumerate(boards):
            for ch in range(1 if i == 0 else 0, min(b.channels, 4)):
                zones.append((number, b.name, ch))
                number += 1
        return zones

    def config_text(self) -> str:
        assert self.lines is not None
        out = [minimal_config(self.gateway_id, runtime_dir=self.runtime_dir).rstrip("\n")]
        out += ["", "[checkpoints]", "dedupe_window_s = 10.0"]
        reader_lines = sorted({r.line for r in self.bench.readers})
        for line in reader_lines:
            out += [
                "[[checkpoints.buses]]",
                f'name = "{line}"',
                f'port = "{self.lines.host_path(line)}"',
                f"baud = {self._baud(line)}",
            ]
        for r in self.bench.readers:
            out += [
                "[[checkpoints.points]]",
                f'id = "{r.name}"',
                f'bus = "{r.line}"',
                f"address = {r.address}",
                f'name = "{r.name.replace("-", " ").title()}"',
                f'key_file = "keys/{r.name}.scbk"',
            ]
        for band, guard in ROSTER.items():
            out += ["[[checkpoints.roster]]", f'wristband = "{band}"', f'guard = "{guard}"']
        if self.patrol_toml is not None:
            out += ["", self.patrol_toml]
        elif self.bench.readers:
            # Hourly rounds of every checkpoint, round the clock: a route the demo can walk.
            out += [
                "",
                "[patrol]",
                "[[patrol.routes]]",
                'id = "perimeter"',
                'name = "Perimeter"',
                "checkpoints = [" + ", ".join(f'"{r.name}"' for r in self.bench.readers) + "]",
                "ordered = false",
                "[[patrol.schedules]]",
                'id = "hourly"',
                'route = "perimeter"',
                "every_hours = 1.0",
                'start = "00:00"',
                'end = "00:00"',
                "grace_minutes = 15.0",
            ]
        if self.bench.relay_boards:
            out += ["", "[broadcast]", "enabled = true", "warmup_s = 0.2", "max_duration_s = 600.0"]
            out += list(self.broadcast_keys)
            relay_lines = sorted({b.line for b in self.bench.relay_boards})
            for line in relay_lines:
                out += [
                    "[[broadcast.ports]]",
                    f'port = "{self.lines.host_path(line)}"',
                    f"baud = {self._baud(line)}",
                ]
                for b in self.bench.boards_on(line):
                    out += [
                        "[[broadcast.ports.boards]]",
                        f'name = "{b.name}"',
                        f"address = {b.address}",
                        f'profile = "{b.profile}"',
                        f"channels = {b.channels}",
                    ]
            first = self.bench.relay_boards[0]
            out += ["[broadcast.amplifier]", f'board = "{first.name}"', "channel = 0"]
            for number, board, ch in self.zone_channels():
                out += [
                    "[[broadcast.zones]]",
                    f"number = {number}",
                    f'board = "{board}"',
                    f"channel = {ch}",
                ]
        out += ["", "[health]"]
        for c in self.bench.cameras:
            cam = self.cameras[c.name]
            out += [
                "[[health.cameras]]",
                f'name = "{c.name}"',
                *(
                    [f'snapshot_url = "{cam.snapshot_url}"']
                    if c.profile == "http"
                    else [
                        f'profile = "{c.profile}"',
                        f'address = "{cam.address}"',
                        f"channel = {c.channel}",
                    ]
                ),
                f'rtsp_url = "{cam.rtsp_url}"',
                f'auth = "{c.auth}"',
                f'username = "{c.username}"',
                f'password_file = "keys/{c.name}.password"',
                "interval_s = 2.0",
            ]
        if self.bench.cameras:
            out += [
                "[[health.snapshot_triggers]]",
                'kind = "tap"',
                f'cameras = ["{self.bench.cameras[0].name}"]',
                'field = "checkpoint"',
                f'equals = "{self.bench.readers[0].name if self.bench.readers else ""}"',
            ]
        if self.modem is not None:
            out += [
                "[health.modem]",
                f'port = "{self.lines.host_path(self.bench.modem.line)}"',  # type: ignore[union-attr]
                f"baudrate = {self._baud(self.bench.modem.line)}",  # type: ignore[union-attr]
                "interval_s = 5.0",
            ]
        if self.sync_keys:
            out += ["", "[sync]", *self.sync_keys]
        if self.extra_config:
            out += ["", self.extra_config]
        return "\n".join(out) + "\n"


@contextlib.contextmanager
def sim_compound(bench: Bench, folder: Path, **kw: Any) -> Iterator[SimCompound]:
    with SimCompound(bench, folder, **kw) as compound:
        yield compound
