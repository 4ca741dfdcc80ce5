"""Password checks that a LAN client cannot turn into a memory or CPU bomb.

Each argon2 check costs ``ARGON2_MEMORY_KIB`` of RAM for a fraction of a second. The
:class:`PasswordGate` decides, BEFORE any check runs, whether it may run:

- per address and per account: :class:`console.auth.LoginLimiter` backoff (the attempt is
  recorded as a failure first and cleared on success, so a burst of simultaneous wrong
  logins is locked out after ``free`` of them, not after all were checked);
- globally: a token bucket of ``GLOBAL_BURST`` checks refilled at ``GLOBAL_PER_MIN`` a
  minute (guessing from many addresses is slowed down too; a success refunds its token);
- concurrency: at most ``MAX_CONCURRENT`` checks at once; a request that cannot get a slot
  within ``SLOT_WAIT_S`` is refused (503) instead of queuing memory.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from console.auth import LoginLimiter

logger = logging.getLogger(__name__)

MAX_CONCURRENT = 2
SLOT_WAIT_S = 2.0
GLOBAL_BURST = 30
GLOBAL_PER_MIN = 30.0
ACCOUNT_FREE = 10


@dataclass(frozen=True)
class Verdict:
    """May a password check run now? ``status`` is the HTTP code to answer when not."""

    allowed: bool
    status: int = 200
    message: str = ""


class TokenBucket:
    """``burst`` tokens, refilled at ``per_min`` tokens a minute (thread-safe)."""

    def __init__(self, burst: int, per_min: float, clock: Callable[[], float]) -> None:
        self.burst, self.rate_s, self.clock = burst, per_min / 60.0, clock
        self._tokens, self._at = float(burst), clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_s)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate_s

    def refund(self) -> None:
        with self._lock:
            self._tokens = min(self.burst, self._tokens + 1)


class PasswordGate:
    """Runs password checks under address, account and global throttles and a slot cap."""

    def __init__(self, by_address: LoginLimiter, clock: Callable[[], float] = time.monotonic,
                 max_concurrent: int = MAX_CONCURRENT, slot_wait_s: float = SLOT_WAIT_S,
                 global_burst: int = GLOBAL_BURST, global_per_min: float = GLOBAL_PER_MIN) -> None:
        self.by_address = by_address
        self.by_account = LoginLimiter(clock=clock, free=ACCOUNT_FREE)
        self.bucket = TokenBucket(global_burst, global_per_min, clock)
        self.slots = threading.BoundedSemaphore(max_concurrent)
        self.slot_wait_s = slot_wait_s
        self._lock = threading.Lock()
        self.refused = 0

    def check(self, address: str, account: str, verify: Callable[[], bool]) -> tuple[bool, Verdict]:
        """(password ok, verdict); ``verify`` runs only when every throttle lets it."""
        verdict = self._admit(address, account.lower())
        if not verdict.allowed:
            self.refused += 1
            return False, verdict
        if not self.slots.acquire(timeout=self.slot_wait_s):
            self.refused += 1
            return False, Verdict(False, 503, "the console is busy checking other logins; "
                                              "try again in a few seconds")
        try:
            ok = verify()
        finally:
            self.slots.release()
        if ok:
            with self._lock:
                self.by_address.succeeded(address)
                self.by_account.succeeded(account.lower())
            self.bucket.refund()
        return ok, Verdict(True)

    def _admit(self, address: str, account: str) -> Verdict:
        """Record the attempt as a failure up front (cleared on success), or refuse it."""
        with self._lock:
            for limiter, key, who in ((self.by_address, address, "from this address"),
                                      (self.by_account, account, "for this account")):
                wait = limiter.wait_s(key)
                if wait > 0:
                    return Verdict(False, 429, f"too many failed attempts {who}; "
                                               f"try again in {int(wait) + 1} s")
            wait = self.bucket.take()
            if wait > 0:
                logger.warning("console: global password-check budget spent (guessing from many places?)")
                return Verdict(False, 429, "too many login attempts on this console right now; "
                                           f"try again in {int(wait) + 1} s")
            self.by_address.failed(address)
            self.by_account.failed(account)
        return Verdict(True)
