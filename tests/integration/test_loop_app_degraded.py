"""The device without models: runs degraded (control socket up, status says how to fix);
with a model that differs from the manifest: refuses to start with the rebuild hint."""

from __future__ import annotations

import shutil
import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.runtime.app import App
from firmware.config import Config
from firmware.errors import ModelHashMismatch

pytestmark = pytest.mark.integration


def config(tmp_path, models_dir) -> Config:
    cfg = Config()
    cfg.paths.data_dir = tmp_path / "data"
    cfg.paths.models_dir = models_dir
    cfg.paths.control_socket = tmp_path / "control.sock"
    cfg.camera.replay_realtime = False
    return cfg


def test_models_missing_runs_degraded(tmp_path, shared_data):
    from firmware.control.client import ControlClient

    empty = tmp_path / "models"
    empty.mkdir()
    factory = MockFactory()
    app = App(config(tmp_path, empty), source=str(shared_data / "blink" / "WDA_AlexandriaOcasioCortez_000.mp4"),
              max_frames=40, pin_factory=factory)
    try:
        with app:
            runner = threading.Thread(target=app.run)
            runner.start()
            deadline = time.monotonic() + 20
            while app.loop_frames() < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            client = ControlClient(app.config.paths.control_socket)
            status = client.get("/v1/status")
            jpeg = app.device.latest_jpeg()
            runner.join(30)
    finally:
        factory.reset()
    assert status["models"] == "missing"
    assert any("rollcall models build" in w for w in status["warnings"])
    assert status["camera"] in ("running", "ended")
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"  # live view still works for setup


def test_model_hash_mismatch_refuses_to_start(tmp_path, built_models):
    models = tmp_path / "models"
    shutil.copytree(built_models, models)
    target = models / "face_mesh.tflite"
    target.write_bytes(target.read_bytes() + b"tampered")
    app = App(config(tmp_path, models), source="webcam:63", pin_factory=MockFactory())
    with pytest.raises(ModelHashMismatch, match="rollcall models build"):
        with app:
            pass
    assert not (tmp_path / "control.sock").exists()


def test_auto_source_without_camera_idles_and_says_so(tmp_path, built_models):
    from pathlib import Path

    from firmware.control.client import ControlClient
    from firmware.hal.sources import picamera2_present

    if picamera2_present() or any(Path(f"/dev/video{i}").exists() for i in range(4)):
        pytest.skip("this machine has a camera")
    factory = MockFactory()
    app = App(config(tmp_path, built_models), source="auto", pin_factory=factory)
    try:
        with app:
            runner = threading.Thread(target=app.run)
            runner.start()
            deadline = time.monotonic() + 10
            while app.camera.state != "no_camera" and time.monotonic() < deadline:
                time.sleep(0.05)
            status = ControlClient(app.config.paths.control_socket).get("/v1/status")
            healthy = app.loop.healthy()
            app.stop_event.set()
            runner.join(10)
    finally:
        factory.reset()
    assert status["camera"] == "no_camera" and status["models"] == "ok"
    assert any(w.startswith("no camera found") for w in status["warnings"])
    assert healthy  # idle without a camera is healthy: the watchdog keeps being pinged
