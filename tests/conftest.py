"""Shared fixtures: where the real data and the built models are, and a real mosquitto.

Real data is read from ../shared/data (or $ROLLCALL_SHARED_DATA); tests that need it skip
with a clear reason when it is absent (a user's fresh clone has no ../shared).
"""

from __future__ import annotations

import os
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


from firmware.bench.broker import BrokerUnavailable, free_port  # noqa: E402
from firmware.bench.broker import Mosquitto as _Mosquitto  # noqa: E402


class Mosquitto(_Mosquitto):
    """The broker of firmware/bench/broker.py; skips the test when mosquitto is not installed."""

    def start(self) -> "Mosquitto":
        try:
            return super().start()
        except BrokerUnavailable as exc:
            pytest.skip(str(exc))


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    yield broker
    broker.stop()


# The short subset that also runs inside the emulated arm64 root (tests/arm64/check.sh):
# the pure domain logic, the runtime loading real models, the store and the bundle checks.
# Emulation is 10-50x slower, so keep this list short (the real-model pipeline on real faces
# is covered by the check's own host-vs-arm64 embedding comparison; its tests here took 12
# minutes under emulation).
ARM64_SUBSET = {
    "tests/unit/test_matching_gallery.py",
    "tests/unit/test_liveness_tracker.py",
    "tests/unit/test_models_runtime.py",
    "tests/unit/test_vision_align.py",
    "tests/unit/test_store_attendance.py",
    "tests/unit/test_roster_bundle_verify.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(REPO).as_posix()
        if rel in ARM64_SUBSET:
            item.add_marker(pytest.mark.arm64)


from firmware.bench.postgres import Postgres, PostgresUnavailable  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL for the test session (a private port, a temp data dir)."""
    try:
        server = Postgres().start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def postgres(postgres_server, request):
    """A fresh, empty database on the session's PostgreSQL; yields its URL."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:40]
    admin = postgres_server.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_server.url.rsplit("/", 1)[0] + "/" + name
