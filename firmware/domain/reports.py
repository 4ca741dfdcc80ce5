"""Attendance reports, pure: per-person rates and per-session counts for one roster.

Only COMPLETED sessions count (a running session has no absentees yet). In each, every
member of the roster the session kept (``roster_entries``) without a mark is absent,
as in the closing summary; people marked but not on that roster count too.
The attendance rate of a person is (present + late) / (present + late + absent): an
excused session counts neither way. ``None`` when nothing counts. Rates are fractions
in [0, 1]; a person is flagged when their rate is below ``flag_below``.
"""

from __future__ import annotations

from collections import Counter
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
        if entry["person_id"] not in statuses:
            statuses[entry["person_id"]] = ABSENT
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in Counter(statuses.values()).items():
        if status in counts:
            counts[status] = n
    return {"session_id": session["id"], "name": session.get("name"), "day": session.get("day"),
            "scheduled_start": session.get("scheduled_start"), "room": session.get("room"),
            "counts": counts, "rate": rate(counts), "statuses": statuses}


def _identities(done: list[dict], wanted: set[str], current: dict[str, dict]) -> dict[str, dict]:
    """person id -> {name, external_id, seat} for the ``wanted`` people: the person as now
    where known, else the newest roster snapshot that lists them (a deleted person keeps
    their last one); the seat always from that snapshot."""
    found: dict[str, dict] = {}
    left = set(wanted)
    for session in reversed(done):  # newest first: the first entry seen wins
        if not left:
            break
        for entry in session.get("roster_entries") or []:
            if entry["person_id"] in left:
                found[entry["person_id"]] = entry
                left.discard(entry["person_id"])
    out = {}
    for pid in wanted:
        entry, now = found.get(pid) or {}, current.get(pid) or {}
        out[pid] = {"name": now.get("name") or entry.get("name"),
                    "external_id": now.get("external_id") or entry.get("external_id"),
                    "seat": entry.get("seat")}
    return out


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
    counts: dict[str, dict[str, int]] = {}
    for line in lines:
        for pid, status in line["statuses"].items():
            mine = counts.get(pid)
            if mine is None:
                mine = counts[pid] = {s: 0 for s in STATUSES}
            mine[status] += 1
    who = _identities(done, set(counts), current)
    people = []
    for pid, mine in counts.items():
        known = who[pid]
        line = PersonLine(pid, known["name"], known["external_id"], known["seat"], mine, rate(mine))
        line.flagged = line.rate is not None and line.rate < flag_below
        people.append(line)
    totals = {s: sum(line["counts"][s] for line in lines) for s in STATUSES}
    people.sort(key=lambda p: (_seat_key(p.seat), (p.name or "").lower(), p.person_id))
    return {"sessions": [{k: v for k, v in line.items() if k != "statuses"} for line in lines],
            "people": [p.as_dict() for p in people], "totals": totals, "rate": rate(totals),
            "flag_below": flag_below, "flagged": sum(1 for p in people if p.flagged)}


def _seat_key(seat: str | None) -> tuple:
    """Seats sort numerically when they are numbers ("2" before "10"), unseated last."""
    if seat is None:
        return (2, 0, "")
    return (0, int(seat), "") if seat.isdigit() else (1, 0, seat)

