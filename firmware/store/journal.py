"""Write-ahead journal: one fdatasync'd line per step, so a step is all-or-nothing.

A step that touches several files (an attendance record AND its outbox entry) is first
appended as ONE line ``{"ops": [...], "crc": <crc32>}`` to ``journal/wal-NNNNNN.jsonl``
and fdatasync'd: that is the commit point (one sync, no rename). The files themselves
are then updated in memory and written atomically later by the checkpointer, which
first rotates to a new journal file, writes the snapshot, then deletes the old journal
files. At open, every remaining journal line is replayed (operations are idempotent).

A power cut can leave a torn LAST line (if its call never returned, nothing was confirmed;
a damaged last line looks the same, so the warning says both): it is ignored. A damaged line before the end means disk
damage: the file is copied aside as ``.corrupt-<stamp>``, logged loudly, and the
readable lines are still replayed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import zlib
from pathlib import Path
from typing import Callable

from firmware.errors import StoreError
from firmware.store.atomic import fsync_dir
from firmware.store.tinyfile import FILE_MODE, CorruptHook, dumps, ensure_dir, utc_stamp

logger = logging.getLogger(__name__)

WAL_RE = re.compile(r"^wal-(\d{6,})\.jsonl$")
Ops = list[list]  # [[op name, argument], ...]


def _line(ops: Ops) -> bytes:
    body = dumps(ops)
    return b'{"crc":%d,"ops":%s}\n' % (zlib.crc32(body), body)


def _parse(line: bytes) -> Ops:
    data = json.loads(line)
    body = dumps(data["ops"])
    if zlib.crc32(body) != data["crc"]:
        raise ValueError("checksum mismatch")
    return data["ops"]


class Journal:
    """Append-only, rotated write-ahead journal under ``directory`` (0700, files 0600)."""

    def __init__(self, directory: Path, clock: Callable[[], float] = time.time,
                 on_corrupt: CorruptHook | None = None) -> None:
        self.directory = ensure_dir(Path(directory))
        self._clock = clock
        self._on_corrupt = on_corrupt
        numbers = self.numbers()
        self._number = (numbers[-1] if numbers else 0) + 1
        self._fd: int | None = None
        self.lines = 0  # appended since the last rotation
        self.pinned = False  # a journaled file write failed: keep every step until restart

    def numbers(self) -> list[int]:
        found = (WAL_RE.match(p.name) for p in self.directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def _path(self, number: int) -> Path:
        return self.directory / f"wal-{number:06d}.jsonl"

    def append(self, ops: Ops) -> None:
        """Make ``ops`` durable as one unit (write + fdatasync); raises StoreError."""
        data = _line(ops)
        try:
            if self._fd is None:
                self._fd = os.open(self._path(self._number),
                                   os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
                fsync_dir(self.directory)
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(f"short write ({written} of {len(data)} bytes)")
            os.fdatasync(self._fd)
        except OSError as exc:
            self._reset_after_failure()
            raise StoreError(f"cannot write the journal: {exc.strerror or exc}") from exc
        self.lines += 1

    def _reset_after_failure(self) -> None:
        """A failed append may have left a partial line: start a fresh file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._number += 1

    def rotate(self) -> int:
        """Start a new file; returns the number of the newest file that is now closed."""
        closed = self._number
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._number += 1
        self.lines = 0
        return closed

    def delete_upto(self, number: int) -> None:
        """Delete journal files up to ``number`` (their content is in the data files)."""
        if self.pinned:
            return
        for n in self.numbers():
            if n <= number:
                self._path(n).unlink(missing_ok=True)
        fsync_dir(self.directory)

    def replay(self) -> list[Ops]:
        """Every committed step in every journal file, oldest first."""
        steps: list[Ops] = []
        for number in self.numbers():
            steps.extend(self._read(self._path(number)))
        return steps

    def _read(self, path: Path) -> list[Ops]:
        lines = path.read_bytes().split(b"\n")
        steps, bad = [], []
        for i, line in enumerate(lines):
            if not line:
                continue
            try:
                steps.append(_parse(line))
            except (ValueError, KeyError, TypeError):
                bad.append(i)
        if bad and bad != [len(lines) - 1]:
            target = path.with_name(f"{path.name}.corrupt-{utc_stamp(self._clock())}")
            shutil.copyfile(path, target)
            logger.error("JOURNAL DAMAGED: %s lines %s unreadable; copy kept as %s; replaying "
                         "the %d readable steps. Check the disk/SD card.", path, bad,
                         target.name, len(steps))
            if self._on_corrupt:
                self._on_corrupt(path, target)
        elif bad:
            logger.warning("journal %s ends with a torn line (%d unreadable bytes at the end): ignored. "
                           "Most likely a step cut by a power loss before it was written in full "
                           "(then it was not confirmed to anyone); it cannot be told apart from "
                           "a damaged last step", path.name, len(lines[-1]))
        return steps

    def close(self) -> None:
        """Close the open file; safe twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
