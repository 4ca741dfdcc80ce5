"""The device under a real NOTIFY_SOCKET: READY, WATCHDOG while healthy, STOPPING; and
`rollcall run` as a subprocess shuts down cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import cv2
import pytest
from gpiozero.pins.mock import MockFactory

from firmware.runtime.app import App
from firmware.config import Config, write_config_atomic
from firmware.hal.systemd import Notifier

pytestmark = pytest.mark.integration

STILL = "spoof/print-and-tablet-stills/image_T1.jpg"


class Listener:
    """Plays systemd: receives every notification on a thread (as systemd does, so the
    datagram queue never fills)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except (TimeoutError, socket.timeout):
                continue

    def wait_for(self, prefix, timeout=60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(m.startswith(prefix) for m in self.messages):
                return True
            time.sleep(0.05)
        return False

    def close(self):
        time.sleep(0.3)
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener(tmp_path):
    lis = Listener(tmp_path / "notify.sock")
    yield lis
    lis._stop.set()


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


def test_ready_watchdog_stopping_in_process(tmp_path, shared_data, built_models, listener):
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}
    factory = MockFactory()
    app = App(config(tmp_path, built_models), source=str(still_folder(tmp_path, shared_data)), max_frames=30,
              pin_factory=factory, notifier=Notifier(environ=env))
    try:
        with app:
            assert app.run() == "max_frames"
    finally:
        factory.reset()
    listener.close()
    messages = listener.messages
    assert messages[0].startswith("READY=1")
    assert messages.count("WATCHDOG=1") >= 3  # 1.5 s of frames, pinged every 0.1 s
    assert messages[-1] == "STOPPING=1"


def test_sigterm_stops_cleanly(tmp_path, shared_data, built_models, listener):
    cfg = config(tmp_path, built_models)
    cfg.gpio.pin_factory = "mock"
    cfg.camera.replay_loop = True
    cfg_file = tmp_path / "config.toml"
    write_config_atomic(cfg, cfg_file)
    env = {**os.environ, "NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen([sys.executable, "-m", "firmware", "--config", str(cfg_file),
                             "--source", str(still_folder(tmp_path, shared_data))],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert listener.wait_for("READY=1")
        assert cfg.paths.control_socket.exists()
        assert listener.wait_for("WATCHDOG=1")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    listener.close()
    messages = listener.messages
    assert messages[0].startswith("READY=1")
    assert "WATCHDOG=1" in messages and messages[-1] == "STOPPING=1"
    assert not cfg.paths.control_socket.exists()
    assert b"device stopped: stopped" in err
    assert b"Traceback" not in err
