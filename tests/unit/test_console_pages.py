"""Console pages in-process over WSGI, against a real ControlServer + real Store + fake Device."""

from __future__ import annotations

import csv
import io
import re
import time
import zipfile

import cv2
import numpy as np
import pytest

from console.csvio import match_people, parse_roster_csv, safe_cell, to_csv
from tests.unit.test_console_support import admin, console_env  # noqa: F401


def jpeg(seed=0) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def test_csv_guard_quoting_and_bom():
    assert safe_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert [safe_cell(v) for v in ("+1", "-2", "@a", "ok", None)] == ["'+1", "'-2", "'@a", "ok", ""]
    data = to_csv(["a", "b"], [['x,"y"', "line\nbreak"]], bom=True)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows == [["a", "b"], ['x,"y"', "line\nbreak"]]


def test_roster_csv_import_matching():
    rows = parse_roster_csv("\ufeffname,seat\nAnn,1\nNobody,2\nann,3\n".encode())
    entries, problems = match_people(rows, [{"id": "p1", "name": "Ann"}])
    assert entries == [{"person_id": "p1", "seat": "1"}]
    assert "no such person" in problems[0] and "twice" in problems[1]
    with pytest.raises(ValueError, match="header"):
        parse_roster_csv(b"foo,bar\n1,2\n")


def _people(admin, names):
    for name in names:
        assert admin.post("/people", {"name": name, "basis": "consent"}).status == 303
    return admin


def test_roster_session_grid_manual_status_and_export(admin, console_env):
    store = console_env.store
    _people(admin, ["Ann", "=cmd|' /C calc'!A0", "Cy"])
    ids = {p["name"]: p["id"] for p in store.people.list()}
    admin.get("/rosters")
    csv_body = "name,seat\nAnn,A1\n=cmd|' /C calc'!A0,A2\nCy,A3\n".encode()
    reply = admin.post_files("/rosters", [("csv", "roster.csv", csv_body)], {"name": "Year 9"})
    assert reply.status == 303
    roster = store.rosters.list()[0]
    assert {e["seat"] for e in roster["entries"]} == {"A1", "A2", "A3"}
    exported = admin.get(f"/rosters/{roster['id']}/export.csv").text
    assert "'=cmd" in exported and "A2" in exported

    admin.get("/sessions")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    reply = admin.post("/sessions", {"name": "Maths", "roster_id": roster["id"], "room": "lab-1",
                                     "day": today, "start": "00:00", "end": "23:59",
                                     "late_after_min": "600"})
    session_id = reply.location.rsplit("/", 1)[1]
    page = admin.get(f"/sessions/{session_id}")
    assert page.status == 200 and "scheduled" in page.text
    assert admin.post(f"/sessions/{session_id}/start").status == 303
    store.attendance.record(session_id, ids["Ann"], score=0.91)
    admin.get(f"/sessions/{session_id}")
    admin.post(f"/sessions/{session_id}/status", {"person_id": ids["Cy"], "status": "excused"})
    grid = admin.get(f"/api/sessions/{session_id}/grid")
    assert b'"counts"' in grid.body
    rows = {r["name"]: r for r in __import__("json").loads(grid.body)["rows"]}
    assert rows["Ann"]["status"] in ("present", "late") and rows["Ann"]["at_text"]
    assert rows["Cy"]["status"] == "excused" and rows["Cy"]["by"] == "admin"
    audit = admin.get("/audit").text
    assert "attendance.set_status" in audit and "session.set_state" in audit

    export = admin.get(f"/attendance/export.csv?session_id={session_id}&bom=1")
    assert export.headers["Content-Type"].startswith("text/csv") and export.body[:3] == b"\xef\xbb\xbf"
    table = list(csv.DictReader(io.StringIO(export.body.decode("utf-8-sig"))))
    assert {r["name"] for r in table} == {"Ann", "Cy"}
    assert all(r["session"] == "Maths" for r in table)
    assert {r["name"]: r["by"] for r in table} == {"Ann": "", "Cy": "admin"}
    page = admin.get(f"/attendance?session_id={session_id}&status=excused")
    assert "Cy" in page.text and "2 records" not in page.text


