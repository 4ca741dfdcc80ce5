"""A directory of numbered TinyDB segment files, each holding at most ``max_records``.

An append rewrites only the newest segment (bounded size), never a big file. Older
segments are read on demand and not kept in memory; a segment that becomes empty is
deleted. Used for attendance days, outbox, audit months and unknown-face indexes.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

from firmware.store.atomic import fsync_dir
from firmware.store.tinyfile import CorruptHook, DocFile, ensure_dir, read_json_file, TABLE

logger = logging.getLogger(__name__)

SEG_RE = re.compile(r"^seg-(\d{6,})\.json$")


def segment_name(number: int) -> str:
    return f"seg-{number:06d}.json"


class SegmentedLog:
    """Records in ``seg-NNNNNN.json`` files under ``directory`` (created lazily, 0700)."""

    def __init__(self, directory: Path, max_records: int, clock: Callable[[], float] = time.time,
                 on_corrupt: CorruptHook | None = None) -> None:
        self.directory = Path(directory)
        self.max_records = max(1, int(max_records))
        self._clock = clock
        self._on_corrupt = on_corrupt
        self._tail: tuple[int, DocFile] | None = None

    def numbers(self) -> list[int]:
        """Existing segment numbers, ascending."""
        if not self.directory.is_dir():
            return []
        found = (SEG_RE.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def path(self, number: int) -> Path:
        return self.directory / segment_name(number)

    def _open(self, number: int) -> DocFile:
        if self._tail and self._tail[0] == number:
            return self._tail[1]
        return DocFile(self.path(number), self._clock, self._on_corrupt)

    def _release(self, number: int, doc: DocFile) -> None:
        if not (self._tail and self._tail[0] == number):
            doc.close()

    def _tail_for_append(self) -> tuple[int, DocFile]:
        if self._tail is None:
            numbers = self.numbers()
            number = numbers[-1] if numbers else 1
            self._tail = (number, DocFile(self.path(number), self._clock, self._on_corrupt))
        number, doc = self._tail
        if len(doc) >= self.max_records:
            doc.close()
            self._tail = (number + 1, DocFile(self.path(number + 1), self._clock, self._on_corrupt))
        return self._tail

    def append(self, record: dict) -> tuple[int, int]:
        """Append one record; returns (segment number, doc id)."""
        ensure_dir(self.directory)
        number, doc = self._tail_for_append()
        return number, doc.insert(record)

    def append_many(self, records: list[dict]) -> list[tuple[int, int]]:
        """Append records with one rewrite per touched segment; returns their places."""
        ensure_dir(self.directory)
        places: list[tuple[int, int]] = []
        while len(places) < len(records):
            number, doc = self._tail_for_append()
            room = self.max_records - len(doc)
            chunk = records[len(places):len(places) + room]
            places.extend((number, doc_id) for doc_id in doc.insert_many(chunk))
        return places

    def read(self, number: int) -> list[dict]:
        """All records of one segment (each with ``_id``), without keeping it open."""
        if self._tail and self._tail[0] == number:
            return self._tail[1].all()
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
        doc = self._open(number)
        try:
            doc.update(doc_id, fields)
        finally:
            self._release(number, doc)

    def remove(self, number: int, doc_ids: list[int]) -> bool:
        """Remove records; delete the segment file when it becomes empty. True if deleted."""
        doc = self._open(number)
        try:
            doc.remove(doc_ids)
            empty = len(doc) == 0
        finally:
            self._release(number, doc)
        if empty:
            self._delete_segment(number)
        return empty

    def _delete_segment(self, number: int) -> None:
        if self._tail and self._tail[0] == number:
            self._tail[1].close()
            self._tail = None
        self.path(number).unlink(missing_ok=True)
        fsync_dir(self.directory)

    def close(self) -> None:
        """Release the open tail segment; safe twice."""
        if self._tail:
            self._tail[1].close()
            self._tail = None

    def destroy(self) -> None:
        """Delete the whole directory (retention)."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)
