"""Consent, erasure, retention and subject access through the control API and the console,
over a real ControlServer and a real Store (the device is the test double that hands
erasures to that Store)."""

from __future__ import annotations

import base64
import json

import pytest

from console.pages_live import clock_row, health_rows
from firmware.control.client import ControlClient
from firmware.errors import ControlError
from tests.unit.test_console_enrol import jpeg as face_jpeg
from tests.unit.test_console_enrol import make_zip
from tests.unit.test_console_security import jpeg
from tests.unit.test_console_support import admin, console_env, finished_bulk  # noqa: F401  (fixtures)
from tests.unit.test_store_support import unit_vector


@pytest.fixture
def client(console_env):
    return ControlClient(console_env.root / "control.sock")


def test_api_person_needs_a_basis_before_face_data(client, console_env):
    with pytest.raises(ControlError) as missing:
        client.post("/v1/people", {"name": "Zed"})
    assert missing.value.status == 400 and missing.value.field == "basis"
    with pytest.raises(ControlError) as bad:
        client.post("/v1/people", {"name": "Zed", "basis": "vibes"})
    assert bad.value.field == "basis"
    assert console_env.store.people.list() == []
    person = client.post("/v1/people", {"name": "Ann", "basis": "contract", "by": "hr-1"})
    assert person["consent"]["basis"] == "contract" and person["consent"]["recorded_by"] == "hr-1"
    console_env.store.people.add("bob", "Bob")  # e.g. an older record, no basis yet
    with pytest.raises(ControlError) as refused:
        client.post("/v1/people/bob/photos", {"images": ["/9j/"]})
    assert refused.value.status == 400 and refused.value.field == "consent"
    assert console_env.device.calls == []  # nothing reached enrolment
    client.post("/v1/people/bob/consent", {"basis": "consent", "by": "teacher"})
    answer = client.post("/v1/people/bob/photos", {"images": [_b64(jpeg(seed=3))]})
    assert answer["accepted"] == 1


def test_api_withdraw_erase_export_and_privacy(client, console_env):
    store = console_env.store
    store.people.add("ann", "Ann", consent={"basis": "consent", "by": "teacher"})
    store.people.add_embedding("ann", unit_vector(1), "m1", photo_jpeg=jpeg(seed=1))
    export = client.get("/v1/people/ann/export")
    assert export["person"]["consent"]["recorded_by"] == "teacher"
    assert len(export["templates"]) == 1 and export["templates"][0]["vector_b64"]
    assert len(export["photos"]) == 1
    erasure = client.post("/v1/people/ann/withdraw", {"by": "office"})
    assert erasure["reason"] == "consent_withdrawn" and erasure["counts"]["embeddings"] == 1
    after = client.get("/v1/people/ann/export")
    assert after["templates"] == [] and after["person"]["consent"]["withdrawn_by"] == "office"
    assert [e["reason"] for e in after["erasures"]] == ["consent_withdrawn"]
    assert client.get("/v1/erasures")["items"][0]["person_id"] == "ann"
    with pytest.raises(ControlError) as gone:
        client.post("/v1/people/nobody/erase", {"by": "dpo"})
    assert gone.value.status == 404
    privacy = client.get("/v1/privacy")
    assert privacy["clock"]["synced"] is True and privacy["retention"]["unknown_days"] == 30
    assert {row["where"] for row in privacy["held"]} >= {"people/<id>/", "unknowns/<day>/crops/"}
    swept = client.post("/v1/privacy/sweep", {"by": "dpo"})
    assert "deleted" in swept and store.audit.list()[0]["action"] == "retention.sweep"
    client.delete("/v1/people/ann?by=dpo&full=1")  # full erasure
    assert store.people.get("ann") is None and store.erasures.list("ann")[0]["full"] is True


def test_console_consent_form_person_page_and_withdrawal(admin, console_env):
    assert admin.post("/people", {"name": "Nobasis"}).status == 303
    assert console_env.store.people.list() == []  # refused: no basis chosen
    assert "legal basis" in admin.get("/people").text
    admin.post("/people", {"name": "Tony", "basis": "consent"})
    [person] = console_env.store.people.list()
    assert person["consent"]["recorded_by"] == "admin"
    page = admin.get(f"/people/{person['id']}").text
    assert "Basis: <strong>consent</strong>, recorded by admin" in page
    reply = admin.post_files(f"/people/{person['id']}/photos", [("photos", "t.jpg", jpeg(seed=2))])
    assert reply.status in (200, 303) and len(console_env.store.people.photos(person["id"])) == 1
    export = admin.get(f"/people/{person['id']}/export")
    assert export.status == 200 and "data:image/jpeg;base64," in export.text and "Tony" in export.text
    as_json = json.loads(admin.get(f"/people/{person['id']}/export?format=json").text)
    assert len(as_json["templates"]) == 1
    assert admin.post(f"/people/{person['id']}/withdraw").status == 303
    page = admin.get(f"/people/{person['id']}").text
    assert "Consent withdrawn by admin" in page and "face data erased" in page.lower()
    assert console_env.store.people.photos(person["id"]) == []
    privacy = admin.get("/privacy").text
    assert "What this device holds" in privacy and "consent_withdrawn" in privacy
    assert admin.post("/privacy/sweep").status == 303
    assert "Retention sweep done" in admin.get("/privacy").text


def test_dashboard_clock_row():
    assert clock_row({"synced": True, "source": "timedatectl", "behind_s": 0.0}) == (
        "Clock", "synchronised (timedatectl)", "")
    label, text, css = clock_row({"synced": False, "source": "adjtimex", "behind_s": 3600.0})
    assert "NOT synchronised (adjtimex)" in text and "3600 s behind" in text and css == "bad"
    rows = health_rows({"camera": "running", "clock": {"synced": False, "source": "none"}})
    assert rows[-1][0] == "Clock" and rows[-1][2] == "bad"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_bulk_and_camera_enrolment_need_a_basis(admin, console_env, client):
    admin.get("/people/bulk")
    csv = b"name,photos\nAnn Lee,ann.jpg\n"
    reply = admin.post_files("/people/bulk", [("csv", "people.csv", csv),
                                              ("zip", "photos.zip", make_zip({"ann.jpg": face_jpeg(1)}))])
    assert "choose the legal basis" in reply.text and console_env.store.people.list() == []
    reply = finished_bulk(admin, admin.post_files(
        "/people/bulk", [("csv", "people.csv", csv), ("zip", "photos.zip", make_zip({"ann.jpg": face_jpeg(1)}))],
        fields={"basis": "contract"}))
    assert 'data-status="ok"' in reply.text, reply.text[-1500:]
    [ann] = console_env.store.people.list()
    assert ann["consent"]["basis"] == "contract" and ann["consent"]["recorded_by"] == "admin"
    console_env.store.people.add("cam", "Cam")  # no basis
    with pytest.raises(ControlError) as refused:
        client.post("/v1/capture", {"person_id": "cam"})
    assert refused.value.status == 400 and refused.value.field == "consent"
