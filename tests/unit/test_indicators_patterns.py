"""Indicators on gpiozero's MockFactory: the pin sequence of every outcome, non-blocking."""

from __future__ import annotations

import time

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.config import GpioConfig, PinConfig
from firmware.hal.indicators import Indicators

GREEN, RED, AMBER, BUZZER, RELAY, BUTTON = 17, 27, 22, 23, 24, 25
SCALE = 0.05  # every pattern 20x faster


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def cfg(**kw) -> GpioConfig:
    return GpioConfig(relay=PinConfig(pin=RELAY), button=PinConfig(pin=BUTTON, active_high=False), **kw)


def states(factory, pin) -> list[bool]:
    return [s.state for s in factory.pin(pin).states]


def settle(ind: Indicators, timeout=3.0) -> None:
    """Wait until every background pattern thread finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        threads = [getattr(d, "_blink_thread", None) for d in ind.parts.values()]
        if not any(t is not None and t.is_alive() for t in threads):
            return
        time.sleep(0.01)
    raise AssertionError("patterns did not finish")


def test_accepted_green_beep_and_relay_pulse(factory):
    with Indicators(cfg(), pin_factory=factory, time_scale=SCALE) as ind:
        started = time.monotonic()
        ind.show("accepted")
        assert time.monotonic() - started < 0.05  # never blocks the loop
        settle(ind)
        assert states(factory, GREEN) == [False, True, False]
        assert states(factory, BUZZER) == [False, True, False]
        assert states(factory, RELAY) == [False, True, False]
        assert states(factory, RED) == [False]


def test_relay_pulse_length_follows_config(factory):
    with Indicators(cfg(relay_pulse_s=2.0), pin_factory=factory, time_scale=SCALE) as ind:
        ind.show("accepted")
        settle(ind)
    relay = factory.pin(RELAY).states
    assert 2.0 * SCALE * 0.9 <= relay[2].timestamp < 2.0 * SCALE + 0.5  # timestamps are deltas


def test_unknown_and_spoof_are_red_with_distinct_buzzes(factory):
    with Indicators(cfg(), pin_factory=factory, time_scale=SCALE) as ind:
        ind.show("unknown")
        settle(ind)
        assert states(factory, RED) == [False, True, False]
        assert states(factory, BUZZER) == [False, True, False]
        factory.pin(RED).clear_states()
        factory.pin(BUZZER).clear_states()
        ind.show("spoof")
        settle(ind)
        assert states(factory, RED)[1:] == [True, False] * 4
        assert states(factory, BUZZER)[1:] == [True, False] * 3
        assert states(factory, GREEN) == [False] and states(factory, RELAY) == [False]


def test_already_marked_double_green(factory):
    with Indicators(cfg(), pin_factory=factory, time_scale=SCALE) as ind:
        ind.show("already")
        settle(ind)
    assert states(factory, GREEN)[:5] == [False, True, False, True, False]
    assert states(factory, RELAY) == [False]  # the door opens only on a fresh acceptance


def test_prompt_drives_amber_only_on_change(factory):
    with Indicators(cfg(), pin_factory=factory) as ind:
        for stage in ["blink"] * 5 + ["look"] * 3 + ["idle"] * 4:
            ind.prompt(stage)
        ind.prompt("blink")
        ind.show("accepted")  # a decision turns the prompt off
    assert states(factory, AMBER)[:5] == [False, True, False, True, False]


def test_active_low_pins_are_inverted(factory):
    gpio = GpioConfig(green=PinConfig(pin=GREEN, active_high=False))
    with Indicators(gpio, pin_factory=factory, time_scale=SCALE) as ind:
        ind.show("accepted")
        settle(ind)
    assert states(factory, GREEN)[1:] == [True, False, True]  # off = high, on = low


def test_button_calls_back(factory):
    pressed = []
    with Indicators(cfg(), pin_factory=factory, on_button=lambda: pressed.append(1)):
        pin = factory.pin(BUTTON)
        pin.drive_low()  # active-low button: pressed pulls the line to ground
        time.sleep(0.1)
        pin.drive_high()
    assert pressed == [1]


def test_close_releases_pins_and_is_safe_twice(factory):
    ind = Indicators(cfg(), pin_factory=factory)
    ind.close()
    ind.close()
    ind.show("accepted")  # ignored after close
    again = Indicators(cfg(), pin_factory=factory)  # pins are free again
    assert again.status()["state"] == "ok"
    again.close()


def test_busy_pins_mean_degraded_not_crash(factory):
    first = Indicators(cfg(), pin_factory=factory)
    second = Indicators(cfg(), pin_factory=factory)
    assert second.status()["state"] == "unavailable"
    assert "without indicators" in second.status()["message"]
    second.show("accepted")
    first.close()
    second.close()


def test_disabled_gpio_has_no_parts():
    ind = Indicators(GpioConfig(enabled=False))
    ind.show("accepted")
    assert ind.status() == {"state": "disabled", "message": "gpio.enabled is false", "parts": []}


def test_self_test_lights_each_part(factory):
    with Indicators(cfg(), pin_factory=factory, time_scale=SCALE) as ind:
        result = ind.test(step_s=0.4)
        time.sleep(0.2)
        settle(ind)
    assert result["parts"] == ["green", "red", "amber", "buzzer"]
    for pin in (GREEN, RED, AMBER, BUZZER):
        assert states(factory, pin) == [False, True, False]


def test_shutdown_mid_pattern_leaves_every_output_off(factory):
    """A stop in the middle of a pattern (SIGTERM right after a decision) must not leave the
    door relay or the buzzer energised."""
    ind = Indicators(cfg(relay_pulse_s=30.0), pin_factory=factory, time_scale=1.0)
    ind.show("accepted")
    time.sleep(0.05)
    assert factory.pin(RELAY).state and factory.pin(GREEN).state  # mid-pattern
    ind.close()
    for pin in (GREEN, RED, AMBER, BUZZER, RELAY):
        assert states(factory, pin)[-1] is False, pin
