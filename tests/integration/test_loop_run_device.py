"""`rollcall run` in-process on replayed real video: real models, real store, MockFactory pins.

- a person enrolled from the last frames of a talking-head clip blinks in its first
  frames: exactly one attendance record, green LED + beep;
- a still tablet-replay photo shown for 10 s with policy blink: no attendance, a spoof
  record, red LED.
"""

from __future__ import annotations

import hashlib
import threading
import time

import cv2
import pytest
from gpiozero.pins.mock import MockFactory

from firmware.runtime.app import App
from firmware.config import Config
from firmware.domain.types import Frame
from firmware.hal.sources import downscale

pytestmark = pytest.mark.integration

CLIP = "blink/WDA_AlexandriaOcasioCortez_000.mp4"
STILL = "spoof/print-and-tablet-stills/image_F2.jpg"
GREEN, RED, BUZZER = 17, 27, 23
ENROL_FROM_S = 6.0


def split_clip(path, replay_dir, fps=25.0):
    """Frames before ENROL_FROM_S go to ``replay_dir`` as JPEGs; later ones are returned."""
    capture = cv2.VideoCapture(str(path))
    replay_dir.mkdir()
    later, i = [], 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if i / fps < ENROL_FROM_S:
            cv2.imwrite(str(replay_dir / f"{i:04d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        else:
            later.append(image)
        i += 1
    capture.release()
    return later


def make_config(tmp_path, models, **decisions) -> Config:
    cfg = Config()
    cfg.paths.data_dir = tmp_path / "data"
    cfg.paths.models_dir = models
    cfg.paths.control_socket = tmp_path / "control.sock"
    cfg.camera.replay_realtime = False
    cfg.camera.replay_loop = False
    cfg.camera.fps = 25.0
    cfg.liveness.policy = "blink"
    cfg.privacy.clock_source = "assume_synced"  # the session below starts by schedule
    for key, value in decisions.items():
        setattr(cfg.decisions, key, value)
    return cfg


def enrol_and_schedule(cfg: Config, images) -> str:
    """Enrol 'aoc' from ``images`` with the device's own analyser; a session running now."""
    from firmware.runtime.loop import FrameAnalyser
    from firmware.store import Store

    analyser = FrameAnalyser(cfg, cfg.paths.models_dir)
    with Store(cfg.paths.data_dir) as store:
        store.people.add("aoc", "Alexandria", consent="consent")
        for image in images[::10][:5]:
            frame = Frame(image, 0.0, 0.0, 0, downscale(image, cfg.camera.detect_width))
            [det] = analyser.detect(frame)
            landmarks, _, _ = analyser.measure(frame, det)
            store.people.add_embedding("aoc", analyser.embed(frame, landmarks), cfg.recognition.embedder,
                                       photo_sha256=hashlib.sha256(image.tobytes()).hexdigest())
        roster = store.rosters.create("Class 1", [{"person_id": "aoc", "seat": "A1"}])
        now = time.time()
        session = store.sessions.create(roster["id"], cfg.device.room, "Lecture", now - 60, now + 3600)
    analyser.close()
    return session["id"]


def states(factory, pin) -> list[bool]:
    return [s.state for s in factory.pin(pin).states]


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


def test_blinking_enrolled_person_is_marked_once(tmp_path, shared_data, built_models, factory):
    later = split_clip(shared_data / CLIP, tmp_path / "replay")
    cfg = make_config(tmp_path, built_models)
    session_id = enrol_and_schedule(cfg, later)
    app = App(cfg, source=str(tmp_path / "replay"), pin_factory=factory)
    with app:
        reason = app.run()
        status = app.device.status()
        kiosk = app.device.kiosk_state()
        jpeg = app.device.latest_jpeg()
    assert reason == "replay_ended"
    assert status["session"]["id"] == session_id and status["models"] == "ok"
    assert kiosk["state"] == "accepted" and kiosk["name"] == "Alexandria" and kiosk["seat"] == "A1"
    assert jpeg[:2] == b"\xff\xd8"
    from firmware.store import Store
    with Store(cfg.paths.data_dir) as store:
        records = store.attendance.for_session(session_id)
        assert [(r["person_id"], r["status"], r["liveness_policy"]) for r in records] == [("aoc", "present", "blink")]
        assert store.sessions.get(session_id)["state"] == "in_progress"  # started by the schedule
    assert states(factory, GREEN)[:3] == [False, True, False]
    assert states(factory, BUZZER)[:3] == [False, True, False]
    assert states(factory, RED) == [False]


def test_still_photo_is_a_spoof_not_attendance(tmp_path, shared_data, built_models, factory):
    later = split_clip(shared_data / CLIP, tmp_path / "replay")
    still_dir = tmp_path / "still"
    still_dir.mkdir()
    cv2.imwrite(str(still_dir / "still.png"), cv2.imread(str(shared_data / STILL)))
    cfg = make_config(tmp_path, built_models)
    cfg.camera.replay_loop = True
    cfg.camera.fps = 15.0
    session_id = enrol_and_schedule(cfg, later)
    app = App(cfg, source=str(still_dir), max_frames=150, pin_factory=factory)  # 10 s of media time
    with app:
        assert app.run() == "max_frames"
        kiosk = app.device.kiosk_state()
    assert kiosk["state"] == "spoof"
    from firmware.store import Store
    with Store(cfg.paths.data_dir) as store:
        assert store.attendance.for_session(session_id) == []
        spoofs = store.unknowns.list(kind="spoof")
        assert len(spoofs) == 1 and spoofs[0]["session_id"] == session_id
        assert store.unknowns.crop_path(spoofs[0]["id"]).stat().st_size > 1000
    assert True in states(factory, RED)
    assert states(factory, GREEN) == [False]


def test_no_camera_keeps_control_socket_and_says_so(tmp_path, built_models, factory):
    """A source that cannot open: the device runs idle, status says why, SIGTERM-like stop."""
    from firmware.control.client import ControlClient

    cfg = make_config(tmp_path, built_models)
    cfg.camera.retry_max_s = 0.5
    app = App(cfg, source=str(tmp_path / "no-such-video.mp4"), pin_factory=factory)
    with app:
        runner = threading.Thread(target=app.run)
        runner.start()
        try:
            deadline = time.monotonic() + 10
            while app.camera.state != "lost" and time.monotonic() < deadline:
                time.sleep(0.05)
            status = ControlClient(cfg.paths.control_socket).get("/v1/status")
        finally:
            app.stop_event.set()
            runner.join(10)
    assert not runner.is_alive()
    assert status["camera"] == "lost"
    assert any("no such video file" in w for w in status["warnings"])
    assert any("no session is running" in w for w in status["warnings"])
    assert not cfg.paths.control_socket.exists()  # closed on the way out


def test_attendance_reaches_the_broker_once(tmp_path, shared_data, built_models, factory, mosquitto):
    """Record, then report: the accepted face's event is published (QoS 1) exactly once."""
    import json

    import paho.mqtt.client as mqtt

    later = split_clip(shared_data / CLIP, tmp_path / "replay")
    cfg = make_config(tmp_path, built_models)
    cfg.device.id = "door-1"
    cfg.mqtt.host, cfg.mqtt.port = "127.0.0.1", mosquitto.port
    session_id = enrol_and_schedule(cfg, later)
    got: list[dict] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-central")
    sub.on_message = lambda c, u, msg: got.append(json.loads(msg.payload))
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe(f"{cfg.mqtt.prefix}/{cfg.device.site}/door-1/event/attendance", qos=1)
    sub.loop_start()
    try:
        app = App(cfg, source=str(tmp_path / "replay"), pin_factory=factory)
        with app:
            assert app.run() == "replay_ended"
            deadline = time.monotonic() + 15
            while not got and time.monotonic() < deadline:
                time.sleep(0.05)
            assert app.device.status()["broker"] == "connected"
        time.sleep(0.5)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert [(e["person_id"], e["session_id"]) for e in got] == [("aoc", session_id)]
