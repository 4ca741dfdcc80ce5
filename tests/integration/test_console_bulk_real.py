"""Console bulk enrolment against the real firmware side: the console app (in-process WSGI)
-> the real control API on a Unix socket -> the real Device and Enroller with the real
models on real faces (faces-small). Per-row report (the rows run as the console's background
job; the test waits for it, then reads the job's page), a duplicate confirmed by the admin,
idempotent re-run."""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from console.app import create_app
from firmware.config import Config
from firmware.control.server import ControlServer
from firmware.domain.decisions import DecisionEngine
from firmware.domain.enrolment import ENROL_DETECTOR
from firmware.runtime.device import Device
from firmware.store import Store
from tests.unit.test_console_support import Browser, finished_bulk, setup_admin, write_config
from tests.doubles.indicators import QuietIndicators

pytestmark = pytest.mark.integration
EMBEDDER = "dlib_resnet_int8"



@pytest.fixture
def stack(built_models):
    for name in (f"{ENROL_DETECTOR}.tflite", "face_mesh.tflite", f"{EMBEDDER}.tflite"):
        if not (built_models / name).is_file():
            pytest.skip(f"{name} not built in {built_models}: run `rollcall models build`")
    root = Path(tempfile.mkdtemp(prefix="rc-bulk-"))
    config = Config()
    config.recognition.embedder = EMBEDDER
    config.paths.models_dir, config.paths.data_dir = built_models, root / "data"
    store = Store(config.paths.data_dir)
    device = Device(config, store=store, engine=DecisionEngine(), indicators=QuietIndicators(), camera=None)
    server = ControlServer(root / "control.sock", store, device).start()
    app = create_app(write_config(root, root / "control.sock"),
                     password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    browser = Browser(app)
    setup_admin(browser)
    try:
        yield browser, store
    finally:
        server.close()
        device.enroller.close()
        store.close()
        shutil.rmtree(root, ignore_errors=True)


def test_console_bulk_upload_with_real_faces(stack, shared_data):
    browser, store = stack
    small = shared_data / "faces-small"
    files = {"blair1.jpg": small / "lfw10/Tony_Blair/Tony_Blair_0001.jpg",
             "blair2.jpg": small / "lfw10/Tony_Blair/Tony_Blair_0002.jpg",
             "powell1.jpg": small / "lfw10/Colin_Powell/Colin_Powell_0001.jpg",
             "group.jpg": small / "knn_examples/test/obama_and_biden.jpg"}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, path in files.items():
            zf.writestr(f"photos/{name}", path.read_bytes())
    csv = (b"name,photos,person_id\nTony Blair,blair1.jpg;blair2.jpg,\nColin Powell,powell1.jpg,\n"
           b"Group,group.jpg,\nNot Blair,blair1.jpg,not-blair\n")

    def upload(**fields):
        browser.get("/people/bulk")
        started = browser.post_files("/people/bulk", [("csv", "people.csv", csv), ("zip", "p.zip", buf.getvalue())],
                                     fields={"basis": "consent", **fields})
        assert started.status == 303, started.text[:300]  # the rows run as the console's background job
        reply = finished_bulk(browser, started, timeout=180)
        assert reply.status == 200 and 'data-state="done"' in reply.text, reply.text[:300]
        return [row.split('"')[1] for row in reply.text.split("<tr data-status=")[1:]], reply.text

    statuses, text = upload()
    assert statuses == ["ok", "ok", "two_faces", "duplicate"], text
    assert "looks like Tony Blair (tony-blair)" in text
    assert len(store.people.photos("tony-blair")) == 2 and store.people.get("not-blair") is None
    statuses, _ = upload()
    assert statuses == ["already", "already", "two_faces", "duplicate"]
    statuses, _ = upload(confirm_duplicate="1")
    assert statuses == ["already", "already", "two_faces", "ok"]
    assert [p["source"] for p in store.people.photos("not-blair")] == ["photo"]
    actions = [e["action"] for e in store.audit.list()]
    assert "person.photo_added" in actions and "person.created" in actions
    assert actions.count("bulk.started") == 3 and actions.count("bulk.finished") == 3
