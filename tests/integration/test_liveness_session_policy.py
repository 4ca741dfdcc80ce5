"""Liveness policy per session: set over the MQTT session command (and the control API),
used by the decision engine for new tracks, recorded in each attendance event; bad values
are refused with nothing changed. Real store, real Device, MockFactory pins."""

from __future__ import annotations

import time

import numpy as np
import pytest

from firmware.domain.challenge import ChallengeTracker
from firmware.domain.decisions import Decision, Outcome
from firmware.domain.liveness import LivenessTracker
from firmware.errors import CommandError
from firmware.link import payloads
from firmware.store.errors import StoreValueError
from tests.integration.test_loop_device_api import AMBER, BUZZER, RED, frame, rig, wait_states  # noqa: F401
from tests.unit.test_mqtt_contract import validator

pytestmark = pytest.mark.integration


def accept(device, person: str, policy: str) -> None:
    d = Decision(Outcome.ACCEPTED, 1, 1.0, device.engine.scope.session_id, person, 0.9, None, 0.5,
                 liveness_policy=policy)
    device.on_decision(d, frame(), np.array([100, 60, 200, 180], np.float32))


def test_mqtt_session_start_sets_the_policy_and_events_record_it(rig):
    device, store, _, _, later = rig
    result = device.commands("session_start", {"session_id": later["id"], "liveness_policy": "challenge"})
    assert result["state"] == "in_progress" and result["liveness_policy"] == "challenge"
    assert device.status()["liveness_policy"] == "challenge"
    assert device.engine.liveness_policy == "challenge"
    assert isinstance(device.engine.liveness_factory(), ChallengeTracker)
    state = device.engine._state(7, 0.0)  # a new track is judged under the session's policy
    assert state.liveness_policy == "challenge"

    accept(device, "alice", state.liveness_policy)
    [record] = store.attendance.for_session(later["id"])
    assert record["liveness_policy"] == "challenge"
    events = [e for e in store.outbox.pending(100) if e["topic"] == "event/attendance"]
    message = payloads.event_message(events[-1], "dev1", device.config.recognition.embedder)
    assert message["liveness_policy"] == "challenge"
    validator("event-attendance.schema.json").validate(message)
    audit = [a for a in store.audit.list(50) if a["action"] == "session.set_policy"]
    assert audit[0]["target"] == later["id"] and audit[0]["details"]["to"] == "challenge"

    device.commands("session_stop", {"session_id": later["id"]})
    assert device.status()["liveness_policy"] == device.config.liveness.policy == "blink"
    assert isinstance(device.engine.liveness_factory(), LivenessTracker)


@pytest.mark.parametrize("bad", ["off", "CHALLENGE", "x" * 500, 3, ["challenge"]])
def test_bad_policy_is_refused_and_nothing_changes(rig, bad):
    device, store, _, _, later = rig
    with pytest.raises((CommandError, StoreValueError)) as err:
        device.commands("session_start", {"session_id": later["id"], "liveness_policy": bad})
    assert "liveness_policy" in str(err.value)
    session = store.sessions.get(later["id"])
    assert session["state"] == "scheduled" and session.get("liveness_policy") is None
    assert device.status()["liveness_policy"] == "blink"


def test_policy_only_when_starting(rig):
    device, store, _, _, later = rig
    device.commands("session_start", {"session_id": later["id"]})
    with pytest.raises(CommandError):
        device.commands("session_stop", {"session_id": later["id"], "liveness_policy": "blink"})
    assert store.sessions.get(later["id"])["state"] == "in_progress"


def test_session_created_with_a_policy_uses_it_when_it_starts(rig):
    device, store, _, roster, _ = rig
    now = time.time()
    exam = store.sessions.create(roster["id"], device.config.device.room, "Exam", now + 60, now + 1800,
                                 liveness_policy="challenge")
    with pytest.raises(StoreValueError):
        store.sessions.create(roster["id"], device.config.device.room, "Bad", now + 60, now + 3600,
                              liveness_policy="off")
    device.session_command("start", exam["id"], "console")
    assert device.status()["liveness_policy"] == "challenge"
    accept(device, "bob", device.engine.liveness_policy)
    assert store.attendance.for_session(exam["id"])[0]["liveness_policy"] == "challenge"


def test_attendance_refuses_an_unknown_policy(rig):
    device, store, _, _, later = rig
    device.commands("session_start", {"session_id": later["id"]})
    with pytest.raises(StoreValueError):
        store.attendance.record(later["id"], "alice", liveness_policy="none-of-these")
    assert store.attendance.for_session(later["id"]) == []


def test_challenge_prompts_drive_the_amber_led_and_a_failed_try_beeps(rig):
    device, _, factory, _, _ = rig
    ind = device.indicators
    ind.prompt("turn_left")
    slow = wait_states(factory, AMBER, 4)
    assert True in slow and False in slow[1:]  # blinking, not steady
    device._indicate_challenge({"code": "try_again"})
    beeps = wait_states(factory, BUZZER, 5)
    assert beeps.count(True) >= 2 and True in wait_states(factory, RED, 2)
    device._indicate_challenge({"code": "try_again"})  # still the same failure: no second beep
    time.sleep(0.1)
    assert [s.state for s in factory.pin(BUZZER).states].count(True) == beeps.count(True)
