"""Crash-safe state on disk: atomic TinyDB files partitioned so none grows without bound.

Only the firmware process imports this (single writer); see ``docs/interfaces.md``.
"""

from firmware.store.errors import NotFound, OutboxFull, StoreClosed, StoreValueError
from firmware.store.facade import Store

__all__ = ["Store", "StoreValueError", "NotFound", "OutboxFull", "StoreClosed"]
