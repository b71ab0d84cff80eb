"""Duty-room button and status LED (gpiozero), with a lockout.

The decision is pure (:class:`PressGate`); :class:`ButtonTrigger` is the thin service: the
gpiozero callback runs on gpiozero's thread and only hands the press to the loop::

    trigger = ButtonTrigger(section.button, controller, clock, all_zones=(1, 2, 3))

A press starts a broadcast when nothing plays and stops what plays otherwise (stop from any
source); a press within ``lockout_s`` of the last accepted one is refused and recorded.
LED: steady while zones are on, blinking while the amplifier warms up or relays switch.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any, Literal

from gateway.broadcast.config import ButtonSection
from gateway.broadcast.controller import BroadcastController
from gateway.broadcast.plan import StartRequest
from gateway.clock import Clock

LED_REFRESH_S = 0.1
Decision = Literal["start", "stop", "locked"]


class PressGate:
    """Pure: what a press means, given the time and whether something plays."""

    def __init__(self, lockout_s: float) -> None:
        self.lockout_s = lockout_s
        self.last_accepted: float | None = None

    def press(self, now: float, playing: bool) -> Decision:
        if self.last_accepted is not None and now - self.last_accepted < self.lockout_s:
            return "locked"
        self.last_accepted = now
        return "stop" if playing else "start"


class ButtonTrigger:
    """Service ``broadcast-button``."""

    def __init__(
        self,
        section: ButtonSection,
        controller: BroadcastController,
        clock: Clock,
        *,
        all_zones: Sequence[int],
        pin_factory: Any = None,
        name: str = "broadcast-button",
    ) -> None:
        self.name = name
        self.section = section
        self.controller = controller
        self.clock = clock
        self.zones = tuple(section.zones) or tuple(all_zones)
        self.gate = PressGate(section.lockout_s)
        self.pin_factory = pin_factory
        self._presses: asyncio.Queue[float] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._led_mode = ""

    async def run(self) -> None:
        from gpiozero import LED, Button  # imported here: the rest of broadcast needs no GPIO

        loop = asyncio.get_running_loop()
        button = Button(
            self.section.pin,
            pull_up=self.section.pull_up,
            bounce_time=self.section.bounce_s or None,
            pin_factory=self.pin_factory,
        )
        led = (
            LED(self.section.led_pin, pin_factory=self.pin_factory)
            if self.section.led_pin
            else None
        )
        # gpiozero calls back on its own thread: only hand the moment over to the loop.
        button.when_pressed = lambda: loop.call_soon_threadsafe(
            self._presses.put_nowait, self.clock.monotonic()
        )
        try:
            while True:
                try:
                    at = await asyncio.wait_for(self._presses.get(), LED_REFRESH_S)
                except TimeoutError:
                    at = None
                if at is not None:
                    await self.pressed(at)
                if led is not None:
                    self._update_led(led)
        finally:
            button.when_pressed = None
            button.close()
            if led is not None:
                led.close()

    async def pressed(self, at: float) -> None:
        # The weekly silent test is not a broadcast: a press then starts one (replacing it).
        playing = (
            self.controller.phase not in ("idle", "stopping")
            and self.controller.active_source != "test"
        )
        decision = self.gate.press(at, playing)
        await self.controller.record(
            "broadcast.button", {"decision": decision, "lockout_s": self.section.lockout_s}
        )
        if decision == "start":
            self.controller.submit_start(
                StartRequest(
                    request_id=f"button:{int(self.clock.wall())}:{next(self._ids)}",
                    zones=self.zones,
                    duration_s=self.section.seconds,
                    source="button",
                    reason="duty-room button",
                    announcement=self.section.announcement,
                )
            )
        elif decision == "stop":
            self.controller.submit_stop("button", "duty-room button")

    def _update_led(self, led: Any) -> None:
        phase = self.controller.phase
        mode = (
            "on"
            if phase == "on"
            else ("blink" if phase in ("amp", "warming", "switching") else "off")
        )
        if mode == self._led_mode:
            return
        self._led_mode = mode
        if mode == "on":
            led.on()
        elif mode == "blink":
            led.blink(on_time=0.25, off_time=0.25)
        else:
            led.off()
