"""tests/run.sh: a failing or empty pytest run is a failure, with a summary line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def run_suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ROLLCALL_SKIP_INSTALL="1", ROLLCALL_TEST_ARTIFACTS=str(tmp_path / "artifacts"))
    return subprocess.run(["bash", str(REPO / "tests/run.sh"), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL, check=False)


def test_no_tests_collected_is_a_failure(tmp_path):
    result = run_suite(tmp_path, "tests/unit/test_provision_answers.py", "-k", "no_such_test_zzz")
    assert result.returncode == 1
    assert "collected no tests: that is a failure" in result.stdout
    assert "SUMMARY: FAILED: 0 passed" in result.stdout


def test_passing_run_reports_counts(tmp_path):
    result = run_suite(tmp_path, "tests/unit/test_provision_answers.py", "-k", "parse_broker")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUMMARY: PASSED: 10 passed, 0 failed, 0 errors, 0 skipped of 10" in result.stdout
    assert (tmp_path / "artifacts/junit.xml").exists()


def test_failing_run_fails(tmp_path):
    failing = tmp_path / "test_fails.py"
    failing.write_text("def test_fails():\n    assert 1 == 2\n")
    result = run_suite(tmp_path, str(failing))
    assert result.returncode == 1
    assert "SUMMARY: FAILED: 0 passed, 1 failed" in result.stdout
