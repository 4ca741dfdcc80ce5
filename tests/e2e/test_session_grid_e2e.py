"""End to end: the session grid keeps a status chosen by keyboard through its 2-second
refreshes, and the report page renders (real `rollcall run` without a camera, real
`rollcall console`, real headless Chromium).

The data dir is seeded with the real Store before the firmware starts: five pupils on a
roster, ten completed sessions over the last two weeks (for the report) and one session
in progress now. The README's screenshot of the report page comes from this test
(``docs/img/report.png`` is refreshed when ``ROLLCALL_UPDATE_SCREENSHOTS=1``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port
from tests.e2e.helpers import SHOTS, chromium_context, need_chromium, port_open, shot, start, stop, until, wait_for

pytestmark = [pytest.mark.e2e]

PASSWORD = "e2e-Grid-passphrase-42"
NAMES = ("Ada Quill", "Ben Ashdown", "Cleo Sand", "Dan Pell", "Eve Moss")  # made-up names


def _seed(data: Path) -> dict:
    from firmware.store import Store

    now = time.time()
    with Store(data) as store:
        ids = [store.people.add(f"p{i}", name, f"2026-{i + 1:03d}")["id"] for i, name in enumerate(NAMES)]
        roster = store.rosters.create("Year 9 Maths", [{"person_id": p, "seat": f"A{i + 1}"}
                                                       for i, p in enumerate(ids)])
        for back in range(10, 0, -1):  # completed sessions, one a day
            start_ts = now - back * 86400
            s = store.sessions.create(roster["id"], "lab", f"Maths day -{back}", start_ts, start_ts + 3000,
                                      start_ts + 300)
            store.sessions.set_state(s["id"], "in_progress", "seed", start_ts)
            for i, pid in enumerate(ids):
                if i == 4 and back % 3:  # Eve misses two sessions in three
                    continue
                late = i == 3 and back % 2  # Dan is often late
                store.attendance.record(s["id"], pid, captured_at=start_ts + (600 if late else 60))
            store.sessions.set_state(s["id"], "completed", "seed", start_ts + 3000)
        live = store.sessions.create(roster["id"], "lab", "Maths now", now - 600, now + 7200, now + 600)
        store.sessions.set_state(live["id"], "in_progress", "seed", now - 600)
        store.attendance.record(live["id"], ids[1], captured_at=now - 500)
    return {"roster_id": roster["id"], "live": live["id"], "ids": ids}


@pytest.fixture(scope="module")
def stack():
    from tests.conftest import models_dir

    need_chromium()
    root = Path(tempfile.mkdtemp(prefix="rc-grid-"))
    (root / "log").mkdir()
    seeded = _seed(root / "data")
    config = root / "config.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{root}/data"\nmodels_dir = "{models_dir()}"\n'
        f'control_socket = "{root}/control.sock"\nlog_dir = "{root}/log"\n'
        f'[gpio]\npin_factory = "mock"\n[mqtt]\nenabled = false\n'
        f'[console]\nsecrets_dir = "{root}/secrets"\n')
    port = free_port()
    firmware = start(["run", "--config", str(config), "--source", str(root / "no-camera")],
                     root / "log" / "firmware.log")
    console = start(["console", "--config", str(config), "--bind", "127.0.0.1", "--port", str(port)],
                    root / "log" / "console.log")
    try:
        wait_for(lambda: (root / "control.sock").exists(), 60, "the firmware's control socket")
        wait_for(lambda: port_open(port), 30, "the console port")
        yield {"root": root, "base": f"http://127.0.0.1:{port}", **seeded}
    finally:
        stop(console)
        stop(firmware)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def page(stack):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with chromium_context(1100, 800) as context:
        tab = context.new_page()
        tab.goto(stack["base"] + "/")
        tab.fill("input[name=password]", PASSWORD)
        tab.fill("input[name=password2]", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url("**/setup/device")
        yield tab


def _row(person_id: str) -> str:
    return f'tr[data-person="{person_id}"]'


def test_keyboard_status_edit_survives_grid_refresh(page, stack):
    ben = stack["ids"][1]
    page.goto(f"{stack['base']}/sessions/{stack['live']}")
    select = page.locator(f"{_row(ben)} select[name=status]")
    assert select.input_value() == "present"
    select.focus()
    page.keyboard.press("ArrowDown")  # present -> late, by keyboard only
    assert select.input_value() == "late"
    page.keyboard.press("Tab")  # focus moves on to the row's "Set" button
    assert page.evaluate("document.activeElement.textContent") == "Set"
    page.wait_for_timeout(4500)  # two grid refreshes (every 2 s) happen meanwhile
    assert select.input_value() == "late"
    assert page.inner_text(f"{_row(ben)} [data-status]") == "present"  # the pill shows the stored one
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_load_state()
    until(page, f"document.querySelector('{_row(ben)} [data-status]').textContent === 'late'",
          what="the saved status")
    assert "Status changed" in page.inner_text(".flash")
    page.wait_for_timeout(2500)  # a refresh after the save keeps the saved value
    assert page.locator(f"{_row(ben)} select[name=status]").input_value() == "late"
    shot(page, "grid-after-keyboard-edit")


def test_report_page_renders_chart_and_flags(page, stack):
    page.goto(f"{stack['base']}/reports?roster_id={stack['roster_id']}")
    assert page.locator("#report-chart svg polyline").count() == 1
    assert page.inner_text("#report-flagged") == "1"  # Eve: 3 of 10
    eve = page.inner_text(_row(stack["ids"][4]))
    assert "below" in eve and "30.0%" in eve
    page.emulate_media(media="print")
    assert page.locator("header.top").is_hidden() and page.locator("#report-form").is_hidden()
    page.emulate_media(media="screen")
    shot(page, "report")
    if os.environ.get("ROLLCALL_UPDATE_SCREENSHOTS") == "1":
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        page.locator("main").screenshot(path=str(REPO / "docs" / "img" / "report.png"))
