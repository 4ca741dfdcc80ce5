"""Event ids (ULID), the crash-proof ``seq`` counter, and UTC time helpers.

``seq`` is reserved in blocks: before a number is handed out, the high-water mark
``seq_reserved`` is written atomically (fsync) to ``counters.json``. After a crash the
counter restarts above the last reservation, so a number is never repeated (gaps are
expected and harmless; consumers need order and uniqueness, not contiguity).
"""

from __future__ import annotations

import logging
import math
import re
import time
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ulid import ULID

from firmware.store.errors import StoreValueError
from firmware.store.atomic import atomic_write_bytes
from firmware.store.tinyfile import FILE_MODE, CorruptHook, dumps, read_json_file

logger = logging.getLogger(__name__)

SEQ_BLOCK = 1024
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def new_ulid(now: float) -> str:
    """A new ULID string whose time part is ``now`` (UNIX seconds)."""
    return str(ULID.from_timestamp(max(0.0, now)))


def is_ulid(value: object) -> bool:
    """True for a canonical 26-character ULID string."""
    return isinstance(value, str) and bool(ULID_RE.match(value))


def to_iso(epoch: float) -> str:
    """UTC ISO-8601 with milliseconds, e.g. ``2026-11-21T08:01:02.123Z``."""
    dt = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(value: object, field: str) -> float:
    """UNIX seconds from an ISO-8601 string (naive = UTC), a datetime or a number."""
    if isinstance(value, bool):
        raise StoreValueError(f"{field}: expected a time, got {value!r}", field)
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise StoreValueError(f"{field}: time must be finite", field)
        return float(value)
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise StoreValueError(f"{field}: {value!r} is not an ISO-8601 time "
                                  "(use e.g. 2026-11-21T08:00:00Z)", field) from None
    else:
        raise StoreValueError(f"{field}: expected an ISO-8601 string or UNIX seconds", field)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def day_of(epoch: float) -> str:
    """UTC calendar day ``YYYY-MM-DD`` of a UNIX time."""
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def local_day(epoch: float, zone: tzinfo) -> str:
    """Calendar day ``YYYY-MM-DD`` of a UNIX time in ``zone`` (the device's local date)."""
    return datetime.fromtimestamp(epoch, tz=zone).strftime("%Y-%m-%d")


def check_zone(name: object, field: str = "timezone") -> ZoneInfo:
    """An IANA time zone (``Europe/Berlin``, ``UTC``) by name."""
    try:
        if not isinstance(name, str) or not name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ValueError, OSError, ZoneInfoNotFoundError):
        raise StoreValueError(f"{field}: {name!r} is not an IANA time zone (use e.g. "
                              "Europe/Berlin or UTC)", field) from None


def check_day(value: object, field: str = "day") -> str:
    """Validate a ``YYYY-MM-DD`` day string."""
    if not isinstance(value, str) or not DAY_RE.match(value):
        raise StoreValueError(f"{field}: expected a day like 2026-11-21, got {value!r}", field)
    return value


class SeqCounter:
    """Monotonic per-device sequence numbers that survive SIGKILL and power loss."""

    def __init__(self, path: Path, floor: int = 0, clock: Callable[[], float] = time.time,
                 on_corrupt: CorruptHook | None = None) -> None:
        self.path = Path(path)
        data = read_json_file(self.path, clock, on_corrupt)
        self.lost = data is None  # missing or damaged: the caller decides how far to jump
        data = data or {}
        reserved = int(data.get("seq_reserved", 0))
        self._next = max(reserved, int(floor)) + 1
        self._reserved = self._next - 1  # nothing above this is reserved yet

    def next(self) -> int:
        """The next seq; reserves a new block on disk first when needed."""
        if self._next > self._reserved:
            self._reserve(self._next + SEQ_BLOCK - 1)
        value = self._next
        self._next += 1
        return value

    def raise_floor(self, floor: int) -> None:
        """Make sure the next seq is above ``floor`` (a seq seen on disk)."""
        if floor >= self._next:
            self._next = floor + 1

    def next_block_on_disk(self) -> None:
        """Write the counter file now (fresh data dir)."""
        self._reserve(self._next + SEQ_BLOCK - 1)
        self.lost = False

    def peek(self) -> int:
        """The seq the next call to ``next`` returns."""
        return self._next

    def _reserve(self, upto: int) -> None:
        atomic_write_bytes(self.path, dumps({"seq_reserved": upto}), mode=FILE_MODE)
        self._reserved = upto
