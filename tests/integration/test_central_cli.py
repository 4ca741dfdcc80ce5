"""The reference central side as real processes: keygen, roster publish, collect, export."""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys
import time

import pytest

from firmware.bench.broker import Watcher
from firmware.config import DeviceConfig, MqttConfig
from firmware.link.mqtt import MqttLink
from firmware.store import Store
from provisioning.central import Collector, generate_keypair
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def rollcall(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firmware.cli", "-q", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def record_real_session(store) -> str:
    """A real session through the Store API: started, three arrivals, completed (5 events)."""
    for person in ("p1", "p2", "p3"):
        store.people.add(person, f"Pupil {person}")
    roster = store.rosters.create("Maths", [{"person_id": p, "seat": None} for p in ("p1", "p2", "p3")])
    now = time.time()
    session = store.sessions.create(roster["id"], "room1", "Maths", now - 60, now + 3600)
    store.sessions.set_state(session["id"], "in_progress", by="test")
    for n, person in enumerate(("p1", "p2", "p3")):
        store.attendance.record(session["id"], person, "present", 0.9 - n / 10, now + n)
    store.sessions.set_state(session["id"], "completed", by="test")
    return session["id"]


def test_keygen_roster_publish_collect_and_export(tmp_path, mosquitto):
    broker = f"127.0.0.1:{mosquitto.port}"
    keys = rollcall("central", "keygen", "--out", str(tmp_path / "keys"))
    assert keys.returncode == 0, keys.stderr
    private = tmp_path / "keys" / "roster_signing_key.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" not in (tmp_path / "keys" / "roster_signing_key.pub.pem").read_bytes()

    roster = tmp_path / "roster.json"
    roster.write_text('{"model_id": "m1", "basis": "consent", "people": [{"person_id": "p1", "name": "Ada", "seat": "A1",'
                      ' "embeddings": [[0.1, 0.2, 0.3]]}]}')
    watcher = Watcher(mosquitto.port, ["rollcall/v1/site1/roster/#"])
    try:
        published = rollcall("central", "roster", "publish", str(roster), "--key", str(private),
                             "--broker", broker, "--site", "site1", "--room", "room1", "--version", "42")
        assert published.returncode == 0, published.stderr
        bundle = watcher.wait_for("roster/room1")
        assert bundle["roster_version"] == 42 and bundle["signature"]["alg"] == "ed25519"
    finally:
        watcher.close()

    db = tmp_path / "central.db"
    collector = subprocess.Popen([sys.executable, "-m", "firmware.cli", "-q", "central", "collect",
                                  "--broker", broker, "--db", str(db), "--until-count", "5", "--timeout", "90"],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Store(tmp_path / "data") as store:
            session_id = record_real_session(store)
            cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port)
            deadline = time.monotonic() + 30  # the collector's session must exist before events flow
            while "as rollcall-central (" not in mosquitto.log_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # and its SUBSCRIBE be in
            with MqttLink(cfg, DeviceConfig(id="dev-c", site="site1"), store, model_id="m1"):
                out, err = collector.communicate(timeout=100)
    finally:
        if collector.poll() is None:
            collector.kill()
    assert collector.returncode == 0, err
    assert "5 events stored" in out

    exported = rollcall("central", "export", "--db", str(db), "--session", session_id, "--csv", str(tmp_path / "s.csv"))
    assert exported.returncode == 0 and "3 rows" in exported.stdout
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert [r["person_id"] for r in rows] == ["p1", "p2", "p3"] and rows[0]["device_id"] == "dev-c"


def test_bad_broker_argument_is_a_clear_error():
    result = rollcall("central", "collect", "--broker", "nohostport", "--db", "/tmp/x.db")
    assert result.returncode == 2 and "HOST:PORT" in result.stderr and "Traceback" not in result.stderr


def test_roster_publish_many_rooms_from_one_csv_then_devices_and_export(tmp_path, mosquitto):
    broker, db = f"127.0.0.1:{mosquitto.port}", tmp_path / "central.db"
    private, _ = generate_keypair(tmp_path / "keys")
    (tmp_path / "people.json").write_text(json.dumps({"model_id": "m1", "basis": "consent", "people": [
        {"person_id": p, "name": f"Pupil {p}", "embeddings": [[0.1, 0.2, 0.3]]} for p in ("p1", "p2", "p3")]}))
    (tmp_path / "rooms.csv").write_text("room,person_id,seat\nhall-1,p1,A1\nhall-1,p2,A2\nhall-2,p3,B7\n")
    (tmp_path / "bad.csv").write_text("room,person_id\nhall-3,p1\nhall-3,nobody\n")
    watcher = Watcher(mosquitto.port, ["rollcall/v1/s1/roster/#"], client_id="w-csv")
    try:
        common = ("--key", str(private), "--site", "s1", "--broker", broker, "--people", str(tmp_path / "people.json"))
        bad = rollcall("central", "roster", "publish", "--csv", str(tmp_path / "bad.csv"), *common, "--db", str(db))
        assert bad.returncode == 2 and "bad.csv:3: person 'nobody' is not in the people file" in bad.stderr
        ok = rollcall("central", "roster", "publish", "--csv", str(tmp_path / "rooms.csv"), *common,
                      "--db", str(db), "--version", "9")
        assert ok.returncode == 0, ok.stderr
        hall1, hall2 = watcher.wait_for("roster/hall-1"), watcher.wait_for("roster/hall-2")
        assert not watcher.json("roster/hall-3")  # the bad CSV published nothing
    finally:
        watcher.close()
    assert [(p["person_id"], p["seat"]) for p in hall1["people"]] == [("p1", "A1"), ("p2", "A2")]
    assert hall2["people"][0]["seat"] == "B7" and hall1["roster_version"] == hall2["roster_version"] == 9

    with Store(tmp_path / "data") as store:  # one device reports to a collector on that database
        cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port)
        with Collector(cfg, db, client_id="c-csv") as collector:
            assert collector.connected.wait(10)
            with MqttLink(cfg, DeviceConfig(id="door-1", site="s1", room="hall-1"), store, model_id="m1"):
                store.people.add("p1", "Pupil p1")
                store.attendance.record(None, "p1", "present", 0.9)
                collector.run(until_count=1, timeout=20)
            deadline = time.monotonic() + 15  # the link said goodbye: wait for it to be stored
            while time.monotonic() < deadline and collector.db.query("SELECT state FROM devices") != [("offline",)]:
                collector.store_batch(0.2)
    shown = rollcall("central", "devices", "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    line = next(row for row in shown.stdout.splitlines() if "door-1" in row)
    assert "offline (shutdown)" in line and "hall-1" in line and "- (behind: 9)" in line  # link closed; no roster
    exported = rollcall("central", "export", "--db", str(db), "--room", "hall-1", "--since", "2000-01-01",
                        "--csv", str(tmp_path / "hall1.csv"))
    assert exported.returncode == 0, exported.stderr
    rows = {r["person_id"]: r["status"] for r in csv.DictReader(open(tmp_path / "hall1.csv"))}
    assert rows == {"p1": "present", "p2": "absent"}
