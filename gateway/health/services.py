"""The health services: pollers for cameras, the modem and the gateway itself, GPIO watching,
evidence snapshots on chosen events, and the factory the daemon calls.

Each poller turns what a driver saw into ``hub.report(device, kind, state, reason)`` and a
thinned ``hub.sample(...)``; the hub does hysteresis and journaling. Every service is supervised:
it runs until cancelled, and a crash restarts it with backoff.

    services = build_services(section, journal, clock, board, base_dir=..., data_dir=...)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from drivers.camera import Camera, CameraError, open_camera, rtsp_options
from drivers.modem import AtReplyError, ModemError, ModemLink, parse_cops, parse_creg, parse_csq
from drivers.selfmon import SelfProbe, SelfSample
from gateway.clock import Clock
from gateway.errors import ConfigError, JournalError
from gateway.events import EVIDENCE, TELEMETRY, Event
from gateway.health.config import (
    CameraConfig,
    GpioConfig,
    HealthSection,
    ModemConfig,
    SelfConfig,
    SnapshotTrigger,
    load_camera_password,
    resolve,
)
from gateway.health.evidence import EvidenceStore
from gateway.health.hub import Board, HealthHub
from gateway.health.model import Hysteresis, State, severity
from gateway.journal import Journal

log = logging.getLogger("gateway.health")

# --- cameras -----------------------------------------------------------------------------------

# Faults that mean "nothing answers" (down); any other fault means "answers, but wrongly".
_DOWN_FAULTS: Final = frozenset({"unreachable", "timeout"})
SNAPSHOT_IDLE_S: Final = 0.5


def make_camera(cfg: CameraConfig, base_dir: Path) -> Camera:
    """The camera its config section describes, by profile (reads the password file)."""
    try:
        return open_camera(cfg, load_camera_password(cfg, base_dir))
    except CameraError as exc:  # e.g. a control character in the password file
        raise ConfigError(f"health.cameras[{cfg.name}]", exc.reason) from exc


class CameraMonitor:
    """Polls one camera: snapshot (and RTSP OPTIONS if configured) every ``interval_s``."""

    def __init__(self, cfg: CameraConfig, camera: Camera, hub: HealthHub) -> None:
        self.cfg = cfg
        self.camera = camera
        self.hub = hub
        self.name = f"health-camera-{cfg.name}"
        self.polls = 0
        self._logged: set[str] = set()

    async def run(self) -> None:
        self.hub.register(self.cfg.name, "camera")
        try:
            while True:
                started = time.monotonic()
                await self.poll_once()
                await asyncio.sleep(max(0.0, self.cfg.interval_s - (time.monotonic() - started)))
        finally:
            await self.camera.close()

    async def poll_once(self) -> State:
        """One observation, reported to the hub; returns the observed state."""
        self.polls += 1
        metrics: dict[str, Any] = {}
        snap_fault: str | None = None
        snap_reason = ""
        try:
            shot = await self.camera.snapshot()
            metrics["snapshot_ms"] = round(shot.elapsed_s * 1000, 1)
            metrics["snapshot_bytes"] = len(shot.data)
        except CameraError as exc:
            snap_fault = str(exc.fields.get("fault", "unreachable"))
            snap_reason = exc.reason
            metrics["fault"] = snap_fault
        except Exception as exc:
            # The driver promises CameraError for anything a camera sends; if that promise
            # breaks, the camera is still reported (degraded) and polled again, rather than
            # this monitor crash-looping while the camera keeps answering the same way.
            snap_fault = "driver"
            snap_reason = self._unexpected("snapshot", exc)
            metrics["fault"] = snap_fault
        rtsp_ok: bool | None = None
        rtsp_reason = ""
        if self.cfg.rtsp_url:
            try:
                reply = await rtsp_options(self.cfg.rtsp_url, timeout=self.cfg.timeout_s)
                metrics["rtsp_ms"] = round(reply.elapsed_s * 1000, 1)
                metrics["rtsp_status"] = reply.status
                rtsp_ok = True
            except CameraError as exc:
                rtsp_ok = False
                rtsp_reason = exc.reason
                metrics["rtsp_fault"] = str(exc.fields.get("fault", "unreachable"))
            except Exception as exc:  # see the snapshot above
                rtsp_ok = False
                rtsp_reason = self._unexpected("rtsp", exc)
                metrics["rtsp_fault"] = "driver"
        state, reason = self._judge(snap_fault, snap_reason, metrics, rtsp_ok, rtsp_reason)
        self.hub.report(self.cfg.name, "camera", state, reason, detail=metrics)
        self.hub.sample(self.cfg.name, "camera", {"state": state.value, **metrics})
        return state

    def _unexpected(self, what: str, exc: Exception) -> str:
        """Log a driver error that is not a CameraError (once per kind) and describe it."""
        kind = f"{what}:{type(exc).__name__}"
        if kind not in self._logged:
            self._logged.add(kind)
            log.error("camera %s: %s raised %r", self.cfg.name, what, exc, exc_info=exc)
        text = str(exc)
        return f"{what} failed: {type(exc).__name__}: {text[:200]}"

    def _judge(
        self,
        snap_fault: str | None,
        snap_reason: str,
        metrics: Mapping[str, Any],
        rtsp_ok: bool | None,
        rtsp_reason: str,
    ) -> tuple[State, str]:
        if snap_fault is None:
            if rtsp_ok is False:
                return State.DEGRADED, f"snapshot ok but {rtsp_reason}"
            if metrics["snapshot_ms"] > self.cfg.slow_ms:
                return State.DEGRADED, f"snapshot slow: {metrics['snapshot_ms']:.0f} ms"
            return State.OK, (
                f"snapshot {metrics['snapshot_bytes']} bytes in {metrics['snapshot_ms']:.0f} ms"
            )
        if snap_fault in _DOWN_FAULTS and rtsp_ok is not True:
            return State.DOWN, snap_reason
        if snap_fault in _DOWN_FAULTS:
            return State.DEGRADED, f"{snap_reason} (RTSP still answers)"
        return State.DEGRADED, snap_reason


def _matches(trigger: SnapshotTrigger, ev: Event) -> bool:
    if ev.kind != trigger.kind:
        return False
    if not trigger.field:
        return True
    return str(ev.payload.get(trigger.field, "")) == trigger.equals


class SnapshotService:
    """Takes an evidence snapshot when a chosen event is journaled (a gate tap, a missed round).

    Watches the journal from its current end (a restart does not re-snapshot old events); for
    each matching event, fetches from each named camera, stores the JPEG (fsynced) and then
    appends ``camera.snapshot`` {camera, trigger_seq, trigger_kind, sha256, bytes, file,
    fetch_ms}, or ``camera.snapshot_failed`` {camera, trigger_seq, trigger_kind, reason}.

    Look now (issue 17): :meth:`take_now` takes a picture at once for a centre command, the
    same way (same camera lock, same store), and journals ``camera.snapshot`` {camera, request,
    reason: "look_now", sha256, bytes, file, fetch_ms} or ``camera.snapshot_failed`` {camera,
    request, reason, code}. The daemon hands it to the command channel (gateway/daemon.py).
    """

    name = "health-snapshots"
    MAX_PENDING_PER_CAMERA: Final = 4

    def __init__(
        self,
        journal: Journal,
        clock: Clock,
        triggers: Iterable[SnapshotTrigger],
        cameras: Mapping[str, Camera],
        store: EvidenceStore,
    ) -> None:
        self.journal = journal
        self.clock = clock
        self.triggers = tuple(triggers)
        self.cameras = dict(cameras)
        self.store = store
        self._locks = {name: asyncio.Lock() for name in self.cameras}
        self._pending = dict.fromkeys(self.cameras, 0)
        self._store_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.taken = 0
        self.failed = 0

    async def run(self) -> None:
        after = self.journal.last_seq
        kinds = sorted({t.kind for t in self.triggers})
        try:
            while not kinds:  # look-now only: nothing to watch in the journal
                await asyncio.sleep(3600.0)
            while True:
                last = await self.journal.wait_for_new(after, timeout=30.0)
                if last <= after:
                    # A timeout, or a closing journal that returns at once: never spin.
                    await asyncio.sleep(SNAPSHOT_IDLE_S)
                    continue
                batch = await self.journal.read_after(
                    after, limit=500, classes=[EVIDENCE], kinds=kinds
                )
                for ev in batch:
                    for trig in self.triggers:
                        if _matches(trig, ev):
                            for cam_name in trig.cameras:
                                self._start(cam_name, ev)
                after = batch[-1].seq if len(batch) == 500 else max([last, *(e.seq for e in batch)])
        finally:
            for t in list(self._tasks):
                t.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            for cam in self.cameras.values():
                await cam.close()

    def camera_names(self) -> frozenset[str]:
        return frozenset(self.cameras)

    async def take_now(self, camera: str, request: str) -> dict[str, Any]:
        """Look now: a picture from ``camera`` at once, stored and journaled with ``request``
        (the command id). Returns ``{"ok": True, sha256, bytes, file}`` or ``{"ok": False,
        "code": unknown_camera | camera_unreachable | camera_fault | storage, "reason"}``; the
        failure is journaled as ``camera.snapshot_failed`` too. Never raises (bar cancel)."""
        if camera not in self.cameras:
            out = {"ok": False, "code": "unknown_camera", "reason": f"no camera named {camera!r}"}
            await self._append("camera.snapshot_failed", self._look(camera, request, out))
            return out
        async with self._locks[camera]:
            try:
                shot = await self.cameras[camera].snapshot()
            except CameraError as exc:
                fault = str(exc.fields.get("fault", "unreachable"))
                code = "camera_unreachable" if fault in _DOWN_FAULTS else "camera_fault"
                return await self._look_failed(camera, request, code, exc.reason)
            except Exception as exc:  # a driver bug: still a recorded, answered failure
                log.error("look-now snapshot from %s raised %r", camera, exc, exc_info=exc)
                return await self._look_failed(
                    camera, request, "camera_fault", f"snapshot failed: {type(exc).__name__}"
                )
            try:
                async with self._store_lock:
                    saved = await asyncio.to_thread(
                        self.store.save, camera, shot.data, self.clock.wall()
                    )
            except OSError as exc:
                return await self._look_failed(
                    camera, request, "storage", f"cannot store snapshot: {exc.strerror}"
                )
            await self._append(
                "camera.snapshot",
                {
                    "camera": camera,
                    "request": request,
                    "reason": "look_now",
                    "sha256": saved.sha256,
                    "bytes": saved.size,
                    "file": saved.name,
                    "fetch_ms": round(shot.elapsed_s * 1000, 1),
                },
            )
            self.taken += 1
            if saved.pruned:
                await self._append(
                    "media.pruned",
                    {"files": len(saved.pruned), "bytes": saved.pruned_bytes},
                    cls=TELEMETRY,
                )
        return {"ok": True, "sha256": saved.sha256, "bytes": saved.size, "file": saved.name}

    @staticmethod
    def _look(camera: str, request: str, out: Mapping[str, Any]) -> dict[str, Any]:
        return {"camera": camera, "request": request, "reason": out["reason"], "code": out["code"]}

    async def _look_failed(
        self, camera: str, request: str, code: str, reason: str
    ) -> dict[str, Any]:
        self.failed += 1
        out = {"ok": False, "code": code, "reason": reason[:300]}
        await self._append("camera.snapshot_failed", self._look(camera, request, out))
        return out

    def _start(self, camera: str, ev: Event) -> None:
        if self._pending[camera] >= self.MAX_PENDING_PER_CAMERA:
            self._record_failure(camera, ev, "too many snapshots pending for this camera")
            return
        self._pending[camera] += 1
        task = asyncio.create_task(self._take(camera, ev), name=f"snapshot-{camera}-{ev.seq}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _record_failure(self, camera: str, ev: Event, reason: str) -> None:
        self.failed += 1
        payload = {
            "camera": camera,
            "trigger_seq": ev.seq,
            "trigger_kind": ev.kind,
            "reason": reason,
        }
        task = asyncio.create_task(self._append("camera.snapshot_failed", payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _append(self, kind: str, payload: dict[str, Any], cls: str = EVIDENCE) -> None:
        try:
            await self.journal.append(kind, payload, cls=cls)
        except JournalError as exc:  # a background task: say so rather than lose it silently
            log.error("could not journal %s %s: %s", kind, payload, exc.reason)

    async def _take(self, camera: str, ev: Event) -> None:
        try:
            await self._take_locked(camera, ev)
        except Exception:  # a background task: log here, or the error is never seen
            log.exception("evidence snapshot from %s for event %d failed", camera, ev.seq)
        finally:
            self._pending[camera] -= 1

    async def _take_locked(self, camera: str, ev: Event) -> None:
        """Fetch, store (fsynced), then journal; failures become snapshot_failed events."""
        async with self._locks[camera]:
            try:
                shot = await self.cameras[camera].snapshot()
            except CameraError as exc:
                self._record_failure(camera, ev, exc.reason)
                return
            except Exception as exc:  # a driver bug still leaves a record of the missed shot
                log.error("evidence snapshot from %s raised %r", camera, exc, exc_info=exc)
                self._record_failure(camera, ev, f"snapshot failed: {type(exc).__name__}")
                return
            try:
                async with self._store_lock:
                    saved = await asyncio.to_thread(
                        self.store.save, camera, shot.data, self.clock.wall()
                    )
            except OSError as exc:
                self._record_failure(camera, ev, f"cannot store snapshot: {exc.strerror}")
                return
            await self.journal.append(
                "camera.snapshot",
                {
                    "camera": camera,
                    "trigger_seq": ev.seq,
                    "trigger_kind": ev.kind,
                    "sha256": saved.sha256,
                    "bytes": saved.size,
                    "file": saved.name,
                    "fetch_ms": round(shot.elapsed_s * 1000, 1),
                },
            )
            self.taken += 1
            if saved.pruned:
                await self.journal.append(
                    "media.pruned",
                    {"files": len(saved.pruned), "bytes": saved.pruned_bytes},
                    cls=TELEMETRY,
                )


# --- modem -------------------------------------------------------------------------------------

MODEM_RECONNECT_INITIAL_S: Final = 2.0
MODEM_RECONNECT_MAX_S: Final = 60.0
MODEM_RECONNECT_JITTER: Final = 0.25  # +/- fraction of the delay
MODEM_DEVICE: Final = "modem"


class ModemLinkState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    BACKOFF = "backoff"


@dataclass(slots=True)
class _Reconnect:
    """Backoff bookkeeping for the modem port: doubles per failed open, resets on success."""

    delay: float = MODEM_RECONNECT_INITIAL_S

    def next_delay(self, rng: random.Random) -> float:
        d = self.delay * (1 + rng.uniform(-MODEM_RECONNECT_JITTER, MODEM_RECONNECT_JITTER))
        self.delay = min(self.delay * 2, MODEM_RECONNECT_MAX_S)
        return d

    def reset(self) -> None:
        self.delay = MODEM_RECONNECT_INITIAL_S


class ModemMonitor:
    """Polls the modem: AT, AT+CSQ, AT+CREG?, AT+COPS?. The port is an explicit state machine:

    CLOSED --open ok--> OPEN --port vanished--> BACKOFF --delay--> CLOSED --open fails--> BACKOFF

    A modem that answers ERROR or stays silent keeps the port OPEN (it is there, just unwell);
    only an open failure or a vanished port goes through BACKOFF.
    """

    name = "health-modem"

    def __init__(
        self,
        cfg: ModemConfig,
        hub: HealthHub,
        *,
        rng: random.Random | None = None,
        reconnect_initial_s: float = MODEM_RECONNECT_INITIAL_S,
    ) -> None:
        self.cfg = cfg
        self.hub = hub
        self.link: ModemLink | None = None
        self.state = ModemLinkState.CLOSED
        self._rng = rng or random.Random()
        self._reconnect = _Reconnect(reconnect_initial_s)
        self._reconnect_initial_s = reconnect_initial_s
        self.polls = 0
        self.opens = 0
        self.urc_count = 0
        self._poll_now = asyncio.Event()

    async def run(self) -> None:
        self.hub.register(MODEM_DEVICE, "modem")
        try:
            while True:
                if self.state is ModemLinkState.CLOSED:
                    await self._open()
                if self.state is ModemLinkState.BACKOFF:
                    await asyncio.sleep(self._reconnect.next_delay(self._rng))
                    self.state = ModemLinkState.CLOSED
                    continue
                await self.poll_once()
                self._poll_now.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poll_now.wait(), self.cfg.interval_s)
        finally:
            if self.link is not None:
                await self.link.close()
            # A restart by the supervisor begins from a closed port, not a stale "open" one.
            self.link = None
            self.state = ModemLinkState.CLOSED

    async def _open(self) -> None:
        try:
            self.link = await ModemLink.open(self.cfg.port, self.cfg.baudrate)
        except ModemError as exc:
            self.link = None
            self.state = ModemLinkState.BACKOFF
            self.hub.report(MODEM_DEVICE, "modem", State.DOWN, exc.reason)
            return
        self.opens += 1
        self.state = ModemLinkState.OPEN
        self._reconnect = _Reconnect(self._reconnect_initial_s)

    async def poll_once(self) -> State:
        """One round of AT queries, reported to the hub; returns the observed state."""
        link = self.link
        assert link is not None
        self.polls += 1
        timeout = self.cfg.command_timeout_s
        metrics: dict[str, Any] = {}
        try:
            alive = await link.command("AT", timeout)
            if not alive.ok:
                return self._observe(State.DEGRADED, f"AT answered {alive.final}", metrics)
            csq = await link.command("AT+CSQ", timeout)
            creg = await link.command("AT+CREG?", timeout)
            cops = await link.command("AT+COPS?", timeout)
        except ModemError as exc:
            if link.closed:
                self.state = ModemLinkState.BACKOFF
                self.link = None
            return self._observe(State.DOWN, exc.reason, metrics)
        finally:
            self._drain_urcs(link)
        problems: list[tuple[State, str]] = []
        try:
            signal = parse_csq(csq)
            metrics.update(signal_dbm=signal.dbm, csq=signal.rssi, ber=signal.ber)
            if signal.dbm is None:
                problems.append((State.DEGRADED, "signal unknown (CSQ 99)"))
            elif signal.dbm < self.cfg.weak_dbm:
                problems.append((State.DEGRADED, f"weak signal {signal.dbm} dBm"))
        except AtReplyError as exc:
            problems.append((State.DEGRADED, exc.reason))
        try:
            reg = parse_creg(creg)
            metrics.update(registration=reg.text)
            if reg.stat in (0, 3):
                problems.append((State.DOWN, reg.text))
            elif not reg.registered:
                problems.append((State.DEGRADED, reg.text))
        except AtReplyError as exc:
            problems.append((State.DEGRADED, exc.reason))
        try:
            op = parse_cops(cops)
            metrics.update(operator=op.name, act=op.act)
        except AtReplyError as exc:
            problems.append((State.DEGRADED, exc.reason))
        if problems:
            worst = max((p[0] for p in problems), key=severity)
            reason = "; ".join(r for s, r in problems if s is worst)
            return self._observe(worst, reason, metrics)
        return self._observe(
            State.OK,
            f"{metrics['registration']}, {metrics.get('operator')}, {metrics['signal_dbm']} dBm",
            metrics,
        )

    def _drain_urcs(self, link: ModemLink) -> None:
        while link.unsolicited:
            line = link.unsolicited.popleft()
            self.urc_count += 1
            log.info("modem unsolicited: %s", line)
            if line.startswith("+CREG:"):
                self._poll_now.set()  # registration changed: look now, not in a minute

    def _observe(self, state: State, reason: str, metrics: dict[str, Any]) -> State:
        self.hub.report(MODEM_DEVICE, "modem", state, reason, detail=metrics)
        self.hub.sample(MODEM_DEVICE, "modem", {"state": state.value, **metrics})
        return state


# --- the gateway itself ------------------------------------------------------------------------

SELF_DEVICE: Final = "gateway"
# Write rates are averaged over this long: one poll's delta is all noise (a checkpoint, a log).
WRITE_RATE_WINDOW_S: Final = 3600.0


class SelfMonitor:
    """Checks temperature, disk, memory, clock, power flags; computes bytes written per hour."""

    name = "health-self"

    def __init__(self, cfg: SelfConfig, probe: SelfProbe, hub: HealthHub) -> None:
        self.cfg = cfg
        self.probe = probe
        self.hub = hub
        self._history: deque[tuple[float, SelfSample]] = deque()
        self.last_metrics: dict[str, Any] = {}

    async def run(self) -> None:
        self.hub.register(SELF_DEVICE, "gateway")
        while True:
            await self.poll_once()
            await asyncio.sleep(self.cfg.interval_s)

    async def poll_once(self) -> State:
        sample = await asyncio.to_thread(self.probe.read)
        now = time.monotonic()
        metrics: dict[str, Any] = {
            "cpu_temp_c": sample.cpu_temp_c,
            "load1": sample.load1,
            "mem_available_bytes": sample.mem_available_bytes,
            "disk_free_bytes": sample.disk_free_bytes,
            "uptime_s": sample.uptime_s,
            "clock_synced": None if sample.clock is None else sample.clock.synced,
            "under_voltage": sample.under_voltage_now,
            "throttled": sample.throttled_now,
            "process_write_bytes": sample.process_write_bytes,
            "device_write_bytes": sample.device_write_bytes,
        }
        while self._history and now - self._history[0][0] > WRITE_RATE_WINDOW_S:
            self._history.popleft()
        if self._history:
            then, prev = self._history[0]
            dt = now - then
            if dt > 0 and sample.device_write_bytes is not None and prev.device_write_bytes:
                rate = (sample.device_write_bytes - prev.device_write_bytes) * 3600 / dt
                metrics["write_bytes_per_hour"] = round(rate)
            if dt > 0 and sample.process_write_bytes is not None and prev.process_write_bytes:
                rate = (sample.process_write_bytes - prev.process_write_bytes) * 3600 / dt
                metrics["process_write_bytes_per_hour"] = round(rate)
        self._history.append((now, sample))
        self.last_metrics = metrics
        state, reason = self.judge(sample)
        self.hub.report(SELF_DEVICE, "gateway", state, reason, detail=metrics)
        self.hub.sample(SELF_DEVICE, "gateway", {"state": state.value, **metrics})
        return state

    def judge(self, s: SelfSample) -> tuple[State, str]:
        """The gateway's state from one sample: the worst finding wins, every finding is named."""
        found: list[tuple[State, str]] = []
        c = self.cfg
        if s.disk_free_bytes is not None:
            mib = s.disk_free_bytes // (1024 * 1024)
            if s.disk_free_bytes < c.disk_crit_bytes:
                found.append((State.DOWN, f"disk nearly full: {mib} MiB free"))
            elif s.disk_free_bytes < c.disk_warn_bytes:
                found.append((State.DEGRADED, f"disk low: {mib} MiB free"))
        if s.cpu_temp_c is not None:
            if s.cpu_temp_c >= c.temp_crit_c:
                found.append((State.DOWN, f"CPU at {s.cpu_temp_c:.1f} C"))
            elif s.cpu_temp_c >= c.temp_warn_c:
                found.append((State.DEGRADED, f"CPU hot: {s.cpu_temp_c:.1f} C"))
        if s.under_voltage_now:
            found.append((State.DEGRADED, "under-voltage"))
        if s.throttled_now:
            found.append((State.DEGRADED, "CPU throttled"))
        if c.require_clock_sync and s.clock is not None and not s.clock.synced:
            found.append((State.DEGRADED, "clock not synchronised"))
        if not found:
            temp = "unknown" if s.cpu_temp_c is None else f"{s.cpu_temp_c:.0f} C"
            free = "unknown" if s.disk_free_bytes is None else f"{s.disk_free_bytes >> 20} MiB"
            return State.OK, f"CPU {temp}, disk {free} free"
        worst = State.DOWN if any(st is State.DOWN for st, _ in found) else State.DEGRADED
        return worst, "; ".join(r for st, r in found if st is worst)


