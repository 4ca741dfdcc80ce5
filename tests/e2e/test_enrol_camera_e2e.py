"""End to end: "Enrol from camera" on a replayed clip, with blink liveness ON.

The real firmware (`rollcall run`) whose camera is the clip ``blink/blinking_4.mp4``
(replayed in a loop, in real time), the real console (`rollcall console`) and a real
headless Chromium:

1. first-run setup, a new person, "Enrol from camera" with 3 frames;
2. the kiosk page shows the capture's prompt while it runs (state ``enrol``);
3. the capture page fills with the frames the device kept (after a blink), the admin
   unticks one and saves: the person page shows the others as ``door camera`` templates,
   and the firmware's control API lists them with ``source: device``;
4. a second capture is started and cancelled: nothing is stored.

Screenshots go to test-artifacts/e2e/ (30-...). ``ROLLCALL_E2E_LOGS=DIR`` keeps the logs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.helpers import (KEEP_LOGS, chromium_context, need_clip_and_models, port_open, remove_stack, shot, start,
                               stop, until, wait_for)

pytestmark = [pytest.mark.e2e]

PASSWORD = "e2e-Camera-passphrase-31"
CLIP = os.environ.get("ROLLCALL_E2E_BLINK_CLIP", "blink/blinking_4.mp4")
NAME = "Camera Person"
FRAMES = 3


@pytest.fixture(scope="module")
def stack():
    clip, models = need_clip_and_models(CLIP)
    root = Path(tempfile.mkdtemp(prefix="rc-e2e-camera-"))
    (root / "log").mkdir()
    port, sock = free_port(), root / "control.sock"
    config = root / "config.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{root}/data"\nmodels_dir = "{models}"\ncontrol_socket = "{sock}"\n'
        f'log_dir = "{root}/log"\n[camera]\nsource = "{clip}"\nfps = 10.0\n'
        '[gpio]\npin_factory = "mock"\n[mqtt]\nenabled = false\n[liveness]\npolicy = "blink"\n'
        f'[console]\nsecrets_dir = "{root}/secrets"\n')
    procs = []
    try:
        procs.append(start(["console", "--config", str(config), "--bind", "127.0.0.1", "--port", str(port)],
                           root / "log" / "console.log"))
        procs.append(start(["run", "--config", str(config)], root / "log" / "firmware.log"))
        wait_for(lambda: port_open(port), 60, "the console port")
        from firmware.control.client import ControlClient

        control = ControlClient(sock, timeout=2)

        def camera_running() -> bool:
            assert procs[1].poll() is None, f"firmware exited (set {KEEP_LOGS}=DIR to keep its log)"
            try:
                return control.get("/v1/status")["camera"] == "running"
            except Exception:  # not listening yet
                return False

        wait_for(camera_running, 60, "the firmware's camera")
        yield {"base": f"http://127.0.0.1:{port}", "control": control}
    finally:
        for proc in procs:
            stop(proc)
        remove_stack(root)


@pytest.fixture(scope="module")
def browser(stack):
    with chromium_context(1280, 900) as context:
        yield context


@pytest.fixture(scope="module")
def person_url(browser, stack):
    page = browser.new_page()
    base = stack["base"]
    page.goto(base + "/")
    page.wait_for_url("**/setup")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/setup/device")
    page.goto(base + "/people")
    page.fill("input[name=name]", NAME)
    page.select_option("select[name=basis]", "consent")
    page.click("form[action='/people'][method=post] button[type=submit]")
    page.wait_for_url("**/people/p*")
    url = page.url
    page.close()
    return url


def test_enrol_from_camera_keeps_the_chosen_frames_as_device_templates(browser, stack, person_url):
    page, kiosk = browser.new_page(), browser.new_page()
    person_id = person_url.rsplit("/", 1)[1]
    page.goto(person_url)
    page.select_option("#capture-form select[name=frames]", str(FRAMES))
    page.click("#capture-start")
    page.wait_for_url("**/capture")
    kiosk.goto(stack["base"] + "/kiosk")
    until(kiosk, "document.getElementById('kiosk').dataset.state === 'enrol'", timeout=10,
          what="the kiosk in enrolment mode")
    prompt = kiosk.inner_text("#kiosk-prompt")
    assert prompt and kiosk.inner_text("#kiosk-name") == NAME, prompt
    shot(kiosk, "30-camera-enrol-kiosk")
    kiosk.close()
    until(page, "document.getElementById('capture-state').textContent === 'done'", timeout=90,
          what="the capture to keep its frames")
    until(page, f"document.querySelectorAll('#capture-frames img').length === {FRAMES}", timeout=5)
    until(page, "[...document.querySelectorAll('#capture-frames img')].every(i => i.naturalWidth > 0)",
          timeout=10, what="the captured frames to load")
    shot(page, "31-camera-enrol-frames")
    status = stack["control"].get("/v1/capture")
    assert status["kept"] == FRAMES and all(f["face_px"] >= 64 for f in status["frames"])
    page.uncheck("#capture-frames input[value='1']")
    page.click("#capture-save")
    page.wait_for_selector("#results")
    shot(page, "32-camera-enrol-saved")
    results = page.inner_text("#results")
    assert results.count("accepted") == FRAMES - 1, results
    assert page.locator(".thumb[data-source=device]").count() == FRAMES - 1
    photos = stack["control"].get(f"/v1/people/{person_id}")["photos"]
    assert [p["source"] for p in photos] == ["device"] * (FRAMES - 1)
    page.close()


def test_a_cancelled_capture_stores_nothing(browser, stack, person_url):
    page = browser.new_page()
    person_id = person_url.rsplit("/", 1)[1]
    before = len(stack["control"].get(f"/v1/people/{person_id}")["photos"])
    page.goto(person_url)
    page.click("#capture-start")
    page.wait_for_url("**/capture")
    page.click("#capture-cancel")
    page.wait_for_url(person_url)
    assert stack["control"].get("/v1/capture")["state"] == "cancelled"
    assert len(stack["control"].get(f"/v1/people/{person_id}")["photos"]) == before
    page.close()
