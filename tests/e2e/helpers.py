"""What the end-to-end tests share: the browser's launch arguments, the screenshot folder,
bounded waits, and starting / stopping the real `rollcall` processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

from console.benchstack import port_open  # noqa: F401 - the e2e tests import it from here
from console.benchstack import stop as stop_process
from tests.conftest import REPO, models_dir, shared_data_dir

CHROMIUM = os.environ.get("ROLLCALL_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = REPO / "test-artifacts" / "e2e"
ROLLCALL = [sys.executable, "-m", "firmware.cli"]
KEEP_LOGS = "ROLLCALL_E2E_LOGS"  # a folder to copy the firmware and console logs to


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium or set ROLLCALL_CHROMIUM)")


def need_clip_and_models(clip: str) -> tuple[Path, Path]:
    """(the shared-data clip, the built models folder) for a stack that replays a real clip
    through the real firmware; skips when Chromium, the clip or the models are missing."""
    need_chromium()
    path = shared_data_dir() / clip
    if not path.is_file():
        pytest.skip(f"clip not found at {path} (set ROLLCALL_SHARED_DATA)")
    models = models_dir()
    if not any(models.glob("*.tflite")):
        pytest.skip(f"models not built in {models}: run `rollcall models build --out {models}`")
    return path, models


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 0.2 s until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def start(args: list[str], log: Path) -> subprocess.Popen:
    """Start ``rollcall <args>`` from the repo root, appending its output to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen([*ROLLCALL, *args], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the clean shutdown path), SIGKILL after 15 s."""
    stop_process(proc, grace_s=15.0)


def until(page, script: str, timeout: float = 20, what: str = "") -> None:
    """Poll a JS expression from Python (the console's CSP forbids the eval that
    Playwright's wait_for_function needs)."""
    wait_for(lambda: bool(page.evaluate(script)), timeout, what or script)


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@contextmanager
def chromium_context(width: int = 1280, height: int = 860, **options) -> Iterator:
    """Debian's headless Chromium with one browser context (that viewport, a 20 s default
    timeout); closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": width, "height": height}, **options)
        context.set_default_timeout(20000)
        try:
            yield context
        finally:
            context.close()
            browser.close()


def remove_stack(root: Path) -> None:
    """Delete a stack's temporary folder, first copying its logs to ``$ROLLCALL_E2E_LOGS``
    when that is set (what a failed run leaves to read)."""
    if os.environ.get(KEEP_LOGS):
        shutil.copytree(root / "log", os.environ[KEEP_LOGS], dirs_exist_ok=True)
    shutil.rmtree(root, ignore_errors=True)
