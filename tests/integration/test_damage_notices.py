"""Damage and exhaustion become persistent notices the admin must acknowledge (issue 13.4):
real Store files moved aside, a damaged journal, a nearly full disk, unreadable camera files;
shown through the control API, the device status and the console dashboard."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware.control.web import json_depth
from firmware.control.client import ControlClient
from firmware.control.server import ControlServer
from firmware.errors import CameraError, ControlError
from firmware.hal.sources import FileSource
from firmware.runtime.damage import DamageWatch, Usage
from firmware.store import Store
from tests.doubles.control import FakeDevice
from tests.unit.test_console_support import admin, console_env  # noqa: F401

pytestmark = pytest.mark.integration


def test_a_file_moved_aside_is_a_notice_until_acknowledged(tmp_path):
    with Store(tmp_path / "d") as store:
        store.people.add("p1", "Ada")
    people = tmp_path / "d" / "people" / "people.json"
    people.write_bytes(people.read_bytes()[:10])  # truncated
    with Store(tmp_path / "d") as store:
        [notice] = store.notices.active()
        assert notice["kind"] == "file_moved_aside" and "people/people.json" in notice["message"]
        assert "list of people" in notice["lost"] and Path(notice["copy"]).exists()
    with Store(tmp_path / "d") as store:  # still there after a restart
        assert [n["id"] for n in store.notices.active()] == [notice["id"]]
        store.notices.acknowledge(notice["id"], "admin")
        assert store.notices.active() == []
    assert (tmp_path / "d" / "notices.json").stat().st_mode & 0o777 == 0o600


def test_a_journal_with_unreadable_steps_is_a_notice_and_a_torn_tail_is_not(tmp_path, caplog):
    with Store(tmp_path / "d", checkpoint_s=0) as store:
        store.outbox.put("event/custom", {"n": 1})
        store.outbox.put("event/custom", {"n": 2})
        wal = sorted((tmp_path / "d" / "journal").glob("wal-*.jsonl"))[-1]
        lines = wal.read_bytes().split(b"\n")
        store._ctx.journal.close()
    damaged = [lines[0][:20] + b"#garbage"] + lines[1:]
    wal.write_bytes(b"\n".join(damaged))
    with Store(tmp_path / "d", checkpoint_s=0) as store:
        [notice] = store.notices.active()
        assert notice["kind"] == "journal_damaged" and "unreadable steps" in notice["message"]
    torn = tmp_path / "t"
    with Store(torn, checkpoint_s=0) as store:
        store.outbox.put("event/custom", {"n": 1})
    (torn / "journal" / "wal-000099.jsonl").write_bytes(lines[1] + b'\n{"ops": [')  # cut by power loss
    with Store(torn, checkpoint_s=0) as store:
        assert store.notices.active() == []
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "never acknowledged" not in text and "cannot be told apart" in text


class Board:
    def __init__(self) -> None:
        self.raised: list[tuple] = []

    def raise_(self, key, kind, message, lost="", copy=""):
        self.raised.append((key, kind, message))
        return {}


@pytest.mark.parametrize("total_mb, free_mb, low", [(32_000, 150, True), (1_000, 40, True),
                                                     (32_000, 1_000, True), (32_000, 2_000, False), (2_000, 300, False)])
def test_disk_nearly_full_below_200_mb_or_5_percent(tmp_path, total_mb, free_mb, low):
    board = Board()
    usage = Usage(total_mb * 2**20, (total_mb - free_mb) * 2**20, free_mb * 2**20)
    DamageWatch(tmp_path, board, usage=lambda path: usage).check({})
    assert bool(board.raised) is low
    if low:
        assert board.raised[0][1] == "disk_low" and f"{free_mb} MB free" in board.raised[0][2]


def test_unreadable_camera_files_are_skipped_counted_and_noticed(tmp_path):
    folder = tmp_path / "cam"
    folder.mkdir()
    image = np.full((48, 64, 3), 128, np.uint8)
    for name in ("a.jpg", "c.jpg"):
        cv2.imwrite(str(folder / name), image)
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    source = FileSource(folder, realtime=False, loop=True)
    source.start()
    frames = [source.read() for _ in range(6)]  # two passes and more: never stops at b.jpg
    assert all(f is not None for f in frames) and source.skipped >= 2
    assert source.unreadable == {"b.jpg": "missing or not an image"}
    board = Board()
    watch = DamageWatch(tmp_path, board, usage=lambda p: Usage(10**12, 0, 10**12))
    status = {"source": "file:cam", "unreadable_files": source.unreadable}
    watch.check(status)
    watch.check(status)
    assert [r[1] for r in board.raised] == ["camera_files_unreadable"] and "b.jpg" in board.raised[0][2]
    for name in ("a.jpg", "c.jpg"):
        (folder / name).write_bytes(b"broken too")
    broken = FileSource(folder, realtime=False, loop=True)
    broken.start()
    with pytest.raises(CameraError, match="none of the 3 images"):
        broken.read()


def test_control_api_lists_and_acknowledges_notices_and_refuses_deep_json(tmp_path):
    store = Store(tmp_path / "d")
    notice = store.notices.raise_("disk_low", "disk_low", "the data disk is nearly full", lost="new events")
    server = ControlServer(tmp_path / "c.sock", store, FakeDevice(store)).start()
    client = ControlClient(tmp_path / "c.sock")
    try:
        assert [n["id"] for n in client.get("/v1/notices")["items"]] == [notice["id"]]
        assert client.get("/v1/status")["notices"][0]["kind"] == "disk_low"
        done = client.as_actor("admin").acknowledge_notice(notice["id"])
        assert done["acknowledged_by"] == "admin" and client.notices() == []
        assert client.notices(include_acknowledged=True)[0]["id"] == notice["id"]
        assert store.audit.list()[0]["action"] == "notice.acknowledged"
        with pytest.raises(ControlError) as info:
            client.acknowledge_notice("NOPE")
        assert info.value.status == 404
        for body in ({"by": json.loads("[" * 40 + "]" * 40)},):
            with pytest.raises(ControlError) as info:
                client.post("/v1/audit", body)
            assert info.value.status == 400 and "deeper" in str(info.value)
    finally:
        server.close()
        store.close()


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth('{"a": "[[[[{{{{", "b": [1, [2]]}') == 3


def test_dashboard_shows_the_notice_and_the_admin_acknowledges_it(admin, console_env):
    notice = console_env.store.notices.raise_("file:people/people.json", "file_moved_aside",
                                              "people/people.json could not be read", lost="the list of people",
                                              copy="/data/people/people.json.corrupt-x")
    console_env.app.config["rollcall.ctx"].forget_status()  # the status cache lives 1 s
    page = admin.get("/").text
    assert "people/people.json could not be read" in page and "people.json.corrupt-x" in page
    assert f"/notices/{notice['id']}/ack" in page
    assert admin.post(f"/notices/{notice['id']}/ack", {}, csrf=False).status == 403  # CSRF
    reply = admin.post(f"/notices/{notice['id']}/ack", {})
    assert reply.status == 303
    assert console_env.store.notices.active() == []
    assert "could not be read" not in admin.get("/").text


def test_temp_files_of_interrupted_writes_are_swept_at_open(tmp_path):
    with Store(tmp_path / "d") as store:
        store.people.add("p1", "Ada")
    leftovers = [tmp_path / "d" / "people" / ".people.json.abc123.tmp",
                 tmp_path / "d" / ".counters.json.x9.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a write")
    keep = tmp_path / "d" / "people" / "notes.tmp"  # not ours: not a dot-temp file
    keep.write_bytes(b"x")
    with Store(tmp_path / "d") as store:
        assert sorted(store.swept) == sorted(leftovers)
        assert store.people.get("p1")["name"] == "Ada"
    assert not any(p.exists() for p in leftovers) and keep.exists()
