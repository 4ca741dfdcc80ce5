"""Attendance reports, pure: per-person rates and per-session counts for one roster.

Only COMPLETED sessions count (a running session has no absentees yet). In each, every
member of the roster the session kept (``roster_entries``) without a mark is absent,
as in the closing summary; people marked but not on that roster count too.
The attendance rate of a person is (present + late) / (present + late + absent): an
excused session counts neither way. ``None`` when nothing counts. Rates are fractions
in [0, 1]; a person is flagged when their rate is below ``flag_below``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware.domain.sessions import ABSENT, LATE, PRESENT, STATUSES

DEFAULT_FLAG_BELOW = 0.8  # flag people who attended less than 80 % of their sessions


@dataclass(slots=True)
class PersonLine:
    """One person's line: counts per status over the report's sessions."""

    person_id: str
    name: str | None = None
    external_id: str | None = None
    seat: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in STATUSES})
    rate: float | None = None
    flagged: bool = False

    def as_dict(self) -> dict:
        return {"person_id": self.person_id, "name": self.name, "external_id": self.external_id,
                "seat": self.seat, "counts": dict(self.counts), "sessions": sum(self.counts.values()),
                "rate": self.rate, "flagged": self.flagged}


def rate(counts: dict[str, int]) -> float | None:
    """(present + late) / (present + late + absent), or None when that is 0/0."""
    came = counts.get(PRESENT, 0) + counts.get(LATE, 0)
    due = came + counts.get(ABSENT, 0)
    return came / due if due else None


def session_line(session: dict, marks: dict[str, str]) -> dict:
    """Counts of one completed session: roster members without a mark are absent."""
    statuses = dict(marks)
    for entry in session.get("roster_entries") or []:
        statuses.setdefault(entry["person_id"], ABSENT)
    counts = {s: 0 for s in STATUSES}
    for status in statuses.values():
        if status in counts:
            counts[status] += 1
    return {"session_id": session["id"], "name": session.get("name"), "day": session.get("day"),
            "scheduled_start": session.get("scheduled_start"), "room": session.get("room"),
            "counts": counts, "rate": rate(counts), "statuses": statuses}


def _person(people: dict[str, PersonLine], pid: str, entry: dict, current: dict) -> PersonLine:
    line = people.get(pid)
    if line is None:
        line = people[pid] = PersonLine(pid)
    known = current.get(pid) or {}  # the newest name wins: current, else the latest snapshot
    line.name = known.get("name") or entry.get("name") or line.name
    line.external_id = known.get("external_id") or entry.get("external_id") or line.external_id
    line.seat = entry.get("seat") or line.seat
    return line


def roster_report(sessions: list[dict], marks: dict[str, dict[str, str]],
                  current: dict[str, dict], flag_below: float = DEFAULT_FLAG_BELOW) -> dict:
    """The report over ``sessions`` (completed ones of one roster, any order).

    ``marks``: session id -> {person id -> status}; ``current``: person id -> the person
    as now ({name, external_id}; deleted people are missing and keep their snapshot).
    Returns {sessions: [...by start], people: [...by seat, name], totals, flag_below}.
    """
    done = sorted((s for s in sessions if s.get("state") == "completed"),
                  key=lambda s: (s.get("start_ts") or 0, s["id"]))
    lines = [session_line(s, marks.get(s["id"], {})) for s in done]
    people: dict[str, PersonLine] = {}
    for session, line in zip(done, lines):
        entries = {e["person_id"]: e for e in session.get("roster_entries") or []}
        for pid, status in line["statuses"].items():
            person = _person(people, pid, entries.get(pid, {}), current)
            person.counts[status] += 1
    for person in people.values():
        person.rate = rate(person.counts)
        person.flagged = person.rate is not None and person.rate < flag_below
    totals = {s: sum(line["counts"][s] for line in lines) for s in STATUSES}
    ordered = sorted(people.values(), key=lambda p: (_seat_key(p.seat), (p.name or "").lower(), p.person_id))
    return {"sessions": [{k: v for k, v in line.items() if k != "statuses"} for line in lines],
            "people": [p.as_dict() for p in ordered], "totals": totals, "rate": rate(totals),
            "flag_below": flag_below, "flagged": sum(1 for p in people.values() if p.flagged)}


def _seat_key(seat: str | None) -> tuple:
    """Seats sort numerically when they are numbers ("2" before "10"), unseated last."""
    if seat is None:
        return (2, 0, "")
    return (0, int(seat), "") if seat.isdigit() else (1, 0, seat)

