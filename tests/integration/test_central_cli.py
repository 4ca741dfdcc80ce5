"""The reference central side as real processes: keygen, roster publish, collect, export."""

from __future__ import annotations

import csv
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


def wait_connected(collector: subprocess.Popen, timeout: float = 20.0) -> None:
    """Read the collector's log until it says it subscribed (a new session keeps nothing
    from before its first subscription)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = collector.stderr.readline()
        if "collector connected" in line or not line:
            return
    raise AssertionError("the collector did not connect")


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
    collector = subprocess.Popen([sys.executable, "-m", "firmware.cli", "-v", "central", "collect",
                                  "--broker", broker, "--db", str(db), "--until-count", "5", "--timeout", "30"],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Store(tmp_path / "data") as store:
            session_id = record_real_session(store)
            cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port)
            wait_connected(collector)  # its session is new: events sent before it subscribes are lost
            with MqttLink(cfg, DeviceConfig(id="dev-c", site="site1"), store, model_id="m1"):
                out, err = collector.communicate(timeout=40)
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
