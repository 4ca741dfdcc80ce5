"""Console enrolment pages over in-process WSGI with a real ControlServer + Store and a fake
device: bulk enrolment (CSV + zip, bad zips and CSVs refused cleanly), "Enrol from camera",
and the review page saying why a face was not recognised."""

from __future__ import annotations

import io
import json
import zipfile

import cv2
import numpy as np

from tests.unit.test_console_support import admin, console_env, finished_bulk  # noqa: F401


def jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def make_zip(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


CSV = (b"name,photos,external_id\n"
       b"Ann Lee,ann/1.jpg;ann/2.jpg,\n"
       b"Bob,bob.jpg,S-42\n"
       b"Cy,notes.jpg,\n"
       b",ann/1.jpg,\n")
ZIP = {"ann/1.jpg": jpeg(1), "ann/2.jpg": jpeg(2), "photos/bob.jpg": jpeg(3), "notes.jpg": b"not an image"}


def _bulk(admin, csv: bytes, zip_data: bytes, **fields):
    """Upload; a refusal comes back at once, a started job's page once the job ended."""
    fields.setdefault("basis", "consent")
    admin.get("/people/bulk")
    return finished_bulk(admin, admin.post_files("/people/bulk", [("csv", "people.csv", csv),
                                                                  ("zip", "photos.zip", zip_data)],
                                                 fields=fields))


def test_bulk_upload_reports_each_row_and_is_idempotent(admin, console_env):
    reply = _bulk(admin, CSV, make_zip(ZIP))
    assert reply.status == 200 and 'id="bulk-report"' in reply.text, reply.text[:500]
    rows = reply.text.split("<tr data-status=")[1:]
    assert [r.split('"')[1] for r in rows] == ["ok", "ok", "bad_image", "bad_row"]
    assert "not a JPEG or PNG" in rows[2] and "no name" in rows[3]
    people = {p["id"]: p for p in console_env.store.people.list()}
    assert set(people) == {"ann-lee", "s-42"} and len(console_env.store.people.photos("ann-lee")) == 2
    again = _bulk(admin, CSV, make_zip(ZIP))
    assert [r.split('"')[1] for r in again.text.split("<tr data-status=")[1:]] == \
        ["already", "already", "bad_image", "bad_row"]
    assert len(console_env.store.people.photos("ann-lee")) == 2


def test_bulk_upload_refuses_corrupt_and_bomb_zips_and_bad_csv_cleanly(admin, console_env):
    bad = _bulk(admin, CSV, b"PK\x03\x04 this is not really a zip")
    assert bad.status == 200 and "corrupt" in bad.text and 'id="bulk-report"' not in bad.text
    bomb = make_zip({"ann/1.jpg": b"\0" * (5 * 2**20), "ann/2.jpg": b"\0" * (21 * 2**20)})
    assert len(bomb) < 100_000
    reply = _bulk(admin, b"name,photos\nAnn,ann/1.jpg;ann/2.jpg\n", bomb)
    assert "zip bomb" in reply.text and "too large" in reply.text and reply.text.count("<tr data-status=") == 1
    csv = _bulk(admin, b"name;email\nAnn;a@b\n", make_zip(ZIP))
    assert "header row" in csv.text
    huge = _bulk(admin, CSV, b"PK" + b"\0" * (9 * 2**20))
    assert huge.status == 413 and b"too large" in huge.body
    assert console_env.store.people.list() == [] and not console_env.device.calls


def test_enrol_from_camera_pages(admin, console_env):
    admin.post("/people", {"name": "Cam", "basis": "consent"})
    pid = console_env.store.people.list()[0]["id"]
    page = admin.get(f"/people/{pid}")
    assert "Enrol from camera" in page.text
    reply = admin.post(f"/people/{pid}/capture", {"frames": "3"})
    assert reply.status == 303 and reply.location.endswith(f"/people/{pid}/capture")
    assert ("capture_start", pid, 3, 60.0) in console_env.device.calls
    console_env.device.capture_fill(3)
    console_env.device.jpeg = jpeg(5)
    page = admin.get(f"/people/{pid}/capture")
    assert page.status == 200 and page.text.count('name="keep"') == 3
    assert json.loads(admin.get("/api/capture").body)["kept"] == 3
    assert admin.get("/capture/frames/1.jpg").status == 200
    assert admin.get("/capture/frames/7.jpg").status == 404
    done = admin.post(f"/people/{pid}/capture/keep", [("keep", "0"), ("keep", "2"), ("keep", "x")])
    assert done.status == 200 and done.text.count("accepted") == 2
    assert ("capture_keep", [0, 2], False) in console_env.device.calls


def test_review_cards_show_closest_person_score_threshold_and_spoof_needs_confirmation(admin, console_env):
    admin.post("/people", {"name": "Zoe", "basis": "consent"})
    pid = console_env.store.people.list()[0]["id"]
    vec = np.ones(8, np.float32) / np.sqrt(8)
    console_env.store.unknowns.add("unknown", None, vec, jpeg(7),
                                   extra={"closest_person_id": pid, "score": 0.9312, "threshold": 0.955})
    spoof = console_env.store.unknowns.add("spoof", None, -vec, jpeg(8), extra={"score": 0.0, "threshold": 0.955})
    page = admin.get("/unknowns")
    assert "Closest: <strong>Zoe</strong>, score <span class=\"score\">0.931</span>" in page.text
    assert "threshold <span class=\"threshold\">0.955</span>" in page.text
    assert page.text.count('name="confirm_spoof"') == 1 and "Failed the liveness check" in page.text
    admin.post(f"/unknowns/{spoof['id']}/resolve", {"action": "assign", "person_id": pid})
    assert console_env.store.unknowns.get(spoof["id"])["state"] == "open"
    assert "liveness" in admin.get("/unknowns").text
    admin.post(f"/unknowns/{spoof['id']}/resolve", {"action": "assign", "person_id": pid, "confirm_spoof": "1"})
    assert console_env.store.unknowns.get(spoof["id"])["state"] == "assigned"


def test_new_enrolment_pages_need_a_login_and_a_csrf_token(admin, console_env):
    anonymous = console_env.browser()
    assert anonymous.get("/api/capture").status == 401
    for path in ("/people/bulk", "/capture/frames/0.jpg", "/people/p1/capture"):
        reply = anonymous.get(path)
        assert reply.status == 303 and "/login" in reply.location, path
    assert anonymous.post("/people/bulk", {"x": "1"}, csrf=False).status == 403
    assert admin.post("/people/p1/capture", {"frames": "3"}, csrf=False).status == 403
    assert not any(c[0] == "capture_start" for c in console_env.device.calls)
