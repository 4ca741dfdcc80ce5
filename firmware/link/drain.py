"""Outbox drain: oldest first, a bounded window in flight, removed only on PUBACK.

Pure logic over an outbox (``pending(limit)``, ``ack(event_id)``, optionally ``ack_many``)
and a ``publish(entry) -> mid | None`` function (entry as returned by ``pending``); no threads, no sockets.

Order per device is kept because:
- entries are published in ``seq`` order and the window only advances past acked entries;
- after a reconnect the client library re-sends the unacknowledged window itself (same
  message ids, in order) before the drain publishes anything new: the drain waits until
  that old window is acked (``stalled``) instead of racing it;
- if the old window is not acked within ``stall_timeout_s`` (or the broker refuses a
  message) the window is forgotten and re-published from the outbox, oldest first.
Duplicates reach the broker only in those cases; the central side de-duplicates by
``event_id``. After a process restart the outbox itself is the window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Protocol

logger = logging.getLogger(__name__)


class OutboxLike(Protocol):
    def pending(self, limit: int) -> list[dict]: ...
    def ack(self, event_id: str) -> bool: ...


@dataclass
class DrainStats:
    """Counters for telemetry (since the link started)."""

    published: int = 0
    acked: int = 0
    republished: int = 0
    refused: int = 0


@dataclass
class Drain:
    """Feeds outbox entries to ``publish`` keeping at most ``max_inflight`` unacknowledged."""

    outbox: OutboxLike
    max_inflight: int = 20
    stall_timeout_s: float = 30.0
    refused_retry_s: float = 5.0
    inflight: dict[int, str] = field(default_factory=dict)  # mid -> event_id, publish order
    stats: DrainStats = field(default_factory=DrainStats)
    _resend_at: float | None = None  # forget the window and re-send it at this time
    _refused: bool = False
    _sent_ids: set[str] = field(default_factory=set)

    def on_connect(self, now: float) -> None:
        """A new connection: the client re-sends the old window; wait for it before new ones."""
        if self.inflight and not self._refused:
            self._resend_at = now + self.stall_timeout_s

    def on_ack(self, mid: int, ok: bool, now: float) -> bool:
        """A PUBACK (``ok``) or refusal for ``mid``; returns True when it was one of ours."""
        event_id = self.inflight.pop(mid, None)
        if event_id is None:
            return False
        self._sent_ids.discard(event_id)
        if ok:
            self.outbox.ack(event_id)
            self.stats.acked += 1
        else:
            self.stats.refused += 1
            if not self._refused:  # once per window, not once per event
                logger.warning("broker did not take event %s (refused, or no subscriber such as a "
                               "central collector); the window is re-sent in %.0f s", event_id,
                               self.refused_retry_s)
            self._refused = True
            self._resend_at = now + self.refused_retry_s
            return True
        self._window_acked()
        return True

    def _window_acked(self) -> None:
        if not self.inflight and not self._refused:
            self._resend_at = None

    def on_acks(self, acks: list[tuple[int, bool]], now: float) -> int:
        """Apply many acks at once (one outbox rewrite when the outbox has ``ack_many``)."""
        ack_many = getattr(self.outbox, "ack_many", None)
        if ack_many is None or not all(ok for _, ok in acks):
            return sum(self.on_ack(mid, ok, now) for mid, ok in acks)
        ids = [self.inflight.pop(mid) for mid, _ in acks if mid in self.inflight]
        self._sent_ids.difference_update(ids)
        if ids:
            ack_many(ids)
        self.stats.acked += len(ids)
        self._window_acked()
        return len(ids)

    def fill(self, publish: Callable[[dict], int | None], now: float) -> int:
        """Publish the next entries up to the window; returns how many were published."""
        if self._resend_at is not None:
            if now < self._resend_at:
                return 0
            self._forget_window()
        room = self.max_inflight - len(self.inflight)
        if room <= 0:
            return 0
        sent = 0
        for entry in self.outbox.pending(self.max_inflight + len(self.inflight)):
            if sent >= room:
                break
            if entry["event_id"] in self._sent_ids:
                continue
            mid = publish(entry)
            if mid is None:
                break
            self.inflight[mid] = entry["event_id"]
            self._sent_ids.add(entry["event_id"])
            sent += 1
        self.stats.published += sent
        return sent

    def _forget_window(self) -> None:
        if self.inflight:
            logger.warning("%d events not acknowledged after reconnect; re-sending them "
                           "from the outbox, oldest first", len(self.inflight))
            self.stats.republished += len(self.inflight)
        self.inflight.clear()
        self._sent_ids.clear()
        self._resend_at = None
        self._refused = False
