"""Attendance with filters (date, session, room, person, status) and CSV export."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

import bottle

from console.csvio import to_csv
from console.pages_people import fw_call, q
from console.pages_sessions import STATUSES, fmt_time
from firmware.errors import ControlError

logger = logging.getLogger(__name__)

PAGE_ROWS = 500
FILTERS = ("day_from", "day_to", "session_id", "room", "person_id", "status")
CSV_HEADER = ["time", "session", "room", "person_id", "name", "status", "score", "by", "event_id"]


def read_filters(ctx) -> dict:
    today = datetime.now(ZoneInfo(ctx.config.device.timezone)).strftime("%Y-%m-%d")
    query = bottle.request.query
    filters = {k: (query.getunicode(k) or "").strip() for k in FILTERS}
    if not filters["day_from"] and not filters["day_to"] and not filters["session_id"]:
        filters["day_from"] = filters["day_to"] = today
    if filters["status"] and filters["status"] not in STATUSES:
        filters["status"] = ""
    return filters


def _rows(ctx, items: list[dict], names: dict, sessions: dict) -> list[list]:
    return [[fmt_time(ctx, r.get("captured_at")),
             sessions.get(r.get("session_id"), r.get("session_id") or ""), r.get("room") or "",
             r.get("person_id") or "", names.get(r.get("person_id"), ""), r.get("status") or "",
             "" if r.get("score") is None else f"{r['score']:.3f}", r.get("by") or "",
             r.get("event_id") or ""] for r in items]


LOOKUP_TTL_S = 3.0


def _fetch_lookups(ctx) -> tuple[dict, dict]:
    people = ctx.client.get("/v1/people")["items"]
    sessions = ctx.client.get("/v1/sessions")["items"]
    return ({p["id"]: p["name"] for p in people},
            {s["id"]: s.get("name") or s["id"] for s in sessions})


def _lookups(ctx) -> tuple[dict, dict]:
    """person id -> name and session id -> name, cached for a few seconds."""
    try:
        return ctx.cached("attendance.lookups", LOOKUP_TTL_S, lambda: _fetch_lookups(ctx))
    except ControlError as exc:
        ctx.flash(str(exc), "error")
        return {}, {}


def register(app: bottle.Bottle, ctx) -> None:
    @app.get("/attendance")
    def attendance():
        filters = read_filters(ctx)
        answer = fw_call(ctx, ctx.client.get, "/v1/attendance",
                         {**filters, "limit": PAGE_ROWS, "newest": 1}, fallback={"items": [], "total": 0})
        names, sessions = _lookups(ctx)
        items = sorted(answer["items"], key=lambda r: r.get("captured_at") or "", reverse=True)
        return ctx.render("attendance.tpl", title="Attendance", nav="/attendance",
                          filters=filters, rows=_rows(ctx, items[:PAGE_ROWS], names, sessions),
                          total=answer.get("total", len(items)), shown=min(len(items), PAGE_ROWS),
                          people=names, sessions=sessions, statuses=STATUSES, q=q,
                          export_query="&".join(f"{k}={q(v)}" for k, v in filters.items() if v))

    @app.get("/attendance/export.csv")
    def attendance_export():
        filters = read_filters(ctx)
        answer = fw_call(ctx, ctx.client.get, "/v1/attendance", filters, timeout=30)
        if answer is None:
            raise bottle.HTTPError(503, "the firmware is not running; cannot export")
        names, sessions = _lookups(ctx)
        items = sorted(answer["items"], key=lambda r: r.get("captured_at") or "")
        body = to_csv(CSV_HEADER, _rows(ctx, items, names, sessions),
                      bom=bottle.request.query.get("bom") == "1")
        ctx.audit("attendance.exported", None, {k: v for k, v in filters.items() if v})
        stamp = filters["day_from"] or "all"
        bottle.response.content_type = "text/csv; charset=utf-8"
        bottle.response.set_header("Content-Disposition",
                                   f'attachment; filename="attendance-{q(stamp)}.csv"')
        return body
