"""Small fixes of issue 14: group --help, the dev config found without --config, and the
recognition bench saying why there is no speed-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from firmware.bench import recognition_eval as ev
from firmware.cli import COMMANDS, find_command
from firmware.config import dev_config_path

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("group", ["central", "models", "bench", "config"])
def test_group_help_lists_its_commands(group):
    result = subprocess.run([sys.executable, "-m", "firmware.cli", group, "--help"], capture_output=True,
                            text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "arguments are required" not in result.stderr
    for words, _module, _help in COMMANDS:
        if words.startswith(group + " "):
            assert words.split()[1] in result.stdout


def test_find_command_skips_options():
    assert find_command(["-v", "models", "verify", "--dir", "x"]) == ("models verify", "models.cli")
    assert find_command(["models", "--help"]) is None and find_command([]) is None


def test_dev_config_named_by_the_venv(tmp_path):
    venv, config = tmp_path / "venv", tmp_path / "var" / "config.toml"
    venv.mkdir()
    assert dev_config_path(venv) is None
    (venv / "rollcall-dev-config").write_text(f"{config}\n")
    assert dev_config_path(venv) is None  # named but gone
    config.parent.mkdir()
    config.write_text("[device]\nid = \"dev\"\n")
    assert dev_config_path(venv) == config


def test_models_verify_without_config_uses_the_dev_config(tmp_path):
    """`.venv/bin/rollcall models verify` after `./install.sh --dev`: the venv names the dev
    config, so the command looks in var/models, not /var/lib/rollcall."""
    from firmware.config import DEFAULT_CONFIG_PATH

    if DEFAULT_CONFIG_PATH.exists():
        pytest.skip(f"{DEFAULT_CONFIG_PATH} exists here: it comes first")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
                   check=True, timeout=120)
    models = tmp_path / "var" / "models"
    models.mkdir(parents=True)
    config = tmp_path / "var" / "config.toml"
    config.write_text(f'[paths]\nmodels_dir = "{models}"\n')
    (venv / "rollcall-dev-config").write_text(f"{config}\n")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "firmware.cli", "models", "verify"],
                            capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert str(models) in result.stdout + result.stderr
    assert "/var/lib/rollcall" not in result.stdout + result.stderr


def test_bench_says_how_to_add_the_missing_baseline():
    results = {"verification": {"dlib_resnet_int8": {"accuracy_mean": 0.99, "tar_at_far_1e-3": 0.96,
                                                     "accuracy_std": 0.01}},
               "latency_ms": {"embed": {"median_ms": 3.0, "p95_ms": 4.0}}, "rss_mb_after_default_pipeline": 100,
               "open_set": {}, "baseline": {"error": "the face_recognition baseline is not installed; add it "
                                                     "with: pip install --no-deps face_recognition==1.3.0"}}
    out = ev.headline(results, "dlib_resnet_int8")
    assert out["speedup_vs_baseline"] is None and "face_recognition==1.3.0" in out["baseline_not_run"]
    skipped = ev.headline({**results, "baseline": {"skipped": True}}, "dlib_resnet_int8")
    assert skipped["baseline_not_run"] == "--no-baseline given"


def test_bench_baseline_missing_message(monkeypatch):
    from firmware.bench import recognition

    monkeypatch.setitem(sys.modules, "face_recognition", None)  # as if it were not installed
    answer = recognition._baseline([[]], quick=True)
    assert "not installed" in answer["error"] and "pip install --no-deps face_recognition==1.3.0" in answer["error"]


def test_rollcall_up_starts_a_firmware_that_asked_for_a_restart_at_once():
    """Exit code 75 is a restart request: no backoff (a crash waits 1 s, 2 s, 4 s...)."""
    from firmware.cli.up import RESTART_EXIT, _Child
    from firmware.runtime.app import RESTART_EXIT as APP_RESTART_EXIT

    assert RESTART_EXIT == APP_RESTART_EXIT == 75
    child = _Child("firmware", [sys.executable, "-c", "raise SystemExit(75)"])
    child.poll(0.0)
    child.proc.wait(30)
    first = child.proc.pid
    child.poll(0.1)
    assert child.proc is not None and child.proc.pid != first and child.backoff == 1.0
    child.proc.wait(30)
    crash = _Child("firmware", [sys.executable, "-c", "raise SystemExit(1)"])
    crash.poll(0.0)
    crash.proc.wait(30)
    crash.poll(0.1)
    assert crash.proc is None and crash.next_start == pytest.approx(1.1)  # waits before retrying
