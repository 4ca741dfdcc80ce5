"""Attendance with filters (date, session, room, person, status) and CSV export."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Iterator
from zoneinfo import ZoneInfo

import bottle

from console.csvio import to_csv
from console.pages_people import fw_call, q
from console.pages_sessions import STATUSES, fmt_time
from firmware.errors import ControlError

logger = logging.getLogger(__name__)

PAGE_ROWS = 100  # rows per attendance page
MAX_PAGE = 100_000
EXPORT_CHUNK = 1000  # rows per control API call while exporting (its maximum page)
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


def _by(rec: dict) -> str:
    """Who set the status by hand (a correction, or a manual record); "" for the camera."""
    return rec.get("updated_by") or (rec.get("extra") or {}).get("by") or ""


def _rows(ctx, items: list[dict], names: dict, sessions: dict) -> list[list]:
    return [[fmt_time(ctx, r.get("captured_at")),
             sessions.get(r.get("session_id"), r.get("session_id") or ""), r.get("room") or "",
             r.get("person_id") or "", names.get(r.get("person_id"), ""), r.get("status") or "",
             "" if r.get("score") is None else f"{r['score']:.3f}", _by(r),
             r.get("event_id") or ""] for r in items]


LOOKUP_TTL_S = 3.0


def _fetch_lookups(ctx) -> tuple[dict, dict]:
    people = ctx.fw.people()
    sessions = ctx.fw.sessions()
    return ({p["id"]: p["name"] for p in people},
            {s["id"]: s.get("name") or s["id"] for s in sessions})


def _lookups(ctx) -> tuple[dict, dict]:
    """person id -> name and session id -> name, cached for a few seconds."""
    try:
        return ctx.cached("attendance.lookups", LOOKUP_TTL_S, lambda: _fetch_lookups(ctx))
    except ControlError as exc:
        ctx.flash(str(exc), "error")
        return {}, {}


def page_number() -> int:
    """The 1-based ``page`` query argument (1 when absent or not a number)."""
    try:
        return max(1, min(int(bottle.request.query.get("page") or 1), MAX_PAGE))
    except ValueError:
        return 1


def filter_query(filters: dict, **more) -> str:
    """The query string of ``filters`` (empty ones left out) plus ``more``."""
    pairs = [(k, v) for k, v in filters.items() if v] + [(k, str(v)) for k, v in more.items()]
    return "&".join(f"{k}={q(v)}" for k, v in pairs)


def _page_links(filters: dict, page: int, total: int) -> dict:
    """``prev`` / ``next`` hrefs (None at either end) and the page count for page ``page``."""
    pages = max(1, -(-total // PAGE_ROWS))
    prev = min(page, pages + 1) - 1  # from past the end, back to the last page
    return {"prev": "/attendance?" + filter_query(filters, page=prev) if page > 1 else None,
            "next": "/attendance?" + filter_query(filters, page=page + 1) if page < pages else None,
            "pages": pages}


def export_rows(client, filters: dict, first: dict, chunk: int = EXPORT_CHUNK) -> Iterator[dict]:
    """Every record matching ``filters``, oldest first, ``chunk`` rows per control API call
    (``first``: the answer for offset 0, already fetched). Records that arrive meanwhile
    are newer, so they only add to the end."""
    answer, offset = first, 0
    while True:
        items = answer["items"]
        yield from items
        offset += len(items)
        if not items or len(items) < answer.get("limit", chunk):
            return
        answer = client.attendance(timeout=30, **filters, order="time", offset=offset, limit=chunk)


def _csv_chunks(ctx, rows: Iterator[dict], lookups: tuple[dict, dict], bom: bool) -> Iterator[bytes]:
    """The CSV as byte chunks of EXPORT_CHUNK rows each (header first)."""
    names, sessions = lookups
    batch: list[dict] = []
    yield to_csv(CSV_HEADER, [], bom=bom)
    try:
        for rec in rows:
            batch.append(rec)
            if len(batch) == EXPORT_CHUNK:
                yield to_csv(None, _rows(ctx, batch, names, sessions))
                batch = []
    except ControlError as exc:  # the download ends unfinished; the browser shows it failed
        logger.error("attendance export stopped: %s", exc)
        raise
    yield to_csv(None, _rows(ctx, batch, names, sessions))


def register(app: bottle.Bottle, ctx) -> None:
    @app.get("/attendance", role="operator")
    def attendance():
        filters, page = read_filters(ctx), page_number()
        answer = fw_call(ctx, ctx.fw.attendance, **filters, order="time", newest=1,
                         offset=(page - 1) * PAGE_ROWS, limit=PAGE_ROWS,
                         fallback={"items": [], "total": 0})
        names, sessions = _lookups(ctx)
        total, first = answer.get("total", 0), (page - 1) * PAGE_ROWS + 1
        return ctx.render("attendance.tpl", title="Attendance", nav="/attendance",
                          filters=filters, rows=_rows(ctx, answer["items"], names, sessions),
                          total=total, first=first, last=first + len(answer["items"]) - 1,
                          page=page, **_page_links(filters, page, total),
                          people=names, sessions=sessions, statuses=STATUSES, q=q,
                          export_query=filter_query(filters))

    @app.get("/attendance/export.csv", role="operator")
    def attendance_export():
        filters = read_filters(ctx)
        try:
            first = ctx.fw.attendance(timeout=30, **filters, order="time", offset=0, limit=EXPORT_CHUNK)
        except ControlError as exc:  # say what was wrong: a bad filter is not a stopped firmware
            status = exc.status if exc.status in (400, 404, 409, 413) else 503
            raise bottle.HTTPError(status, f"cannot export: {exc}") from None
        ctx.audit("attendance.exported", None, {k: v for k, v in filters.items() if v})
        stamp = filters["day_from"] or "all"
        bottle.response.content_type = "text/csv; charset=utf-8"
        bottle.response.set_header("Content-Disposition",
                                   f'attachment; filename="attendance-{q(stamp)}.csv"')
        return _csv_chunks(ctx, export_rows(ctx.fw, filters, first), _lookups(ctx),
                           bom=bottle.request.query.get("bom") == "1")
