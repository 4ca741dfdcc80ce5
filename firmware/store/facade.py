"""``Store``: the one facade over the firmware's crash-proof state.

Opened by the composition root, closed last. One re-entrant lock serialises every call
(the publisher thread, the control API and the pipeline share it), so a multi-file step
is never observed half-done by another thread. The big reads (``attendance.query``,
``attendance.for_session``, ``unknowns.list``; marked ``@locks_itself``) take it only to
pick up immutable per-day lists and filter them outside it, so a console page never makes
the device loop wait. ``timezone`` makes attendance and session days local dates; when it
differs from the zone the data dir was written in, the days are re-filed at open
(``migrate.rezone``, after a backup). At open the Store takes an exclusive
``flock`` on ``<data_dir>/.lock`` (single writer), migrates the format if needed, and
finishes any step a crash cut short (outbox journal -> attendance / unknowns, session
transitions) BEFORE anyone can read or publish.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from firmware.config import PrivacyConfig, StoreConfig
from firmware.domain import sessions as rules
from firmware.errors import StoreError
from firmware.store.atomic import sweep_temp_files
from firmware.store.attendance import Attendance
from firmware.store.audit import Audit
from firmware.store.checkpoint import Checkpointer
from firmware.store.context import StoreContext
from firmware.store.erasure import MATCH_THRESHOLD, Erasures
from firmware.store.errors import StoreClosed
from firmware.store.ids import SeqCounter, check_zone
from firmware.store.journal import Journal
from firmware.store.migrate import migrate, read_day_zone, rezone
from firmware.store.notices import Notices, raise_damage_notice
from firmware.store.outbox import Outbox
from firmware.store.people import People
from firmware.store.retention import Retention
from firmware.store.rosters import Rosters
from firmware.store.sessions import Sessions
from firmware.store.tinyfile import FILE_MODE, ensure_dir, intercept_writes
from firmware.store.unknowns import Unknowns

logger = logging.getLogger(__name__)

SEGMENT_MAX = 256
CHECKPOINT_S = 2.0  # seconds between background checkpoints (0: only at close/when asked)
LOST_COUNTER_JUMP = 1_000_000_000  # acked events leave no seq on disk: jump far past them
EARLY_OPS = ("file.put", "audit.add")  # replayed before the parts read their files


class _Locked:
    """Proxy: every public method of ``target`` runs under the Store's lock."""

    def __init__(self, target: Any, store: "Store") -> None:
        self._target, self._store = target, store

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr
        if getattr(attr, "locks_itself", False):  # a read that holds the lock only briefly
            @functools.wraps(attr)
            def read(*args: Any, **kwargs: Any) -> Any:
                self._store._check_open()
                return attr(*args, **kwargs)

            return read

        @functools.wraps(attr)
        def call(*args: Any, **kwargs: Any) -> Any:
            with self._store._lock, intercept_writes(self._store._ctx.journal_file_write):
                self._store._check_open()
                return attr(*args, **kwargs)

        return call


