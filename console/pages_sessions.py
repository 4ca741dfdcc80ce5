"""Rosters (with CSV import/export) and sessions (schedule, start/stop/cancel, live grid)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import bottle

from console.csvio import match_people, parse_roster_csv, to_csv
from console.exports import RECORD_HEADER, XLSX_TYPE, arrival_time, to_xlsx
from console.pages_people import fw_call, q
from firmware.errors import ControlError

logger = logging.getLogger(__name__)

STATUSES = ("present", "late", "absent", "excused")
LOOKUP_KEY = "attendance.lookups"  # the attendance page's cached names (new sessions: forget)


def _people(ctx) -> list[dict]:
    return fw_call(ctx, ctx.fw.people, fallback=[])


def _entries_from_form(form) -> list[dict]:
    entries = []
    for person_id in form.getall("member"):
        seat = form.get(f"seat_{person_id}", "").strip()
        entries.append({"person_id": person_id, "seat": seat[:32] or None})
    return entries


def local_to_unix(ctx, day: str, hhmm: str) -> float:
    """UNIX seconds of ``day`` (YYYY-MM-DD) ``hhmm`` (HH:MM) in the device's time zone."""
    zone = ZoneInfo(ctx.config.device.timezone)
    return datetime.strptime(f"{day} {hhmm}", "%Y-%m-%d %H:%M").replace(tzinfo=zone).timestamp()


def fmt_time(ctx, value) -> str:
    """A record time (UNIX s or ISO string) as local 'YYYY-MM-DD HH:MM:SS'."""
    return ctx.local_time(value)


def _session_form(ctx, form) -> dict:
    day = form.get("day", "")
    start = local_to_unix(ctx, day, form.get("start", ""))
    end = local_to_unix(ctx, day, form.get("end", ""))
    if end <= start:
        raise ValueError("the end must be after the start")
    late_min = int(form.get("late_after_min") or 0)
    return {"roster_id": form.get("roster_id", ""), "name": form.get("name", "").strip(),
            "room": form.get("room", "").strip() or ctx.config.device.room,
            "scheduled_start": start, "scheduled_end": end,
            "late_after": start + timedelta(minutes=late_min).total_seconds(),
            "liveness_policy": form.get("liveness_policy") or None}


def grid_export_rows(grid: dict, zone: ZoneInfo) -> list[list]:
    """Every roster member of a session (absentees included) in the export row layout."""
    s = grid["session"]
    return [[s.get("day") or "", arrival_time(r, zone), s.get("name") or s.get("id"),
             s.get("room") or "", r.get("seat") or "", r.get("external_id") or "", r["person_id"],
             r.get("name") or "", r.get("status") or "",
             "" if r.get("score") is None else round(r["score"], 3), r.get("by") or "",
             r.get("event_id") or ""] for r in grid["rows"]]


def register(app: bottle.Bottle, ctx) -> None:
    register_rosters(app, ctx)

    @app.get("/sessions", role="operator")
    def sessions():
        items = fw_call(ctx, ctx.fw.sessions, fallback=[])
        rosters = fw_call(ctx, ctx.fw.rosters, fallback=[])
        items.sort(key=lambda s: s.get("scheduled_start") or 0, reverse=True)
        today = datetime.now(ZoneInfo(ctx.config.device.timezone)).strftime("%Y-%m-%d")
        return ctx.render("sessions.tpl", title="Sessions", nav="/sessions", items=items,
                          rosters=rosters, today=today, room=ctx.config.device.room,
                          fmt=lambda v: fmt_time(ctx, v), q=q)

    @app.post("/sessions")
    def sessions_add():
        try:
            data = _session_form(ctx, bottle.request.forms.decode())
        except ValueError as exc:
            ctx.flash(f"session not created: {exc}", "error")
            bottle.redirect("/sessions")
        created = fw_call(ctx, ctx.fw.create_session, **data)
        if created:
            ctx.forget(LOOKUP_KEY)
            bottle.redirect(f"/sessions/{q(created['id'])}")
        bottle.redirect("/sessions")

    @app.get("/sessions/<session_id>", role="operator")
    def session_page(session_id: str):
        grid = fw_call(ctx, ctx.fw.session_grid, session_id)
        if not grid:
            raise bottle.HTTPError(404, "no such session (or the firmware is down)")
        return ctx.render("session.tpl", title=grid["session"].get("name", "Session"),
                          nav="/sessions", grid=grid, statuses=STATUSES,
                          fmt=lambda v: fmt_time(ctx, v), q=q)

    @app.get("/api/sessions/<session_id>/grid", role="operator")
    def session_grid(session_id: str):
        try:
            grid = ctx.fw.session_grid(session_id, timeout=3)
        except ControlError as exc:
            raise bottle.HTTPError(503 if exc.status is None else exc.status, str(exc))
        for row in grid["rows"]:
            row["at_text"] = fmt_time(ctx, row.get("at"))
        return grid

    @app.get("/sessions/<session_id>/export.<ext:re:csv|xlsx>", role="operator")
    def session_export(session_id: str, ext: str):
        grid = fw_call(ctx, ctx.fw.session_grid, session_id)
        if not grid:
            raise bottle.HTTPError(404, "no such session (or the firmware is down)")
        rows = grid_export_rows(grid, ZoneInfo(ctx.config.device.timezone))
        ctx.audit("session.exported", session_id, {"format": ext})
        day = grid["session"].get("day") or "session"
        bottle.response.set_header("Content-Disposition",
                                   f'attachment; filename="session-{q(day)}-{q(session_id)}.{ext}"')
        if ext == "xlsx":
            bottle.response.content_type = XLSX_TYPE
            return to_xlsx([("session", RECORD_HEADER, rows)])
        bottle.response.content_type = "text/csv; charset=utf-8"
        return to_csv(RECORD_HEADER, rows, bom=bottle.request.query.get("bom") == "1")

    @app.post("/sessions/<session_id>/<action:re:start|stop|cancel>", role="operator")
    def session_command(session_id: str, action: str):
        policy = bottle.request.forms.decode().get("liveness_policy") or None
        if fw_call(ctx, ctx.fw.session_command, session_id, action,
                   policy if action == "start" else None):  # audited by the store
            ctx.flash(f"Session {action} done.")
        bottle.redirect(f"/sessions/{q(session_id)}")

    @app.post("/sessions/<session_id>/status", role="operator")
    def session_status(session_id: str):
        form = bottle.request.forms.decode()
        if fw_call(ctx, ctx.fw.set_attendance_status, session_id, form.get("person_id", ""),
                   form.get("status", "")):
            ctx.flash("Status changed (recorded in the audit log).")
        bottle.redirect(f"/sessions/{q(session_id)}")


