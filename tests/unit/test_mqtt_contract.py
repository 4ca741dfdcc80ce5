"""Topics and payloads of contract v1 match the JSON Schemas in firmware/contract/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from firmware.link import payloads
from firmware.link.bundle import encode_embedding, sign_bundle
from firmware.link.cmdauth import sign_command
from firmware.link.topics import Topics, central_filters, roster_topic, split_device_topic

CONTRACT = Path(__file__).resolve().parents[2] / "firmware" / "contract"
TOPICS = Topics("rollcall/v1", "site1", "dev1", "room1")


def validator(name: str) -> Draft202012Validator:
    resources = []
    for path in CONTRACT.glob("*.schema.json"):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    registry = Registry().with_resources(resources)
    schema = json.loads((CONTRACT / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry)


def entry(topic: str, payload: dict) -> dict:
    return {"event_id": "01JDA0000000000000000000AA", "seq": 7, "topic": topic,
            "payload": {**payload, "event_id": "01JDA0000000000000000000AA", "seq": 7},
            "created_at": "2026-11-21T08:00:00.000Z"}


def test_topics():
    assert TOPICS.status == "rollcall/v1/site1/dev1/status"
    assert TOPICS.event("event/attendance") == "rollcall/v1/site1/dev1/event/attendance"
    assert TOPICS.result("roster_sync") == "rollcall/v1/site1/dev1/cmd/roster_sync/result"
    assert TOPICS.rosters() == ["rollcall/v1/site1/roster/room1", "rollcall/v1/site1/roster/_all"]
    assert TOPICS.command_name("rollcall/v1/site1/dev1/cmd/rebirth") == "rebirth"
    assert TOPICS.command_name("rollcall/v1/site1/dev1/cmd/rebirth/result") is None
    assert roster_topic("rollcall/v1", "site1", "_all") == "rollcall/v1/site1/roster/_all"
    assert central_filters("p") == ["p/+/+/event/#", "p/+/+/status"]
    assert split_device_topic("rollcall/v1", TOPICS.event("event/spoof")) == ("site1", "dev1", "event/spoof")
    assert split_device_topic("rollcall/v1", "rollcall/v1/site1/roster/room1") is None


@pytest.mark.parametrize("topic, payload, schema", [
    ("event/attendance", {"session_id": "s1", "person_id": "p1", "status": "present", "score": 0.8,
                          "captured_at": "2026-11-21T08:00:01.000Z"}, "event-attendance.schema.json"),
    ("event/unknown", {"kind": "unknown", "unknown_id": "u1"}, "event-unknown.schema.json"),
    ("event/session", {"session_id": "s1", "state": "completed", "summary": {"present": 3}}, "event-session.schema.json"),
    ("event/erasure", {"person_id": "p1", "request_id": "er-1", "full": False, "reason": "central",
                       "by": "dpo", "clock_synced": False,
                       "counts": {"embeddings": 2, "photos": 2, "crops": 1, "frames": 0, "unknown_records": 1,
                                  "attendance": 0, "backups": 0, "person": 0}}, "event-erasure.schema.json"),
])
def test_event_messages_match_schemas(topic, payload, schema):
    message = payloads.event_message(entry(topic, payload), "dev1", "dlib_resnet_int8")
    validator(schema).validate(message)
    assert message["model_id"] == "dlib_resnet_int8" and message["device_id"] == "dev1"
    assert message["captured_at"] == payload.get("captured_at", "2026-11-21T08:00:00.000Z")


def test_spoof_goes_to_its_own_topic():
    assert payloads.wire_suffix(entry("event/unknown", {"kind": "spoof"})) == "event/spoof"
    assert payloads.wire_suffix(entry("event/unknown", {"kind": "unknown"})) == "event/unknown"


def test_status_telemetry_and_results_match_schemas():
    birth = payloads.birth({"fps": 14.5, "bad": object()}, "dev1", "m1", 3)
    validator("status.schema.json").validate(birth)
    assert birth["state"] == "online" and "bad" not in birth and birth["roster_version"] == 3
    validator("status.schema.json").validate(payloads.will("dev1"))
    validator("command-result.schema.json").validate(payloads.command_result("x", None, False, "dev1", error="no"))
    validator("command-result.schema.json").validate(payloads.command_result("x", "r", True, "dev1", {"a": 1}))
    telemetry = {"device_id": "dev1", "at": payloads.utc_iso(), "fps": 12.0, "outbox_depth": 3,
                 "outbox_capacity_fraction": 0.0, "warnings": []}
    validator("telemetry.schema.json").validate(telemetry)


def test_signed_bundle_matches_schema():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    body = {"schema_version": 1, "roster_version": 9, "roster_id": "r1", "site": "site1", "room": "_all",
            "model_id": "m1", "people": [{"person_id": "p1", "name": "Ada", "seat": "A1",
                                          "embeddings": [encode_embedding([0.1, 0.2], "m1")]}]}
    key = Ed25519PrivateKey.generate()
    bundle = sign_bundle(body, key)
    validator("roster-bundle.schema.json").validate(bundle)
    command = sign_command("roster_sync", {"site": "site1", "device": "d1"}, key, {"bundle": bundle},
                           request_id="r")
    validator("command.schema.json").validate(json.loads(command))
    assert list(json.loads(command))[-1] == "signature"  # signature last: checked before parsing


def test_ha_discovery_ties_availability_to_status():
    messages = payloads.ha_discovery(TOPICS, "Door 1")
    assert messages and all(t.startswith("homeassistant/sensor/rollcall_dev1/") for t, _ in messages)
    for _, config in messages:
        assert config["availability_topic"] == TOPICS.status and config["state_topic"] == TOPICS.telemetry


def test_utc_iso_format():
    assert payloads.utc_iso(0) == "1970-01-01T00:00:00.000Z"
