"""Durable outbox over a real mosquitto: broker outage, device SIGKILL mid-drain, last will.

Real Store, real MqttLink (in-process or in a child process), real collector in SQLite.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware.bench.broker import Watcher
from firmware.config import DeviceConfig, MqttConfig
from firmware.link.devicechild import record_events
from firmware.link.mqtt import MqttLink
from firmware.store import Store
from provisioning.central import Collector
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stored(db_path: Path) -> list[tuple[str, str, int]]:
    """(device_id, event_id, seq) in the order the collector first stored them."""
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT device_id, event_id, seq FROM events ORDER BY rowid").fetchall()


def assert_order_per_device(rows: list[tuple[str, str, int]]) -> None:
    last: dict[str, int] = {}
    for device, _, seq in rows:
        assert seq > last.get(device, 0), f"{device}: seq {seq} stored after {last[device]}"
        last[device] = seq


def test_broker_down_while_1000_events_are_recorded(tmp_path, mosquitto):
    cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port, keepalive_s=5)
    device = DeviceConfig(id="dev1", site="site1", room="room1")
    db = tmp_path / "central.db"
    with Store(tmp_path / "data") as store, Collector(cfg, db) as collector:
        assert collector.connected.wait(10)
        with MqttLink(cfg, device, store, model_id="m1", reconnect_max_s=2) as link:
            wait_until(lambda: link.connected, 10, "device connected")
            mosquitto.stop()
            wait_until(lambda: not link.connected, 10, "device sees the broker down")
            record_events(store, 1000)
            link.wake()
            assert store.outbox.depth() == 1000  # nothing acknowledged, nothing dropped
            mosquitto.start()
            assert collector.run(until_count=1000, timeout=40) == 1000
            wait_until(lambda: store.outbox.depth() == 0, 10, "outbox emptied by PUBACKs")
    rows = stored(db)
    assert len(rows) == 1000 == len({r[1] for r in rows})
    assert_order_per_device(rows)


def start_child(data: Path, port: int, log: Path, record: int = 0) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "firmware.link.devicechild", "--data-dir", str(data),
           "--port", str(port), "--device-id", "dev2", "--record", str(record), "--max-inflight", "20"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=open(log, "ab"), text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout.readline().startswith("recorded")
    return proc


def test_device_killed_mid_drain_loses_nothing_and_leaves_its_last_will(tmp_path, mosquitto):
    cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port)
    data, db, log = tmp_path / "data", tmp_path / "central.db", tmp_path / "child.log"
    with Store(data) as store:
        record_events(store, 400)
    watcher = Watcher(mosquitto.port, ["rollcall/v1/site1/dev2/status"])
    child = None
    try:
        with Collector(cfg, db) as collector:
            assert collector.connected.wait(10)
            child = start_child(data, mosquitto.port, log)
            watcher.wait_for("status", lambda m: m["state"] == "online")
            assert 50 <= collector.run(until_count=50, timeout=30) < 400  # mid-drain
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            will = watcher.wait_for("status", lambda m: m["state"] == "offline", timeout=10)
            assert will["reason"] == "connection lost" and will["device_id"] == "dev2"
            child = start_child(data, mosquitto.port, log)
            assert collector.run(until_count=400, timeout=40) == 400
            child.send_signal(signal.SIGTERM)
            assert child.wait(15) == 0
            bye = watcher.wait_for("status", lambda m: m.get("reason") == "shutdown")
            assert bye["state"] == "offline"
            duplicates = collector.duplicates
    finally:
        if child and child.poll() is None:
            child.kill()
            child.wait()
        watcher.close()
    rows = stored(db)
    assert len(rows) == 400 == len({r[1] for r in rows})
    assert_order_per_device(rows)
    with Store(data) as store:
        assert store.outbox.depth() == 0
    assert duplicates >= 0


def test_broker_restarted_mid_drain_resends_the_window_in_order(tmp_path, mosquitto):
    from firmware.bench.mqtt import prefill_backlog

    prefill_backlog(tmp_path / "data", 3000)
    cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port, keepalive_s=5, max_inflight=50)
    device = DeviceConfig(id="dev3", site="site1", room="room1")
    db = tmp_path / "central.db"
    with Store(tmp_path / "data") as store, Collector(cfg, db) as collector:
        assert collector.connected.wait(10)
        with MqttLink(cfg, device, store, model_id="m1", reconnect_max_s=1) as link:
            assert 300 <= collector.run(until_count=300, timeout=30) < 3000
            mosquitto.stop()  # mid-drain: a window of unacknowledged events is in flight
            wait_until(lambda: not link.connected, 10, "device sees the broker down")
            left = store.outbox.depth()
            mosquitto.start()
            assert collector.run(until_count=3000, timeout=40) == 3000
            wait_until(lambda: store.outbox.depth() == 0, 10, "outbox emptied")
    assert 0 < left < 3000
    rows = stored(db)
    assert len(rows) == 3000 == len({r[1] for r in rows})
    assert_order_per_device(rows)
