"""Signed roster sync and remote commands through a real broker into a real Store."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.bench.broker import Watcher
from firmware.config import DeviceConfig, MqttConfig
from firmware.errors import SessionError
from firmware.link.bundle import MAX_BUNDLE_BYTES, key_id, sign_bundle
from firmware.link.cmdauth import sign_command
from firmware.link.mqtt import ANONYMOUS_WARNING, MqttLink
from firmware.store import Store
from provisioning.central import build_bundle, generate_keypair, load_private_key, publish_bundle

pytestmark = pytest.mark.integration
MODEL = "dlib_resnet_int8"
DEVICE = DeviceConfig(id="dev-r", site="site1", room="room1")
ROOT = "rollcall/v1/site1/dev-r"


def roster(people: int = 3) -> dict:
    rng = np.random.default_rng(1)
    return {"roster_id": "maths-101", "name": "Maths 101", "basis": "consent",
            "people": [{"person_id": f"p{i}", "name": f"Pupil {i}", "seat": f"A{i}",
                        "embeddings": [rng.normal(size=128).astype(np.float32).tolist()]} for i in range(people)]}


class Device:
    """The link under test plus a watcher of everything it publishes."""

    def __init__(self, tmp_path, port: int) -> None:
        self.key_file, pub = generate_keypair(tmp_path / "keys")
        self.cfg = MqttConfig(host="127.0.0.1", port=port, roster_public_key_file=pub)
        self.calls: list = []
        self.watcher = Watcher(port, [f"{ROOT}/#"])
        self.store = Store(tmp_path / "data")
        self.link = MqttLink(self.cfg, DEVICE, self.store, model_id=MODEL, commands=self.commands,
                             status_provider=lambda: {"session": None, "fps": 15.0},
                             telemetry_provider=lambda: {"fps": 15.0, "cpu_temp_c": 51.5}).start()
        self.watcher.wait_for("status", lambda m: m["state"] == "online")

    def commands(self, name: str, payload: dict) -> dict:
        self.calls.append((name, payload))
        if payload.get("session_id") == "done":
            raise SessionError("session done is completed; it cannot start again")
        return {"session_id": payload.get("session_id"), "state": "in_progress"}

    def command(self, name: str, payload: bytes | dict, request_id: str) -> dict:
        """Send a command and wait for its result (matched by request_id, or any new one)."""
        seen = len(self.watcher.json(f"cmd/{name}/result"))
        if isinstance(payload, dict):
            payload = sign_command(name, {"site": "site1", "device": "dev-r"},
                                   load_private_key(self.key_file), payload, request_id=request_id)
        self.watcher.publish(f"{ROOT}/cmd/{name}", payload)
        self.watcher.wait_for(f"cmd/{name}/result",
                              lambda m: len(self.watcher.json(f"cmd/{name}/result")) > seen)
        return self.watcher.json(f"cmd/{name}/result")[seen]

    def close(self) -> None:
        self.link.close()
        self.store.close()
        self.watcher.close()


@pytest.fixture
def device(tmp_path, mosquitto):
    dev = Device(tmp_path, mosquitto.port)
    yield dev
    dev.close()


def test_retained_signed_roster_is_applied_and_reported(device):
    bundle = sign_bundle(build_bundle(roster(), "site1", "room1", version=100, model_id=MODEL),
                         load_private_key(device.key_file))
    publish_bundle(device.cfg, bundle)
    result = device.watcher.wait_for("cmd/roster_sync/result", lambda m: m["ok"])
    assert result["result"] == {"applied": True, "roster_version": 100, "people": 3, "room": "room1"}
    status = device.watcher.wait_for("status", lambda m: m.get("roster_version") == 100)
    assert status["state"] == "online" and status["model_id"] == MODEL
    applied = device.store.rosters.get("maths-101")
    assert applied["version"] == 100 and [e["seat"] for e in applied["entries"]] == ["A0", "A1", "A2"]


def test_bad_bundles_are_rejected_and_the_roster_stays(device):
    key = load_private_key(device.key_file)
    good = sign_bundle(build_bundle(roster(), "site1", "room1", version=100, model_id=MODEL), key)
    assert device.command("roster_sync", {"bundle": good}, "good")["result"]["applied"] is True
    before = device.store.rosters.get("maths-101")
    newer = build_bundle(roster(1), "site1", "room1", version=200, model_id=MODEL)
    tampered = {**sign_bundle(newer, key), "name": "tampered"}
    cases = {
        "wrong-key": ({"bundle": sign_bundle(newer, Ed25519PrivateKey.generate())}, "does not verify"),
        "tampered": ({"bundle": tampered}, "does not verify"),
        "wrong-model": ({"bundle": sign_bundle(build_bundle(roster(1), "site1", "room1", 200, "facenet"), key)},
                        "re-embed"),
        "other-room": ({"bundle": sign_bundle(build_bundle(roster(1), "site1", "room9", 200, MODEL), key)}, "room"),
        "older": ({"bundle": sign_bundle(build_bundle(roster(1), "site1", "room1", 50, MODEL), key)}, None),
        "no-bundle": ({}, "must be a JSON object"),
    }
    for request_id, (payload, reason) in cases.items():
        result = device.command("roster_sync", payload, request_id)
        if reason is None:
            assert result["ok"] and result["result"]["applied"] is False, result
        else:
            assert not result["ok"] and reason in result["error"], (request_id, result)
    big = b'{"request_id": "big", "bundle": "' + b"x" * (MAX_BUNDLE_BYTES + 70_000) + b'"}'
    assert "byte limit" in device.command("roster_sync", big, "big")["error"]
    seen = len(device.watcher.json("cmd/roster_sync/result"))
    device.watcher.publish("rollcall/v1/site1/roster/room1", b"{not json", retain=True)
    rejected = device.watcher.wait_for("cmd/roster_sync/result", skip=seen)
    assert "signature" in rejected["error"]  # checked before any JSON parse
    assert device.store.rosters.get("maths-101") == before
    device.watcher.publish("rollcall/v1/site1/roster/room1", b"", retain=True)  # clear it


def test_commands_results_and_errors(device):
    started = device.command("session_start", {"session_id": "s1"}, "r1")
    assert started["ok"] and started["result"] == {"session_id": "s1", "state": "in_progress"}
    actor = f"central:{key_id(load_private_key(device.key_file).public_key())}"
    assert device.calls == [("session_start", {"session_id": "s1", "by": actor})]
    refused = device.command("session_start", {"session_id": "done"}, "r2")
    assert not refused["ok"] and "completed" in refused["error"]
    unknown = device.command("format_disk", {}, "r3")
    assert not unknown["ok"] and "unknown command" in unknown["error"]
    telemetry = device.command("telemetry_now", {}, "r4")["result"]["telemetry"]
    assert telemetry["fps"] == 15.0 and telemetry["outbox_depth"] == 0
    assert telemetry["warnings"] == [ANONYMOUS_WARNING]  # this test broker lets anyone in
    assert device.watcher.wait_for("telemetry", lambda m: m.get("cpu_temp_c") == 51.5)
    births = len([m for m in device.watcher.json("status") if m["state"] == "online"])
    assert device.command("rebirth", {}, "r5")["ok"]
    device.watcher.wait_for("status", lambda m: len([x for x in device.watcher.json("status")
                                                     if x["state"] == "online"]) > births)
    device.watcher.publish(f"{ROOT}/cmd/session_stop", b'{"request_id": "r6"}', retain=True)
    retained = device.watcher.wait_for("cmd/session_stop/result", lambda m: not m["ok"])
    assert "retained" in retained["error"]
    device.watcher.publish(f"{ROOT}/cmd/session_stop", b"", retain=True)
    assert device.link.connected  # nothing above crashed the link


def test_home_assistant_discovery_is_retained_and_tied_to_status(tmp_path, mosquitto):
    cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port, ha_discovery=True)
    with Store(tmp_path / "data") as store, MqttLink(cfg, DEVICE, store, model_id=MODEL) as link:
        deadline = time.monotonic() + 10
        while not link.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        late = Watcher(mosquitto.port, ["homeassistant/#"], client_id="ha")  # retained: seen later
        try:
            config = late.wait_for("outbox_depth/config")
            assert all(retain for _, _, retain in late.messages)
        finally:
            late.close()
    assert config["availability_topic"] == f"{ROOT}/status" and config["state_topic"] == f"{ROOT}/telemetry"
