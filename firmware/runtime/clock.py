"""Trusted time: whether the clock is synchronised, and a lower bound it never goes under.

:class:`TrustedClock` is the wall clock the store and the session schedule use:

- ``now()`` returns the system time, but never less than the newest time already handed
  out (a monotonic lower bound). The bound survives restarts in ``<data_dir>/clock.json``:
  before handing out a time past the saved reservation it saves ``time + reserve_s``
  (one small atomic write per ``reserve_s`` seconds), so after a power cut the bound is
  at least every time ever recorded; a clean ``close()`` saves the exact newest time.
  When the system clock is behind the bound, times are held at the bound, counted and
  logged (once per episode) and shown in ``state()``; nothing is corrected silently.
- ``synced()`` is the cached answer of a :class:`~firmware.hal.timesync.SyncSource`,
  refreshed by ``refresh()`` (device housekeeping) at most every ``recheck_s`` seconds.

Everything (wall clock, monotonic clock, sync source) is injectable for tests.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from firmware.hal.timesync import SyncSource
from firmware.store.atomic import atomic_write_bytes
from firmware.store.ids import to_iso

logger = logging.getLogger(__name__)

RESERVE_S = 60.0   # seconds of future time reserved per write of clock.json
RECHECK_S = 30.0   # seconds between asks of the sync source


class TrustedClock:
    """UNIX seconds that never go backwards, and whether they are synchronised."""

    def __init__(self, floor_path: Path, source: SyncSource, *, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, reserve_s: float = RESERVE_S,
                 recheck_s: float = RECHECK_S) -> None:
        self._path = Path(floor_path)
        self._source = source
        self._wall, self._mono = wall, monotonic
        self.reserve_s, self.recheck_s = reserve_s, recheck_s
        self._lock = threading.Lock()
        self._floor = self._reserved = self._load()
        self._behind_s = 0.0
        self.clamped = 0
        self._synced: bool | None = None
        self._checked = float("-inf")
        self.refresh(force=True)

    def _load(self) -> float:
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            return float(data["reserved_until"])
        except FileNotFoundError:
            return 0.0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error("clock lower bound %s unreadable (%s): starting without one", self._path, exc)
            return 0.0

    def _save(self, value: float) -> None:
        body = json.dumps({"reserved_until": value, "at": to_iso(value)}).encode()
        atomic_write_bytes(self._path, body, mode=0o600, dir_mode=0o700)

    def now(self) -> float:
        """The system time, never below a time already handed out (UNIX seconds)."""
        with self._lock:
            t = self._wall()
            if t < self._floor:
                self._clamp(t)
                t = self._floor
            elif self._behind_s:
                logger.warning("system clock is back at or past the newest recorded time")
                self._behind_s = 0.0
            self._floor = t
            if t > self._reserved:
                self._reserved = t + self.reserve_s
                self._save(self._reserved)
            return t

    def _clamp(self, t: float) -> None:
        self.clamped += 1
        if not self._behind_s:
            logger.warning("system clock (%s) is %.1f s behind the newest recorded time (%s): times "
                           "are held at that bound until the clock catches up; check NTP", to_iso(t),
                           self._floor - t, to_iso(self._floor))
        self._behind_s = self._floor - t

    def synced(self) -> bool:
        """True only when the sync source said so at its last check."""
        return self._synced is True

    def refresh(self, force: bool = False) -> bool:
        """Ask the sync source again when ``recheck_s`` has passed; returns ``synced()``."""
        mono = self._mono()
        if not force and mono - self._checked < self.recheck_s:
            return self.synced()
        self._checked = mono
        answer = self._source.synchronised()
        if answer is not self._synced:
            (logger.info if answer else logger.warning)(
                "clock %s (source %s)", "synchronised" if answer else "NOT synchronised: events are "
                "marked clock_synced=false and sessions do not start by schedule", self._source.name)
        self._synced = answer
        return self.synced()

    def reset_floor(self) -> float:
        """Drop the lower bound to the current system time (an admin's decision after a
        clock that ran in the future); returns the old bound."""
        with self._lock:
            old, t = self._floor, self._wall()
            self._floor, self._reserved, self._behind_s = t, t + self.reserve_s, 0.0
            self._save(self._reserved)
        logger.warning("clock lower bound reset from %s to %s", to_iso(old), to_iso(t))
        return old

    def state(self) -> dict:
        """For status and telemetry: synced, source, bound, how far behind, clamps."""
        with self._lock:
            return {"synced": self.synced(), "source": self._source.name,
                    "lower_bound": to_iso(self._floor) if self._floor else None,
                    "behind_s": round(self._behind_s, 3), "clamped": self.clamped}

    def close(self) -> None:
        """Save the exact newest time handed out (a tighter bound than the reservation)."""
        with self._lock:
            if self._floor and self._reserved != self._floor:
                self._reserved = self._floor
                self._save(self._floor)
