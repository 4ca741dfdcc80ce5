"""``rollcall central export``: attendance as CSV, one row per roster member, absentees included.

A *sitting* is one session (``session_id``) or, for open-door rooms without sessions, one
room on one local ``day``. Sittings are chosen by session, by room and/or by a range of
days (``day`` as the device sent it: its local date). For each sitting the roster is the
one the centre published for that site and room (``rosters`` table, filled by
``rollcall central roster publish --db``; the site-wide ``_all`` roster when the room has
none): the newest version published before the sitting's last event, else the newest.
Every member gets a row (``status`` ``absent`` when no event came); people who checked in
but are not on that roster get a row too, with ``on_roster`` = ``no``. Corrections: the
event with the highest ``revision`` (then the latest ``recorded_at``) wins.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from provisioning.central.db import Database, connect

EXPORT_COLUMNS = ["site", "room", "day", "session_id", "person_id", "name", "external_id", "seat",
                  "status", "on_roster", "captured_at", "device_id", "event_id", "seq", "score",
                  "roster_version"]


@dataclass(frozen=True)
class Sitting:
    site: str
    room: str | None
    day: str | None
    session_id: str | None


@dataclass(frozen=True)
class Selection:
    """Which sittings to export; every field optional, all given ones must match.

    ``since``/``until`` are local days ``YYYY-MM-DD`` (inclusive).
    """

    session: str | None = None
    room: str | None = None
    site: str | None = None
    since: str | None = None
    until: str | None = None


def export(db_target: str | Path | Database, selection: Selection, out_csv: Path) -> int:
    """Write the selected sittings as CSV (see the module docstring); returns the rows written."""
    db = db_target if isinstance(db_target, Database) else connect(db_target)
    try:
        with open(out_csv, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, EXPORT_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            written = 0
            for sitting in sittings(db, selection):
                rows = sitting_rows(db, sitting)
                writer.writerows(rows)
                written += len(rows)
        return written
    finally:
        if db is not db_target:
            db.close()


def export_session(db_target: str | Path | Database, session_id: str, out_csv: Path) -> int:
    """One session's attendance as CSV; returns the rows written."""
    return export(db_target, Selection(session=session_id), out_csv)


def sittings(db: Database, sel: Selection) -> list[Sitting]:
    """The sittings (distinct site, room, day, session) that events of the selection belong to."""
    where, params = ["kind IN ('attendance', 'session')"], []
    for column, value, op in (("session_id", sel.session, "="), ("room", sel.room, "="),
                              ("site", sel.site, "="), ("day", sel.since, ">="), ("day", sel.until, "<=")):
        if value is not None:
            where.append(f"{column} {op} ?")
            params.append(value)
    rows = db.query("SELECT DISTINCT site, room, day, session_id FROM events WHERE "
                    + " AND ".join(where), params)
    return _merge_sessions([Sitting(*row) for row in rows])


def _merge_sessions(found: list[Sitting]) -> list[Sitting]:
    """One sitting per session (a session's events all carry its day; keep the first room/day)."""
    by_key: dict = {}
    for s in sorted(found, key=lambda s: (s.site or "", s.day or "", s.room or "", s.session_id or "")):
        key = ("session", s.session_id) if s.session_id else ("open", s.site, s.room, s.day)
        if key not in by_key or (by_key[key].room is None and s.room is not None):
            by_key[key] = s
    return list(by_key.values())


def sitting_rows(db: Database, sitting: Sitting) -> list[dict]:
    """CSV rows of one sitting: every roster member, then attendees not on the roster."""
    arrivals = _arrivals(db, sitting)
    last_capture = max((a.get("captured_at") or "" for a in arrivals.values()), default=None)
    version, members = roster_for(db, sitting.site, sitting.room, last_capture)
    base = {"site": sitting.site, "room": sitting.room, "day": sitting.day,
            "session_id": sitting.session_id, "roster_version": version}
    rows = []
    for person in members:
        event = arrivals.pop(person["person_id"], None)
        rows.append({**base, **person, **_event_fields(event), "on_roster": "yes",
                     "status": (event or {}).get("status") or "absent"})
    for person_id, event in sorted(arrivals.items(), key=lambda kv: kv[1].get("captured_at") or ""):
        rows.append({**base, "person_id": person_id, **_event_fields(event), "status": event.get("status"),
                     "on_roster": "no" if members else ""})
    return rows


def _event_fields(event: dict | None) -> dict:
    if not event:
        return {}
    return {k: event.get(k) for k in ("captured_at", "device_id", "event_id", "seq", "score")}


def _arrivals(db: Database, s: Sitting) -> dict[str, dict]:
    """person_id -> the winning attendance event of the sitting (highest revision, then latest)."""
    if s.session_id:
        rows = db.query("SELECT payload FROM events WHERE kind = 'attendance' AND session_id = ?",
                        (s.session_id,))
    else:
        rows = db.query("SELECT payload FROM events WHERE kind = 'attendance' AND session_id IS NULL "
                        "AND site = ? AND room IS NOT DISTINCT FROM ? AND day IS NOT DISTINCT FROM ?"
                        if db.dialect == "postgresql" else
                        "SELECT payload FROM events WHERE kind = 'attendance' AND session_id IS NULL "
                        "AND site = ? AND room IS ? AND day IS ?", (s.site, s.room, s.day))
    best: dict[str, dict] = {}
    for (raw,) in rows:
        event = json.loads(raw)
        person = event.get("person_id")
        if person and _rank(event) > _rank(best.get(person)):
            best[person] = event
    return best


def _rank(event: dict | None) -> tuple:
    if event is None:
        return (-1, "")
    revision = event.get("revision")
    return (revision if isinstance(revision, int) else 0, str(event.get("recorded_at") or event.get("captured_at")))


def roster_for(db: Database, site: str, room: str | None, before: str | None) -> tuple[int | None, list[dict]]:
    """(version, members sorted by seat then name) of the roster published for the room."""
    for candidate in ([room] if room else []) + ["_all"]:
        rows = db.query("SELECT version, people, published_at FROM rosters WHERE site = ? AND room = ? "
                        "ORDER BY version DESC", (site, candidate))
        if rows:
            chosen = next((r for r in rows if before and (r[2] or "") <= before), rows[0])
            people = json.loads(chosen[1])
            return chosen[0], sorted(people, key=lambda p: (p.get("seat") or "~", p.get("name") or "",
                                                             p["person_id"]))
    return None, []
