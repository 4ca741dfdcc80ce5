"""The config schema: bad values give one clear error listing every problem; the
reference page in docs/ is generated from the schema and must stay in sync."""

from __future__ import annotations

import subprocess
import sys

import pytest

from firmware.config import Config, ConfigError, dump_config, load_config, parse_config, write_config_atomic
from tests.conftest import REPO


def test_defaults_are_valid_and_round_trip(tmp_path):
    path = tmp_path / "config.toml"
    write_config_atomic(Config(), path)
    assert load_config(path) == Config()
    assert path.stat().st_mode & 0o777 == 0o640


def test_missing_file_gives_defaults(tmp_path):
    assert load_config(tmp_path / "absent.toml") == Config()


def test_every_problem_is_listed_with_its_key():
    with pytest.raises(ConfigError) as err:
        parse_config({"camera": {"fps": -1}, "mqtt": {"port": 70000}, "device": {"timezone": "Mars/Base"}})
    text = str(err.value)
    assert "camera.fps" in text and "mqtt.port" in text and "device.timezone" in text
    assert "unknown time zone 'Mars/Base'" in text


def test_unknown_key_is_an_error_not_ignored():
    with pytest.raises(ConfigError, match="liveness.polcy"):
        parse_config({"liveness": {"polcy": "off"}})


def test_bad_policy_value_is_rejected():
    with pytest.raises(ConfigError, match="liveness.policy"):
        parse_config({"liveness": {"policy": "sometimes"}})


def test_invalid_toml_says_so_and_names_the_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[device\nname = 'x'\n")
    with pytest.raises(ConfigError, match="not valid TOML") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_bad_pin_number_is_rejected():
    with pytest.raises(ConfigError, match="gpio.green.pin"):
        parse_config({"gpio": {"green": {"pin": 99}}})


def test_dump_leaves_out_unset_optional_values():
    text = dump_config(Config())
    assert "password_file" not in text and "[mqtt]" in text


def test_reference_page_is_in_sync_with_the_schema():
    out = subprocess.run([sys.executable, "-m", "firmware.cli", "-q", "config", "reference"],
                         capture_output=True, text=True, check=True, cwd=REPO).stdout
    page = (REPO / "docs" / "configuration.md").read_text()
    assert out.strip() in page, "docs/configuration.md is stale: regenerate with `rollcall config reference`"