# --- GPIO --------------------------------------------------------------------------------------

LED_REFRESH_S: Final = 0.5


class GpioMonitor:
    """Tamper switch and mains input become evidence events at once; the LED shows the state.

    LED: steady on = all well; slow blink = the link to the centre is not ok; fast blink = some
    device is down (or the cabinet is open).
    """

    name = "health-gpio"

    def __init__(self, cfg: GpioConfig, hub: HealthHub, *, pin_factory: Any = None) -> None:
        self.cfg = cfg
        self.hub = hub
        self.pin_factory = pin_factory
        self.led_pattern = "off"

    async def run(self) -> None:
        from drivers.gpio import DigitalInput, StatusLed  # gpiozero only where GPIO is configured

        loop = asyncio.get_running_loop()
        inputs: list[DigitalInput] = []
        led: StatusLed | None = None
        bounce = self.cfg.bounce_s or None
        try:
            if self.cfg.tamper_pin is not None:
                tamper = DigitalInput(
                    "tamper", self.cfg.tamper_pin, pull=self.cfg.tamper_pull,
                    asserted_when=self.cfg.tamper_open_when, bounce_s=bounce,
                    pin_factory=self.pin_factory,
                )  # fmt: skip
                inputs.append(tamper)
                self._tamper(tamper.asserted, at_start=True)
                tamper.subscribe(loop, lambda _n, a: self._tamper(a))
            if self.cfg.mains_pin is not None:
                mains = DigitalInput(
                    "mains", self.cfg.mains_pin, pull=self.cfg.mains_pull,
                    asserted_when=self.cfg.mains_present_when, bounce_s=bounce,
                    pin_factory=self.pin_factory,
                )  # fmt: skip
                inputs.append(mains)
                self._mains(mains.asserted, at_start=True)
                mains.subscribe(loop, lambda _n, a: self._mains(a))
            if self.cfg.led_pin is not None:
                led = StatusLed(self.cfg.led_pin, pin_factory=self.pin_factory)
            while True:
                self.led_pattern = self.pattern()
                if led is not None:
                    led.show(self.led_pattern)  # type: ignore[arg-type]
                await asyncio.sleep(LED_REFRESH_S)
        finally:
            for inp in inputs:
                inp.close()
            if led is not None:
                led.close()

    def pattern(self) -> str:
        snapshot = self.hub.model.snapshot()
        if any(h.state is State.DOWN for h in snapshot):
            return "fast"
        if any(h.kind == "link" and h.state is not State.OK for h in snapshot):
            return "slow"
        return "on"

    def _tamper(self, is_open: bool, at_start: bool = False) -> None:
        if is_open or not at_start:
            self.hub.record(
                "tamper.open" if is_open else "tamper.closed",
                {"input": "tamper", "pin": self.cfg.tamper_pin, "at_start": at_start},
            )
        self.hub.report(
            "cabinet", "tamper",
            State.DOWN if is_open else State.OK,
            "cabinet open (tamper switch)" if is_open else "cabinet closed",
            confirmed=True,  # an edge after debounce is a fact, not a sample
        )  # fmt: skip

    def _mains(self, present: bool, at_start: bool = False) -> None:
        if not present or not at_start:
            self.hub.record(
                "power.mains_restored" if present else "power.mains_lost",
                {"input": "mains", "pin": self.cfg.mains_pin, "at_start": at_start},
            )
        self.hub.report(
            "power", "power",
            State.OK if present else State.DEGRADED,
            "mains present" if present else "mains lost: running on UPS battery",
            confirmed=True,
        )  # fmt: skip


