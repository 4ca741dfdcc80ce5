"""Provisioning answers: broker URLs, --from files, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.errors import ConfigError
from provisioning.answers import Answers, from_file, parse_broker, read_secret_source


@pytest.mark.parametrize("url, host, port, tls", [
    ("mqtts://broker.example.org:8883", "broker.example.org", 8883, True),
    ("mqtts://broker.example.org", "broker.example.org", 8883, True),
    ("mqtt://10.0.0.5", "10.0.0.5", 1883, False),
    ("ssl://b:9000", "b", 9000, True),
    ("broker.lan:1884", "broker.lan", 1884, False),
    ("broker.lan", "broker.lan", 1883, False),
])
def test_parse_broker(url, host, port, tls):
    broker = parse_broker(url)
    assert (broker.host, broker.port, broker.tls) == (host, port, tls)


@pytest.mark.parametrize("url, message", [
    ("http://broker", "scheme must be mqtt:// or mqtts://"),
    ("mqtt://broker:99999", "port must be a number"),
    ("mqtt://user:pw@broker", "credentials go in their own options"),
    ("mqtt://", "expected mqtts://HOST:PORT"),
])
def test_parse_broker_rejects(url, message):
    with pytest.raises(ConfigError, match=message):
        parse_broker(url)


def test_from_file_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "fleet").mkdir()
    answers_file = tmp_path / "fleet" / "door-12.toml"
    answers_file.write_text(
        '[device]\nid = "door-12"\nsite = "north"\n'
        '[mqtt]\nbroker = "mqtts://b:8883"\npassword_file = "secrets/door-12.pw"\nca_file = "../ca.pem"\n'
        '[console]\nsetup_code = true\nhttps = true\n'
        '[roster]\npublic_key_file = "roster.pub"\n')
    answers = from_file(answers_file)
    assert answers.device_id == "door-12" and answers.site == "north"
    assert answers.mqtt_password_file == str(tmp_path / "fleet/secrets/door-12.pw")
    assert answers.ca_file == str(tmp_path / "ca.pem")
    assert answers.roster_key == str(tmp_path / "fleet/roster.pub")
    assert answers.setup_code is True and answers.https is True


def test_from_file_secrets_are_kept_apart(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text('[mqtt]\npassword = "pw-1"\n[console]\nadmin_password = "long-password-1"\n')
    answers = from_file(path)
    assert answers.secrets == {"password": "pw-1", "admin_password": "long-password-1"}
    assert "pw-1" not in repr(answers)


def test_from_file_unknown_key_is_an_error(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text('[device]\nidd = "typo"\n')
    with pytest.raises(ConfigError, match=r"unknown key \[device\] idd"):
        from_file(path)


def test_flags_win_over_the_file():
    flags = Answers(device_id="from-flag")
    flags.merge(Answers(device_id="from-file", site="north", secrets={"password": "x"}))
    assert flags.device_id == "from-flag" and flags.site == "north"
    assert flags.secrets == {"password": "x"}


def test_read_secret_source(tmp_path):
    path = tmp_path / "pw"
    path.write_text("hunter2-long\n")
    assert read_secret_source(str(path), "MQTT password") == "hunter2-long"
    path.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_secret_source(str(path), "MQTT password")
    with pytest.raises(ConfigError, match="cannot read the MQTT password"):
        read_secret_source(str(Path(tmp_path / "missing")), "MQTT password")


def test_secret_path_prefers_systemd_credentials(tmp_path, monkeypatch):
    from firmware.config import secret_path

    configured = Path("/etc/rollcall/credentials/mqtt-password")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert secret_path(configured) == configured and secret_path(None) is None
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert secret_path(configured) == configured  # not handed over: the path itself
    (tmp_path / "mqtt-password").write_text("pw")
    assert secret_path(configured) == tmp_path / "mqtt-password"
