"""What every part of the Store shares: clock, config, seq counter, outbox, audit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from firmware.config import StoreConfig
from firmware.store.errors import StoreValueError
from firmware.store.ids import SeqCounter
from firmware.store.tinyfile import CorruptHook, dumps

if TYPE_CHECKING:
    from firmware.store.audit import Audit
    from firmware.store.outbox import Outbox

ID_RE_TEXT = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


@dataclass
class StoreContext:
    """Shared services, built once by ``Store`` and handed to each part."""

    data_dir: Path
    clock: Callable[[], float]
    config: StoreConfig
    seq: SeqCounter
    on_corrupt: CorruptHook
    segment_max: int
    outbox: "Outbox" = field(default=None)  # type: ignore[assignment]
    audit: "Audit" = field(default=None)  # type: ignore[assignment]


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
