"""Erasure ordered by the centre reaches every device of a site, over a real mosquitto:
two devices (real Store, real Device, real MqttLink), the reference collector, a signed
``cmd/erasure`` per device, each device's ``event/erasure`` with its counts collected as the
confirmation, and ``rollcall central erasures`` listing it. A forged command erases nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.bench.broker import Watcher
from firmware.config import Config, DeviceConfig, MqttConfig
from firmware.domain.decisions import DecisionEngine
from firmware.link.mqtt import MqttLink
from firmware.link.cmdauth import sign_command
from firmware.runtime.device import Device
from firmware.store import Store
from provisioning.central import Collector, generate_keypair, load_private_key
from provisioning.central.erasure import list_erasures, open_erasure_db, request_erasure, send, site_devices
from tests.conftest import REPO

pytestmark = pytest.mark.integration

SITE = "s1"


class Door:
    """One device: store, Device and its MQTT link, as the composition root wires them."""

    def __init__(self, tmp_path, device_id: str, port: int, pub) -> None:
        cfg = Config()
        cfg.paths.data_dir = tmp_path / device_id
        cfg.device = DeviceConfig(id=device_id, site=SITE, room="hall")
        cfg.mqtt = MqttConfig(host="127.0.0.1", port=port, roster_public_key_file=pub)
        self.store = Store(cfg.paths.data_dir)
        rng = np.random.default_rng(len(device_id))
        for pid in ("ann", "bob"):
            self.store.people.add(pid, pid.title(), consent={"basis": "consent", "by": "office"})
            vector = rng.normal(size=128).astype(np.float32)
            self.store.people.add_embedding(pid, vector / np.linalg.norm(vector), cfg.recognition.embedder)
        self.device = Device(cfg, store=self.store, engine=DecisionEngine(), camera=None, indicators=None)
        self.link = MqttLink(cfg.mqtt, cfg.device, self.store, commands=self.device.commands,
                             model_id=cfg.recognition.embedder).start()
        self.device.link = self.link
        self.model = cfg.recognition.embedder

    def faces(self) -> list[str]:
        return sorted(set(self.store.people.embeddings(self.model)[0]))

    def close(self) -> None:
        self.link.close()
        self.store.close()


@pytest.fixture
def site(tmp_path, mosquitto):
    private, public = generate_keypair(tmp_path / "keys")
    doors = [Door(tmp_path, name, mosquitto.port, public) for name in ("door-1", "door-2")]
    cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port)
    collector = Collector(cfg, tmp_path / "central.db").start()
    try:
        yield doors, collector, cfg, private, tmp_path / "central.db"
    finally:
        collector.close()
        for door in doors:
            door.close()


def collect_until(collector: Collector, done, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for the devices"
        collector.store_batch(0.2)


def test_centre_orders_erasure_on_every_device_and_sees_confirmations(site, mosquitto):
    doors, collector, cfg, private, db_path = site
    db = open_erasure_db(db_path)
    try:
        collect_until(collector, lambda: site_devices(db, SITE) == ["door-1", "door-2"])
        request = request_erasure(db, SITE, "ann", False, "dpo")
        send(cfg, db, request, site_devices(db, SITE), load_private_key(private))
        collect_until(collector, lambda: not list_erasures(db)[0]["pending"])
        [row] = list_erasures(db)
        assert set(row["devices"]) == {"door-1", "door-2"}
        assert all(counts["embeddings"] == 1 for counts in row["devices"].values())
        for door in doors:
            assert door.faces() == ["bob"] and door.store.people.get("ann")["name"] == "Ann"
            [erasure] = door.store.erasures.list("ann")
            assert erasure["request_id"] == request["erasure_id"] and erasure["reason"] == "central"
            assert erasure["by"].startswith("dpo via central:")  # who asked, and the signing key
        # the centre re-sends (e.g. unsure it arrived): devices answer without erasing twice
        send(cfg, db, request, ["door-1"], load_private_key(private))
        time.sleep(0.5)
        assert len(doors[0].store.erasures.list("ann")) == 1
    finally:
        db.close()
    listing = subprocess.run([sys.executable, "-m", "firmware.cli", "-q", "central", "erasures",
                              "--db", str(db_path)], cwd=REPO, capture_output=True, text=True,
                             timeout=30, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert listing.returncode == 0, listing.stderr
    assert "person ann" in listing.stdout and listing.stdout.count("confirmed") == 2
    assert "PENDING" not in listing.stdout


def test_forged_or_misdirected_erasure_is_refused_and_erases_nothing(site, mosquitto):
    doors, collector, cfg, private, _ = site
    watcher = Watcher(mosquitto.port, [f"rollcall/v1/{SITE}/door-1/cmd/#"], client_id="w-erasure")
    try:
        args = {"erasure_id": "er-forged", "person_id": "ann", "full": True}
        here, there = {"site": SITE, "device": "door-1"}, {"site": SITE, "device": "door-2"}
        attempts = {
            "wrong key": sign_command("erasure", here, Ed25519PrivateKey.generate(), args),
            "other device": sign_command("erasure", there, load_private_key(private), args),
            "unsigned": json.dumps({"command": "erasure", "target": here, **args}).encode(),
        }
        for n, (label, payload) in enumerate(attempts.items()):
            watcher.publish(f"rollcall/v1/{SITE}/door-1/cmd/erasure", payload)
            result = watcher.wait_for("cmd/erasure/result", skip=n)
            assert result["ok"] is False and "refused" in result["error"], label
        assert doors[0].faces() == ["ann", "bob"] and doors[0].store.erasures.list() == []
        assert doors[0].store.people.get("ann") is not None
    finally:
        watcher.close()
