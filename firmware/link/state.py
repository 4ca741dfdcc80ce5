"""Connection state of the link: reconnect backoff and logging broker down/up once.

Pure (an injected ``now``), so it is tested without sockets or sleeps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
