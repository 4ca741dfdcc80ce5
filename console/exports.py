"""Attendance rows for exports (CSV and XLSX) with seat, student number and local times.

One row layout serves the attendance export, the session export and the report's
detail sheet: the local day (the device's ``device.timezone``, as the Store files it),
the capture time as ISO-8601 with the UTC offset of that zone, the seat and the student
number the record kept when it was written (see ``firmware/store/attendance.py``).
XLSX files are built with openpyxl in write-only mode (streamed rows, bounded memory);
text cells get the same formula guard as CSV cells.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Iterable
from zoneinfo import ZoneInfo

from openpyxl import Workbook

from console.csvio import safe_cell

RECORD_HEADER = ["day", "time", "session", "room", "seat", "student_number", "person_id", "name",
                 "status", "score", "by", "event_id"]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def iso_local(value: object, zone: ZoneInfo) -> str:
    """A record time (ISO string, UTC) as ISO-8601 in ``zone`` with its offset, e.g.
    ``2026-11-30T09:05:00+01:00``; "" when absent, the text itself when unparsable."""
    if value in (None, ""):
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return moment.astimezone(zone).isoformat(timespec="seconds")


def by_of(rec: dict) -> str:
    """Who set the status by hand (a correction, or a manual record); "" for the camera."""
    return rec.get("updated_by") or (rec.get("extra") or {}).get("by") or ""


def arrival_time(rec: dict, zone: ZoneInfo) -> str:
    """When the person was seen (ISO with offset); "" for an absence written at closing."""
    if rec.get("source") == "finalise" and rec.get("status") == "absent":
        return ""
    return iso_local(rec.get("captured_at") or rec.get("at"), zone)


def record_row(rec: dict, zone: ZoneInfo, sessions: dict[str, str], people: dict[str, dict]) -> list:
    """One export row of an attendance record; names fall back to the current person."""
    person = people.get(rec.get("person_id")) or {}
    return [rec.get("day") or "", arrival_time(rec, zone),
            sessions.get(rec.get("session_id"), rec.get("session_id") or ""), rec.get("room") or "",
            rec.get("seat") or "", rec.get("external_id") or person.get("external_id") or "",
            rec.get("person_id") or "", rec.get("name") or person.get("name") or "",
            rec.get("status") or "", "" if rec.get("score") is None else round(rec["score"], 3),
            by_of(rec), rec.get("event_id") or ""]


def _cell(value: object) -> object:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else safe_cell(value)


def to_xlsx(sheets: Iterable[tuple[str, list[str], Iterable[list]]]) -> bytes:
    """An .xlsx workbook with one sheet per (title, header, rows)."""
    book = Workbook(write_only=True)
    for title, header, rows in sheets:
        sheet = book.create_sheet(title[:31])
        sheet.append([safe_cell(h) for h in header])
        for row in rows:
            sheet.append([_cell(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