def test_unknowns_assign_and_discard(admin, console_env):
    store = console_env.store
    _people(admin, ["Dee"])
    pid = store.people.list()[0]["id"]
    vec = np.ones(8, np.float32) / np.sqrt(8)
    first = store.unknowns.add("unknown", None, vec, jpeg(1))
    second = store.unknowns.add("spoof", None, -vec, jpeg(2))
    page = admin.get("/unknowns")
    assert first["id"] in page.text and "spoof" in page.text
    assert admin.get(f"/unknowns/{first['id']}/crop.jpg").body.startswith(b"\xff\xd8")
    admin.post(f"/unknowns/{first['id']}/resolve", {"action": "assign", "person_id": pid})
    admin.post(f"/unknowns/{second['id']}/resolve", {"action": "discard"})
    assert store.unknowns.list() == []
    assert len(store.people.photos(pid)) == 1


def test_settings_validated_with_firmware_schema_and_reload(admin, console_env):
    admin.get("/settings")
    reply = admin.post("/settings/recognition", {"match_threshold": "0.45", "margin": "0.08",
                                                 "policy": "challenge"})
    assert reply.status == 303
    text = console_env.config.read_text()
    assert "match_threshold = 0.45" in text and 'policy = "challenge"' in text
    assert ("reload",) in console_env.device.calls
    refused = admin.post("/settings/recognition", {"match_threshold": "7", "margin": "0.08", "policy": "blink"})
    assert refused.status == 400 and "not saved" in refused.text
    assert field_errors(refused.text) == {"recognition.match_threshold": ANY_TEXT}
    assert "match_threshold = 0.45" in console_env.config.read_text()


class _AnyText(str):
    def __eq__(self, other):
        return isinstance(other, str) and bool(other.strip())

    __hash__ = str.__hash__


ANY_TEXT = _AnyText()


def field_errors(page: str) -> dict[str, str]:
    """{config key: message} for every field error the page shows."""
    return dict(re.findall(r'<span class="field-error" role="alert" data-field="([^"]+)">([^<]*)</span>', page))


def test_each_settings_form_shows_problems_beside_the_inputs_and_keeps_what_was_typed(admin, console_env):
    before = console_env.config.read_text()
    page = admin.post("/settings/recognition", {"match_threshold": "0,45", "margin": "lots", "policy": "blink"})
    assert page.status == 400
    assert set(field_errors(page.text)) == {"recognition.match_threshold", "recognition.margin"}
    assert "not a number: &#039;0,45&#039;" in page.text and 'value="lots"' in page.text
    page = admin.post("/settings/recognition", {"match_threshold": "", "margin": "", "policy": "telepathy"})
    assert page.status == 400 and set(field_errors(page.text)) == {"liveness.policy"}
    page = admin.post("/settings/retention", {"retention_days": "0", "unknown_retention_days": "ten",
                                              "audit_retention_days": ""})
    assert page.status == 400
    assert set(field_errors(page.text)) == {"store.unknown_retention_days", "store.audit_retention_days"}
    assert field_errors(page.text)["store.audit_retention_days"] == "required"
    page = admin.post("/settings/retention", {"retention_days": "0", "audit_retention_days": "400"})
    assert set(field_errors(page.text)) == {"store.retention_days"} and 'value="0"' in page.text
    page = admin.post("/settings/mqtt", {"mqtt_enabled": "1", "mqtt_host": "mqtt://user@broker:1883",
                                         "mqtt_port": "99999"})
    assert page.status == 400 and set(field_errors(page.text)) == {"mqtt.port"}
    page = admin.post("/settings/mqtt", {"mqtt_enabled": "1", "mqtt_host": "mqtt://user@broker", "mqtt_port": "1883"})
    assert set(field_errors(page.text)) == {"mqtt.host"} and 'value="mqtt://user@broker"' in page.text
    assert console_env.config.read_text() == before  # nothing refused was written
    assert "invalid" in page.text and admin.get("/settings").status == 200
    assert field_errors(admin.get("/settings").text) == {}  # the errors belong to the refused answer only


