"""Attendance reports per roster over a date range (page, print view, CSV and XLSX).

The firmware computes the numbers (``GET /v1/reports/rosters/<id>``, from its per-day
indexes); this page lays them out: a per-person table (rate, present / late / absent /
excused, flagged below a rate chosen on the page), per-session counts and a trend chart
rendered here as SVG. The page prints cleanly (print CSS hides navigation and forms).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import bottle

from console.charts import trend_svg
from console.csvio import to_csv
from console.exports import XLSX_TYPE, to_xlsx
from console.pages_people import fw_call, q
from firmware.domain.reports import DEFAULT_FLAG_BELOW
from firmware.domain.sessions import STATUSES

TERM_DAYS = 120  # the default range: about one school term back from today
PEOPLE_HEADER = ["seat", "student_number", "person_id", "name", "sessions", *STATUSES,
                 "rate_percent", "flagged"]
SESSION_HEADER = ["day", "session", "room", *STATUSES, "rate_percent"]


def read_form(ctx) -> dict:
    """roster_id, day_from, day_to (local dates; default: the last TERM_DAYS days) and
    ``below`` (the flag threshold in percent, 0-100; default 80)."""
    query = bottle.request.query
    today = datetime.now(ZoneInfo(ctx.config.device.timezone)).date()
    form = {"roster_id": (query.getunicode("roster_id") or "").strip(),
            "day_from": (query.getunicode("day_from") or "").strip()
            or (today - timedelta(days=TERM_DAYS)).isoformat(),
            "day_to": (query.getunicode("day_to") or "").strip() or today.isoformat()}
    try:
        below = float(query.get("below") or DEFAULT_FLAG_BELOW * 100)
    except ValueError:
        below = DEFAULT_FLAG_BELOW * 100
    form["below"] = max(0.0, min(below, 100.0))
    return form


def _pct(rate: float | None) -> str:
    return "" if rate is None else f"{rate * 100:.1f}"


def people_rows(report: dict) -> list[list]:
    return [[p.get("seat") or "", p.get("external_id") or "", p["person_id"], p.get("name") or "",
             p["sessions"], *(p["counts"][s] for s in STATUSES), _pct(p["rate"]),
             "yes" if p["flagged"] else ""] for p in report["people"]]


def session_rows(report: dict) -> list[list]:
    return [[s.get("day") or "", s.get("name") or s["session_id"], s.get("room") or "",
             *(s["counts"][st] for st in STATUSES), _pct(s["rate"])] for s in report["sessions"]]


def fetch_report(ctx, form: dict) -> dict | None:
    if not form["roster_id"]:
        return None
    return fw_call(ctx, ctx.fw.roster_report, form["roster_id"], form["day_from"], form["day_to"],
                   form["below"] / 100)


def _query(form: dict) -> str:
    return "&".join(f"{k}={q(f'{v:g}' if isinstance(v, float) else str(v))}"
                    for k, v in form.items() if v not in ("", None))


def _filename(report: dict, form: dict, ext: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in report["roster"]["name"])[:40]
    return f"report-{safe}-{form['day_from']}-{form['day_to']}.{ext}"


def register(app: bottle.Bottle, ctx) -> None:
    @app.get("/reports", role="operator")
    def reports():
        form = read_form(ctx)
        rosters = fw_call(ctx, ctx.fw.rosters, fallback=[])
        if not form["roster_id"] and rosters:
            form["roster_id"] = rosters[0]["id"]
        report = fetch_report(ctx, form)
        chart = trend_svg([(s.get("day") or "", s["rate"]) for s in report["sessions"]],
                          form["below"] / 100, "attendance rate per session") if report else ""
        return ctx.render("reports.tpl", title="Reports", nav="/reports", form=form,
                          rosters=rosters, report=report, chart=chart, statuses=STATUSES,
                          pct=_pct, export_query=_query(form))

    @app.get("/reports/export.<ext:re:csv|xlsx>", role="operator")
    def report_export(ext: str):
        form = read_form(ctx)
        report = fetch_report(ctx, form)
        if not report:
            raise bottle.HTTPError(404, "choose a roster (or the firmware is not running)")
        ctx.audit("report.exported", form["roster_id"], {k: form[k] for k in ("day_from", "day_to")})
        bottle.response.set_header("Content-Disposition",
                                   f'attachment; filename="{_filename(report, form, ext)}"')
        if ext == "xlsx":
            bottle.response.content_type = XLSX_TYPE
            return to_xlsx([("people", PEOPLE_HEADER, people_rows(report)),
                            ("sessions", SESSION_HEADER, session_rows(report))])
        bottle.response.content_type = "text/csv; charset=utf-8"
        return to_csv(PEOPLE_HEADER, people_rows(report), bom=bottle.request.query.get("bom") == "1")
