"""Store-specific errors (children of ``firmware.errors.StoreError``)."""

from __future__ import annotations

from firmware.errors import StoreError


class StoreValueError(StoreError, ValueError):
    """Bad input to a Store method; ``field`` names the offending argument."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(StoreValueError, LookupError):
    """The person, roster, session, unknown or photo id does not exist."""


class OutboxFull(StoreError):
    """The outbox holds ``outbox_max_events``: non-attendance events are refused."""


class StoreClosed(StoreError):
    """The Store was used after ``close()``."""


class ConsentRequired(StoreValueError):
    """Face data (embeddings, photos) refused: the person has no recorded legal basis."""
