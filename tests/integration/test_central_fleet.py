"""Several collectors on one PostgreSQL through a real mosquitto, with faults mid-stream.

Two `rollcall central collect` processes share the events (MQTT v5 shared subscription,
persistent sessions); three devices (real Store + real MqttLink) publish while one
collector is SIGKILLed and restarted and the broker is restarted. Every event must be in
PostgreSQL exactly once, and both collectors must have stored some.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from firmware.bench.broker import Watcher
from firmware.config import DeviceConfig, MqttConfig, StoreConfig
from firmware.link.mqtt import MqttLink
from firmware.store import Store
from provisioning.central import Collector
from tests.conftest import REPO

pytestmark = pytest.mark.integration
DEVICES = ("door-a", "door-b", "door-c")


def start_collector(port: int, url: str, name: str, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "firmware.cli", "central", "collect",
                             "--broker", f"127.0.0.1:{port}", "--db", url, "--group", "central",
                             "--client-id", name], cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


class Writer(threading.Thread):
    """Records attendance-shaped events into each device's real outbox at ``rate`` per second."""

    def __init__(self, stores: dict, links: dict, rate: float) -> None:
        super().__init__(daemon=True)
        self.stores, self.links, self.rate = stores, links, rate
        self.ids: dict[str, list[str]] = {d: [] for d in stores}
        self.times: list[float] = []  # monotonic time of each write
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            device = DEVICES[n % len(DEVICES)]
            entry = self.stores[device].outbox.put("event/attendance", {
                "session_id": None, "room": f"room-{device}", "day": "2026-11-30",
                "person_id": f"p{n}", "status": "present", "score": 0.9})
            self.ids[device].append(entry["event_id"])
            self.times.append(time.monotonic())
            self.links[device].wake()
            n += 1
            time.sleep(1 / self.rate)


def test_two_collectors_survive_a_kill_and_a_broker_restart(tmp_path, mosquitto, postgres):
    cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port, max_inflight=20)
    log = open(tmp_path / "collectors.log", "wb")
    collectors = {name: start_collector(mosquitto.port, postgres, name, log) for name in ("c1", "c2")}
    stores, links = {}, {}
    try:
        wait_until(lambda: query(postgres, "SELECT 1 FROM pg_tables WHERE tablename = 'events'"), 20, "schema")
        time.sleep(1.0)  # both collectors subscribed
        for device in DEVICES:
            stores[device] = Store(tmp_path / device, config=StoreConfig(outbox_max_events=100_000))
            links[device] = MqttLink(cfg, DeviceConfig(id=device, site="s1", room=f"room-{device}"),
                                     stores[device], model_id="m1", reconnect_max_s=1).start()
        writer = Writer(stores, links, rate=150)
        writer.start()
        time.sleep(1.5)
        marks = {"c1 killed": time.monotonic()}
        collectors["c1"].send_signal(signal.SIGKILL)  # mid-stream: its in-flight batch is not acked
        collectors["c1"].wait(10)
        time.sleep(1.0)
        collectors["c1"] = start_collector(mosquitto.port, postgres, "c1", log)  # same id: same session
        time.sleep(1.5)
        marks["broker stopped"] = time.monotonic()
        mosquitto.stop()  # broker restart: persistent sessions and queued messages survive
        time.sleep(0.5)
        mosquitto.start()
        marks["broker back"] = time.monotonic()
        time.sleep(2.0)
        writer.stop.set()
        writer.join(5)
        sent = {d: list(ids) for d, ids in writer.ids.items()}
        total = sum(map(len, sent.values()))
        wait_until(lambda: all(s.outbox.depth() == 0 for s in stores.values()), 60, "outboxes drained")
        wait_until(lambda: query(postgres, "SELECT COUNT(*) FROM events")[0][0] >= total, 60, "all stored")
        time.sleep(1.0)  # a late duplicate would show now
        rows = query(postgres, "SELECT event_id, device_id FROM events")
        by_collector = dict(query(postgres, "SELECT collector, COUNT(*) FROM events GROUP BY collector"))
        status = dict(query(postgres, "SELECT device_id, state FROM devices"))
    finally:
        for link in links.values():
            link.close()
        for store in stores.values():
            store.close()
        for proc in collectors.values():
            proc.terminate()
        for proc in collectors.values():
            proc.wait(10)
        log.close()
    stored = [r[0] for r in rows]
    # Events were written before, through and after each fault (how many depends on how fast
    # this machine's journal writes are; every one of them must arrive exactly once).
    edges = [float("-inf"), *marks.values(), float("inf")]
    per_phase = [sum(a <= t < b for t in writer.times) for a, b in zip(edges, edges[1:])]
    assert total == len(writer.times) and min(per_phase) >= 3, dict(zip(["before", *marks], per_phase))
    assert len(stored) == len(set(stored)) == total, "every event exactly once"
    for device, ids in sent.items():
        assert set(ids) <= set(stored), f"{device} lost events"
    assert by_collector.get("c1", 0) > 0 and by_collector.get("c2", 0) > 0, by_collector
    assert status == {d: "online" for d in DEVICES}


