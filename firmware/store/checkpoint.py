"""The checkpointer: writes journaled changes into the TinyDB files, off the hot path.

``run_once`` (1) under the store lock: rotates the journal and snapshots every changed
segment (bytes), (2) without the lock: writes each file atomically (temp, fsync, rename,
fsync dir) or deletes emptied ones, then deletes the rotated journal files, (3) under the
lock: releases the flushed segments. A crash at any point keeps the journal files, and
replay at open redoes their steps. A background thread runs it every ``interval_s``
seconds, or sooner after ``max_lines`` journal steps.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from firmware.errors import StoreError
from firmware.store.atomic import atomic_write_bytes, fsync_dir
from firmware.store.journal import Journal
from firmware.store.segments import SegmentedLog
from firmware.store.tinyfile import DIR_MODE, FILE_MODE

logger = logging.getLogger(__name__)


class Checkpointer:
    """Flushes deferred segments and trims the journal; a context manager (close twice ok)."""

    def __init__(self, lock: threading.RLock, journal: Journal,
                 logs: Callable[[], list[SegmentedLog]], interval_s: float = 2.0,
                 max_lines: int = 256) -> None:
        self._lock = lock
        self._journal = journal
        self._logs = logs
        self.interval_s = interval_s
        self.max_lines = max_lines
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._io = threading.Lock()  # one checkpoint at a time
        self._thread: threading.Thread | None = None
        self.failing = False

    def start(self) -> "Checkpointer":
        if self._thread is None and self.interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
            self._thread.start()
        return self

    def kick(self) -> None:
        """Called after each journal step: wake the thread when the journal is long."""
        if self._journal.lines >= self.max_lines:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.run_once()

    def run_once(self, force: bool = False) -> int:
        """One checkpoint; returns how many files were written or deleted.

        ``force`` also trims journal files left by an earlier process (after replay).
        """
        with self._io:
            with self._lock:
                logs = [log for log in self._logs() if log.has_pending()]
                if not logs and self._journal.lines == 0 and not force:
                    return 0
                closed = self._journal.rotate()
                jobs = [(log, log.flush_jobs()) for log in logs]
            ok = self._write(jobs, closed)
            with self._lock:
                for log, log_jobs in jobs:
                    log.flushed(log_jobs, ok)
            return sum(len(j) for _, j in jobs)

    def _write(self, jobs: list, closed: int) -> bool:
        try:
            for _, log_jobs in jobs:
                for path, data in log_jobs:
                    _write_one(path, data)
            self._journal.delete_upto(closed)
        except (StoreError, OSError) as exc:
            if not self.failing:
                logger.error("checkpoint failed (%s): the journal is kept and replayed; will "
                             "retry", exc)
            self.failing = True
            return False
        if self.failing:
            logger.info("checkpoint works again")
        self.failing = False
        return True

    def close(self) -> None:
        """Stop the thread, then a last checkpoint; safe twice."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.run_once()

    def __enter__(self) -> "Checkpointer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_one(path: Path, data: bytes | None) -> None:
    if data is None:
        path.unlink(missing_ok=True)
        if path.parent.is_dir():
            fsync_dir(path.parent)
    else:
        atomic_write_bytes(path, data, FILE_MODE, DIR_MODE)
