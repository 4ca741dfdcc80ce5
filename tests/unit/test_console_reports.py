"""Reports, exports, history and colliding sessions through the console routes
(in-process WSGI) over the real ControlServer and the real Store."""

from __future__ import annotations

import csv
import io
import json

import pytest
from openpyxl import load_workbook

from console.exports import RECORD_HEADER
from firmware.control.client import ControlClient
from firmware.errors import ControlError
from tests.unit.test_console_support import admin, make_env, setup_admin  # noqa: F401

T0 = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC = 16:13:20 in Paris (CEST, +02:00)
PARIS = '[device]\ntimezone = "Europe/Paris"\n'


@pytest.fixture
def paris():
    env = make_env(extra=PARIS)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def office(paris):
    browser = paris.browser()
    assert setup_admin(browser).status == 303
    return browser


def _school(store, sessions: int = 3):
    """4 pupils (seats 1-4, student numbers S-1..S-4) and ``sessions`` completed sessions
    a day apart: pupil 0 always present, 1 late then present, 2 absent twice, 3 excused."""
    ids = [store.people.add(f"p{i}", f"Pupil {i}", f"S-{i + 1}")["id"] for i in range(4)]
    roster = store.rosters.create("Year 9", [{"person_id": p, "seat": str(i + 1)} for i, p in enumerate(ids)])
    made = []
    for n in range(sessions):
        start = T0 + n * 86400
        s = store.sessions.create(roster["id"], "lab", f"Maths {n}", start, start + 3600, start + 600)
        store.sessions.set_state(s["id"], "in_progress", "t", start)
        store.attendance.record(s["id"], ids[0], captured_at=start + 60)
        store.attendance.record(s["id"], ids[1], captured_at=start + (900 if n == 0 else 60))
        if n == 2:
            store.attendance.record(s["id"], ids[2], captured_at=start + 60)
        store.attendance.set_status(s["id"], ids[3], "excused", "office")
        made.append(store.sessions.set_state(s["id"], "completed", "t", start + 3600))
    return ids, roster, made


def test_report_page_chart_flags_print_and_exports(paris, office):
    ids, roster, sessions = _school(paris.store)
    query = f"roster_id={roster['id']}&day_from=2026-09-01&day_to=2026-09-30&below=70"
    page = office.get(f"/reports?{query}")
    assert page.status == 200
    assert "<svg" in page.text and "<polyline" in page.text and "http" not in page.text.split("<svg")[1].split("</svg>")[0].replace("http://www.w3.org/2000/svg", "")
    assert 'id="report-flagged">1<' in page.text  # pupil 2: 1 of 3 = 33 %
    assert 'class="flagged" data-person="p2"' in page.text and "@media print" in office.get("/static/style.css").text
    assert "3 completed sessions" in page.text

    rows = list(csv.DictReader(io.StringIO(office.get(f"/reports/export.csv?{query}").text)))
    by_id = {r["person_id"]: r for r in rows}
    assert [r["seat"] for r in rows] == ["1", "2", "3", "4"]
    assert (by_id["p1"]["present"], by_id["p1"]["late"], by_id["p1"]["rate_percent"]) == ("2", "1", "100.0")
    assert (by_id["p2"]["absent"], by_id["p2"]["rate_percent"], by_id["p2"]["flagged"]) == ("2", "33.3", "yes")
    assert (by_id["p3"]["excused"], by_id["p3"]["rate_percent"], by_id["p3"]["student_number"]) == ("3", "", "S-4")

    book = load_workbook(io.BytesIO(office.get(f"/reports/export.xlsx?{query}").body))
    assert book.sheetnames == ["people", "sessions"]
    people = list(book["people"].values)
    assert people[0][:4] == ("seat", "student_number", "person_id", "name") and len(people) == 5
    assert [r[0] for r in book["sessions"].values][1:] == ["2026-09-21", "2026-09-22", "2026-09-23"]

    # a correction shows at once (the firmware's report cache keys on the data version)
    for session in sessions[:2]:
        paris.store.attendance.set_status(session["id"], ids[2], "present", "office")
    assert 'id="report-flagged">0<' in office.get(f"/reports?{query}").text

    # bad input: a clear message, no report, nothing changed
    bad = office.get(f"/reports?roster_id={roster['id']}&day_from=21.9.2026&below=abc")
    assert bad.status == 200 and "day_from" in bad.text and 'id="report-people"' not in bad.text
    assert office.get("/reports?roster_id=nope").status == 200
    assert office.get("/reports/export.csv?roster_id=nope").status == 404


