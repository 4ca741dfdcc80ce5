"""What every part of the Store shares: clock, config, seq counter, outbox, audit."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar
from zoneinfo import ZoneInfo

from firmware.config import StoreConfig
from firmware.store.errors import StoreValueError
from firmware.store.ids import SeqCounter, local_day
from firmware.store.tinyfile import CorruptHook, dumps

if TYPE_CHECKING:
    from firmware.store.audit import Audit
    from firmware.store.journal import Journal
    from firmware.store.outbox import Outbox

ID_RE_TEXT = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
F = TypeVar("F", bound=Callable[..., Any])


def locks_itself(method: F) -> F:
    """Mark a read method that takes the Store lock itself, only for its short steps.

    The Store's proxy then calls it WITHOUT holding the lock, so a long read (filtering
    thousands of cached records) never makes writers (the device loop) wait.
    """
    method.locks_itself = True  # type: ignore[attr-defined]
    return method


@dataclass
class StoreContext:
    """Shared services, built once by ``Store`` and handed to each part."""

    data_dir: Path
    clock: Callable[[], float]
    config: StoreConfig
    seq: SeqCounter
    on_corrupt: CorruptHook
    segment_max: int
    journal: "Journal" = field(default=None)  # type: ignore[assignment]
    outbox: "Outbox" = field(default=None)  # type: ignore[assignment]
    audit: "Audit" = field(default=None)  # type: ignore[assignment]
    appliers: dict[str, Callable[[Any], None]] = field(default_factory=dict)
    on_commit: Callable[[], None] = lambda: None
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))  # days are local dates
    lock: threading.RLock = field(default_factory=threading.RLock)  # the Store's one lock
    default_basis: str | None = None  # privacy.default_basis: legal basis when none is named
    clock_synced: Callable[[], bool] = lambda: True  # is ``clock`` synchronised (NTP)?

    def day_of(self, epoch: float) -> str:
        """The device's local calendar day ``YYYY-MM-DD`` of a UNIX time (partition key)."""
        return local_day(epoch, self.zone)

    def commit(self, ops: list[tuple[str, Any]]) -> None:
        """Make ``ops`` durable as ONE journal step, then apply them in memory."""
        self.journal.append([[name, arg] for name, arg in ops])
        self.apply(ops)
        self.on_commit()

    def apply(self, ops: list) -> None:
        """Run the appliers (also used to replay the journal at open)."""
        for name, arg in ops:
            self.appliers[name](arg)


def check_text(value: object, field_name: str, max_len: int = 200, empty: bool = False) -> str:
    """A non-empty (unless ``empty``) single-line string of at most ``max_len`` chars."""
    if not isinstance(value, str) or (not empty and not value.strip()) or len(value) > max_len \
            or "\n" in value or "\x00" in value:
        raise StoreValueError(f"{field_name}: expected a one-line text of 1..{max_len} "
                              f"characters, got {value!r:.60}", field_name)
    return value.strip()


def check_extra(value: object, field_name: str = "extra") -> dict:
    """None or a JSON-safe dict (copied)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StoreValueError(f"{field_name}: expected a dict", field_name)
    try:
        if len(dumps(value)) > 16_384:
            raise StoreValueError(f"{field_name}: larger than 16 KiB", field_name)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, StoreValueError):
            raise
        raise StoreValueError(f"{field_name}: not JSON-safe ({exc})", field_name) from None
    return dict(value)


def check_score(value: Any) -> float | None:
    """None or a finite float."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StoreValueError(f"score: expected a finite number, got {value!r}", "score")
    return float(value)
