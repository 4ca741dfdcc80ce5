"""Connection state of the link: reconnect backoff, logging broker down/up once, and the
per-connection sequence number of births and wills.

Backoff and LinkState are pure (an injected ``now``), so they are tested without sockets or sleeps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from firmware.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Exponential reconnect delay in seconds: ``min_s``, doubling up to ``max_s``."""

    min_s: float = 1.0
    max_s: float = 30.0
    failures: int = 0
    next_at: float = 0.0

    def ready(self, now: float) -> bool:
        """True when a connect attempt may be made at ``now`` (monotonic seconds)."""
        return now >= self.next_at

    def failed(self, now: float) -> float:
        """Record a failed attempt or a lost connection; returns the delay until the next."""
        delay = min(self.max_s, self.min_s * (2 ** min(self.failures, 16)))
        self.failures += 1
        self.next_at = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures = 0
        self.next_at = 0.0


class LinkState:
    """Tracks up/down and logs a change once (not on every retry)."""

    def __init__(self, broker: str) -> None:
        self.broker = broker
        self.up = False
        self.problem: str | None = None
        self.changes = 0

    def went_up(self) -> None:
        """CONNACK accepted."""
        if not self.up:
            logger.info("broker %s up (connected)", self.broker)
            self.changes += 1
        self.up = True
        self.problem = None

    def went_down(self, reason: str) -> None:
        """Connection lost, refused or not possible; logs when the state or reason changes."""
        if self.up:
            logger.warning("broker %s down: %s; events stay in the outbox", self.broker, reason)
            self.changes += 1
        elif reason != self.problem:
            logger.warning("broker %s unreachable: %s", self.broker, reason)
        else:
            logger.debug("broker %s still unreachable: %s", self.broker, reason)
        self.up = False
        self.problem = reason


class ConnectionSeq:
    """The per-connection sequence number put in both the birth and the last will.

    The central side keeps the highest one it has seen per device and ignores a status
    message with a lower one, so a will of an old connection that the broker delivers after
    the birth of a newer connection cannot mark the device offline. Each connect takes
    ``max(last + 1, wall-clock ms)``: the stored ``last`` keeps it increasing across a reboot
    with the clock set back (no RTC yet), the clock keeps it increasing after the data
    directory was wiped. Persisted in ``path`` (a few bytes, written atomically) when given.
    """

    def __init__(self, path: Path | None = None, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self._wall = wall
        self.last = self._read()

    def _read(self) -> int:
        if self.path is None:
            return 0
        try:
            return int(self.path.read_text(encoding="ascii").strip() or 0)
        except (OSError, ValueError):
            return 0

    def next(self) -> int:
        """The number for a new connection (persisted before it is used)."""
        self.last = max(self.last + 1, int(self._wall() * 1000))
        if self.path is not None:
            try:
                atomic_write_bytes(self.path, str(self.last).encode("ascii"), mode=0o600)
            except OSError as exc:  # the clock part still orders connections
                logger.warning("cannot persist the connection sequence in %s: %s", self.path, exc)
        return self.last
