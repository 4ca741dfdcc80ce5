"""TLS with a throw-away CA, password auth, and no credential in any log line."""

from __future__ import annotations

import logging
import time

import pytest

from firmware.bench.broker import make_tls_material, write_password_file
from firmware.config import DeviceConfig, MqttConfig
from firmware.link.devicechild import record_events
from firmware.link.mqtt import MqttLink
from firmware.store import Store
from provisioning.central import Collector
from tests.conftest import Mosquitto

pytestmark = pytest.mark.integration
DEVICE = DeviceConfig(id="dev-sec", site="site1", room="room1")
PASSWORD = "Sup3r-Secret-Pa55word-9f2c"


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def drain_with(cfg: MqttConfig, data_dir, events: int = 5, wait_s: float = 8) -> tuple[bool, int]:
    """Run a link until its outbox is empty (or ``wait_s``); returns (connected, depth left)."""
    with Store(data_dir) as store:
        record_events(store, events)
        with MqttLink(cfg, DEVICE, store, model_id="m1", reconnect_max_s=1) as link:
            ok = wait_until(lambda: link.connected, wait_s)
            wait_until(lambda: store.outbox.depth() == 0, wait_s if ok else 0)
            return ok, store.outbox.depth()


def test_tls_with_the_right_ca_and_refused_with_a_wrong_one(tmp_path, caplog):
    tls = make_tls_material(tmp_path / "pki")
    broker = Mosquitto(tmp_path / "broker", tls=(tls["ca"], tls["cert"], tls["key"])).start()
    try:
        good = MqttConfig(host="127.0.0.1", port=broker.port, tls=True, ca_file=tls["ca"])
        with Collector(good, tmp_path / "central.db") as collector:  # the central side over TLS too
            assert collector.connected.wait(10)
            assert drain_with(good, tmp_path / "d1") == (True, 0)
            assert collector.run(until_count=5, timeout=10) == 5
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="firmware.link"):
            bad = good.model_copy(update={"ca_file": tls["wrong_ca"]})
            assert drain_with(bad, tmp_path / "d2", events=2, wait_s=3) == (False, 2)
        lines = [r.getMessage() for r in caplog.records]
        assert any("TLS certificate of broker 127.0.0.1" in line and "rejected: self-signed certificate" in line
                   and "check mqtt.ca_file" in line for line in lines), lines
        assert sum("TLS certificate" in line for line in lines) == 1  # logged once, not per retry
    finally:
        broker.stop()


def test_password_auth_and_credentials_never_logged(tmp_path, caplog):
    users = write_password_file(tmp_path / "passwd", {"dev-sec": PASSWORD})
    broker = Mosquitto(tmp_path / "broker", password_file=users).start()
    secret = tmp_path / "mqtt_password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    wrong = tmp_path / "wrong_password"
    wrong.write_text("not-the-" + PASSWORD)
    try:
        with caplog.at_level(logging.DEBUG):
            cfg = MqttConfig(host="127.0.0.1", port=broker.port, username="dev-sec", password_file=secret)
            # a subscriber must exist: "No matching subscribers" is not a delivery (contract)
            with Collector(cfg, tmp_path / "central.db", client_id="central-sec") as collector:
                assert collector.connected.wait(10)
                assert drain_with(cfg, tmp_path / "d1") == (True, 0)
            bad = cfg.model_copy(update={"password_file": wrong})
            assert drain_with(bad, tmp_path / "d2", events=1, wait_s=3) == (False, 1)
        text = caplog.text + "".join(str(r.args) for r in caplog.records)
        assert "check mqtt.username and mqtt.password_file" in text
        assert PASSWORD not in text and "Sup3r" not in text
        assert PASSWORD not in broker.log_text()
    finally:
        broker.stop()
