"""Reference central side without a broker: storing, de-duplication, export, bundles, keys."""

from __future__ import annotations

import csv
import json
import stat

import pytest

from firmware.config import MqttConfig
from firmware.errors import BundleError
from firmware.link.bundle import encode_bundle, load_public_key, sign_bundle, verify_bundle
from provisioning.central import (Collector, build_bundle, export_session, generate_keypair,
                                  load_private_key, mqtt_config)

ROOT = "rollcall/v1/site1/dev1"


def event(seq: int, session: str = "S1", person: str = "p1") -> bytes:
    return json.dumps({"event_id": f"E{seq}", "seq": seq, "device_id": "dev1", "captured_at":
                       f"2026-11-21T08:00:{seq:02d}.000Z", "model_id": "m1", "session_id": session,
                       "person_id": person, "status": "present", "score": 0.8}).encode()


def test_store_dedups_rejects_and_exports(tmp_path):
    collector = Collector(MqttConfig(host="x"), tmp_path / "c.db")
    try:
        assert collector.store_message(f"{ROOT}/event/attendance", event(2, person="p2")) == 1
        assert collector.store_message(f"{ROOT}/event/attendance", event(1)) == 1
        assert collector.store_message(f"{ROOT}/event/attendance", event(1)) == 0  # duplicate
        assert collector.store_message(f"{ROOT}/event/attendance", event(3, session="S2")) == 1
        assert collector.store_message(f"{ROOT}/event/attendance", b"{broken") == 0
        assert collector.store_message(f"{ROOT}/event/attendance", b'{"seq": 1}') == 0
        assert collector.store_message(f"{ROOT}/status", b'{"state": "online"}') == 0
        collector.db.commit()
        assert collector.count() == 3 and collector.duplicates == 1
        assert collector.db.execute("SELECT COUNT(*) FROM rejects").fetchone()[0] == 2
        assert collector.db.execute("SELECT state FROM devices").fetchone()[0] == "online"
    finally:
        collector.close()
        collector.close()
    assert export_session(tmp_path / "c.db", "S1", tmp_path / "s1.csv") == 2
    rows = list(csv.DictReader(open(tmp_path / "s1.csv")))
    assert [(r["person_id"], r["seq"]) for r in rows] == [("p1", "1"), ("p2", "2")]


def test_keygen_build_sign_verify(tmp_path):
    private, public = generate_keypair(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    roster = {"model_id": "m1", "basis": "contract", "people": [{"person_id": "p1", "name": "Ada", "seat": "A1",
                                            "embeddings": [[0.1, 0.2, 0.3]]}]}
    bundle = sign_bundle(build_bundle(roster, "site1", "hall.1", version=7), load_private_key(private))
    assert bundle["roster_id"] == "site1-hall-1"
    got = verify_bundle(encode_bundle(bundle), load_public_key(public.read_bytes()), "m1", 6)
    assert got["people"][0]["embeddings"][0]["model_id"] == "m1"
    assert got["people"][0]["consent"]["basis"] == "contract"
    with pytest.raises(BundleError, match="legal basis"):
        build_bundle({**roster, "basis": None}, "site1", "hall.1")
    with pytest.raises(BundleError, match="model-id"):
        build_bundle({"people": []}, "s", "r")


def test_broker_argument(tmp_path):
    class Args:
        broker, prefix, tls, ca_file, cert_file, key_file = "h.example:8883", "rollcall/v1", False, tmp_path, None, None
        username, password_file = "u", None

    cfg = mqtt_config(Args)
    assert (cfg.host, cfg.port, cfg.tls) == ("h.example", 8883, True)



def test_events_table_keeps_topic_and_kind(tmp_path):
    collector = Collector(MqttConfig(host="x"), tmp_path / "c.db")
    try:
        collector.store_message(f"{ROOT}/event/spoof", event(5))
        collector.db.commit()
        row = collector.db.execute("SELECT topic, kind, device_id, seq FROM events").fetchone()
    finally:
        collector.close()
    assert row == (f"{ROOT}/event/spoof", "spoof", "dev1", 5)