def test_threshold_looser_than_security_level_low_is_saved_with_a_warning(admin, console_env):
    admin.post("/settings/recognition", {"match_threshold": "0.5", "margin": "", "policy": "blink",
                                         "security_level": "high"})
    text = console_env.config.read_text()
    assert "match_threshold = 0.5" in text and 'security_level = "high"' in text
    page = admin.get("/settings").text
    assert "looser than security level" in page and "flash warn" in page
    admin.post("/settings/recognition", {"match_threshold": "", "margin": "", "policy": "blink",
                                         "security_level": "low"})
    page = admin.get("/settings").text
    assert "looser than security level" not in page and "match_threshold" not in console_env.config.read_text()
    refused = admin.post("/settings/recognition", {"match_threshold": "", "policy": "blink", "security_level": "paranoid"})
    assert "not saved" in refused.text and set(field_errors(refused.text)) == {"recognition.security_level"}
    assert 'security_level = "low"' in console_env.config.read_text()


def test_device_setup_writes_config(admin, console_env):
    reply = admin.post("/setup/device", {"name": "Hall <A>", "site": "north", "room": "hall-a",
                                         "timezone": "Europe/London", "camera_source": "webcam:1",
                                         "mqtt_host": "broker.lan", "mqtt_port": "8883",
                                         "mqtt_tls": "1", "pin_green": "5", "pin_relay": ""})
    assert reply.status == 303 and reply.location.endswith("/")
    text = console_env.config.read_text()
    assert 'room = "hall-a"' in text and 'host = "broker.lan"' in text and "pin = 5" in text
    assert "Hall &lt;A&gt;" in admin.get("/").text


def test_password_change_rotates_and_requires_old(admin, console_env):
    admin.get("/settings")
    admin.post("/settings/password", {"old_password": "nope", "new_password": "another-long-pass-77",
                                      "new_password2": "another-long-pass-77"})
    assert "current password is wrong" in admin.get("/account").text
    admin.post("/settings/password", {"old_password": "correct-horse-battery-9",
                                      "new_password": "another-long-pass-77",
                                      "new_password2": "another-long-pass-77"})
    assert "Password changed" in admin.get("/account").text
    assert console_env.app.config["rollcall.ctx"].users.verify("admin", "another-long-pass-77") == "admin"


def test_diagnostics_bundle_has_no_secrets(admin, console_env):
    (console_env.root / "log").mkdir()
    (console_env.root / "log" / "firmware.log").write_text("line 1\nline 2\n")
    admin.get("/settings")
    admin.post("/settings/mqtt", {"mqtt_enabled": "1", "mqtt_host": "b", "mqtt_port": "1883",
                                  "mqtt_username": "secret-user"})
    reply = admin.get("/settings/diagnostics.zip")
    assert reply.headers["Content-Type"] == "application/zip"
    bundle = zipfile.ZipFile(io.BytesIO(reply.body))
    names = set(bundle.namelist())
    assert {"config.toml", "versions.json", "status.json", "logs/firmware.log"} <= names
    config = bundle.read("config.toml").decode()
    assert "secret-user" not in config and "redacted" in config
    assert b"correct-horse" not in reply.body


def test_dashboard_kiosk_snapshot_and_people_photos(admin, console_env):
    console_env.device.jpeg = jpeg(5)
    page = admin.get("/").text
    assert "Device health" in page and "12.5" in page and "/live/stream.mjpg" in page
    assert admin.get("/api/kiosk").body.startswith(b'{"state": "idle"')
    assert admin.get("/live/snapshot.jpg").body == console_env.device.jpeg
    assert "kiosk-prompt" in admin.get("/kiosk").text
    _people(admin, ["Eve"])
    pid = console_env.store.people.list()[0]["id"]
    admin.get(f"/people/{pid}")
    admin.post_files(f"/people/{pid}/photos", [("photos", "a.jpg", jpeg(6))])
    photo = console_env.store.people.photos(pid)[0]["photo_id"]
    assert admin.get(f"/people/{pid}/photos/{photo}.jpg").body.startswith(b"\xff\xd8")
    assert photo in admin.get(f"/people/{pid}").text
    admin.post(f"/people/{pid}/delete")
    assert console_env.store.people.get(pid) is None


