"""Control routes for rosters, sessions (with the live per-session grid) and attendance."""

from __future__ import annotations

import logging
import threading
from operator import itemgetter

import bottle

from firmware.control.web import ApiError, field, must, query, read_json
from firmware.domain.reports import DEFAULT_FLAG_BELOW, roster_report
from firmware.store.ids import check_day

logger = logging.getLogger(__name__)

SESSION_ACTIONS = ("start", "stop", "cancel")
STATUSES = ("present", "late", "absent", "excused")
PAGE_DEFAULT = 100  # rows per /v1/attendance page unless ``limit`` says otherwise
PAGE_MAX = 1000  # a larger ``limit`` is reduced to this
ORDERS = ("seq", "time")


def _entries(data: dict) -> list[dict]:
    entries = field(data, "entries", list, required=False, default=[])
    out = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("person_id"), str):
            raise ApiError(400, f"entry {index + 1}: needs a person_id", "entries")
        seat = entry.get("seat")
        out.append({"person_id": entry["person_id"], "seat": None if seat in (None, "") else str(seat)})
    return out


def _latest_by_person(records: list[dict]) -> dict[str, dict]:
    """The newest attendance record of each person (a manual edit overrides a camera mark)."""
    latest: dict[str, dict] = {}
    for rec in sorted(records, key=lambda r: (r.get("seq") or 0, r.get("captured_at") or "")):
        latest[rec.get("person_id")] = rec
    return latest


def _roster_of(store, session: dict) -> tuple[dict, list[dict]]:
    """(roster summary, entries) of ``session``: the snapshot kept when it completed, else
    the roster as it is now."""
    roster = store.rosters.get(session.get("roster_id")) or {"id": session.get("roster_id"),
                                                             "entries": []}
    entries = session.get("roster_entries")
    return roster, roster.get("entries", []) if entries is None else entries


def _name(entry: dict, rec: dict, person: dict | None) -> str:
    """The name the record or the roster snapshot kept, else the person's current one."""
    return rec.get("name") or entry.get("name") or (person or {}).get("name") or "(deleted)"


def session_grid(store, session: dict) -> dict:
    """Roster members of ``session`` with present / late / absent and the time they came.

    A completed session shows the roster, names and seats it had when it completed, so
    editing or deleting people afterwards never changes it; ``off_roster`` rows are
    people recorded in the session but not on that roster."""
    roster, entries = _roster_of(store, session)
    latest = _latest_by_person(store.attendance.for_session(session["id"]))
    listed = {e["person_id"] for e in entries}
    extra = [{"person_id": pid, "seat": rec.get("seat")} for pid, rec in latest.items()
             if pid not in listed]
    rows = []
    for entry in [*entries, *extra]:
        rec = latest.get(entry["person_id"], {})
        person = None if rec.get("name") or entry.get("name") else store.people.get(entry["person_id"])
        rows.append({"person_id": entry["person_id"], "name": _name(entry, rec, person),
                     "external_id": rec.get("external_id") or entry.get("external_id")
                     or (person or {}).get("external_id"),
                     "seat": entry.get("seat") or rec.get("seat"),
                     "status": rec.get("status", "absent"), "at": rec.get("captured_at"),
                     "by": rec.get("updated_by") or (rec.get("extra") or {}).get("by"),
                     "score": rec.get("score"), "event_id": rec.get("event_id"),
                     "source": rec.get("source"),
                     "off_roster": entry["person_id"] not in listed})
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in STATUSES}
    return {"session": session, "roster": {k: roster.get(k) for k in ("id", "name", "version")},
            "rows": rows, "counts": counts}


def _whole(text: str | None, name: str, default: int) -> int:
    """A non-negative whole-number query argument (``default`` when absent)."""
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ApiError(400, f"{name} must be a whole number >= 0 (got {text[:20]!r})", name)
    return value


