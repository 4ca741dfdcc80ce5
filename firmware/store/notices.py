"""Persistent operator notices: damage and exhaustion the admin must see and acknowledge.

A notice is raised when something was lost or is about to be (a data file moved aside, a
journal with unreadable steps, a nearly full disk, camera-folder files that cannot be
read). It stays in ``status``, telemetry and on the dashboard until an admin acknowledges
it, across restarts (``<data_dir>/notices.json``, 0600, replaced atomically). The same
``key`` raised again while active only updates it (no flood); after an acknowledgement a
new occurrence is a new notice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Callable

from firmware.store.atomic import atomic_write_bytes
from firmware.store.errors import NotFound, StoreValueError
from firmware.store.ids import new_ulid, to_iso

logger = logging.getLogger(__name__)

FILE = "notices.json"
KEEP_ACKNOWLEDGED = 100
KINDS = ("file_moved_aside", "journal_damaged", "disk_low", "camera_files_unreadable")


class Notices:
    """``store.notices``: ``raise_``, ``active``, ``all``, ``acknowledge``."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(data_dir) / FILE
        self._clock = clock
        self._lock = threading.Lock()
        self._items: list[dict] = self._load()

    def _load(self) -> list[dict]:
        try:
            data = json.loads(self.path.read_text())
            return [d for d in data if isinstance(d, dict) and "id" in d] if isinstance(data, list) else []
        except FileNotFoundError:
            return []
        except (OSError, ValueError):
            logger.error("notices file %s unreadable; starting a new one", self.path)
            return []

    def raise_(self, key: str, kind: str, message: str, lost: str = "", copy: str = "") -> dict:
        """Record (or refresh) the active notice ``key``; returns it. ``lost``: what was
        lost or is at risk; ``copy``: where a copy of the damaged data is kept."""
        if kind not in KINDS:
            raise StoreValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}", "kind")
        with self._lock:
            found = next((n for n in self._items if n["key"] == key and not n["acknowledged_at"]), None)
            if found is None:
                found = {"id": new_ulid(self._clock()), "key": key, "kind": kind,
                         "raised_at": to_iso(self._clock()), "count": 0,
                         "acknowledged_at": None, "acknowledged_by": None}
                self._items.append(found)
                logger.error("NOTICE %s: %s", kind, message)
            found.update(message=message, lost=lost, copy=copy, count=found["count"] + 1,
                         last_at=to_iso(self._clock()))
            self._save()
            return dict(found)

    def active(self) -> list[dict]:
        """Unacknowledged notices, oldest first (copies)."""
        with self._lock:
            return [dict(n) for n in self._items if not n["acknowledged_at"]]

    def all(self) -> list[dict]:
        with self._lock:
            return [dict(n) for n in self._items]

    def acknowledge(self, notice_id: str, by: str) -> dict:
        """Mark one notice seen by ``by``; NotFound for an unknown id."""
        with self._lock:
            found = next((n for n in self._items if n["id"] == notice_id), None)
            if found is None:
                raise NotFound(f"notice {notice_id!r} not found")
            if not found["acknowledged_at"]:
                found.update(acknowledged_at=to_iso(self._clock()), acknowledged_by=str(by)[:64])
                logger.info("notice %s (%s) acknowledged by %s", notice_id, found["kind"], by)
            acked = [n for n in self._items if n["acknowledged_at"]]
            drop = {n["id"] for n in acked[:-KEEP_ACKNOWLEDGED]} if len(acked) > KEEP_ACKNOWLEDGED else set()
            self._items = [n for n in self._items if n["id"] not in drop]
            self._save()
            return dict(found)

    def _save(self) -> None:
        atomic_write_bytes(self.path, json.dumps(self._items).encode(), 0o600)


WHAT_IS_LOST = {
    "people.json": "the list of people (names, external ids); their photos and embeddings stay on disk",
    "sessions.json": "the list of sessions (schedule and states); attendance records are kept per day",
    "rosters.json": "the local rosters (who is in which class, seats)",
    "counters.json": "nothing: the event counter jumps far ahead so no seq is ever reused",
    "embeddings.json": "this person's face embeddings: enrol their photos again",
    "bundle.json": "a synced roster: the central side sends it again at the next sync",
}


def raise_damage_notice(notices: Notices, data_dir: Path, path: Path, moved_to: Path) -> dict:
    """The notice for a file the store could not read and moved (or copied) aside."""
    try:
        where = Path(path).relative_to(data_dir).as_posix()
    except ValueError:
        where = str(path)
    if Path(path).name.startswith("wal-"):
        return notices.raise_(f"journal:{where}", "journal_damaged",
                              f"the journal {where} has unreadable steps (disk or SD card damage?); "
                              "the readable steps were replayed",
                              lost="the changes in the unreadable steps (attendance, outbox events): "
                                   "compare today's attendance with the central server",
                              copy=str(moved_to))
    lost = WHAT_IS_LOST.get(Path(path).name, "")
    if not lost and "attendance" in where:
        lost = f"attendance records in {where} (the central server has those it received)"
    return notices.raise_(f"file:{where}", "file_moved_aside",
                          f"{where} could not be read and was moved aside; the device started "
                          "without its contents", lost=lost or f"the contents of {where}",
                          copy=str(moved_to))
