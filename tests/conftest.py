"""Shared fixtures: where the real data and the built models are, and a real mosquitto.

Real data is read from ../shared/data (or $ROLLCALL_SHARED_DATA); tests that need it skip
with a clear reason when it is absent (a user's fresh clone has no ../shared).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("ROLLCALL_SHARED_DATA", REPO.parent / "shared" / "data"))


def models_dir() -> Path:
    return Path(os.environ.get("ROLLCALL_MODELS_DIR", REPO / "var" / "models"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "README.md").exists():
        pytest.skip(f"real test data not found at {path} (set ROLLCALL_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def built_models() -> Path:
    path = models_dir()
    if not any(path.glob("*.tflite")):
        pytest.skip(f"models not built in {path}: run `./install.sh --dev` "
                    "or `rollcall models build --out {path}` (or set ROLLCALL_MODELS_DIR)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mosquitto:
    """A real mosquitto broker on a free loopback port, started and stopped by the test."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = ""):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Mosquitto":
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.workdir}/\nmax_queued_messages 100000\n{self.extra_conf}\n"
        )
        log = open(self.workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    yield broker
    broker.stop()
