"""MqttLink logic against a scripted stand-in for the paho client (client_factory=)."""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace

from paho.mqtt.client import MQTTMessage
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from firmware.config import DeviceConfig, MqttConfig
from firmware.link.mqtt import MqttLink
from firmware.store import Store
from tests.unit.test_mqtt_drain import FakeOutbox

DEVICE = DeviceConfig(id="dev1", site="site1", room="room1")


class FakeClient:
    """Records publishes/subscribes; delivers CONNACK, PUBACKs and messages inside loop()."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse, self.published, self.subscribed = refuse, [], []
        self.connects, self.mid, self.pending = 0, 0, []

    def max_inflight_messages_set(self, value: int) -> None:
        self.max_inflight = value

    def will_set(self, topic, payload, qos=0, retain=False) -> None:
        self.will = (topic, json.loads(payload), qos, retain)

    def connect(self, host, port, keepalive, clean_start) -> None:
        self.connects += 1
        self.pending.append(("connack",))

    def socket(self):
        return None

    def loop(self, timeout: float) -> int:
        time.sleep(0.002)
        while self.pending:
            event = self.pending.pop(0)
            if event[0] == "connack":
                code = ReasonCode(PacketTypes.CONNACK, "Not authorized" if self.refuse else "Success")
                self.on_connect(self, None, SimpleNamespace(session_present=False), code, None)
                if self.refuse:
                    self.on_disconnect(self, None, None, code, None)
            elif event[0] == "puback":
                self.on_publish(self, None, event[1], ReasonCode(PacketTypes.PUBACK, "Success"), None)
            else:
                self.on_message(self, None, event[1])
        return 0

    def publish(self, topic, payload, qos=0, retain=False):
        self.mid += 1
        self.published.append((topic, json.loads(payload), qos, retain))
        if qos == 1:
            self.pending.append(("puback", self.mid))
        return SimpleNamespace(mid=self.mid, rc=0)

    def subscribe(self, subs) -> None:
        self.subscribed.append([topic for topic, _ in subs])

    def deliver(self, topic: str, payload: bytes) -> None:
        message = MQTTMessage(topic=topic.encode())
        message.payload = payload
        self.pending.append(("message", message))

    def want_write(self) -> bool:
        return False

    def disconnect(self) -> None:
        self.on_disconnect(self, None, None, "normal", None)

    def on(self, suffix: str) -> list:
        return [p for t, p, _, _ in self.published if t.endswith(suffix)]


class FakeRosters:
    def site_version(self, site: str) -> int | None:
        return None


class FakeStore:
    def __init__(self, events: int = 0, fraction: float | None = None) -> None:
        self.outbox = FakeOutbox(events)
        self.rosters = FakeRosters()
        if fraction is not None:
            self.outbox.capacity_fraction = lambda: fraction
        else:
            self.outbox.capacity_fraction = lambda: self.outbox.depth() / 1000


def run_link(client: FakeClient, store: FakeStore, until, **kwargs) -> MqttLink:
    cfg = MqttConfig(host="broker.example", port=1883, **kwargs)
    link = MqttLink(cfg, DEVICE, store, model_id="m1", client_factory=lambda *a, **k: client,
                    status_provider=lambda: {"roster_version": 4, "session": None}, reconnect_max_s=1)
    link.start()
    deadline = time.monotonic() + 5
    while not until(link) and time.monotonic() < deadline:
        time.sleep(0.01)
    return link


def test_refused_connect_is_not_connected_and_logged_once(caplog):
    client = FakeClient(refuse=True)
    with caplog.at_level(logging.WARNING, logger="firmware.link"):
        link = run_link(client, FakeStore(3), lambda link: client.connects >= 3)
        link.close()
    assert not link.connected and client.published == [] and client.subscribed == []
    refusals = [r.getMessage() for r in caplog.records if "refused the connection" in r.getMessage()]
    assert refusals == ["broker broker.example:1883 unreachable: broker refused the connection: "
                        "Not authorized; check mqtt.username and mqtt.password_file"]


def test_connect_subscribes_births_and_drains_in_order():
    client, store = FakeClient(), FakeStore(45)
    link = run_link(client, store, lambda link: store.outbox.depth() == 0, max_inflight=7)
    link.close()
    link.close()
    assert client.subscribed[0] == ["rollcall/v1/site1/dev1/cmd/+", "rollcall/v1/site1/roster/room1",
                                    "rollcall/v1/site1/roster/_all"]
    birth = client.on("/status")[0]
    assert birth["state"] == "online" and birth["roster_version"] == 4 and birth["model_id"] == "m1"
    assert [m["seq"] for m in client.on("event/attendance")] == list(range(1000, 1045))
    assert client.on("/status")[-1]["reason"] == "shutdown"


def test_outbox_warning_in_telemetry_and_logged_once(caplog):
    client = FakeClient()
    with caplog.at_level(logging.WARNING, logger="firmware.link.mqtt"):
        link = run_link(client, FakeStore(0, fraction=0.85), lambda link: bool(client.on("telemetry")))
        link.publish_telemetry({"fps": 9.5})
        deadline = time.monotonic() + 5
        while len(client.on("telemetry")) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        link.close()
    telemetry = client.on("telemetry")[-1]
    assert telemetry["fps"] == 9.5 and any(w.startswith("OUTBOX 85% FULL") for w in telemetry["warnings"])
    assert len([r for r in caplog.records if "outbox 85 % full" in r.getMessage()]) == 1


def test_command_and_garbage_roster_get_results_without_crashing():
    client = FakeClient()
    link = run_link(client, FakeStore(), lambda link: link.connected)
    client.deliver("rollcall/v1/site1/dev1/cmd/telemetry_now", b'{"request_id": "t1"}')  # unsigned
    client.deliver("rollcall/v1/site1/roster/room1", b"\x00garbage")
    deadline = time.monotonic() + 5
    while not client.on("roster_sync/result") and time.monotonic() < deadline:
        time.sleep(0.01)
    link.close()
    refused = client.on("cmd/telemetry_now/result")[0]
    assert refused["ok"] is False and "no command public key installed" in refused["error"]
    rejected = client.on("roster_sync/result")[0]
    assert rejected["ok"] is False and "no roster public key installed" in rejected["error"]


def test_will_and_birth_share_a_conn_seq_that_grows_per_connection(tmp_path):
    client = FakeClient()
    with Store(tmp_path / "d") as store:
        link = MqttLink(MqttConfig(host="x"), DeviceConfig(id="d1", site="s", room="r"), store, model_id="m1",
                        client_factory=lambda *a, **k: client).start()
        try:
            deadline = time.monotonic() + 5
            while not any(t.endswith("/status") for t, *_ in client.published) and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            link.close()
    births = [p for t, p, _, retain in client.published if t.endswith("/status") and p["state"] == "online"]
    goodbye = [p for t, p, _, _ in client.published if t.endswith("/status") and p["state"] == "offline"]
    assert births and births[0]["conn_seq"] == client.will[1]["conn_seq"] == goodbye[-1]["conn_seq"]
    assert client.will[3] is True and (tmp_path / "d" / "link-connection-seq").read_text() == str(births[0]["conn_seq"])
