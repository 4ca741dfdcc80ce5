"""Audit log: who changed what, rotated per month (``audit/<YYYY-MM>/seg-*.json``).

The newest ``RECENT_MAX`` records are also kept in memory (read from disk once), so
``list`` (the console's settings and audit pages) costs no file reads.
"""

from __future__ import annotations

import collections
import logging
import re
import shutil
import time

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
        self._log: SegmentedLog | None = None
        self._month = ""
        self._recent: collections.deque | None = None  # newest last; None = not read yet

    def _log_for(self, month: str) -> SegmentedLog:
        if month != self._month or self._log is None:
            if self._log:
                self._log.close()
            self._log = SegmentedLog(self._root / month, self._ctx.segment_max,
                                     self._ctx.clock, self._ctx.on_corrupt)
            self._month = month
        return self._log

    def log(self, actor: str, action: str, target: str | None = None,
            details: dict | None = None) -> dict:
        """Append one audit record (``actor``: user name or ``system``)."""
        now = self._ctx.clock()
        rec = {"id": new_ulid(now), "at": to_iso(now), "actor": check_text(actor, "actor", 80),
               "action": check_text(action, "action", 80),
               "target": None if target is None else check_text(str(target), "target", 200),
               "details": check_extra(details, "details")}
        self._log_for(time.strftime("%Y-%m", time.gmtime(now))).append(rec)
        if self._recent is not None:
            self._recent.append({**rec, "details": dict(rec["details"])})  # caller owns ``rec``
        logger.info("audit: %s %s %s", rec["actor"], rec["action"], rec["target"] or "")
        return rec

    def months(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(p.name for p in self._root.iterdir() if MONTH_RE.match(p.name))

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
            log = SegmentedLog(self._root / month, 1, self._ctx.clock, self._ctx.on_corrupt)
            for _, rec in log.iter_records(reverse=True):
                if len(out) >= limit:
                    return out
                out.append({k: v for k, v in rec.items() if k != "_id"})
        return out

    def delete_before(self, month: str) -> int:
        """Delete whole months older than ``month`` (``YYYY-MM``); returns how many."""
        old = [m for m in self.months() if m < month]
        for name in old:
            if name == self._month and self._log:
                self._log.close()
                self._log = None
            shutil.rmtree(self._root / name, ignore_errors=True)
        if old:
            self._recent = None
        return len(old)

    def close(self) -> None:
        """Release files; safe twice."""
        if self._log:
            self._log.close()
            self._log = None
        self._recent = None
