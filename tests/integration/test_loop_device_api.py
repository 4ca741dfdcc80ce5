"""Device (the DeviceAPI) on a real store and MockFactory pins: decision effects, sessions
by console / schedule / button / MQTT command, enrolment, broker probe, reload."""

from __future__ import annotations

import threading
import time
import weakref

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from firmware.config import Config, PinConfig, write_config_atomic
from firmware.runtime.device import Device
from firmware.domain.decisions import Decision, DecisionEngine, Outcome
from firmware.domain.types import Frame
from firmware.errors import CommandError
from firmware.hal.indicators import Indicators
from firmware.runtime.loop import Overlay

pytestmark = pytest.mark.integration

GREEN, RED, AMBER, BUZZER, BUTTON = 17, 27, 22, 23, 5
DIM = 128


def unit(i: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[i] = 1.0
    return v


@pytest.fixture
def rig(tmp_path):
    from firmware.store import Store

    cfg = Config()
    cfg.paths.data_dir = tmp_path / "data"
    cfg.gpio.button = PinConfig(pin=BUTTON, active_high=False)
    factory = MockFactory()
    store = Store(cfg.paths.data_dir)
    for i, (pid, name) in enumerate([("alice", "Alice"), ("bob", "Bob")]):
        store.people.add(pid, name, consent="consent")
        store.people.add_embedding(pid, unit(i), cfg.recognition.embedder, photo_sha256=f"{i:064x}")
    roster = store.rosters.create("Class", [{"person_id": "alice", "seat": "A1"}, {"person_id": "bob", "seat": "B2"}])
    now = time.time()
    later = store.sessions.create(roster["id"], cfg.device.room, "Later", now + 3600, now + 7200)
    engine = DecisionEngine()
    device = Device(cfg, store=store, engine=engine, camera=None, config_path=tmp_path / "config.toml",
                    indicators=None)
    device.indicators = Indicators(cfg.gpio, pin_factory=factory, time_scale=0.02,
                                   on_button=lambda: device.sessions.toggle("button"))
    device.sessions.refresh()
    yield device, store, factory, roster, later
    device.indicators.close()
    store.close()
    factory.reset()


def frame() -> Frame:
    return Frame(np.full((240, 320, 3), 90, np.uint8), 1.0, time.time(), 1)


def decide(device, outcome, person=None, embedding=None, session=None):
    d = Decision(outcome, 1, 1.0, session if session is not None else device.engine.scope.session_id,
                 person, 0.9, embedding, 0.5)
    device.on_decision(d, frame(), np.array([100, 60, 200, 180], np.float32))


def wait_states(factory, pin, n, timeout=3.0):
    deadline = time.monotonic() + timeout
    while len(factory.pin(pin).states) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return [s.state for s in factory.pin(pin).states]


def test_no_session_status_and_indication(rig):
    device, store, factory, _, _ = rig
    status = device.status()
    assert status["session"] is None and status["camera"] == "none"
    assert any("no session is running" in w for w in status["warnings"])
    assert device.engine.scope.gallery is None
    decide(device, Outcome.NO_SESSION)
    assert device.kiosk_state()["state"] == "no_session"
    assert wait_states(factory, RED, 3)[:3] == [False, True, False]


def test_console_start_then_accept_then_duplicate_then_stop(rig):
    device, store, factory, _, later = rig
    session = device.session_command("start", later["id"], "admin")
    assert session["state"] == "in_progress" and device.engine.scope.session_id == later["id"]
    assert device.status()["session"]["id"] == later["id"]
    decide(device, Outcome.ACCEPTED, "alice")
    kiosk = device.kiosk_state()
    assert (kiosk["state"], kiosk["name"], kiosk["seat"]) == ("accepted", "Alice", "A1")
    decide(device, Outcome.ACCEPTED, "alice")  # e.g. after a restart: the store says duplicate
    assert device.kiosk_state()["state"] == "already"
    assert [r["person_id"] for r in store.attendance.for_session(later["id"])] == ["alice"]
    device.session_command("stop", later["id"], "admin")
    assert store.sessions.get(later["id"])["state"] == "completed"
    assert device.engine.scope.session_id is None
    statuses = {r["person_id"]: r["status"] for r in store.attendance.for_session(later["id"])}
    assert statuses == {"alice": "present", "bob": "absent"}


def test_unknown_face_kept_once_per_session(rig):
    device, store, factory, _, later = rig
    device.session_command("start", later["id"], "admin")
    decide(device, Outcome.UNKNOWN, embedding=unit(7))
    decide(device, Outcome.UNKNOWN, embedding=unit(7))
    kept = store.unknowns.list(kind="unknown", session_id=later["id"])
    assert len(kept) == 1
    assert store.unknowns.crop_path(kept[0]["id"]).read_bytes()[:2] == b"\xff\xd8"
    assert True in wait_states(factory, RED, 2)


def test_schedule_starts_and_completes(rig):
    device, store, _, roster, _ = rig
    now = time.time()
    due = store.sessions.create(roster["id"], device.config.device.room, "Due", now - 10, now + 0.5)
    assert (due["id"], "in_progress") in device.sessions.schedule()
    device.sessions.refresh()
    assert device.engine.scope.session_id == due["id"]
    time.sleep(0.6)
    assert (due["id"], "completed") in device.sessions.schedule()
    assert store.sessions.get(due["id"])["state"] == "completed"


def test_button_toggles_the_session(rig):
    device, store, factory, _, later = rig
    pin = factory.pin(BUTTON)
    pin.drive_low()
    time.sleep(0.1)
    pin.drive_high()
    assert store.sessions.get(later["id"])["state"] == "in_progress"
    time.sleep(0.1)
    pin.drive_low()
    time.sleep(0.1)
    pin.drive_high()
    assert store.sessions.get(later["id"])["state"] == "completed"


def test_mqtt_commands(rig):
    device, store, _, _, later = rig
    result = device.commands("session_start", {"session_id": later["id"]})
    assert result["state"] == "in_progress"
    assert store.sessions.get(later["id"])["history"][-1]["by"] == "mqtt"
    with pytest.raises(CommandError):
        device.commands("self_destruct", {})


def test_open_door_matches_everyone_without_session(rig):
    device, _, _, _, _ = rig
    device.config.decisions.open_door = True
    device.sessions.refresh()
    scope = device.engine.scope
    scores = scope.gallery.person_scores(unit(1))
    assert scope.gallery.people[int(np.argmax(scores))] == "bob" and scores.max() >= scope.rule.threshold
    assert device.status()["mode"] == "open_door"


def test_reload_config_applies_decisions_and_lists_restart(rig):
    device, _, _, _, _ = rig
    new = device.config.model_copy(deep=True)
    new.decisions.cooldown_s = 5
    new.camera.fps = 10
    write_config_atomic(new, device.config_path)
    result = device.reload_config()
    assert result["ok"] and result["restart_needed"] == ["camera"]
    assert device.engine.cooldown_s == 5


def test_broker_probe(rig, mosquitto):
    device, _, _, _, _ = rig
    ok = device.test_broker({"host": "127.0.0.1", "port": mosquitto.port})
    assert ok == {"ok": True, "message": f"connected to 127.0.0.1:{mosquitto.port}"}
    mosquitto.stop()
    bad = device.test_broker({"host": "127.0.0.1", "port": mosquitto.port})
    assert not bad["ok"] and "refused" in bad["message"]
    assert not device.test_broker({"port": 99999})["ok"]


def test_enrol_photos(rig, shared_data, built_models):
    device, store, _, _, _ = rig
    device.config.paths.models_dir = built_models
    people = shared_data / "faces-small" / "lfw10" / "Colin_Powell"
    photos = [p.read_bytes() for p in sorted(people.glob("*.jpg"))[:2]]
    group = (shared_data / "faces-small" / "knn_examples" / "test" / "obama_and_biden.jpg").read_bytes()
    store.people.add("colin", "Colin", consent="consent")
    results = device.enrol_photos("colin", photos + [group, photos[0]])
    assert [r["ok"] for r in results] == [True, True, False, False]
    assert results[0]["photo_id"] and "face" in results[2]["message"]
    assert len(store.people.photos("colin")) == 2
    assert not device.enrol_photos("nobody", photos)[0]["ok"]


def test_kiosk_says_late_for_a_late_mark_and_present_otherwise(rig):
    """Issue 14: the kiosk said "Marked present" for a late arrival."""
    device, store, _factory, roster, _later = rig
    now = time.time()
    late = store.sessions.create(roster["id"], device.config.device.room, "Started", now - 600, now + 600,
                                 late_after=now - 300)
    device.session_command("start", late["id"], "test")
    device.on_decision(Decision(Outcome.ACCEPTED, 1, 1.0, late["id"], "alice", 0.97, unit(0), 0.4), frame(),
                       np.array([100, 60, 200, 180], np.float32))
    shown = device.kiosk_state()
    assert (shown["name"], shown["seat"], shown["status"], shown["prompt"]) == ("Alice", "A1", "late", "Marked late")
    assert store.attendance.get(late["id"], "alice")["status"] == "late"
    device._kiosk_until = 0.0  # the next person steps up after the hold
    device.on_decision(Decision(Outcome.ALREADY, 3, 3.0, late["id"], "alice", 0.97, unit(0), 0.4), frame(),
                       np.array([100, 60, 200, 180], np.float32))
    assert (device.kiosk_state()["status"], device.kiosk_state()["prompt"]) == ("late", "Already marked late")
    device.session_command("stop", late["id"], "test")
    on_time = store.sessions.create(roster["id"], device.config.device.room, "Now", now - 60, now + 600,
                                    late_after=now + 300)
    device.session_command("start", on_time["id"], "test")
    device.on_decision(Decision(Outcome.ACCEPTED, 2, 2.0, on_time["id"], "bob", 0.97, unit(1), 0.4), frame(),
                       np.array([100, 60, 200, 180], np.float32))
    shown = device.kiosk_state()
    assert (shown["name"], shown["seat"], shown["status"], shown["prompt"]) == ("Bob", "B2", "present", "Marked present")


def test_unreachable_threshold_is_a_status_warning(rig):
    device, _, _, _, _ = rig
    device.config.decisions.open_door = True
    device.sessions.refresh()
    assert not any("almost nobody will be recognised" in w for w in device.status()["warnings"])
    device.config.recognition.match_threshold = 0.995  # what a high level with one photo per person can come to
    device.sessions.refresh()
    assert device.engine.scope.rule.threshold == 0.995
    assert any("almost nobody will be recognised" in w for w in device.status()["warnings"])


def test_learning_at_the_door_keeps_bounded_removable_door_templates(rig):
    device, store, _, _, _ = rig
    device.config.recognition.learn_at_door = True
    device.config.recognition.door_templates_max = 2
    device.config.decisions.open_door = True
    device.sessions.refresh()
    rule = device.engine.scope.rule
    model = device.config.recognition.embedder

    def accept(outcome=Outcome.ACCEPTED, score=rule.threshold + 0.03, runner_up=0.2, i=5):
        d = Decision(outcome, 1, 1.0, None, "alice" if outcome is not Outcome.SPOOF else None, score,
                     unit(0), 0.5, closest="alice", runner_up=runner_up, threshold=rule.threshold,
                     best_frame=unit(i))
        device.on_decision(d, frame(), np.array([100, 60, 200, 180], np.float32))

    accept(score=rule.threshold + 0.001)                 # too close to the threshold: not learnt
    accept(runner_up=rule.threshold + 0.02)              # too close to the runner-up: not learnt
    accept(Outcome.SPOOF)                                 # never from a spoof
    assert store.people.templates("alice", source="door") == []
    for i in (5, 6, 7):                                   # three confident accepts, at most two kept
        accept(i=i)
    door = store.people.templates("alice", source="door")
    assert len(door) == 2 and all(t["model_id"] == model for t in door)
    ids, matrix = store.people.embeddings(model, ["alice"])
    assert len(ids) == 3 and np.allclose(matrix[-2:], np.stack([unit(6), unit(7)]))  # the oldest was dropped
    device.remove_template("alice", door[0]["embedding_id"])
    assert len(store.people.templates("alice", source="door")) == 1
    device.config.liveness.policy = "off"                 # liveness off: nothing is learnt
    accept(i=8)
    assert len(store.people.templates("alice", source="door")) == 1


def test_live_view_keeps_only_the_frame_the_loop_works_on(rig):
    """The loop taking a frame lets the live view drop the previous one (one full-resolution
    frame in memory, not two); an annotated view waits for the new frame's boxes."""
    device = rig[0]
    first = frame()
    device.on_frame_start(first)
    device.on_frame(first, [])
    first_image = weakref.ref(first.image)
    second = Frame(np.full((240, 320, 3), 200, np.uint8), 2.0, time.time(), 2)
    device.on_frame_start(second)
    del first
    assert first_image() is None
    assert cv2.imdecode(np.frombuffer(device.latest_jpeg(annotated=False), np.uint8), cv2.IMREAD_COLOR).mean() > 190
    box = np.array([100, 60, 200, 180], np.float32)
    finish = threading.Timer(0.1, device.on_frame, (second, [Overlay(box, 1, "accepted", "alice")]))
    finish.start()
    view = cv2.imdecode(np.frombuffer(device.latest_jpeg(), np.uint8), cv2.IMREAD_COLOR)
    finish.join()
    assert view.mean() > 150
    # the green "accepted" box of the finished frame is drawn: its left edge at x = 100
    assert view[100:140, 99:102, 1].mean() > view[100:140, 99:102, 2].mean() + 60
