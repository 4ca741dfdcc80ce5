"""install.sh --root: the device layout, its modes, idempotence, upgrades, dry run, uninstall.

Runs the real script with bash on a staging directory. The source tree is copied first so
the tree hash is stable while other work goes on in the checkout. Privileged steps
(useradd, chown, systemctl, apt) are recorded in <root>/.rollcall-install-plan.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from firmware.config import load_config

REPO = Path(__file__).resolve().parents[2]
TOOL_VENV = Path(sys.prefix)

pytestmark = pytest.mark.integration

EXPECTED_MODES = {
    "etc/rollcall": 0o3750,
    "etc/rollcall/config.toml": 0o640,
    "etc/rollcall/credentials": 0o700,
    "etc/rollcall/credentials/mqtt-password": 0o600,
    "etc/rollcall/credentials/mqtt-client.key": 0o600,
    "etc/systemd/system/rollcall-firmware.service": 0o644,
    "etc/systemd/system/rollcall-console.service": 0o644,
    "opt/rollcall": 0o755,
    "opt/rollcall/models": 0o755,
    "var/lib/rollcall": 0o750,
    "var/lib/rollcall-console": 0o700,
    "var/lib/rollcall-console/setup-code": 0o600,
    "var/log/rollcall": 0o750,
    "var/backups/rollcall": 0o700,
}


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    """A frozen copy of the parts of the checkout install.sh reads."""
    dest = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tflite", "*.egg-info")
    for name in ("firmware", "console", "models", "provisioning", "systemd"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("install.sh", "pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, dest / name)
    return dest


def install(src: Path, root: Path, *extra: str, pi: bool = False, check: bool = True,
            python: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROLLCALL_ASSUME_PI="1" if pi else "0")
    if python:
        env["ROLLCALL_PYTHON"] = python
    cmd = ["bash", str(src / "install.sh"), "--root", str(root), "--no-venv",
           "--tool-venv", str(TOOL_VENV), "--no-models", *extra]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180,
                            stdin=subprocess.DEVNULL, check=False)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def manifest(root: Path) -> dict[str, tuple[int, str]]:
    """path -> (mode, sha256 or 'dir'/'link') for everything under root."""
    entries = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        mode = path.lstat().st_mode & 0o7777
        if path.is_symlink():
            entries[rel] = (mode, "link:" + os.readlink(path))
        elif path.is_dir():
            entries[rel] = (mode, "dir")
        else:
            entries[rel] = (mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return entries


def plan(root: Path) -> list[str]:
    return (root / ".rollcall-install-plan").read_text().splitlines()


def test_layout_and_modes(src, tmp_path):
    root = tmp_path / "root"
    result = install(src, root)
    for rel, mode in EXPECTED_MODES.items():
        assert (root / rel).exists(), rel
        assert (root / rel).stat().st_mode & 0o7777 == mode, f"{rel}: {oct((root / rel).stat().st_mode)}"
    for unit in ("rollcall-firmware.service", "rollcall-console.service", "rollcall-firstboot.service"):
        assert (root / "etc/systemd/system" / unit).read_bytes() == (src / "systemd" / unit).read_bytes()
    assert os.readlink(root / "usr/local/bin/rollcall") == "/opt/rollcall/venv/bin/rollcall"
    config = load_config(root / "etc/rollcall/config.toml")
    assert config.paths.data_dir == Path("/var/lib/rollcall")
    assert config.paths.models_dir == Path("/opt/rollcall/models")
    assert config.console.secrets_dir == Path("/var/lib/rollcall-console")
    assert config.gpio.enabled is False  # not a Pi
    assert "Console: http" in result.stdout
    assert "not a Raspberry Pi (no picamera2)" in result.stdout
    if not list(Path("/dev").glob("video*")) and not shutil.which("rpicam-hello"):
        assert "no camera found (no /dev/video* and no libcamera camera)" in result.stderr
    code = (root / "var/lib/rollcall-console/setup-code").read_text().strip()
    assert len(code) == 14 and code in result.stdout


def test_plan_records_privileged_steps(src, tmp_path):
    root = tmp_path / "root"
    install(src, root)
    steps = plan(root)
    assert any(s.startswith("useradd --system") and s.endswith(" rollcall") for s in steps)
    assert any("--groups video,gpio" in s for s in steps if " rollcall" in s) or \
        any(s.startswith("usermod -a -G video,gpio rollcall") for s in steps)
    assert "chown rollcall-console:rollcall /etc/rollcall/config.toml" in steps
    assert "chown rollcall:rollcall /var/lib/rollcall" in steps
    assert ("systemctl enable rollcall-firmware.service rollcall-console.service "
            "rollcall-firstboot.service") in steps
    assert "systemctl restart rollcall-firmware.service rollcall-console.service" in steps
    assert not any(str(root) in s for s in steps if s.startswith("chown"))


def test_second_run_changes_nothing(src, tmp_path):
    root = tmp_path / "root"
    install(src, root)
    first = manifest(root)
    second_run = install(src, root)
    assert manifest(root) == first
    assert "keeping existing config" in second_run.stdout


def test_dry_run_changes_nothing(src, tmp_path):
    fresh = tmp_path / "fresh"
    result = install(src, fresh, "--dry-run")
    assert not fresh.exists()
    assert "[dry-run] useradd" in result.stdout and "nothing was changed" in result.stdout
    root = tmp_path / "root"
    install(src, root)
    (root / "etc/rollcall/credentials/mqtt-password").unlink()
    before = manifest(root)
    result = install(src, root, "--dry-run")
    assert manifest(root) == before
    assert "[dry-run] install -m 0600 /dev/null" in result.stdout


def test_upgrade_keeps_config_credentials_and_data(src, tmp_path):
    root = tmp_path / "root"
    install(src, root)
    data = root / "var/lib/rollcall"
    try:
        from firmware.store import Store
    except ImportError:  # the store is not in this tree: plain files stand in for its data
        (data / "people.json").write_text('{"_default": {"1": {"id": "p1", "name": "Ada"}}}')
    else:
        with Store(data) as store:
            store.people.add("p1", "Ada Lovelace")
    config = root / "etc/rollcall/config.toml"
    text = config.read_text()
    assert re.search(r'^id = "(rc-[0-9a-f]{10}|[A-Za-z0-9_.-]+)"$', text, re.M), text  # made at install
    config.write_text(re.sub(r'^id = ".*"$', 'id = "door-12"', text, count=1, flags=re.M))
    secret = root / "etc/rollcall/credentials/mqtt-password"
    secret.write_text("kept-secret\n")
    # a previous version: other code, an older unit file
    (root / "opt/rollcall/.installed-tree").write_text("previous-version\n")
    (root / "etc/systemd/system/rollcall-console.service").write_text("[Service]\nExecStart=/bin/true\n")
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}

    result = install(src, root)

    after = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    assert {p: after.get(p) for p in before} == before  # the migration may add files, not lose any
    assert load_config(config).device.id == "door-12"
    assert secret.read_text() == "kept-secret\n"
    assert (root / "etc/systemd/system/rollcall-console.service").read_bytes() == \
        (src / "systemd/rollcall-console.service").read_bytes()
    backups = list((root / "var/backups/rollcall").glob("data-*.tar.gz"))
    assert len(backups) == 1 and backups[0].stat().st_mode & 0o777 == 0o600
    with tarfile.open(backups[0]) as tar:
        names = tar.getnames()
    assert {"./" + str(p.relative_to(data)) for p in before} <= set(names)
    hook = ("data migrated", "data files already current", "no data migration in this version")
    assert any(h in result.stdout for h in hook), result.stdout  # the store's migration hook ran
    assert (root / "opt/rollcall/.installed-tree").read_text() != "previous-version\n"


def test_uninstall_keeps_data_unless_purged(src, tmp_path):
    root = tmp_path / "root"
    install(src, root)
    (root / "var/lib/rollcall/roster.json").write_text("{}")
    install(src, root, "--uninstall")
    assert not (root / "opt/rollcall").exists() and not (root / "usr/local/bin/rollcall").is_symlink()
    assert not (root / "etc/systemd/system/rollcall-firmware.service").exists()
    assert (root / "var/lib/rollcall/roster.json").exists()
    assert (root / "etc/rollcall/config.toml").exists()
    install(src, root, "--uninstall", "--purge")
    assert not (root / "var/lib/rollcall").exists() and not (root / "etc/rollcall").exists()


def test_raspberry_pi_needs_os_camera_and_gpio_packages(src, tmp_path):
    root = tmp_path / "root"
    install(src, root, pi=True)
    config = load_config(root / "etc/rollcall/config.toml")
    assert config.gpio.enabled and config.gpio.pin_factory == "lgpio"
    installs = [s for s in plan(root) if s.startswith("apt-get install")]
    if shutil.which("dpkg-query"):
        missing = [p for p in ("python3-picamera2", "python3-libcamera", "python3-lgpio")
                   if subprocess.run(["dpkg-query", "-W", p], capture_output=True).returncode != 0]
        for package in missing:
            assert any(package in s for s in installs), (package, installs)


def test_python_too_old_is_explained(src, tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\ncase "$2" in *print*) echo 3.9 ;; *) exit 1 ;; esac\n')
    fake.chmod(0o755)
    result = install(src, tmp_path / "root", python=str(fake), check=False)
    assert result.returncode != 0
    assert "Python 3.9 is too old" in result.stderr and "3.11" in result.stderr


def test_unknown_option_is_refused(src, tmp_path):
    result = install(src, tmp_path / "root", "--frobnicate", check=False)
    assert result.returncode != 0 and "unknown option: --frobnicate" in result.stderr


def test_upgrade_migrates_a_prototype_data_dir(src, tmp_path):
    pytest.importorskip("firmware.store.migrate", reason="the store's migration is not in this tree")
    root = tmp_path / "root"
    install(src, root)
    data = root / "var/lib/rollcall"
    legacy = {"people": {"1": {"person_id": "p1", "name": "Ada Lovelace"}},
              "attendance": {"1": {"ts": 1763700000.0, "person_id": "p1", "status": "present",
                                   "session_id": "s1"}}}
    (data / "rollcall.json").write_text(json.dumps(legacy))
    (data / "schema_version").unlink(missing_ok=True)
    (root / "opt/rollcall/.installed-tree").write_text("prototype\n")

    result = install(src, root)

    assert "data migrated" in result.stdout, result.stdout + result.stderr
    assert (data / "schema_version").read_text().strip() == "2"
    assert "Ada Lovelace" in (data / "people/people.json").read_text()
    with tarfile.open(next((root / "var/backups/rollcall").glob("data-*.tar.gz"))) as tar:
        saved = json.load(tar.extractfile("./rollcall.json"))
    assert saved == legacy


def test_too_little_disk_for_the_model_build_is_explained(src, tmp_path):
    models_cli = subprocess.run([str(TOOL_VENV / "bin/rollcall"), "models", "verify", "--help"],
                                capture_output=True, check=False)
    if models_cli.returncode != 0:
        pytest.skip("`rollcall models` is not in this tree")
    env = dict(os.environ, ROLLCALL_ASSUME_PI="0", ROLLCALL_BUILD_DISK_MB="999999999",
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    result = subprocess.run(["bash", str(src / "install.sh"), "--root", str(tmp_path / "root"), "--no-venv",
                             "--tool-venv", str(TOOL_VENV)], capture_output=True, text=True, env=env,
                            timeout=180, stdin=subprocess.DEVNULL, check=False)
    assert result.returncode != 0
    assert "not enough disk to build the models" in result.stderr
    assert "sudo ./install.sh --models DIR" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_device_install_needs_root(src):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        script = Path(tmp) / "install.sh"
        shutil.copy(src / "install.sh", script)
        script.chmod(0o755)
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash",
                                 str(script)], capture_output=True, text=True, cwd=tmp, timeout=60, check=False)
    assert result.returncode != 0
    assert "run as root (sudo ./install.sh), or use --dev, --root DIR or --dry-run" in result.stderr
