"""A directory of numbered TinyDB segment files, each holding at most ``max_records``.

An append rewrites only the newest segment (bounded size), never a big file. Older
segments are read on demand and not kept in memory; a segment that becomes empty is
deleted. Used for attendance days, outbox, audit months and unknown-face indexes.

With ``deferred=True`` changes stay in memory (the caller has already made them durable
in the write-ahead journal) until ``flush_jobs()`` hands the new file contents to the
checkpointer; segments stay in memory until their flush is confirmed by ``flushed()``.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

from firmware.store.atomic import fsync_dir
from firmware.store.tinyfile import TABLE, CorruptHook, DocFile, ensure_dir, read_json_file

logger = logging.getLogger(__name__)

SEG_RE = re.compile(r"^seg-(\d{6,})\.json$")
FlushJob = tuple[Path, "bytes | None"]  # new content, or None = delete the file


def segment_name(number: int) -> str:
    return f"seg-{number:06d}.json"


class SegmentedLog:
    """Records in ``seg-NNNNNN.json`` files under ``directory`` (created lazily, 0700)."""

    def __init__(self, directory: Path, max_records: int, clock: Callable[[], float] = time.time,
                 on_corrupt: CorruptHook | None = None, deferred: bool = False) -> None:
        self.directory = Path(directory)
        self.max_records = max(1, int(max_records))
        self.deferred = deferred
        self._clock = clock
        self._on_corrupt = on_corrupt
        self._docs: dict[int, DocFile] = {}   # open segments: the tail, plus unflushed ones
        self._tail: int | None = None
        self._gone: set[int] = set()          # emptied; file deletion pending (deferred)
        self._last = 0                         # highest number ever used: never reused

    def _disk_numbers(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        found = (SEG_RE.match(p.name) for p in self.directory.iterdir())
        return [int(m.group(1)) for m in found if m]

    def numbers(self) -> list[int]:
        """Existing segment numbers, ascending."""
        live = set(self._disk_numbers()) | {n for n, d in self._docs.items() if len(d)}
        numbers = sorted(live - self._gone)
        self._last = max([self._last, *numbers])
        return numbers

    def path(self, number: int) -> Path:
        return self.directory / segment_name(number)

    def _open(self, number: int) -> DocFile:
        if number not in self._docs:
            self._docs[number] = DocFile(self.path(number), self._clock, self._on_corrupt,
                                         self.deferred)
        return self._docs[number]

    def _release(self, number: int) -> None:
        doc = self._docs.get(number)
        if doc is not None and number != self._tail and not doc.storage.dirty:
            del self._docs[number]
            doc.close()

    def _tail_for_append(self) -> DocFile:
        if self._tail is None:
            numbers = self.numbers()
            self._tail = numbers[-1] if numbers else self._last + 1
        if len(self._open(self._tail)) >= self.max_records:
            old, self._tail = self._tail, max(self._tail, self._last) + 1
            self._release(old)
        self._last = max(self._last, self._tail)
        return self._open(self._tail)

    def append(self, record: dict) -> tuple[int, int]:
        """Append one record; returns (segment number, doc id)."""
        return self.append_many([record])[0]

    def append_many(self, records: list[dict]) -> list[tuple[int, int]]:
        """Append records with one rewrite per touched segment; returns their places."""
        if not self.deferred:
            ensure_dir(self.directory)
        places: list[tuple[int, int]] = []
        while len(places) < len(records):
            doc = self._tail_for_append()
            chunk = records[len(places):len(places) + self.max_records - len(doc)]
            places.extend((self._tail, doc_id) for doc_id in doc.insert_many(chunk))
        return places

    def read(self, number: int) -> list[dict]:
        """All records of one segment (each with ``_id``), without keeping it open."""
        if number in self._docs:
            return self._docs[number].all()
        if number in self._gone:
            return []
        data = read_json_file(self.path(number), self._clock, self._on_corrupt) or {}
        return [{**doc, "_id": int(i)} for i, doc in data.get(TABLE, {}).items()]

    def iter_records(self, reverse: bool = False) -> Iterator[tuple[int, dict]]:
        """Yield (segment number, record) oldest segment first (or newest with reverse)."""
        numbers = self.numbers()
        for number in reversed(numbers) if reverse else numbers:
            records = self.read(number)
            for record in reversed(records) if reverse else records:
                yield number, record

    def update(self, number: int, doc_id: int, fields: dict) -> None:
        """Change some fields of one record (rewrites that segment atomically)."""
        self._open(number).update(doc_id, fields)
        self._release(number)

    def remove(self, number: int, doc_ids: list[int]) -> bool:
        """Remove records; delete the segment file when it becomes empty. True if deleted."""
        doc = self._open(number)
        doc.remove(doc_ids)
        if len(doc):
            self._release(number)
            return False
        del self._docs[number]
        doc.close()
        if number == self._tail:
            self._tail = None
        if self.deferred:
            self._gone.add(number)
        else:
            self.path(number).unlink(missing_ok=True)
            fsync_dir(self.directory)
        return True

    # -- deferred mode: the checkpointer's side ------------------------------------------
    def has_pending(self) -> bool:
        return bool(self._gone) or any(d.storage.dirty for d in self._docs.values())

    def flush_jobs(self) -> list[FlushJob]:
        """Snapshot every unflushed change (call under the store lock)."""
        jobs: list[FlushJob] = [(self.path(n), None) for n in sorted(self._gone)]
        for doc in self._docs.values():
            data = doc.storage.snapshot()
            if data is not None:
                jobs.append((doc.path, data))
        return jobs

    def flushed(self, jobs: list[FlushJob], ok: bool) -> None:
        """After the checkpointer wrote ``jobs``: forget them, or mark them dirty again."""
        by_path = {d.path: n for n, d in self._docs.items()}
        for path, data in jobs:
            number = int(SEG_RE.match(path.name).group(1))
            if data is None and ok:
                self._gone.discard(number)
            elif data is not None and path in by_path:
                if ok:
                    self._release(by_path[path])
                else:
                    self._docs[by_path[path]].storage.dirty = True

    def close(self) -> None:
        """Release open segments; safe twice (deferred changes must be flushed first)."""
        for doc in self._docs.values():
            doc.close()
        self._docs.clear()
        self._tail = None

    def destroy(self) -> None:
        """Delete the whole directory (retention)."""
        self.close()
        self._gone.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