def by_capture_time(rows: list[dict]) -> list[dict]:
    """``rows`` (by seq) sorted by local ``day``, then ``captured_at`` (as
    ``store.attendance.page``); the sort is stable, so seq breaks ties."""
    try:
        return sorted(rows, key=itemgetter("day", "captured_at"))  # C-level key
    except (KeyError, TypeError):  # a record without a day or capture time sorts first
        return sorted(rows, key=lambda rec: (rec.get("day") or "", rec.get("captured_at") or ""))


def page_of(rows: list[dict], order: str, newest: bool, offset: int, limit: int) -> list[dict]:
    """One page of attendance ``rows`` (given by seq): ``order`` "seq" keeps them, "time"
    sorts by ``captured_at`` (then seq); ``newest`` counts ``offset`` from the newest end
    and returns that page newest first."""
    if order == "time":
        rows = by_capture_time(rows)
    if not newest:
        return rows[offset:offset + limit]
    end = len(rows) - offset
    return rows[max(0, end - limit):max(0, end)][::-1]


def brief(session: dict) -> dict:
    """A session without its per-person lists (``roster_entries``, ``roster_ids``, the
    summary's ``lists``): a year of sessions stays a small answer. ``/v1/sessions/<id>``
    has them all."""
    out = {k: v for k, v in session.items() if k not in ("roster_entries", "roster_ids")}
    if isinstance(out.get("summary"), dict):
        out["summary"] = {k: v for k, v in out["summary"].items() if k != "lists"}
    return out


def _fraction(text: str | None, default: float) -> float:
    """A rate in [0, 1] from a query argument (``default`` when absent)."""
    if text in (None, ""):
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ApiError(400, f"flag_below must be a fraction between 0 and 1 (got {text[:20]!r})",
                       "flag_below")
    return value


def report_of(store, roster_id: str, day_from: str | None, day_to: str | None,
              flag_below: float) -> dict:
    """The attendance report of one roster over [day_from, day_to] (local dates)."""
    for name, value in (("day_from", day_from), ("day_to", day_to)):
        if value:
            check_day(value, name)  # a StoreValueError: HTTP 400 naming the field
    roster = store.rosters.get(roster_id)
    sessions = [s for s in store.sessions.list(state="completed", roster_id=roster_id)
                if (not day_from or s["day"] >= day_from) and (not day_to or s["day"] <= day_to)]
    if roster is None and not sessions:
        raise ApiError(404, f"roster {roster_id!r} does not exist", "roster_id")
    current = {p["id"]: p for p in store.people.list()}
    report = roster_report(sessions, store.attendance.marks(sessions), current, flag_below)
    return {"roster": {"id": roster_id, "name": (roster or {}).get("name") or roster_id},
            "day_from": day_from, "day_to": day_to, **report}


class ReportCache:
    """The last ``size`` reports, each kept while the Store's ``data_version`` is unchanged
    (any write at all makes them stale), so a report page refreshed by several people
    costs one computation per change, not one per request."""

    def __init__(self, store, size: int = 16) -> None:
        self._store, self._size = store, size
        self._lock = threading.Lock()
        self._items: dict[tuple, tuple[int, dict]] = {}

    def get(self, roster_id: str, day_from: str | None, day_to: str | None, flag_below: float) -> dict:
        key = (roster_id, day_from, day_to, flag_below)
        version = self._store.data_version()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        report = report_of(self._store, roster_id, day_from, day_to, flag_below)
        with self._lock:
            if len(self._items) >= self._size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = (version, report)
        return report