# --- the factory -------------------------------------------------------------------------------


def policies_from(section: HealthSection) -> dict[str, Hysteresis]:
    return {
        h.kind: Hysteresis(h.worsen_after, h.recover_after, h.stale_after_s or None)
        for h in section.hysteresis
    }


def build_services(
    section: HealthSection,
    journal: Journal,
    clock: Clock,
    board: Board | None = None,
    *,
    base_dir: Path,
    data_dir: Path,
    pin_factory: Any = None,
    probe: SelfProbe | None = None,
) -> list[Any]:
    """Every health service for this config: the hub first, then the pollers.

    ``base_dir`` resolves relative password files; ``data_dir`` holds the journal and media.
    """
    hub = HealthHub.for_journal(journal, clock, board)
    hub.configure(policies_from(section), section.sample_heartbeat_s, section.telemetry_batch_s)
    services: list[Any] = [hub]
    for cam in section.cameras:
        services.append(CameraMonitor(cam, make_camera(cam, base_dir), hub))
    if section.cameras:
        # Every camera: the triggers' ones, and any the centre may ask to look at now.
        cams = {c.name: make_camera(c, base_dir) for c in section.cameras}
        store = EvidenceStore(resolve(data_dir, section.media_dir), section.media_budget_bytes)
        services.append(SnapshotService(journal, clock, section.snapshot_triggers, cams, store))
    if section.modem is not None:
        services.append(ModemMonitor(section.modem, hub))
    journal_dir = journal.path.parent
    services.append(SelfMonitor(section.system, probe or SelfProbe(journal_dir), hub))
    g = section.gpio
    if g.tamper_pin is not None or g.mains_pin is not None or g.led_pin is not None:
        services.append(GpioMonitor(g, hub, pin_factory=pin_factory))
    return services


def daemon_factory(cfg: Any, journal: Journal, clock: Clock, board: Board) -> list[Any]:
    """The daemon's ServiceFactory: ``cfg.health`` (a HealthSection) once the lead wires it."""
    section = getattr(cfg, "health", None) or HealthSection()
    return build_services(
        section, journal, clock, board, base_dir=Path(cfg.base_dir), data_dir=cfg.data_dir
    )
