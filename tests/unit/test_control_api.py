"""The control API over its real Unix socket with the real Store and a fake Device
(pure unit: the device's camera/models are out of scope here)."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware.control.client import ControlClient
from tests.doubles.control import FakeDevice
from firmware.control.routes_device import mjpeg_frames
from firmware.control.server import ControlServer
from firmware.errors import ControlError
from firmware.store import Store


def jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


@pytest.fixture
def control():
    root = Path(tempfile.mkdtemp(prefix="rc-ctl-"))
    store = Store(root / "data")
    device = FakeDevice(store, jpeg=jpeg(0))
    server = ControlServer(root / "control.sock", store, device).start()
    yield ControlClient(root / "control.sock"), store, device, server
    server.close()
    store.close()
    shutil.rmtree(root, ignore_errors=True)


def test_socket_mode_and_stale_socket_removed_and_close_twice():
    root = Path(tempfile.mkdtemp(prefix="rc-ctl-"))
    path = root / "control.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file with nobody listening, as after a crash
    store = Store(root / "data")
    try:
        with ControlServer(path, store, FakeDevice(store)) as server:
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
            assert ControlClient(path).get("/v1/status")["camera"] == "ok"
            server.close()
            server.close()
        assert not path.exists()
        path.write_text("not a socket")
        with pytest.raises(ControlError, match="not a socket"):
            ControlServer(path, store, FakeDevice(store)).start()
    finally:
        store.close()
        shutil.rmtree(root, ignore_errors=True)


def test_client_says_firmware_not_running(tmp_path):
    with pytest.raises(ControlError, match="the firmware is not running"):
        ControlClient(tmp_path / "none.sock").get("/v1/status")


def test_people_crud_photos_and_errors(control):
    client, store, device, _ = control
    person = client.post("/v1/people", {"name": "Ada Lovelace", "external_id": "S-1", "basis": "consent"})
    assert client.get("/v1/people", {"q": "ada"})["items"][0]["id"] == person["id"]
    images = [base64.b64encode(jpeg(i)).decode() for i in (1, 2, 1)]
    answer = client.post(f"/v1/people/{person['id']}/photos", {"images": images})
    assert [r["ok"] for r in answer["results"]] == [True, True, False]
    assert "duplicate" in answer["results"][2]["message"]
    got = client.get(f"/v1/people/{person['id']}")
    assert len(got["photos"]) == 2
    photo = client.get_bytes(f"/v1/people/{person['id']}/photos/{got['photos'][0]['photo_id']}")
    assert photo.startswith(b"\xff\xd8")
    assert client.post(f"/v1/people/{person['id']}", {"name": "Ada K."})["name"] == "Ada K."
    with pytest.raises(ControlError) as bad:
        client.post("/v1/people", {"name": "", "basis": "consent"})
    assert bad.value.status == 400 and bad.value.field == "name"
    with pytest.raises(ControlError) as missing:
        client.get("/v1/people/nobody")
    assert missing.value.status == 404
    with pytest.raises(ControlError) as b64:
        client.post(f"/v1/people/{person['id']}/photos", {"images": ["***"]})
    assert "base64" in str(b64.value)
    assert client.delete(f"/v1/people/{person['id']}")["deleted"] == person["id"]
    assert store.people.get(person["id"]) is None


def test_bad_json_and_oversized_body_are_4xx_json(control):
    client, *_ = control
    status, ctype, body = client.request_raw("POST", "/v1/people", b"{not json")
    assert status == 400 and ctype.startswith("application/json") and b"not valid JSON" in body
    status, _, body = client.request_raw("POST", "/v1/audit", b"[" + b"1," * 600_000 + b"1]")
    assert status == 413 and b"too large" in body
    status, _, body = client.request_raw("GET", "/v1/nowhere")
    assert status == 404 and b"Traceback" not in body


def _session(client, store) -> tuple[dict, list[dict]]:
    people = [client.post("/v1/people", {"name": n, "basis": "consent"}) for n in ("Ann", "Ben", "Cy")]
    roster = client.post("/v1/rosters", {"name": "Maths", "entries": [
        {"person_id": p["id"], "seat": str(i + 1)} for i, p in enumerate(people)]})
    now = time.time()
    session = client.post("/v1/sessions", {"roster_id": roster["id"], "room": "lab-1",
                                           "name": "Algebra", "scheduled_start": now - 60,
                                           "scheduled_end": now + 3600, "late_after": now + 600})
    return session, people


def test_sessions_grid_commands_manual_status_and_attendance_query(control):
    client, store, device, _ = control
    session, people = _session(client, store)
    with pytest.raises(ControlError) as early:
        client.post(f"/v1/sessions/{session['id']}/stop", {"by": "admin"})
    assert early.value.status == 409
    assert client.post(f"/v1/sessions/{session['id']}/start", {"by": "admin"})["state"] == "in_progress"
    store.attendance.record(session["id"], people[0]["id"], score=0.8)
    client.post(f"/v1/sessions/{session['id']}/attendance",
                {"person_id": people[1]["id"], "status": "late", "by": "admin"})
    grid = client.get(f"/v1/sessions/{session['id']}/grid")
    by_name = {r["name"]: r for r in grid["rows"]}
    assert by_name["Ann"]["status"] == "present" and by_name["Ann"]["at"]
    assert by_name["Ben"]["status"] == "late" and by_name["Ben"]["by"] == "admin"
    assert by_name["Cy"]["status"] == "absent" and by_name["Cy"]["seat"] == "3"
    assert grid["counts"] == {"present": 1, "late": 1, "absent": 1, "excused": 0}
    audit = client.get("/v1/audit")["items"]
    assert any(a["action"] == "attendance.set_status" and a["actor"] == "admin" for a in audit)
    rows = client.get("/v1/attendance", {"room": "lab-1", "status": "late"})["items"]
    assert [r["person_id"] for r in rows] == [people[1]["id"]]
    with pytest.raises(ControlError):
        client.get("/v1/attendance", {"status": "sleeping"})


def test_unknown_assign_goes_through_enrolment_then_discard(control):
    client, store, device, _ = control
    person = client.post("/v1/people", {"name": "Dee", "basis": "consent"})
    vec = np.ones(8, np.float32) / np.sqrt(8)
    first = store.unknowns.add("unknown", None, vec, jpeg(7))
    second = store.unknowns.add("spoof", None, -vec, jpeg(8))
    assert {u["id"] for u in client.get("/v1/unknowns")["items"]} == {first["id"], second["id"]}
    assert client.get_bytes(f"/v1/unknowns/{first['id']}/crop.jpg").startswith(b"\xff\xd8")
    answer = client.post(f"/v1/unknowns/{first['id']}/resolve",
                         {"action": "assign", "person_id": person["id"], "by": "admin"})
    assert answer["enrolment"]["ok"] and ("enrol", person["id"], 1) in device.calls
    client.post(f"/v1/unknowns/{second['id']}/resolve", {"action": "discard", "by": "admin"})
    assert client.get("/v1/unknowns")["items"] == []


def test_device_routes_snapshot_stream_kiosk_tests(control):
    client, store, device, _ = control
    assert client.get_bytes("/v1/snapshot.jpg") == device.jpeg
    ctype, chunks = client.stream("/v1/stream.mjpg?frames=3")
    body = b"".join(chunks)
    assert ctype.startswith("multipart/x-mixed-replace") and body.count(b"--rollcallframe") == 3
    assert client.get("/v1/kiosk")["state"] == "idle"
    assert client.post("/v1/indicators/test")["ok"] is True
    assert client.post("/v1/broker/test", {"mqtt": {"host": "x"}})["ok"] is False
    assert client.post("/v1/config/reload")["ok"] is True
    device.jpeg = None
    with pytest.raises(ControlError) as nojpeg:
        client.get_bytes("/v1/snapshot.jpg")
    assert nojpeg.value.status == 503


def test_live_viewers_are_bounded_and_slots_freed(control):
    client, *_ = control
    streams = [client.stream("/v1/stream.mjpg?max_s=30") for _ in range(3)]
    for _ctype, chunks in streams:
        assert next(chunks).startswith(b"--rollcallframe")
    with pytest.raises(ControlError) as busy:
        client.stream("/v1/stream.mjpg")
    assert busy.value.status == 503
    assert client.get("/v1/status")["camera"] == "ok"  # the API still answers
    for _ctype, chunks in streams:
        chunks.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            _ctype, chunks = client.stream("/v1/stream.mjpg?frames=1")
            assert b"".join(chunks).count(b"--rollcallframe") == 1
            break
        except ControlError:
            time.sleep(0.3)  # the server notices the closed viewers at its next frame
    else:
        pytest.fail("viewer slots were not freed")


def test_mjpeg_frames_paced_by_injected_clock():
    class Dev:
        def latest_jpeg(self, annotated=True):
            return b"\xff\xd8x"

    now, sleeps = [0.0], []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    parts = list(mjpeg_frames(Dev(), fps=5, max_s=1.0, clock=lambda: now[0], sleep=sleep))
    assert len(parts) == 5 and all(s == pytest.approx(0.2) for s in sleeps)


def seed_open_door(store, people: int, days: int, start: float = 1_790_000_000.0) -> None:
    """``people`` x ``days`` open-door check-ins, written NEWEST day first, so seq order
    (oldest first by seq) is not capture-time order."""
    ids = [store.people.add(f"p{i:03d}", f"Person {i}", consent="consent")["id"] for i in range(people)]
    for day in reversed(range(days)):
        for i, pid in enumerate(ids):
            store.attendance.record(None, pid, score=0.9, captured_at=start + day * 86400 + i * 60)


def test_attendance_pages_offset_limit_order_and_bad_arguments(control):
    client, store, _, _ = control
    seed_open_door(store, 50, 5)
    by_seq = [r["event_id"] for r in store.attendance.query()]
    by_time = [r["event_id"] for r in sorted(store.attendance.query(), key=lambda r: r["captured_at"])]
    assert by_seq != by_time and len(by_seq) == 250

    first = client.get("/v1/attendance")  # defaults: oldest first by seq, 100 rows
    assert (first["total"], first["offset"], first["limit"]) == (250, 0, 100)
    assert [r["event_id"] for r in first["items"]] == by_seq[:100]
    tail = client.get("/v1/attendance", {"offset": 200, "limit": 100})
    assert [r["event_id"] for r in tail["items"]] == by_seq[200:]
    assert client.get("/v1/attendance", {"offset": 250})["items"] == []

    pages = [client.get("/v1/attendance", {"order": "time", "offset": o, "limit": 60})["items"]
             for o in range(0, 250, 60)]
    assert [r["event_id"] for page in pages for r in page] == by_time
    newest = client.get("/v1/attendance", {"order": "time", "newest": 1, "limit": 10, "offset": 5})
    assert [r["event_id"] for r in newest["items"]] == by_time[::-1][5:15]
    last = client.get("/v1/attendance", {"order": "time", "newest": 1, "limit": 100, "offset": 200})
    assert [r["event_id"] for r in last["items"]] == by_time[::-1][200:]

    assert client.get("/v1/attendance", {"limit": 5000})["limit"] == 1000  # capped
    assert client.get("/v1/attendance", {"limit": 0})["items"] == []
    day = time.strftime("%Y-%m-%d", time.gmtime(1_790_000_000 + 86400))
    one_day = client.get("/v1/attendance", {"day_from": day, "day_to": day, "limit": 20})
    assert one_day["total"] == 50 and len(one_day["items"]) == 20
    for bad in ({"limit": "-1"}, {"offset": "ten"}, {"order": "name"}):
        with pytest.raises(ControlError) as refused:
            client.get("/v1/attendance", bad)
        assert refused.value.status == 400 and refused.value.field == next(iter(bad))


def test_door_templates_are_listed_and_removable(control):
    client, store, device, _ = control
    person = client.post("/v1/people", {"name": "Door Learner", "basis": "consent"})
    pid = person["id"]
    vec = np.eye(128, dtype=np.float32)
    store.people.add_embedding(pid, vec[0], "dlib_resnet_int8")
    learnt = store.people.add_embedding(pid, vec[1], "dlib_resnet_int8", source="door")
    listed = client.templates(pid)
    assert [t["source"] for t in listed] == ["photo", "door"]
    assert client.templates(pid, source="door")[0]["embedding_id"] == learnt["id"]
    assert client.delete_template(pid, learnt["id"]) == {"deleted": learnt["id"], "source": "door"}
    assert [t["source"] for t in client.templates(pid)] == ["photo"]
    ids, matrix = store.people.embeddings("dlib_resnet_int8", [pid])
    assert len(ids) == 1 and np.allclose(matrix[0], vec[0])
    with pytest.raises(ControlError) as gone:
        client.delete_template(pid, learnt["id"])
    assert gone.value.status == 400 and "no template" in str(gone.value)
    with pytest.raises(ValueError, match="source"):
        store.people.add_embedding(pid, vec[2], "dlib_resnet_int8", source="guess")
