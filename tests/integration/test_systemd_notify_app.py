"""The device under a real NOTIFY_SOCKET: READY, WATCHDOG while healthy, STOPPING; and
`rollcall run` as a subprocess shuts down cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import cv2
import pytest
from gpiozero.pins.mock import MockFactory

from firmware.app import App
from firmware.config import Config, write_config_atomic
from firmware.hal.systemd import Notifier

pytestmark = pytest.mark.integration

STILL = "spoof/print-and-tablet-stills/image_T1.jpg"


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    yield path, sock
    sock.close()


def drain(sock, timeout=0.2) -> list[str]:
    out = []
    sock.settimeout(timeout)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except (TimeoutError, socket.timeout):
        return out


def still_folder(tmp_path, shared_data):
    folder = tmp_path / "still"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), cv2.imread(str(shared_data / STILL)))
    return folder


def config(tmp_path, models) -> Config:
    cfg = Config()
    cfg.paths.data_dir = tmp_path / "data"
    cfg.paths.models_dir = models
    cfg.paths.control_socket = tmp_path / "control.sock"
    cfg.camera.replay_realtime = True
    cfg.camera.fps = 20.0
    return cfg


def test_ready_watchdog_stopping_in_process(tmp_path, shared_data, built_models, notify_socket):
    path, sock = notify_socket
    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    factory = MockFactory()
    app = App(config(tmp_path, built_models), source=str(still_folder(tmp_path, shared_data)), max_frames=30,
              pin_factory=factory, notifier=Notifier(environ=env))
    try:
        with app:
            assert app.run() == "max_frames"
    finally:
        factory.reset()
    messages = drain(sock)
    assert messages[0].startswith("READY=1")
    assert messages.count("WATCHDOG=1") >= 3  # 1.5 s of frames, pinged every 0.1 s
    assert messages[-1] == "STOPPING=1"


def test_sigterm_stops_cleanly(tmp_path, shared_data, built_models, notify_socket):
    path, sock = notify_socket
    cfg = config(tmp_path, built_models)
    cfg.gpio.pin_factory = "mock"
    cfg.camera.replay_loop = True
    cfg_file = tmp_path / "config.toml"
    write_config_atomic(cfg, cfg_file)
    env = {**os.environ, "NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen([sys.executable, "-m", "firmware", "run", "--config", str(cfg_file),
                             "--source", str(still_folder(tmp_path, shared_data))],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        sock.settimeout(60)
        first = sock.recv(4096).decode()
        assert first.startswith("READY=1")
        assert cfg.paths.control_socket.exists()
        time.sleep(1.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    messages = drain(sock)
    assert "WATCHDOG=1" in messages and messages[-1] == "STOPPING=1"
    assert not cfg.paths.control_socket.exists()
    assert b"device stopped: stopped" in err
    assert b"Traceback" not in err
