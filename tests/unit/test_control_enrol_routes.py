"""Enrolment routes of the control API over its real Unix socket with the real Store and a
fake Device (pure unit): capture start / poll / cancel / keep, the duplicate confirmation
flag, and a spoof crop that cannot be assigned without confirmation."""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware.control.client import ControlClient
from firmware.control.server import ControlServer
from firmware.errors import ControlError
from firmware.store import Store
from tests.doubles.control import FakeDevice


def jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.fixture
def control():
    root = Path(tempfile.mkdtemp(prefix="rc-ctl-enrol-"))
    store = Store(root / "data")
    device = FakeDevice(store, jpeg=jpeg(0))
    server = ControlServer(root / "control.sock", store, device).start()
    yield ControlClient(root / "control.sock"), store, device
    server.close()
    store.close()
    shutil.rmtree(root, ignore_errors=True)


def _status(fn, *args) -> int:
    with pytest.raises(ControlError) as err:
        fn(*args)
    return err.value.status


def test_capture_start_poll_frames_keep(control):
    client, _store, device = control
    person = client.post("/v1/people", {"name": "Cam", "basis": "consent"})
    assert _status(client.get, "/v1/capture") == 404
    started = client.post("/v1/capture", {"person_id": person["id"], "frames": 4, "timeout_s": 30})
    assert started["state"] == "capturing" and ("capture_start", person["id"], 4, 30.0) in device.calls
    assert _status(client.post, "/v1/capture", {"person_id": person["id"]}) == 409   # one at a time
    device.capture_fill(4)
    assert client.get("/v1/capture")["kept"] == 4
    assert client.get_bytes("/v1/capture/frames/2") == device.jpeg
    assert _status(client.get_bytes, "/v1/capture/frames/9") == 404
    answer = client.post("/v1/capture/keep", {"keep": [0, 2, 3], "confirm_duplicate": True})
    assert answer["accepted"] == 3 and answer["discarded"] == 1
    assert ("capture_keep", [0, 2, 3], True) in device.calls


@pytest.mark.parametrize("body,field", [
    ({"person_id": "nobody"}, None),
    ({"person_id": "P", "frames": 0}, "frames"),
    ({"person_id": "P", "frames": 99}, "frames"),
    ({"person_id": "P", "frames": "5"}, "frames"),
    ({"person_id": "P", "timeout_s": 1}, "timeout_s"),
    ({"person_id": "P", "timeout_s": True}, "timeout_s"),
    ({}, "person_id"),
])
def test_capture_start_refuses_bad_input(control, body, field):
    client, _store, device = control
    person = client.post("/v1/people", {"name": "Cam", "basis": "consent"})
    body = {k: (person["id"] if v == "P" else v) for k, v in body.items()}
    with pytest.raises(ControlError) as err:
        client.post("/v1/capture", body)
    assert err.value.status in (400, 404) and err.value.field == field
    assert not any(c[0] == "capture_start" for c in device.calls)


def test_capture_keep_and_cancel_refuse_bad_input(control):
    client, _store, device = control
    person = client.post("/v1/people", {"name": "Cam", "basis": "consent"})
    assert _status(client.post, "/v1/capture/keep", {"keep": [0]}) == 404           # no capture
    client.post("/v1/capture", {"person_id": person["id"]})
    for bad in ({"keep": "0"}, {"keep": [True]}, {"keep": ["1"]}, {"keep": list(range(11))}, {}):
        assert _status(client.post, "/v1/capture/keep", bad) == 400
    assert client.post("/v1/capture/cancel")["state"] == "cancelled"
    assert not any(c[0] == "capture_keep" for c in device.calls)


def test_photo_upload_passes_the_duplicate_confirmation(control):
    client, _store, device = control
    person = client.post("/v1/people", {"name": "Dup", "basis": "consent"})
    client.post(f"/v1/people/{person['id']}/photos", {"images": [base64.b64encode(jpeg(3)).decode()]})
    assert device.enrol_options == {"source": "photo", "confirm_duplicate": False}
    client.post(f"/v1/people/{person['id']}/photos",
                {"images": [base64.b64encode(jpeg(4)).decode()], "confirm_duplicate": True})
    assert device.enrol_options["confirm_duplicate"] is True
    assert _status(client.post, f"/v1/people/{person['id']}/photos",
                   {"images": [base64.b64encode(jpeg(5)).decode()], "confirm_duplicate": "yes"}) == 400


def test_spoof_crop_needs_explicit_confirmation_and_assign_adds_a_device_template(control):
    client, store, device = control
    person = client.post("/v1/people", {"name": "Eve", "basis": "consent"})
    vec = np.ones(8, np.float32) / np.sqrt(8)
    spoof = store.unknowns.add("spoof", None, vec, jpeg(8), extra={"closest_person_id": person["id"],
                                                                   "score": 0.91, "threshold": 0.955})
    body = {"action": "assign", "person_id": person["id"], "by": "admin"}
    with pytest.raises(ControlError) as err:
        client.post(f"/v1/unknowns/{spoof['id']}/resolve", body)
    assert err.value.status == 409 and err.value.field == "confirm_spoof" and "liveness" in str(err.value)
    assert store.unknowns.get(spoof["id"])["state"] == "open" and not device.calls
    answer = client.post(f"/v1/unknowns/{spoof['id']}/resolve", {**body, "confirm_spoof": True})
    assert answer["resolved"]["state"] == "assigned"
    assert device.enrol_options == {"source": "device", "confirm_duplicate": False}
    listed = client.get("/v1/unknowns", {"state": "assigned"})["items"][0]
    assert listed["extra"]["closest_person_id"] == person["id"] and listed["extra"]["threshold"] == 0.955
