"""Per-day read cache: immutable record lists and small per-day indexes.

Attendance and unknown-face days are read far more often (console pages, every few
seconds) than they change, and a past day practically never changes. ``DayCache.read``
takes the Store lock only to pick up what is cached (a tuple per day) and to build a
changed day from memory; a day not cached yet is read from its files WITHOUT the lock,
and kept only if no write touched that day meanwhile (a generation number per day), so
a stale list is never cached. Callers filter and copy the tuples without the lock too.
Cached records are never mutated (writers invalidate instead). Memory is bounded by a
total record count: the OLDEST days go first (not the least recently read: a scan over
the whole history must not push out the recent days the console asks for all the time).

Next to the records, every day read once keeps a :class:`DayIndex` (its record count,
counts per status and each session's person -> status map, about 100 bytes a record: a
school year of 100,000 records is ~10 MB). Indexes are NOT evicted with
the records, only dropped when their day changes, so a count over the whole history or a
term report never re-reads old days from disk. Indexes are derived data held in memory
only: the day files and the journal stay the only durable state.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from dataclasses import dataclass
from operator import itemgetter
from typing import Callable, Iterable

MAX_RECORDS = 25_000  # ~1.4 KiB each in memory (measured): at most ~35 MB on the device
Records = tuple[dict, ...]
by_seq = itemgetter("seq")


@dataclass(frozen=True, slots=True)
class DayIndex:
    """What counting and reports need of one day: ``count`` records, ``statuses``
    (status -> count) and ``sessions`` (session id or "" -> {person id -> status}).
    Shared and read-only, like the cached records."""

    count: int
    statuses: dict[str, int]
    sessions: dict[str, dict[str, str]]

    @classmethod
    def of(cls, records: Iterable[dict]) -> "DayIndex":
        intern = sys.intern
        sessions: dict[str, dict[str, str]] = {}
        statuses: Counter = Counter()
        count = 0
        for rec in records:
            status = intern(str(rec.get("status") or ""))  # str(): a StrEnum held in memory
            sid = intern(rec.get("session_id") or "")
            marks = sessions.get(sid)
            if marks is None:
                marks = sessions[sid] = {}
            marks[intern(rec.get("person_id") or "")] = status
            statuses[status] += 1
            count += 1
        return cls(count, dict(statuses), sessions)


class DayCache:
    """Immutable per-day record tuples (sorted by ``seq``) under the Store's ``lock``."""

    def __init__(self, lock: threading.RLock, max_records: int = MAX_RECORDS) -> None:
        self._lock = lock
        self.max_records = max_records
        self._days: dict[str, Records] = {}
        self._index: dict[str, DayIndex] = {}
        self._gen: dict[str, int] = {}
        self._size = 0
        self.loads = 0  # days read from disk (tests, diagnostics)

    def invalidate(self, day: str) -> None:
        """A write touched ``day`` (caller holds the lock)."""
        self._gen[day] = self._gen.get(day, 0) + 1
        self._index.pop(day, None)
        old = self._days.pop(day, None)
        if old is not None:
            self._size -= len(old)

    def clear(self) -> None:
        with self._lock:
            for day in set(self._days) | set(self._index):
                self.invalidate(day)

    def _put(self, day: str, gen: int, records: Iterable[dict]) -> Records:
        recs = tuple(sorted(records, key=by_seq))
        if self._gen.get(day, 0) != gen:
            return recs
        self._index[day] = DayIndex.of(recs)
        if len(recs) <= self.max_records:
            self._size += len(recs) - len(self._days.pop(day, ()))  # two readers, same day
            self._days[day] = recs
            while self._size > self.max_records:
                self._size -= len(self._days.pop(min(self._days)))
        return recs

    def read(self, days: list[str], from_memory: Callable[[str], "Iterable[dict] | None"],
             from_disk: Callable[[str], list[dict]]) -> list[Records]:
        """The records of each of ``days``, by seq (shared, read-only: copy before handing out).

        ``from_memory(day)`` (called under the lock) gives a day's records when they are
        held in memory (possibly newer than its files), else None; ``from_disk(day)``
        (called WITHOUT the lock) reads a day whose files are up to date.
        """
        found: dict[str, Records] = {}
        cold: dict[str, int] = {}
        with self._lock:
            for day in days:
                recs = self._days.get(day)
                if recs is None:
                    live = from_memory(day)
                    if live is None:
                        cold[day] = self._gen.get(day, 0)
                        continue
                    recs = self._put(day, self._gen.get(day, 0), live)
                found[day] = recs
        loaded = {day: from_disk(day) for day in cold}
        if loaded:
            with self._lock:
                self.loads += len(loaded)
                for day, recs in loaded.items():
                    found[day] = self._put(day, cold[day], recs)
        return [found[day] for day in days]

    def indexes(self, days: list[str], from_memory: Callable[[str], "Iterable[dict] | None"],
                from_disk: Callable[[str], list[dict]]) -> list[DayIndex]:
        """The :class:`DayIndex` of each of ``days`` (a day not indexed yet is read once)."""
        with self._lock:
            found = {day: self._index[day] for day in days if day in self._index}
        missing = [day for day in days if day not in found]
        for day, recs in zip(missing, self.read(missing, from_memory, from_disk)):
            with self._lock:
                found[day] = self._index.get(day) or DayIndex.of(recs)
        return [found[day] for day in days]
