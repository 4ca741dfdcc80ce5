"""Reconnect backoff and logging broker down/up once per change."""

from __future__ import annotations

import logging

from firmware.link.state import Backoff, LinkState


def test_backoff_doubles_up_to_max_and_resets():
    backoff = Backoff(min_s=1, max_s=8)
    delays = [backoff.failed(100.0) for _ in range(6)]
    assert delays == [1, 2, 4, 8, 8, 8]
    assert not backoff.ready(107.9) and backoff.ready(108.0)
    backoff.succeeded()
    assert backoff.ready(0.0) and backoff.failed(0.0) == 1


def test_down_and_up_logged_once_per_change(caplog):
    state = LinkState("h:1883")
    with caplog.at_level(logging.INFO, logger="firmware.link.state"):
        for _ in range(5):
            state.went_down("refused")
        state.went_up()
        state.went_up()
        for _ in range(3):
            state.went_down("connection lost")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert lines == ["broker h:1883 unreachable: refused", "broker h:1883 up (connected)",
                     "broker h:1883 down: connection lost; events stay in the outbox"]
    assert state.changes == 2