def register_rosters(app: bottle.Bottle, ctx) -> None:
    @app.get("/rosters")
    def rosters():
        items = fw_call(ctx, ctx.fw.rosters, fallback=[])
        return ctx.render("rosters.tpl", title="Rosters", nav="/rosters", items=items,
                          people=_people(ctx), roster=None, q=q)

    @app.post("/rosters")
    def rosters_add():
        form = bottle.request.forms.decode()
        body = {"name": form.get("name", "").strip(), "entries": _entries_from_form(form)}
        upload = bottle.request.files.get("csv")
        if upload is not None and upload.raw_filename:
            try:
                entries, problems = match_people(parse_roster_csv(upload.file.read(2_000_000)),
                                                 _people(ctx))
            except ValueError as exc:
                ctx.flash(f"CSV not imported: {exc}", "error")
                bottle.redirect("/rosters")
            body["entries"] = entries
            for problem in problems[:20]:
                ctx.flash(problem, "warn")
        created = fw_call(ctx, ctx.fw.create_roster, body["name"], body["entries"])
        if created:
            ctx.flash(f"Roster {body['name']} saved with {len(body['entries'])} people.")
        bottle.redirect("/rosters")

    @app.get("/rosters/<roster_id>")
    def roster_page(roster_id: str):
        roster = fw_call(ctx, ctx.fw.roster, roster_id)
        if not roster:
            raise bottle.HTTPError(404, "no such roster")
        return ctx.render("rosters.tpl", title=roster["name"], nav="/rosters", items=[],
                          people=_people(ctx), roster=roster, q=q)

    @app.post("/rosters/<roster_id>")
    def roster_save(roster_id: str):
        form = bottle.request.forms.decode()
        body = {"name": form.get("name", "").strip(), "entries": _entries_from_form(form)}
        if fw_call(ctx, ctx.fw.update_roster, roster_id, **body):
            ctx.flash("Roster saved.")
        bottle.redirect(f"/rosters/{q(roster_id)}")

    @app.post("/rosters/<roster_id>/delete")
    def roster_delete(roster_id: str):
        if fw_call(ctx, ctx.fw.delete_roster, roster_id):
            ctx.flash("Roster deleted.")
        bottle.redirect("/rosters")

    @app.get("/rosters/<roster_id>/export.csv")
    def roster_export(roster_id: str):
        roster = fw_call(ctx, ctx.fw.roster, roster_id)
        if not roster:
            raise bottle.HTTPError(404, "no such roster")
        names = {p["id"]: p for p in _people(ctx)}
        rows = [[e["person_id"], names.get(e["person_id"], {}).get("external_id") or "",
                 names.get(e["person_id"], {}).get("name", ""), e.get("seat") or ""]
                for e in roster.get("entries", [])]
        bottle.response.content_type = "text/csv; charset=utf-8"
        bottle.response.set_header("Content-Disposition", 'attachment; filename="roster.csv"')
        return to_csv(["person_id", "external_id", "name", "seat"], rows,
                      bom=bottle.request.query.get("bom") == "1")
