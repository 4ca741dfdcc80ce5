"""Attendance with filters (date, session, room, person, status), CSV and XLSX export.

Exports carry the local day, the capture time as ISO-8601 with the zone's offset, the
seat and the student number kept in each record (``console/exports.py``)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Iterator
from zoneinfo import ZoneInfo

import bottle

from console.csvio import to_csv
from console.exports import RECORD_HEADER, XLSX_TYPE, by_of, record_row, to_xlsx
from console.pages_people import fw_call, q
from console.pages_sessions import LOOKUP_KEY, STATUSES, fmt_time
from firmware.errors import ControlError

logger = logging.getLogger(__name__)

PAGE_ROWS = 100  # rows per attendance page
MAX_PAGE = 100_000
EXPORT_CHUNK = 1000  # rows per control API call while exporting (its maximum page)
FILTERS = ("day_from", "day_to", "session_id", "room", "person_id", "status")
XLSX_MAX_ROWS = 200_000  # an XLSX is built in memory: larger exports are CSV only


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
    """Rows of the attendance page; the name is the one the record kept when written."""
    return [[fmt_time(ctx, r.get("captured_at")),
             sessions.get(r.get("session_id"), r.get("session_id") or ""), r.get("room") or "",
             r.get("person_id") or "", r.get("name") or names.get(r.get("person_id"), ""),
             r.get("status") or "", "" if r.get("score") is None else f"{r['score']:.3f}", by_of(r),
             r.get("event_id") or ""] for r in items]


LOOKUP_TTL_S = 30.0  # names for the filters; records carry their own names (snapshots)


def _fetch_lookups(ctx) -> tuple[dict, dict, dict]:
    people = ctx.fw.people()
    sessions = ctx.fw.sessions()
    return ({p["id"]: p["name"] for p in people},
            {s["id"]: s.get("name") or s["id"] for s in sessions}, {p["id"]: p for p in people})


def _lookups(ctx) -> tuple[dict, dict, dict]:
    """person id -> name, session id -> name and person id -> person, cached a few seconds."""
    try:
        return ctx.cached(LOOKUP_KEY, LOOKUP_TTL_S, lambda: _fetch_lookups(ctx))
    except ControlError as exc:
        ctx.flash(str(exc), "error")
        return {}, {}, {}


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


def _csv_chunks(ctx, rows: Iterator[dict], lookups: tuple[dict, dict, dict],
                bom: bool) -> Iterator[bytes]:
    """The CSV as byte chunks of EXPORT_CHUNK rows each (header first)."""
    _, sessions, people = lookups
    zone = ZoneInfo(ctx.config.device.timezone)
    batch: list[list] = []
    yield to_csv(RECORD_HEADER, [], bom=bom)
    try:
        for rec in rows:
            batch.append(record_row(rec, zone, sessions, people))
            if len(batch) == EXPORT_CHUNK:
                yield to_csv(None, batch)
                batch = []
    except ControlError as exc:  # the download ends unfinished; the browser shows it failed
        logger.error("attendance export stopped: %s", exc)
        raise
    yield to_csv(None, batch)


def register(app: bottle.Bottle, ctx) -> None:
    @app.get("/attendance", role="operator")
    def attendance():
        filters, page = read_filters(ctx), page_number()
        answer = fw_call(ctx, ctx.fw.attendance, **filters, order="time", newest=1,
                         offset=(page - 1) * PAGE_ROWS, limit=PAGE_ROWS,
                         fallback={"items": [], "total": 0})
        names, sessions, _ = _lookups(ctx)
        total, first = answer.get("total", 0), (page - 1) * PAGE_ROWS + 1
        return ctx.render("attendance.tpl", title="Attendance", nav="/attendance",
                          filters=filters, rows=_rows(ctx, answer["items"], names, sessions),
                          total=total, first=first, last=first + len(answer["items"]) - 1,
                          page=page, **_page_links(filters, page, total),
                          people=names, sessions=sessions, statuses=STATUSES, q=q,
                          export_query=filter_query(filters))

    @app.get("/attendance/export.<ext:re:csv|xlsx>", role="operator")
    def attendance_export(ext: str):
        filters = read_filters(ctx)
        try:
            first = ctx.fw.attendance(timeout=30, **filters, order="time", offset=0, limit=EXPORT_CHUNK)
        except ControlError as exc:  # say what was wrong: a bad filter is not a stopped firmware
            status = exc.status if exc.status in (400, 404, 409, 413) else 503
            raise bottle.HTTPError(status, f"cannot export: {exc}") from None
        if ext == "xlsx" and first.get("total", 0) > XLSX_MAX_ROWS:
            raise bottle.HTTPError(413, f"more than {XLSX_MAX_ROWS} records: export CSV instead "
                                        "or choose a shorter date range")
        ctx.audit("attendance.exported", None, {**{k: v for k, v in filters.items() if v}, "format": ext})
        stamp = filters["day_from"] or "all"
        bottle.response.set_header("Content-Disposition",
                                   f'attachment; filename="attendance-{q(stamp)}.{ext}"')
        rows = export_rows(ctx.fw, filters, first)
        if ext == "xlsx":
            _, sessions, people = _lookups(ctx)
            zone = ZoneInfo(ctx.config.device.timezone)
            bottle.response.content_type = XLSX_TYPE
            return to_xlsx([("attendance", RECORD_HEADER,
                             (record_row(r, zone, sessions, people) for r in rows))])
        bottle.response.content_type = "text/csv; charset=utf-8"
        return _csv_chunks(ctx, rows, _lookups(ctx), bom=bottle.request.query.get("bom") == "1")