class Store:
    """People, rosters, sessions, attendance, unknowns, audit and outbox under ``data_dir``.

    ``clock`` returns UNIX seconds (records); ``segment_max`` bounds records per file;
    ``timezone`` (IANA name, the device's) makes attendance and session days local dates.
    ``privacy`` gives the default legal basis and the review period; ``clock_synced``
    says whether ``clock`` is synchronised (every event records it).
    """

    def __init__(self, data_dir: str | os.PathLike, clock: Callable[[], float] = time.time,
                 config: StoreConfig | None = None, segment_max: int = SEGMENT_MAX,
                 checkpoint_s: float = CHECKPOINT_S, timezone: str = "UTC",
                 privacy: PrivacyConfig | None = None,
                 clock_synced: Callable[[], bool] = lambda: True) -> None:
        self.data_dir = ensure_dir(Path(data_dir))
        self.config = config or StoreConfig()
        self.privacy = privacy or PrivacyConfig()
        self._clock_synced = clock_synced
        self.zone = check_zone(timezone)
        self.corrupt_files: list[dict] = []
        self.notices = Notices(self.data_dir, clock)
        self._lock = threading.RLock()
        self._closed = False
        self._lockfd = _take_lock(self.data_dir)
        try:
            self.swept = sweep_temp_files(self.data_dir)
            if self.swept:
                logger.warning("removed %d temp files left by interrupted writes", len(self.swept))
            self.migration = migrate(self.data_dir, clock, timezone)
            self._open(clock, segment_max, checkpoint_s)
            if read_day_zone(self.data_dir) != timezone:
                self._rezone(clock, segment_max, checkpoint_s, timezone)
            self._checkpointer.start()
        except BaseException:
            os.close(self._lockfd)
            raise

    def _rezone(self, clock: Callable[[], float], segment_max: int, checkpoint_s: float,
                timezone: str) -> None:
        """The device's time zone changed: re-file every day under the new local dates."""
        self._checkpointer.run_once()  # crash recovery may have journaled more steps
        if self._checkpointer.failing or self._ctx.journal.numbers():
            raise StoreError("cannot move attendance days to the new time zone: journaled "
                             "changes could not be written (see the log); fix the disk first")
        self._close_parts()
        self.migration["rezone"] = rezone(self.data_dir, timezone, clock, segment_max)
        replayed, recovered = self.replayed, self.recovered
        self._open(clock, segment_max, checkpoint_s)
        self.replayed, self.recovered = replayed, recovered

    def _open(self, clock: Callable[[], float], segment_max: int, checkpoint_s: float) -> None:
        seq = SeqCounter(self.data_dir / "counters.json", 0, clock, self._corrupt)
        if seq.lost and self.migration["from"] is None:
            seq.next_block_on_disk()  # a fresh dir: the counter file exists from the start
        ctx = StoreContext(self.data_dir, clock, self.config, seq, self._corrupt, segment_max,
                           zone=self.zone, lock=self._lock, default_basis=self.privacy.default_basis,
                           clock_synced=self._clock_synced)
        ctx.journal = Journal(self.data_dir / "journal", clock, self._corrupt)
        ctx.audit = Audit(ctx)
        ctx.appliers.update({"file.put": ctx.apply_file_put, "audit.add": ctx.audit.apply_add})
        steps = ctx.journal.replay()
        _redo_file_writes(ctx, steps)  # before the parts load those files
        ctx.outbox = Outbox(self.data_dir / "outbox", seq, self.config, ctx.commit, clock,
                            segment_max, self._corrupt, clock_synced=self._clock_synced)
        self._ctx = ctx
        self._people = People(ctx)
        self._rosters = Rosters(ctx, self._people)
        self._sessions = Sessions(ctx, self._rosters)
        self._attendance = Attendance(ctx, self._people, self._sessions)
        self._sessions.attendance = self._attendance
        self._unknowns = Unknowns(ctx, self._people, self._sessions)
        self._erasures = Erasures(ctx, self._people, self._rosters, self._unknowns,
                                  self._attendance)
        self._retention = Retention(ctx, {"people": self._people, "rosters": self._rosters,
                                          "unknowns": self._unknowns, "attendance": self._attendance,
                                          "audit": ctx.audit}, self._apply_retention,
                                    self.privacy.review_absent_days)
        ctx.appliers.update({"outbox.put": ctx.outbox.apply_put, "outbox.ack": ctx.outbox.apply_ack,
                             "att.insert": self._attendance.apply_insert,
                             "att.update": self._attendance.apply_update})
        self._checkpointer = Checkpointer(self._lock, ctx.journal, self._deferred_logs,
                                          interval_s=checkpoint_s)
        self.replayed = self._replay(steps)
        self._raise_seq_floor(seq)
        self.recovered = self._recover()
        for name in ("people", "rosters", "sessions", "attendance", "unknowns", "erasures",
                     "retention"):
            setattr(self, name, _Locked(getattr(self, f"_{name}"), self))
        self.audit = _Locked(ctx.audit, self)
        self.outbox = _Locked(ctx.outbox, self)
        ctx.on_commit = self._checkpointer.kick

    def _raise_seq_floor(self, seq: SeqCounter) -> None:
        floor = max(self._ctx.outbox.max_seq, self._attendance.max_seq(), self._sessions.max_seq())
        if seq.lost and self.migration["from"] is not None:
            floor += LOST_COUNTER_JUMP
            logger.error("seq counter file missing or damaged in %s: continuing from %d (a safe "
                         "jump over every seq that can have been used)", self.data_dir, floor + 1)
        seq.raise_floor(floor)

    def _replay(self, steps: list) -> int:
        """Redo every journal step left by the previous process (whole-file writes were
        redone before the parts loaded), then checkpoint."""
        for ops in steps:
            self._ctx.apply([(name, arg) for name, arg in ops if name not in EARLY_OPS])
        self._checkpointer.run_once(force=True)
        if steps:
            logger.info("replayed %d journal steps from the previous run", len(steps))
        return len(steps)

    def _deferred_logs(self) -> list:
        return [self._ctx.outbox.log, *self._attendance.logs(), *self._ctx.audit.logs()]

    def acting(self, actor: str) -> Any:
        """Context manager: every change this thread makes inside is audited as ``actor``
        (the control API wraps each request in it, with the console user)."""
        return self._ctx.acting(actor)

    def checkpoint(self) -> int:
        """Write journaled changes into the data files now; returns files written."""
        self._check_open()
        return self._checkpointer.run_once()

    def _recover(self) -> dict:
        entries = self._ctx.outbox.tail_entries()
        done = {"unknowns": self._unknowns.reconcile(entries),
                "sessions": self._sessions.recover()}
        if any(done.values()):
            logger.warning("finished work cut short by a crash: %s", done)
        return done

    def _corrupt(self, path: Path, moved_to: Path) -> None:
        self.corrupt_files.append({"path": str(path), "moved_to": str(moved_to)})
        raise_damage_notice(self.notices, self.data_dir, path, moved_to)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

    def erase(self, person_id: str, by: str, full: bool = False, reason: str = "request",
              request_id: str | None = None, threshold: float | None = None) -> dict:
        """Erase one person's face data everywhere (``store/erasure.py``); returns the
        erasure record with its counts. Checkpoints before and after (outside the lock) so
        no journal file keeps a copy of an erased embedding; backup archives are scanned
        outside the lock too (they can be large), so the device loop never waits on them."""
        self.checkpoint()
        with self._lock:
            self._check_open()
            done = self._erasures.check(person_id, by, reason, request_id)
            if done is not None:
                return done
            counts, ids = self._erasures.erase_data(person_id, full, threshold or MATCH_THRESHOLD)
        counts["backups"] = Erasures.drop_backups(self.data_dir, person_id, ids)
        with self._lock:
            self._check_open()
            result = self._erasures.record(person_id, by, full, reason, request_id, counts)
        self.checkpoint()
        return result

    def withdraw_consent(self, person_id: str, by: str, threshold: float | None = None) -> dict:
        """Consent withdrawn: record who and when, then erase the face data (unknown faces
        matched at ``threshold`` as in :meth:`erase`)."""
        with self._lock:
            self._check_open()
            self._people.require(person_id)
            self._people.mark_withdrawn(person_id, by)
        return self.erase(person_id, by, reason="consent_withdrawn", threshold=threshold)

    def sweep_retention(self, now: float | None = None) -> dict:
        """The daily retention sweep (``store/retention.py``); refused on an unsynced clock."""
        self.checkpoint()  # nothing journaled may point into a day being deleted
        with self._lock:
            self._check_open()
            return self._retention.sweep(now)

    def apply_retention(self, now: float | None = None) -> dict:
        """Delete attendance days, unknown crops, sessions and audit months past retention."""
        self.checkpoint()  # nothing journaled may point into a day being deleted
        with self._lock, intercept_writes(self._ctx.journal_file_write):
            self._check_open()
            return self._apply_retention(self._ctx.clock() if now is None else now)

    def _apply_retention(self, now: float) -> dict:
        """``apply_retention`` under the lock (also the daily sweep's worker)."""
        cutoff = self._ctx.day_of(now - self.config.retention_days * 86400)
        busy = {s["day"] for s in self._sessions.list() if s["state"] not in rules.FINAL_STATES}
        old_days = [d for d in self._attendance.days() if d < cutoff and d not in busy]
        for day in old_days:
            self._attendance.delete_day(day)
        crop_cutoff = self._ctx.day_of(now - self.config.unknown_retention_days * 86400)
        old_unknowns = [d for d in self._unknowns.days() if d < crop_cutoff]
        for day in old_unknowns:
            self._unknowns.delete_day(day)
        audit_age_s = self.config.audit_retention_days * 86400
        audit_cutoff = time.strftime("%Y-%m", time.gmtime(now - audit_age_s))
        result = {"attendance_days": len(old_days), "unknown_days": len(old_unknowns),
                  "sessions": self._sessions.delete_before(cutoff),
                  "audit_months": self._ctx.audit.delete_before(audit_cutoff)}
        if any(result.values()):
            logger.info("retention: deleted %s", result)
        return result

    def data_version(self) -> int:
        """A number that changes with every committed change (every write is a journal
        step): a view computed at one version is still exact while it is unchanged."""
        self._check_open()
        return self._ctx.version

    def health(self) -> dict:
        """Outbox numbers, damaged files found, next seq: for telemetry and the console."""
        with self._lock:
            return {"outbox": self._ctx.outbox.health(), "corrupt_files": list(self.corrupt_files),
                    "next_seq": self._ctx.seq.peek(), "recovered": dict(self.recovered),
                    "journal_steps_replayed": self.replayed,
                    "checkpoint_failing": self._checkpointer.failing}

    def close(self) -> None:
        """Last checkpoint, then release every file and the data-dir lock; safe twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._checkpointer.close()
        with self._lock:
            self._close_parts()
            os.close(self._lockfd)

    def _close_parts(self) -> None:
        self._ctx.journal.close()
        for part in (self._attendance, self._sessions, self._rosters, self._people,
                     self._erasures, self._ctx.outbox, self._ctx.audit):
            part.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _redo_file_writes(ctx: StoreContext, steps: list) -> None:
    """Replay the whole-file writes and audit records of audited changes, oldest first."""
    for ops in steps:
        ctx.apply([(name, arg) for name, arg in ops if name in EARLY_OPS])


def _take_lock(data_dir: Path) -> int:
    fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreError(f"{data_dir} is in use by another process (only the firmware may "
                         "open the store)") from None
    return fd
