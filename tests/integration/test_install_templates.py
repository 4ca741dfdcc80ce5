"""install.sh's config templates validate with the firmware's schema; option handling."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import tomllib

from firmware.config import parse_config

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def shell(snippet: str, **env: str) -> subprocess.CompletedProcess:
    """Run bash with install.sh sourced (functions only: main does not run)."""
    return subprocess.run(["bash", "-c", f"source ./install.sh; {snippet}"], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60, check=False)


def test_dev_config_matches_the_dev_layout():
    result = shell("dev_config")
    assert result.returncode == 0, result.stderr
    config = parse_config(tomllib.loads(result.stdout), "dev config")
    assert config.paths.data_dir == Path("var/data") and config.paths.models_dir == Path("var/models")
    assert config.paths.control_socket == Path("var/run/control.sock")
    assert config.paths.log_dir == Path("var/log") and config.console.secrets_dir == Path("var/console")
    assert (config.console.bind, config.console.port) == ("127.0.0.1", 8080)
    assert config.mqtt.host == "" and config.gpio.pin_factory == "mock" and config.camera.source == "auto"


@pytest.mark.parametrize("pi", ["0", "1"])
def test_device_config_validates(pi):
    result = shell("device_config", ROLLCALL_ASSUME_PI=pi)
    assert result.returncode == 0, result.stderr
    config = parse_config(tomllib.loads(result.stdout), "device config")
    assert config.paths.data_dir == Path("/var/lib/rollcall")
    assert config.paths.control_socket == Path("/run/rollcall/control.sock")
    assert config.gpio.enabled is (pi == "1")
    assert config.console.bind == "0.0.0.0"


def test_help_and_bad_combinations():
    ok = subprocess.run(["bash", "install.sh", "--help"], cwd=REPO, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "--uninstall" in ok.stdout and "--models DIR" in ok.stdout
    for args, message in ((["--purge"], "--purge only goes with --uninstall"),
                          (["--dev", "--root", "/tmp/x"], "--root and --dev do not mix"),
                          (["--models", "/nonexistent-dir"], "not a directory")):
        bad = subprocess.run(["bash", "install.sh", *args], cwd=REPO, capture_output=True, text=True, check=False)
        assert bad.returncode != 0 and message in bad.stderr, (args, bad.stderr)


def test_octal_helper_matches_stat():
    result = shell("octal 0750; echo; octal 3750; echo; octal 0600")
    assert result.stdout.split() == ["750", "3750", "600"]