def test_session_page_exports_every_member_with_seat_number_and_local_time(paris, office):
    ids, _, sessions = _school(paris.store, sessions=1)
    sid = sessions[0]["id"]
    page = office.get(f"/sessions/{sid}")
    assert f"/sessions/{sid}/export.csv" in page.text and f"/sessions/{sid}/export.xlsx" in page.text
    rows = list(csv.DictReader(io.StringIO(office.get(f"/sessions/{sid}/export.csv").text)))
    assert list(rows[0]) == RECORD_HEADER
    assert [(r["seat"], r["student_number"], r["status"]) for r in rows] == [
        ("1", "S-1", "present"), ("2", "S-2", "late"), ("3", "S-3", "absent"), ("4", "S-4", "excused")]
    assert rows[0]["day"] == "2026-09-21" and rows[0]["time"] == "2026-09-21T16:14:20+02:00"
    sheet = load_workbook(io.BytesIO(office.get(f"/sessions/{sid}/export.xlsx").body)).active
    assert [r[4] for r in sheet.values][1:] == ["1", "2", "3", "4"]

    export = office.get("/attendance/export.csv?day_from=2026-09-01&day_to=2026-09-30")
    table = list(csv.DictReader(io.StringIO(export.text)))
    assert list(table[0]) == RECORD_HEADER and len(table) == 4
    assert {r["status"]: r["time"][-6:] for r in table if r["by"] != "office"} == \
        {"present": "+02:00", "late": "+02:00", "absent": ""}  # an absence has no arrival time
    xlsx = load_workbook(io.BytesIO(office.get("/attendance/export.xlsx?day_from=2026-09-01&day_to=2026-09-30").body))
    assert len(list(xlsx.active.values)) == 5


def test_edit_and_erase_people_leave_a_completed_session_unchanged(paris, office):
    store = paris.store
    ids, roster, sessions = _school(store, sessions=1)
    sid = sessions[0]["id"]
    grid_before = json.loads(office.get(f"/api/sessions/{sid}/grid").body)
    csv_before = office.get(f"/sessions/{sid}/export.csv").text
    summary_before = store.sessions.get(sid)["summary"]

    client = ControlClient(paris.root / "control.sock")
    client.post(f"/v1/people/{ids[1]}", {"name": "Someone Else", "external_id": "X-9"})
    office.get(f"/people/{ids[0]}")
    # "Erase face data" (photos, templates, crops; the person and the name stay) and
    # "Delete" (the person goes; the records keep the name and number they had). Only a
    # full erasure, asked for explicitly, removes attendance records.
    assert office.post(f"/people/{ids[0]}/erase").status == 303
    assert store.people.embeddings("m1", [ids[0]])[0] == []
    office.get(f"/people/{ids[2]}")
    assert office.post(f"/people/{ids[2]}/delete").status == 303
    assert store.people.get(ids[2]) is None

    grid_after = json.loads(office.get(f"/api/sessions/{sid}/grid").body)
    assert grid_after["rows"] == grid_before["rows"] and grid_after["counts"] == grid_before["counts"]
    assert office.get(f"/sessions/{sid}/export.csv").text == csv_before
    assert store.sessions.get(sid)["summary"] == summary_before
    assert "Pupil 0" in office.get("/attendance?day_from=2026-09-21&day_to=2026-09-21").text


def test_overlapping_session_refused_by_console_and_control_api(paris, office):
    store = paris.store
    _, roster, _ = _school(store, sessions=0)
    office.get("/sessions")
    form = {"name": "Maths", "roster_id": roster["id"], "room": "lab", "day": "2026-10-05",
            "start": "09:00", "end": "10:00", "late_after_min": "5"}
    assert office.post("/sessions", form).status == 303
    reply = office.post("/sessions", {**form, "name": "Physics", "start": "09:30", "end": "10:30"})
    assert reply.status == 303 and reply.location.endswith("/sessions")
    assert "cannot overlap" in office.get("/sessions").text
    assert [s["name"] for s in store.sessions.list()] == ["Maths"]
    client = ControlClient(paris.root / "control.sock")
    with pytest.raises(ControlError) as refused:
        client.post("/v1/sessions", {"roster_id": roster["id"], "room": "lab", "name": "Art",
                                     "scheduled_start": "2026-10-05T07:15:00Z",
                                     "scheduled_end": "2026-10-05T07:45:00Z"})
    assert refused.value.status == 409 and "Maths" in str(refused.value)
    with pytest.raises(ControlError) as bad:
        client.get(f"/v1/reports/rosters/{roster['id']}", {"flag_below": "2"})
    assert bad.value.status == 400 and bad.value.field == "flag_below"
