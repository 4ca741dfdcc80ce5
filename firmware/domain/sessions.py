"""Session rules, pure: the state machine, late/present, and the closing summary.

States: ``scheduled -> in_progress -> completed | cancelled`` and
``scheduled -> cancelled``; nothing leaves ``completed`` or ``cancelled``.
Times are UNIX seconds (floats). No I/O here: the Store enforces these rules.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Iterable

from firmware.errors import SessionError

class SessionState(StrEnum):
    """A session's state (stored and published as its plain string value)."""

    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class Status(StrEnum):
    """A person's attendance outcome in a session."""

    PRESENT = "present"
    LATE = "late"
    ABSENT = "absent"
    EXCUSED = "excused"


SCHEDULED, IN_PROGRESS, COMPLETED, CANCELLED = SessionState
STATES = tuple(SessionState)
FINAL_STATES = frozenset({COMPLETED, CANCELLED})
TRANSITIONS: dict[str, frozenset[str]] = {
    SCHEDULED: frozenset({IN_PROGRESS, CANCELLED}),
    IN_PROGRESS: frozenset({COMPLETED, CANCELLED}),
    COMPLETED: frozenset(),
    CANCELLED: frozenset(),
}

PRESENT, LATE, ABSENT, EXCUSED = Status
STATUSES = tuple(Status)


def check_state(state: object) -> str:
    """Validate a state name."""
    if state not in STATES:
        raise SessionError(f"unknown session state {state!r}; use one of {', '.join(STATES)}")
    return state  # type: ignore[return-value]


def check_transition(current: str, new: str) -> None:
    """Raise ``SessionError`` unless ``current -> new`` is allowed."""
    check_state(new)
    if new not in TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "none (final state)"
        raise SessionError(f"a {current} session cannot become {new}; allowed: {allowed}")


def can_record(state: str) -> bool:
    """Attendance may be recorded only while a session is in progress."""
    return state == IN_PROGRESS


def check_status(status: object) -> str:
    """Validate an attendance status."""
    if status not in STATUSES:
        raise SessionError(f"unknown attendance status {status!r}; use one of {', '.join(STATUSES)}")
    return status  # type: ignore[return-value]


def arrival_status(captured_at: float, late_after: float | None) -> str:
    """``late`` if recognised strictly after ``late_after`` (UNIX s), else ``present``."""
    if late_after is not None and captured_at > late_after:
        return LATE
    return PRESENT


def check_times(start: float, end: float, late_after: float | None) -> None:
    """A session ends after it starts; ``late_after`` lies within [start, end]."""
    if end <= start:
        raise SessionError("scheduled_end must be after scheduled_start")
    if late_after is not None and not start <= late_after <= end:
        raise SessionError("late_after must lie between scheduled_start and scheduled_end")


def absentees(roster_ids: Iterable[str], seen_ids: Iterable[str]) -> list[str]:
    """Roster members with no attendance record, in roster order."""
    seen = set(seen_ids)
    return [pid for pid in roster_ids if pid not in seen]


def summarise(roster_ids: Iterable[str], records: Iterable[dict]) -> dict:
    """Counts and person-id lists per status for a closing session.

    ``records`` are attendance dicts with ``person_id`` and ``status``; roster members
    with no record count as absent.
    """
    roster = list(dict.fromkeys(roster_ids))
    lists: dict[str, list[str]] = {s: [] for s in STATUSES}
    for rec in records:
        lists[check_status(rec["status"])].append(rec["person_id"])
    seen = {pid for ids in lists.values() for pid in ids}
    lists[ABSENT].extend(p for p in absentees(roster, seen) if p not in lists[ABSENT])
    for ids in lists.values():
        ids.sort()
    counts = {s: len(ids) for s, ids in lists.items()}
    off_roster = sorted(seen - set(roster))
    return {"counts": counts, "lists": lists, "roster_size": len(roster),
            "off_roster": off_roster}
