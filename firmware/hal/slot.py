"""A bounded latest-frame slot between the capture thread and the device loop.

It holds at most one frame. A live camera never waits: a new frame replaces the one the
loop has not taken yet, and the replaced frame is counted in :attr:`LatestSlot.dropped`
(reported in telemetry). A file replayed "as fast as possible" passes ``block=True`` so
every frame is processed (back-pressure instead of drops); such a reader also waits for
:meth:`LatestSlot.wait_empty` before it reads the next frame, so no second decoded frame
waits beside the one in the slot.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """One-item slot; ``put`` never grows memory, ``get`` waits up to ``timeout`` seconds."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._closed = False
        self.dropped = 0
        self.put_count = 0

    def put(self, item: T, *, block: bool = False, timeout: float | None = None) -> bool:
        """Offer an item. Non-blocking: replace (and count) an untaken item. Blocking:
        wait up to ``timeout`` seconds for the slot to empty; False if it did not (or the
        slot was closed), and the item is not stored."""
        with self._cond:
            if block and not self._cond.wait_for(lambda: self._item is None or self._closed, timeout):
                return False
            if self._closed:
                return False
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.put_count += 1
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """Take the latest item, waiting up to ``timeout`` seconds; None if none came."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self._closed, timeout):
                return None
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def wait_empty(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds until the slot holds nothing; True when it is
        empty now, False when it still holds an item or was closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is None or self._closed, timeout)
            return self._item is None and not self._closed

    def close(self) -> None:
        """Wake every waiter; later puts are refused (safe twice)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