def test_broker_and_indicator_tests_need_csrf_header(admin, console_env):
    body = b"mqtt_host=broker.invalid&mqtt_port=1883"
    ctype = "application/x-www-form-urlencoded"
    assert admin.request("POST", "/api/broker-test", body, ctype).status == 403
    reply = admin.request("POST", "/api/broker-test", body, ctype, headers={"X-CSRF-Token": admin.csrf})
    assert reply.status == 200 and b"broker.invalid" in reply.body
    assert ("broker", {"host": "broker.invalid", "port": 1883, "tls": False}) in console_env.device.calls
    reply = admin.request("POST", "/api/indicators-test", b"", ctype, headers={"X-CSRF-Token": admin.csrf})
    assert b'"ok": true' in reply.body


def _seed_days(store, people: int, days: int) -> tuple[str, str]:
    """``people`` open-door check-ins on each of the last ``days`` days (today included),
    written newest day first (seq order is not time order); returns (day_from, day_to)."""
    ids = [store.people.add(f"p{i:03d}", f"Person {i}", consent="consent")["id"] for i in range(people)]
    midnight = time.time() // 86400 * 86400  # the test config's device.timezone is UTC
    for back in range(days):
        for i, pid in enumerate(ids):
            store.attendance.record(None, pid, captured_at=midnight - back * 86400 + i * 30)
    return (time.strftime("%Y-%m-%d", time.gmtime(midnight - (days - 1) * 86400)),
            time.strftime("%Y-%m-%d", time.gmtime(midnight)))


def _table_rows(html: str) -> list[str]:
    body = html.split('id="attendance-table"', 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr><td>.*?</tr>", body)


def test_attendance_pages_of_100_with_links_keeping_filters_and_full_csv_export(admin, console_env):
    day_from, day_to = _seed_days(console_env.store, 180, 6)  # 1,080 records: 11 pages
    filters = f"day_from={day_from}&day_to={day_to}&status=present"
    first = admin.get(f"/attendance?{filters}")
    rows = _table_rows(first.text)
    assert first.status == 200 and len(rows) == 100 and "1080 records" in first.text
    assert "Person 179" in rows[0] and "page 1 of 11" in first.text  # newest first
    assert 'id="att-prev"' not in first.text
    next_href = re.search(r'href="([^"]+)" id="att-next"', first.text).group(1).replace("&amp;", "&")
    assert next_href == f"/attendance?{filters}&page=2"
    second = admin.get(next_href)
    assert len(_table_rows(second.text)) == 100 and "101-200" in second.text
    assert 'id="att-prev"' in second.text and f"day_from={day_from}" in second.text
    last = admin.get(f"/attendance?{filters}&page=11")
    assert len(_table_rows(last.text)) == 80 and 'id="att-next"' not in last.text
    past = admin.get(f"/attendance?{filters}&page=40")
    assert "No rows on this page" in past.text and "page=11" in past.text  # prev: the last page

    export = admin.get(f"/attendance/export.csv?day_from={day_from}&day_to={day_to}")
    table = list(csv.DictReader(io.StringIO(export.body.decode("utf-8"))))
    assert export.status == 200 and len(table) == 1080 and export.parts >= 3  # header + 2 chunks
    assert len({r["event_id"] for r in table}) == 1080
    stored = sorted(console_env.store.attendance.query(day_from=day_from, day_to=day_to),
                    key=lambda r: r["captured_at"])
    assert [r["event_id"] for r in table] == [r["event_id"] for r in stored]  # oldest first


def test_bench_week_filter_uses_the_device_local_date():
    from console.bench import days_back

    late_evening_new_york = 1_795_230_000  # 2026-11-21 03:00 UTC = 20 Nov 22:00 in New York
    assert days_back(6, "UTC", late_evening_new_york) == {"day_from": "2026-11-15", "day_to": "2026-11-21"}
    assert days_back(6, "America/New_York", late_evening_new_york) == {"day_from": "2026-11-14",
                                                                       "day_to": "2026-11-20"}
    noon_utc = late_evening_new_york + 9 * 3600  # already 22 Nov 01:00 in Auckland
    assert days_back(0, "Pacific/Auckland", noon_utc) == {"day_from": "2026-11-22", "day_to": "2026-11-22"}
