"""A configuration the console can write never stops the firmware (issue 14, item 1).

Real parts: the App composition root with gpiozero's MockFactory, a real mosquitto, the
control socket, and `rollcall run` as a subprocess. No models are needed: the device runs
degraded without them, which is what these tests rely on to start fast.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.config import Config, machine_device_id, write_config_atomic
from firmware.control.client import ControlClient
from firmware.runtime.app import RESTART_EXIT, App
from firmware.runtime.logfiles import START_ERROR_FILE

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def config(tmp_path: Path) -> Config:
    cfg = Config()
    cfg.paths.data_dir = tmp_path / "data"
    cfg.paths.models_dir = tmp_path / "no-models"
    cfg.paths.control_socket = tmp_path / "control.sock"
    cfg.paths.log_dir = tmp_path / "log"
    cfg.gpio.pin_factory = "mock"
    return cfg


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_empty_device_id_with_a_broker_runs_connected_and_restarts_on_request(tmp_path, mosquitto):
    """The issue's report: a broker set in Settings + no device id = a restart loop."""
    cfg = config(tmp_path)
    cfg.device.id = ""
    cfg.mqtt.host, cfg.mqtt.port = "127.0.0.1", mosquitto.port
    app = App(cfg, source="webcam:63", pin_factory=MockFactory())
    with app:
        runner = threading.Thread(target=app.run)
        runner.start()
        client = ControlClient(cfg.paths.control_socket)
        status = wait_for(lambda: (s := client.get("/v1/status"))["broker"] == "connected" and s)
        assert status["device_id"] == machine_device_id()
        assert any("device.id was empty" in w for w in status["warnings"])
        answer = client.post("/v1/restart")
        assert answer["ok"], answer
        runner.join(15)
        assert not runner.is_alive() and app.restart_requested


def test_broker_credentials_that_cannot_be_read_run_degraded(tmp_path, mosquitto):
    cfg = config(tmp_path)
    cfg.device.id = "door-3"
    cfg.mqtt.host, cfg.mqtt.port = "127.0.0.1", mosquitto.port
    cfg.mqtt.username, cfg.mqtt.password_file = "door-3", tmp_path / "missing-password"
    app = App(cfg, source="webcam:63", pin_factory=MockFactory())
    with app:
        status = ControlClient(cfg.paths.control_socket).get("/v1/status")
    assert status["broker"] == "not_configured" or status["broker"] == "disabled"
    assert any("MQTT link not started" in w and "password_file" in w for w in status["warnings"])


def test_run_exits_for_a_restart_with_the_code_the_service_manager_restarts(tmp_path):
    from firmware.cli import run as run_cli

    cfg = config(tmp_path)
    cfg.device.id = "door-4"
    path = tmp_path / "config.toml"
    write_config_atomic(cfg, path)

    def ask_restart() -> None:
        wait_for(lambda: cfg.paths.control_socket.exists(), 30)
        wait_for(lambda: ControlClient(cfg.paths.control_socket).post("/v1/restart")["ok"], 10)

    helper = threading.Thread(target=ask_restart, daemon=True)
    helper.start()
    args = argparse.Namespace(config=str(path), source="webcam:63", max_frames=None, data_dir=None,
                              models_dir=None, socket=None)
    assert run_cli.run(args) == RESTART_EXIT == 75
    assert (tmp_path / "log" / "firmware.log").stat().st_mode & 0o777 == 0o640
    assert "restart requested" in (tmp_path / "log" / "firmware.log").read_text()


def test_a_failed_start_is_kept_verbatim_and_cleared_by_the_next_start(tmp_path):
    cfg = config(tmp_path)
    cfg.device.id = "door-5"
    cfg.paths.data_dir = tmp_path / "not-a-folder"
    cfg.paths.data_dir.write_text("a file where the data folder should be\n")
    path = tmp_path / "config.toml"
    write_config_atomic(cfg, path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "firmware.cli", "-q", "run", "--config", str(path), "--source", "webcam:63"]
    failed = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert failed.returncode != 0
    kept = (tmp_path / "log" / START_ERROR_FILE).read_text()
    assert "not-a-folder" in kept
    assert kept.splitlines()[1] in failed.stderr  # the same words the service log has

    cfg.paths.data_dir = tmp_path / "data"
    write_config_atomic(cfg, path)
    started = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: not (tmp_path / "log" / START_ERROR_FILE).exists(), 60)
    finally:
        started.terminate()
        started.wait(30)
