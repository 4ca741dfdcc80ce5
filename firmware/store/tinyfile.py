"""TinyDB files that are written atomically and diagnosed, never silently emptied.

``AtomicJSONStorage`` is a TinyDB ``Storage``: every write replaces the whole file with
temp file + fsync + rename + fsync dir (``atomic.py``), mode 0600. The parsed content is
kept in memory (the firmware is the only writer), so a read costs no I/O. In ``deferred``
mode (outbox and attendance segments, whose changes are already durable in the journal)
a write only updates memory; ``snapshot()`` hands the bytes to the checkpointer.

A file that fails to parse is moved aside to ``<name>.corrupt-<UTC stamp>`` with a loud
ERROR log and reported to ``on_corrupt``; the store then starts that file empty. With
atomic writes this should never happen (it means disk damage or someone editing the
file by hand), which is why it is loud.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from tinydb import TinyDB
from tinydb.storages import Storage

from firmware.errors import StoreError
from firmware.store.atomic import atomic_write_bytes, make_dirs

logger = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
TABLE = "_default"
CorruptHook = Callable[[Path, Path], None]
# Takes over one whole-file write (path, new content) and returns True when it made it
# durable itself (the store's audited steps journal it), False to let the write go ahead.
WriteHook = Callable[[Path, dict], bool]
_hooks = threading.local()


@contextmanager
def intercept_writes(hook: WriteHook) -> Iterator[None]:
    """Route this thread's non-deferred file writes through ``hook`` for the block."""
    previous = getattr(_hooks, "hook", None)
    _hooks.hook = hook
    try:
        yield
    finally:
        _hooks.hook = previous


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700; tighten it if it exists."""
    path = Path(path)
    make_dirs(path, DIR_MODE)
    if path.stat().st_mode & 0o777 != DIR_MODE:
        os.chmod(path, DIR_MODE)
    return path


def utc_stamp(now: float) -> str:
    """Compact UTC time stamp for file names, e.g. ``20261121T080102Z``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def move_aside(path: Path, reason: str, clock: Callable[[], float] = time.time,
               on_corrupt: CorruptHook | None = None) -> Path:
    """Rename a damaged file to ``<name>.corrupt-<stamp>`` and log it loudly."""
    target = path.with_name(f"{path.name}.corrupt-{utc_stamp(clock())}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{utc_stamp(clock())}-{n}")
        n += 1
    os.replace(path, target)
    logger.error("DATA FILE DAMAGED: %s (%s); moved aside to %s and starting it empty. "
                 "Atomic writes should make this impossible: check the disk/SD card.",
                 path, reason, target.name)
    if on_corrupt:
        on_corrupt(path, target)
    return target


def read_json_file(path: Path, clock: Callable[[], float] = time.time,
                   on_corrupt: CorruptHook | None = None) -> Any:
    """Parse a JSON file; None if missing; a damaged file is moved aside (None)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
        return data
    except (ValueError, UnicodeDecodeError) as exc:
        try:
            move_aside(Path(path), f"{type(exc).__name__}: {exc}"[:200], clock, on_corrupt)
        except FileNotFoundError:  # a cache reader (outside the lock) moved it meanwhile
            pass
        return None


def dumps(data: Any) -> bytes:
    """Compact, deterministic JSON bytes."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


class AtomicJSONStorage(Storage):
    """TinyDB storage: whole-file atomic replace on write, parsed copy cached in memory."""

    def __init__(self, path: str | os.PathLike, clock: Callable[[], float] = time.time,
                 on_corrupt: CorruptHook | None = None, deferred: bool = False) -> None:
        self.path = Path(path)
        self._clock = clock
        self._on_corrupt = on_corrupt
        self._cache: dict | None = None
        self._loaded = False
        self.deferred = deferred  # writes stay in memory until snapshot() (journal covers them)
        self.dirty = False

    def read(self) -> dict | None:
        if not self._loaded:
            self._cache = read_json_file(self.path, self._clock, self._on_corrupt)
            self._loaded = True
        return self._cache

    def write(self, data: dict) -> None:
        if self.deferred:
            self._cache, self._loaded, self.dirty = data, True, True
            return
        hook = getattr(_hooks, "hook", None)
        if hook is not None and hook(self.path, data):
            self._cache, self._loaded = data, True
            return
        try:
            atomic_write_bytes(self.path, dumps(data), mode=FILE_MODE, dir_mode=DIR_MODE)
        except (StoreError, ValueError, TypeError):
            self._cache, self._loaded = None, False  # reload the on-disk truth next time
            raise
        self._cache, self._loaded = data, True

    def snapshot(self) -> bytes | None:
        """The serialised content if it changed since the last snapshot (deferred mode)."""
        if not self.dirty:
            return None
        self.dirty = False
        return dumps(self._cache)

    def close(self) -> None:
        self._cache, self._loaded = None, False


class DocFile:
    """One TinyDB file holding one table of plain-dict documents (ids are TinyDB doc ids)."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time,
                 on_corrupt: CorruptHook | None = None, deferred: bool = False) -> None:
        self.path = Path(path)
        self._db = TinyDB(self.path, storage=AtomicJSONStorage, clock=clock,
                          on_corrupt=on_corrupt, deferred=deferred)
        self._table = self._db.table(TABLE, cache_size=0)

    @property
    def storage(self) -> AtomicJSONStorage:
        return self._db.storage  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._table)

    def all(self) -> list[dict]:
        """Every document (copies), each with its ``doc_id`` under key ``_id``."""
        return [{**doc, "_id": doc.doc_id} for doc in self._table.all()]

    def insert(self, doc: dict) -> int:
        return self._table.insert(_strip(doc))

    def insert_many(self, docs: list[dict]) -> list[int]:
        return self._table.insert_multiple([_strip(d) for d in docs])

    def update(self, doc_id: int, fields: dict) -> None:
        self._table.update(_strip(fields), doc_ids=[doc_id])

    def remove(self, doc_ids: list[int]) -> None:
        if doc_ids:
            self._table.remove(doc_ids=list(doc_ids))

    def close(self) -> None:
        self._db.close()


def _strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "_id"}
