"""LEDs, buzzer, door relay and session button through gpiozero.

Wiring (BCM numbers and polarity come from ``[gpio]`` in the config): green LED =
accepted, red LED = unknown / spoof, amber LED = look at the camera / blink please /
busy, a buzzer with a distinct pattern per outcome, an optional relay pulsed
``relay_pulse_s`` seconds to open a door strike, and an optional momentary button that
starts/stops the current session.

Patterns never block the caller: they run on gpiozero's background blink threads. Every
part takes ``pin_factory=`` (gpiozero's ``MockFactory`` in tests). If the pins cannot be
claimed (no GPIO on this machine, pin busy) the device keeps running without indicators
and says so in :meth:`Indicators.status`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from firmware.config import GpioConfig, PinConfig
from firmware.errors import ConfigError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pattern:
    """A timed pattern: ``n`` pulses of ``on_s`` seconds on, ``off_s`` seconds off."""

    on_s: float
    off_s: float = 0.0
    n: int = 1


# outcome -> {part: Pattern}; amber is off after any outcome pattern.
PATTERNS: dict[str, dict[str, Pattern]] = {
    "accepted": {"green": Pattern(1.5), "buzzer": Pattern(0.12)},
    "already": {"green": Pattern(0.25, 0.25, 2), "buzzer": Pattern(0.06, 0.08, 2)},
    "unknown": {"red": Pattern(1.5), "buzzer": Pattern(0.6)},
    "spoof": {"red": Pattern(0.15, 0.15, 4), "buzzer": Pattern(0.1, 0.1, 3)},
    "retry": {"amber": Pattern(0.2, 0.2, 3), "buzzer": Pattern(0.06)},
    "no_session": {"red": Pattern(0.3, 0.3, 2), "amber": Pattern(0.3, 0.3, 2)},
    "session_start": {"green": Pattern(0.2, 0.2, 3), "amber": Pattern(0.2, 0.2, 3), "buzzer": Pattern(0.05, 0.1, 2)},
    "session_stop": {"red": Pattern(0.2, 0.2, 3), "amber": Pattern(0.2, 0.2, 3), "buzzer": Pattern(0.3)},
    # a head-pose challenge try failed (wrong move, too early, too slow): a new one follows
    "challenge_failed": {"red": Pattern(0.4), "buzzer": Pattern(0.08, 0.08, 2)},
}
PROMPTS = {"look", "blink", "busy", "checking"}  # steady amber while shown
# Head-pose challenge prompts: the amber LED blinks at a rate of its own (on_s, off_s) while
# the prompt is shown, so a person who cannot read the screen sees that something changed.
CHALLENGE_PROMPTS: dict[str, Pattern] = {
    "turn_left": Pattern(0.6, 0.6, 0), "turn_right": Pattern(0.2, 0.2, 0),
    "look_up": Pattern(0.1, 0.5, 0), "look_down": Pattern(0.5, 0.1, 0),
    "blink": Pattern(0.05, 0.15, 0), "hold_still": Pattern(1.0, 0.2, 0), "try_again": Pattern(0.1, 0.1, 0),
}


def make_pin_factory(name: str | None) -> Any:
    """A gpiozero pin factory by name (``mock``, ``lgpio``, ``rpigpio``...); None: gpiozero's
    default choice ($GPIOZERO_PIN_FACTORY, then the best installed)."""
    if not name:
        return None
    if name == "mock":
        from gpiozero.pins.mock import MockFactory
        return MockFactory()
    from importlib.metadata import entry_points

    found = entry_points(group="gpiozero_pin_factories", name=name)
    if not found:
        raise ConfigError(f"gpio.pin_factory {name!r} is not an installed gpiozero pin factory (try lgpio or mock)")
    return next(iter(found)).load()()


class Indicators:
    """The device's lights and sounds. ``time_scale`` multiplies every pattern duration
    (tests use a small one). ``on_button`` is called (on gpiozero's thread) when the
    session button is pressed."""

    def __init__(self, cfg: GpioConfig, *, pin_factory: Any = None, on_button: Callable[[], None] | None = None,
                 time_scale: float = 1.0) -> None:
        self.cfg = cfg
        self.time_scale = time_scale
        self.on_button = on_button
        self.parts: dict[str, Any] = {}
        self.state = "disabled"
        self.message = "gpio.enabled is false"
        self.last_shown = ""
        self._prompt = ""
        self._lock = threading.Lock()
        self._closed = False
        if cfg.enabled:
            self._open(pin_factory if pin_factory is not None else make_pin_factory(cfg.pin_factory))

    def _open(self, factory: Any) -> None:
        from gpiozero import LED, Button, Buzzer, DigitalOutputDevice
        from gpiozero.exc import GPIOZeroError

        kinds = {"green": LED, "red": LED, "amber": LED, "buzzer": Buzzer, "relay": DigitalOutputDevice}
        try:
            for name, cls in kinds.items():
                pin: PinConfig = getattr(self.cfg, name)
                if pin.pin is not None:
                    self.parts[name] = cls(pin.pin, active_high=pin.active_high, initial_value=False,
                                           pin_factory=factory)
            if self.cfg.button.pin is not None:
                button = Button(self.cfg.button.pin, pull_up=not self.cfg.button.active_high,
                                bounce_time=0.05, pin_factory=factory)
                button.when_pressed = self._pressed
                self.parts["button"] = button
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            self._release()
            self.state, self.message = "unavailable", f"GPIO not available ({exc}); running without indicators"
            logger.warning("%s", self.message)
            return
        self.state, self.message = "ok", ""

    def _pressed(self) -> None:
        if self.on_button is not None:
            try:
                self.on_button()
            except Exception:  # a button callback must never kill gpiozero's thread
                logger.exception("session button handler failed")

    def _run(self, part: str, pattern: Pattern) -> None:
        device = self.parts.get(part)
        if device is None:
            return
        on, off = pattern.on_s * self.time_scale, pattern.off_s * self.time_scale
        device.blink(on_time=on, off_time=max(off, 0.001), n=pattern.n, background=True)

    def show(self, outcome: str) -> None:
        """Play the pattern of a decision (accepted | already | unknown | spoof | retry |
        no_session); returns at once."""
        patterns = PATTERNS.get(outcome)
        if patterns is None or self._closed:
            return
        with self._lock:
            self.last_shown = outcome
            self._prompt = ""
            if "amber" not in patterns and "amber" in self.parts:
                self.parts["amber"].off()
            for part, pattern in patterns.items():
                self._run(part, pattern)
            if outcome == "accepted" and "relay" in self.parts:
                self._run("relay", Pattern(self.cfg.relay_pulse_s))

    def prompt(self, stage: str) -> None:
        """Steady amber while someone should look / blink / wait (``look`` | ``blink`` |
        ``busy`` | ``checking``), a blink rate of its own per head-pose challenge prompt
        (CHALLENGE_PROMPTS: ``turn_left``...); anything else turns it off. Cheap to call
        every frame: the pin changes only when the prompt does."""
        wanted = stage if stage in PROMPTS or stage in CHALLENGE_PROMPTS else ""
        if wanted == self._prompt or self._closed:
            return
        with self._lock:
            self._prompt = wanted
            amber = self.parts.get("amber")
            if amber is None:
                return
            pattern = CHALLENGE_PROMPTS.get(wanted)
            if pattern is not None:
                amber.blink(on_time=pattern.on_s * self.time_scale, off_time=pattern.off_s * self.time_scale,
                            n=None, background=True)
            elif wanted:
                amber.on()
            else:
                amber.off()

    def test(self, step_s: float = 0.4) -> dict:
        """Light each part in turn (background); returns which parts exist."""
        names = [n for n in ("green", "red", "amber", "buzzer") if n in self.parts]
        for i, name in enumerate(names):
            timer = threading.Timer(i * step_s * self.time_scale, self._run, (name, Pattern(step_s * 0.8)))
            timer.daemon = True
            timer.start()
        return {"ok": self.state == "ok", "parts": names, "message": self.message or "each indicator lights in turn"}

    def status(self) -> dict:
        return {"state": self.state, "message": self.message, "parts": sorted(self.parts)}

    def _release(self) -> None:
        # Off first (this also stops a running blink pattern), then release: a relay or
        # buzzer must never be left energised by a shutdown in the middle of a pattern.
        for device in self.parts.values():
            try:
                if hasattr(device, "off"):
                    device.off()
                device.close()
            except Exception:  # closing is best effort on shutdown
                logger.debug("closing %s failed", device, exc_info=True)
        self.parts = {}

    def close(self) -> None:
        """Turn everything off and release the pins (safe twice)."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._release()

    def __enter__(self) -> Indicators:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
