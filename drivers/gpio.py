"""GPIO through gpiozero: the cabinet tamper switch, the mains/UPS input and the status LED.

gpiozero calls its callbacks on its own threads; :class:`DigitalInput` hands every edge to the
asyncio loop with ``loop.call_soon_threadsafe`` so the gateway's code only ever runs on the loop.
Every device takes a ``pin_factory`` (tests pass ``gpiozero.pins.mock.MockFactory()``).

``asserted_when`` says which level means "the condition holds": a tamper switch that is closed
(to ground, with the pull-up) while the cabinet door is shut reads low; the door opening lets the
pull-up take the pin high, so the tamper input is ``pull="up", asserted_when="high"``.

    tamper = DigitalInput("tamper", 17, pull="up", asserted_when="high")
    tamper.subscribe(loop, lambda name, asserted: print(name, asserted))
    led = StatusLed(27); led.show("slow")
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

from gpiozero import LED, DigitalInputDevice

Pull = Literal["up", "down", "none"]
Level = Literal["high", "low"]
LedPattern = Literal["on", "off", "slow", "fast"]

# Blink timings (on, off) in seconds: slow = "link down", fast = "a device is down".
LED_BLINK: dict[str, tuple[float, float]] = {"slow": (1.0, 1.0), "fast": (0.15, 0.15)}


class DigitalInput:
    """One input pin with a meaning. ``asserted`` is True when the condition holds."""

    def __init__(
        self,
        name: str,
        pin: int | str,
        *,
        pull: Pull = "up",
        asserted_when: Level = "high",
        bounce_s: float | None = None,
        pin_factory: Any = None,
    ) -> None:
        self.name = name
        pull_up: bool | None = {"up": True, "down": False, "none": None}[pull]
        # With a pull resistor gpiozero fixes active_state itself (active = the un-pulled level);
        # without one we must say it. Either way we keep the raw level and map it ourselves.
        self._device = DigitalInputDevice(
            pin,
            pull_up=pull_up,
            active_state=True if pull_up is None else None,
            bounce_time=bounce_s,
            pin_factory=pin_factory,
        )
        # gpiozero's "active" is "high" unless the pull-up inverted it.
        active_level: Level = "low" if pull_up else "high"
        self._invert = active_level != asserted_when

    @property
    def asserted(self) -> bool:
        return bool(self._device.is_active) ^ self._invert

    def subscribe(
        self, loop: asyncio.AbstractEventLoop, callback: Callable[[str, bool], None]
    ) -> None:
        """Call ``callback(name, asserted)`` on ``loop`` for every edge (from gpiozero's thread)."""

        def edge(active: bool) -> Callable[[], None]:
            def fire() -> None:
                loop.call_soon_threadsafe(callback, self.name, active ^ self._invert)

            return fire

        self._device.when_activated = edge(True)
        self._device.when_deactivated = edge(False)

    def close(self) -> None:
        # close() drops the callbacks too (setting them to None first only earns a warning).
        self._device.close()


class StatusLed:
    """The status LED: steady, off, or blinking slow/fast (gpiozero blinks on its own thread)."""

    def __init__(self, pin: int | str, *, pin_factory: Any = None) -> None:
        self._led = LED(pin, pin_factory=pin_factory)
        self.pattern: LedPattern = "off"
        self._led.off()

    def show(self, pattern: LedPattern) -> None:
        """Switch to ``pattern``; a no-op if it is already showing."""
        if pattern == self.pattern:
            return
        self.pattern = pattern
        if pattern == "on":
            self._led.on()
        elif pattern == "off":
            self._led.off()
        else:
            on, off = LED_BLINK[pattern]
            self._led.blink(on_time=on, off_time=off, background=True)

    @property
    def lit(self) -> bool:
        return bool(self._led.is_lit)

    def close(self) -> None:
        self._led.close()