def register(app: bottle.Bottle, ctx: dict) -> None:
    store, device = ctx["store"], ctx["device"]
    reports = ReportCache(store)

    @app.get("/v1/rosters")
    def rosters_list():
        return {"items": store.rosters.list()}

    @app.post("/v1/rosters")
    def rosters_create():
        data = read_json()
        return store.rosters.create(field(data, "name").strip(), _entries(data))

    @app.get("/v1/rosters/<roster_id>")
    def rosters_get(roster_id: str):
        return must(store.rosters.get(roster_id), "roster")

    @app.post("/v1/rosters/<roster_id>")
    def rosters_update(roster_id: str):
        must(store.rosters.get(roster_id), "roster")
        data = read_json()
        changes = {}
        if "name" in data:
            changes["name"] = field(data, "name").strip()
        if "entries" in data:
            changes["entries"] = _entries(data)
        return store.rosters.update(roster_id, **changes)

    @app.delete("/v1/rosters/<roster_id>")
    def rosters_delete(roster_id: str):
        must(store.rosters.get(roster_id), "roster")
        store.rosters.delete(roster_id)
        return {"deleted": roster_id}

    @app.get("/v1/sessions")
    def sessions_list():
        return {"items": [brief(s) for s in store.sessions.list(day=query("day"), room=query("room"),
                                                                state=query("state"))]}

    @app.post("/v1/sessions")
    def sessions_create():
        data = read_json()
        must(store.rosters.get(field(data, "roster_id")), "roster")
        return store.sessions.create(data["roster_id"], field(data, "room"), field(data, "name"),
                                     field(data, "scheduled_start", (int, float, str)),
                                     field(data, "scheduled_end", (int, float, str)),
                                     field(data, "late_after", (int, float, str), required=False),
                                     field(data, "liveness_policy", str, required=False))

    @app.get("/v1/sessions/<session_id>")
    def sessions_get(session_id: str):
        return must(store.sessions.get(session_id), "session")

    @app.get("/v1/sessions/<session_id>/grid")
    def sessions_grid(session_id: str):
        return session_grid(store, must(store.sessions.get(session_id), "session"))

    @app.post("/v1/sessions/<session_id>/<action:re:start|stop|cancel>")
    def sessions_command(session_id: str, action: str):
        if action not in SESSION_ACTIONS:
            raise ApiError(404, f"unknown session action {action!r} (start, stop, cancel)")
        must(store.sessions.get(session_id), "session")
        data = read_json()
        by = field(data, "by")
        return device.session_command(action, session_id, by, field(data, "liveness_policy", str, required=False))

    @app.post("/v1/sessions/<session_id>/attendance")
    def sessions_set_status(session_id: str):
        must(store.sessions.get(session_id), "session")
        data = read_json()
        status = field(data, "status")
        if status not in STATUSES:
            raise ApiError(400, "status must be present, late, absent or excused", "status")
        return store.attendance.set_status(session_id, field(data, "person_id"), status,
                                           field(data, "by"))

    @app.get("/v1/reports/rosters/<roster_id>")
    def roster_report_route(roster_id: str):
        return reports.get(roster_id, query("day_from"), query("day_to"),
                           _fraction(query("flag_below"), DEFAULT_FLAG_BELOW))

    @app.get("/v1/attendance")
    def attendance_query():
        status = query("status")
        if status and status not in STATUSES:
            raise ApiError(400, "status must be present, late, absent or excused", "status")
        order = query("order") or "seq"
        if order not in ORDERS:
            raise ApiError(400, "order must be seq or time", "order")
        offset = _whole(query("offset"), "offset", 0)
        limit = min(_whole(query("limit"), "limit", PAGE_DEFAULT), PAGE_MAX)
        if order == "time" and not any(query(k) for k in ("session_id", "room", "person_id")):
            items, total = store.attendance.page(day_from=query("day_from"), day_to=query("day_to"),
                                                 status=status or None, newest=query("newest") == "1",
                                                 offset=offset, limit=limit)
            return {"items": items, "total": total, "offset": offset, "limit": limit}
        rows = store.attendance.query(day_from=query("day_from"), day_to=query("day_to"),
                                      session_id=query("session_id"), room=query("room"),
                                      person_id=query("person_id"), status=status)
        return {"items": page_of(rows, order, query("newest") == "1", offset, limit),
                "total": len(rows), "offset": offset, "limit": limit}
