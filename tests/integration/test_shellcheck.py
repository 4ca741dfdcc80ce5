"""Every shell script in the repo is shellcheck clean and starts with strict mode."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", ".venv", "var", "test-artifacts", "node_modules", "build", "dist", "__pycache__"}

pytestmark = pytest.mark.integration


def shell_scripts() -> list[Path]:
    """*.sh files and files whose first line is a bash/sh shebang."""
    found = []
    for path in REPO.rglob("*"):
        if any(part in SKIP_DIRS for part in path.relative_to(REPO).parts) or not path.is_file():
            continue
        if path.suffix == ".sh":
            found.append(path)
            continue
        try:
            with path.open("rb") as handle:
                first = handle.readline(80)
        except OSError:
            continue
        if first.startswith(b"#!") and (b"bash" in first or first.rstrip().endswith(b"/sh")):
            found.append(path)
    return sorted(found)


def test_the_known_scripts_are_found():
    names = {str(p.relative_to(REPO)) for p in shell_scripts()}
    assert {"install.sh", "tests/run.sh", ".ci/run"} <= names


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck missing locally (tests/run.sh apt-get installs it)")
def test_shellcheck_clean():
    scripts = shell_scripts()
    result = subprocess.run(["shellcheck", "--external-sources", *map(str, scripts)],
                            capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bash_scripts_use_strict_mode():
    for script in shell_scripts():
        text = script.read_text()
        if text.startswith("#!") and "bash" in text.splitlines()[0]:
            assert "set -euo pipefail" in text, f"{script.relative_to(REPO)}: no `set -euo pipefail`"
