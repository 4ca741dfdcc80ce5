"""Audit log: who changed what, rotated per month (``audit/<YYYY-MM>/seg-*.json``).

Every record is journaled: a change made by a Store part carries its audit record in the
same journal step (``StoreContext.audited``), and a plain :meth:`Audit.log` (a login, a
download) is a step of its own. The month segments are written by the checkpointer, like
attendance. The newest ``RECENT_MAX`` records are also kept in memory (read from disk
once), so ``list`` (the console's settings and audit pages) costs no file reads.
"""

from __future__ import annotations

import collections
import logging
import re
import shutil

from firmware.store.context import StoreContext, check_extra, check_text
from firmware.store.ids import new_ulid, to_iso
from firmware.store.segments import SegmentedLog

logger = logging.getLogger(__name__)

MONTH_RE = re.compile(r"^\d{4}-\d{2}$")
RECENT_MAX = 5000  # the control API's largest page


class Audit:
    """``store.audit``: append-only records ``{id, at, actor, action, target, details}``."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self._root = ctx.data_dir / "audit"
        self._logs: dict[str, SegmentedLog] = {}  # months written by this process
        self._ids: dict[str, set[str]] = {}  # their record ids (journal replay is idempotent)
        self._recent: collections.deque | None = None  # newest last; None = not read yet

    def _log_for(self, month: str) -> SegmentedLog:
        """The month's log, kept open: its unflushed records live there until checkpointed."""
        if month not in self._logs:
            log = SegmentedLog(self._root / month, self._ctx.segment_max, self._ctx.clock,
                               self._ctx.on_corrupt, deferred=True)
            self._logs[month] = log
            self._ids[month] = {rec["id"] for _, rec in log.iter_records()}
        return self._logs[month]

    def make(self, actor: str, action: str, target: object = None,
             details: dict | None = None) -> dict:
        """A new audit record (not stored yet); raises StoreValueError for bad fields."""
        now = self._ctx.clock()
        return {"id": new_ulid(now), "at": to_iso(now), "actor": check_text(actor, "actor", 80),
                "action": check_text(action, "action", 80),
                "target": None if target is None else check_text(str(target), "target", 200),
                "details": check_extra(details, "details")}

    def log(self, actor: str, action: str, target: str | None = None,
            details: dict | None = None) -> dict:
        """Record an event that changes nothing else (``actor``: user name or ``system``)."""
        rec = self.make(actor, action, target, details)
        self._ctx.commit([("audit.add", rec)])
        return dict(rec)

    def apply_add(self, rec: dict) -> None:
        """Journal applier (idempotent): add a committed record not present yet."""
        month = rec["at"][:7]
        log = self._log_for(month)
        if rec["id"] in self._ids[month]:
            return
        log.append(dict(rec))
        self._ids[month].add(rec["id"])
        if self._recent is not None:
            self._recent.append({**rec, "details": dict(rec["details"])})
        logger.info("audit: %s %s %s", rec["actor"], rec["action"], rec["target"] or "")

    def logs(self) -> list[SegmentedLog]:
        """The open months (for the checkpointer)."""
        return list(self._logs.values())

    def months(self) -> list[str]:
        """Months with records, on disk or still only in the journal."""
        found = {p.name for p in self._root.iterdir() if MONTH_RE.match(p.name)} \
            if self._root.is_dir() else set()
        return sorted(found | set(self._logs))

    def list(self, limit: int = 200) -> list[dict]:
        """Newest first, at most ``limit`` records."""
        if limit > RECENT_MAX:
            return self._read(limit)
        if self._recent is None:
            self._recent = collections.deque(reversed(self._read(RECENT_MAX)), maxlen=RECENT_MAX)
        newest = reversed(self._recent)
        return [{**rec, "details": dict(rec["details"])}
                for rec, _ in zip(newest, range(max(0, limit)))]

    def _read(self, limit: int) -> list[dict]:
        out: list[dict] = []
        for month in reversed(self.months()):
            log = self._logs.get(month) or SegmentedLog(self._root / month, 1, self._ctx.clock,
                                                         self._ctx.on_corrupt)  # open: unflushed too
            for _, rec in log.iter_records(reverse=True):
                if len(out) >= limit:
                    return out
                out.append({k: v for k, v in rec.items() if k != "_id"})
        return out

    def delete_before(self, month: str) -> int:
        """Delete whole months older than ``month`` (``YYYY-MM``); returns how many."""
        old = [m for m in self.months() if m < month]
        for name in old:
            log = self._logs.pop(name, None)
            self._ids.pop(name, None)
            if log is not None:
                log.close()
            shutil.rmtree(self._root / name, ignore_errors=True)
        if old:
            self._recent = None
        return len(old)

    def close(self) -> None:
        """Release files; safe twice."""
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        self._ids.clear()
        self._recent = None