def test_stale_will_after_newer_birth_is_ignored_end_to_end(tmp_path, mosquitto, postgres):
    """A device reconnects (new conn_seq); the old connection's will, re-published late, is ignored."""
    cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port)
    watcher = Watcher(mosquitto.port, ["rollcall/v1/s1/+/status"], client_id="w-stale")
    try:
        with Store(tmp_path / "d") as store, Collector(cfg, postgres, client_id="c-stale") as collector:
            assert collector.connected.wait(10)
            with MqttLink(cfg, DeviceConfig(id="door-z", site="s1", room="r1"), store, model_id="m1"):
                birth = watcher.wait_for("door-z/status", lambda m: m["state"] == "online")
                stale = {"state": "offline", "device_id": "door-z", "contract": "v1",
                         "reason": "connection lost", "at": birth["at"], "conn_seq": birth["conn_seq"] - 1}
                watcher.publish("rollcall/v1/s1/door-z/status", json.dumps(stale), retain=True)
                watcher.wait_for("door-z/status", lambda m: m.get("conn_seq") == birth["conn_seq"] - 1)
                collector.run(timeout=1.0)
                assert collector.db.query("SELECT state, conn_seq FROM devices")[0] == ("online", birth["conn_seq"])
            collector.run(timeout=1.5)  # the clean shutdown's goodbye carries the current conn_seq
            state, reason = collector.db.query("SELECT state, reason FROM devices")[0]
    finally:
        watcher.close()
    assert (state, reason) == ("offline", "shutdown")


def test_event_without_any_subscriber_stays_in_the_outbox_until_a_collector_listens(tmp_path, mosquitto, postgres):
    """PUBACK 'No matching subscribers' (e.g. mosquitto right after a restart, before the
    collectors' shared subscription is back) is not a delivery: the event is kept and re-sent."""
    cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port)
    with Store(tmp_path / "d") as store:
        with MqttLink(cfg, DeviceConfig(id="door-n", site="s1", room="r1"), store, model_id="m1") as link:
            wait_until(lambda: link.connected, 10, "device connected")
            store.outbox.put("event/attendance", {"person_id": "p1", "status": "present"})
            link.wake()
            wait_until(lambda: link.drain.stats.refused >= 1, 10, "the broker says nobody subscribed")
            assert store.outbox.depth() == 1
            with Collector(cfg, postgres, client_id="c-late", group="central") as collector:
                assert collector.connected.wait(10)
                assert collector.run(until_count=1, timeout=20) == 1
            wait_until(lambda: store.outbox.depth() == 0, 10, "acknowledged once delivered")


def test_a_retired_collector_hands_over_what_was_queued_for_it(tmp_path, mosquitto, postgres):
    """mosquitto keeps queueing a stopped member's share; `--leave` stores it and ends the session."""
    cfg = MqttConfig(host="127.0.0.1", port=mosquitto.port)
    watcher = Watcher(mosquitto.port, ["nothing/#"], client_id="w-pub")
    try:
        with Collector(cfg, postgres, client_id="c-stay", group="g") as stay:
            gone = Collector(cfg, postgres, client_id="c-gone", group="g").start()
            assert stay.connected.wait(10) and gone.connected.wait(10)
            gone.close()  # stopped, session kept: the broker keeps routing half the events to it
            publish = lambda n0: [watcher.publish(f"rollcall/v1/s1/d1/event/attendance",  # noqa: E731
                                                  json.dumps({"event_id": f"E{n}", "seq": n})) for n in range(n0, n0 + 20)]
            publish(0)
            stored_without_it = stay.run(until_count=20, timeout=3)
            assert stored_without_it < 20  # its share waits for it
            retired = rollcall_leave(mosquitto.port, postgres)
            assert retired.returncode == 0 and "left group g" in retired.stdout, retired.stderr
            assert stay.run(until_count=20, timeout=10) == 20
            publish(20)  # after it left, everything goes to the members still there
            assert stay.run(until_count=40, timeout=10) == 40
    finally:
        watcher.close()


def rollcall_leave(port: int, url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firmware.cli", "-q", "central", "collect", "--broker",
                           f"127.0.0.1:{port}", "--db", url, "--group", "g", "--client-id", "c-gone", "--leave"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_a_collector_started_while_the_broker_is_down_waits_for_it(tmp_path, postgres):
    """A service must not exit because the broker restarts at the moment it starts."""
    from tests.conftest import Mosquitto, free_port

    port = free_port()
    log = open(tmp_path / "c.log", "wb")
    proc = start_collector(port, postgres, "c-early", log)
    try:
        wait_until(lambda: "retrying in the background" in (tmp_path / "c.log").read_text(), 30, "a refused connect")
        time.sleep(1.0)
        assert proc.poll() is None, (tmp_path / "c.log").read_text()
        broker = Mosquitto(tmp_path / "broker", port=port).start()
        try:
            wait_until(lambda: b"c-early" in broker.log_text().encode(), 20, "the collector connected")
        finally:
            broker.stop()
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
