"""install.sh --root with the real venv: the code goes in as a wheel, a rerun skips pip,
and prebuilt models are copied only when they match the manifest.

Needs PyPI (or pip's cache) for the pinned dependencies: slow, ~30 s with a warm cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_install_root import manifest, src  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run_install(src: Path, root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROLLCALL_ASSUME_PI="0")
    return subprocess.run(["bash", str(src / "install.sh"), "--root", str(root), *extra],
                          capture_output=True, text=True, env=env, timeout=900,
                          stdin=subprocess.DEVNULL, check=False)


def test_device_venv_from_a_wheel_and_idempotent(src, tmp_path):  # noqa: F811
    root = tmp_path / "root"
    first = run_install(src, root, "--no-models")
    assert first.returncode == 0, first.stdout + first.stderr
    venv = root / "opt/rollcall/venv"
    version = subprocess.run([str(venv / "bin/rollcall"), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("rollcall ")
    where = subprocess.run([str(venv / "bin/python"), "-c", "import firmware; print(firmware.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert str(venv) in where.stdout  # installed into site-packages, not pointing at a checkout
    assert not list(venv.glob("lib/python*/site-packages/__editable__*"))
    before = manifest(root)
    second = run_install(src, root, "--no-models")
    assert second.returncode == 0, second.stderr
    assert "code and dependencies unchanged (skipping pip)" in second.stdout
    assert manifest(root) == before


def test_prebuilt_models_are_checked(src, tmp_path, built_models):  # noqa: F811
    models = tmp_path / "models"
    shutil.copytree(built_models, models)
    tool = ["--no-venv", "--tool-venv", sys.prefix]
    good = run_install(src, tmp_path / "good", *tool, "--models", str(models))
    assert good.returncode == 0, good.stdout + good.stderr
    copied = list((tmp_path / "good/opt/rollcall/models").glob("*.tflite"))
    assert copied and all(c.read_bytes() == (built_models / c.name).read_bytes() for c in copied)
    verify = subprocess.run([str(Path(sys.prefix) / "bin/rollcall"), "models", "verify", "--dir",
                             str(tmp_path / "good/opt/rollcall/models")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    victim = sorted(copied)[0]
    victim = models / victim.name
    victim.write_bytes(victim.read_bytes()[:-16] + b"\0" * 16)
    bad = run_install(src, tmp_path / "bad", *tool, "--models", str(models))
    assert bad.returncode != 0
    assert victim.stem.split(".")[0] in bad.stderr or "hash" in bad.stderr.lower(), bad.stderr
