"""Command forgery through a real mosquitto that runs the shipped ACL and password example
(provisioning/mosquitto/): only signed, fresh, once-only commands for this device run, and
the broker keeps devices in their own topic root (issue 13.1)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.bench.broker import Watcher, write_password_file
from firmware.config import DeviceConfig, MqttConfig
from firmware.link.bundle import key_id
from firmware.link.client import accepts_anonymous
from firmware.link.cmdauth import sign_command
from firmware.link.mqtt import MqttLink
from firmware.store import Store
from provisioning.central import generate_keypair, load_private_key, send_command
from tests.conftest import Mosquitto

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "provisioning" / "mosquitto"
PASSWORDS = {"dev-1": "pw-dev-1-xyz", "dev-2": "pw-dev-2-xyz", "central": "pw-central-xyz",
             "collector": "pw-collector-xyz"}
ROOT = "rollcall/v1/site1/dev-1"
ME = {"site": "site1", "device": "dev-1"}


class ExampleBroker(Mosquitto):
    """mosquitto running provisioning/mosquitto/rollcall.conf (loopback port, no TLS)."""

    def __init__(self, workdir: Path, passwd: Path) -> None:
        super().__init__(workdir)
        self.passwd = passwd

    def _conf_text(self) -> str:
        lines = []
        for line in (EXAMPLE / "rollcall.conf").read_text().splitlines():
            word = line.split(" ", 1)[0]
            if word in ("cafile", "certfile", "keyfile"):
                continue  # TLS is tested in test_mqtt_security.py
            line = {"listener": f"listener {self.port} 127.0.0.1",
                    "password_file": f"password_file {self.passwd}",
                    "acl_file": f"acl_file {EXAMPLE / 'rollcall.acl'}"}.get(word, line)
            lines.append(line)
        lines += ["user root", "persistence false"]
        return "\n".join(lines) + "\n"


def creds(tmp_path: Path, port: int, user: str, **extra) -> MqttConfig:
    secret = tmp_path / f"{user}.password"
    secret.write_text(PASSWORDS[user])
    return MqttConfig(host="127.0.0.1", port=port, username=user, password_file=secret, **extra)


@pytest.fixture
def setup(tmp_path):
    broker = ExampleBroker(tmp_path / "broker", write_password_file(tmp_path / "passwd", PASSWORDS)).start()
    key_file, pub = generate_keypair(tmp_path / "keys")
    calls: list = []
    store = Store(tmp_path / "data")
    device_cfg = creds(tmp_path, broker.port, "dev-1", roster_public_key_file=pub)
    link = MqttLink(device_cfg, DeviceConfig(id="dev-1", site="site1", room="room1"), store,
                    model_id="m1", commands=lambda n, p: calls.append((n, p)) or {"state": "ok"}).start()
    central = creds(tmp_path, broker.port, "central")
    watch = Watcher(broker.port, [f"{ROOT}/cmd/+/result"], client_id="central-watch",
                    username="central", password=PASSWORDS["central"])
    deadline = time.monotonic() + 10
    while not link.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    yield broker, link, calls, central, watch, load_private_key(key_file), device_cfg
    watch.close()
    link.close()
    store.close()
    broker.stop()


def test_only_signed_fresh_targeted_commands_run(setup):
    broker, link, calls, central, watch, key, device_cfg = setup
    assert link.connected and link.security_warnings == []  # the example refuses anonymous clients
    assert accepts_anonymous(device_cfg) is False
    good = sign_command("session_start", ME, key, {"session_id": "s1", "by": "mallory"}, request_id="ok")
    result = send_command(central, "site1", "dev-1", "session_start", good)
    assert result["ok"] and calls == [("session_start", {"session_id": "s1",
                                                         "by": f"central:{key_id(key.public_key())}"})]
    stranger = Ed25519PrivateKey.generate()
    forgeries = {
        "unsigned": b'{"session_id": "s1", "by": "mallory"}',
        "wrong key": sign_command("session_start", ME, stranger, {"session_id": "s1"}),
        "replayed": good,
        "expired": sign_command("session_start", ME, key, {"session_id": "s1"}, issued_at=time.time() - 3600),
        "other device": sign_command("session_start", {"site": "site1", "device": "dev-2"}, key),
        "other room": sign_command("session_start", {"site": "site1", "room": "room2"}, key),
        "other name": sign_command("session_stop", ME, key, {"session_id": "s1"}),
        "tampered": good.replace(b'"s1"', b'"s2"'),
    }
    for label, raw in forgeries.items():
        refused = send_command(central, "site1", "dev-1", "session_start", raw)
        assert refused and refused["ok"] is False and "refused" in refused["error"], (label, refused)
    telemetry = send_command(central, "site1", "dev-1", "telemetry_now", b'{"request_id": "t"}')
    assert telemetry["ok"] is False and "signature" in telemetry["error"]
    assert len(calls) == 1 and link.commands_refused == len(forgeries) + 1


def test_the_acl_keeps_other_clients_out_of_a_device_root(setup, tmp_path):
    broker, link, calls, central, watch, key, _ = setup
    spy = Watcher(broker.port, [f"{ROOT}/#", "rollcall/v1/site1/roster/+"], client_id="dev-2",
                  username="dev-2", password=PASSWORDS["dev-2"])
    collector = Watcher(broker.port, ["rollcall/v1/+/+/status", "rollcall/v1/+/+/event/#"],
                        client_id="collector", username="collector", password=PASSWORDS["collector"])
    try:
        valid = sign_command("session_stop", ME, key, {"session_id": "s1"}, request_id="via-dev-2")
        spy.publish(f"{ROOT}/cmd/session_stop", valid)         # another device: denied by the ACL
        collector.publish(f"{ROOT}/cmd/session_stop", valid)   # the collector: denied too
        spy.publish(f"{ROOT}/event/attendance", b'{"spoofed": true}')  # cannot speak for dev-1
        assert collector.wait_for("dev-1/status", lambda m: m["state"] == "online")
        link.publish_telemetry({"marker": 1})
        time.sleep(1.5)
        assert calls == [] and watch.json("cmd/session_stop/result") == []
        assert not [m for m in collector.json("event/attendance") if m.get("spoofed")]
        assert spy.messages == []  # dev-2 reads nothing of dev-1 (status, telemetry, commands)
    finally:
        spy.close()
        collector.close()
