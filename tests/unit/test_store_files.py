"""Files on disk: atomic TinyDB storage, damaged files, permissions, single writer,
segments, seq counter, retention, audit and schema migration."""

import json
import logging
import os
import tarfile

import pytest
from tinydb import TinyDB

from firmware.errors import StoreError
from firmware.config import StoreConfig
from firmware.store import Store, StoreClosed
from firmware.store.ids import SEQ_BLOCK, SeqCounter
from firmware.store.migrate import CURRENT_VERSION, migrate, read_version
from firmware.store.segments import SegmentedLog
from firmware.store.tinyfile import AtomicJSONStorage, DocFile
from tests.unit.test_store_support import (  # noqa: F401  (fixtures)
    T0, Clock, clock, jpeg_bytes, running_session, store, unit_vector)


def test_storage_is_atomic_private_and_tinydb_compatible(tmp_path):
    db = TinyDB(tmp_path / "sub" / "x.json", storage=AtomicJSONStorage)
    db.insert({"a": 1})
    db.close()
    assert json.loads((tmp_path / "sub" / "x.json").read_text()) == {"_default": {"1": {"a": 1}}}
    assert os.stat(tmp_path / "sub" / "x.json").st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "sub").st_mode & 0o777 == 0o700
    assert not [p for p in (tmp_path / "sub").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damage", [b"{\"_default\": {\"1\": {\"a\"", b"", b"\xff\xfe", b"[1, 2]"])
def test_damaged_file_is_moved_aside_loudly_not_emptied(tmp_path, caplog, damage):
    path = tmp_path / "people.json"
    path.write_bytes(damage)
    seen = []
    with caplog.at_level(logging.ERROR):
        doc = DocFile(path, clock=lambda: T0, on_corrupt=lambda p, t: seen.append(t))
        assert doc.all() == []
    aside = list(tmp_path.glob("people.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damage and seen == aside
    assert "DATA FILE DAMAGED" in caplog.text
    doc.insert({"x": 1})
    assert DocFile(path).all()[0]["x"] == 1


def test_store_reports_damaged_files_and_keeps_working(tmp_path, clock):
    with Store(tmp_path / "d", clock=clock) as s:
        s.people.add("ann", "Ann", consent="consent")
    (tmp_path / "d" / "people" / "people.json").write_text("{not json")
    with Store(tmp_path / "d", clock=clock) as s:
        health = s.health()
        assert len(health["corrupt_files"]) == 1 and "corrupt-" in health["corrupt_files"][0]["moved_to"]
        s.people.add("bob", "Bob", consent="consent")
        assert [p["id"] for p in s.people.list()] == ["bob"]


def test_single_writer_lock_and_close_twice(tmp_path, clock):
    s = Store(tmp_path / "d", clock=clock)
    with pytest.raises(StoreError, match="in use"):
        Store(tmp_path / "d", clock=clock)
    s.close()
    s.close()
    with pytest.raises(StoreClosed):
        s.people.list()
    Store(tmp_path / "d", clock=clock).close()
    assert os.stat(tmp_path / "d").st_mode & 0o777 == 0o700


def test_segments_bound_the_file_size(tmp_path):
    log = SegmentedLog(tmp_path / "log", max_records=4)
    places = [log.append({"n": i}) for i in range(6)] + log.append_many([{"n": 6 + i} for i in range(7)])
    assert [p[0] for p in places] == [1] * 4 + [2] * 4 + [3] * 4 + [4]
    assert [r["n"] for _, r in log.iter_records()] == list(range(13))
    assert [r["n"] for _, r in log.iter_records(reverse=True)][:2] == [12, 11]
    assert log.remove(1, [1, 2, 3, 4]) is True and log.numbers() == [2, 3, 4]
    log.close()
    log.close()


def test_seq_counter_reserves_before_use(tmp_path):
    counter = SeqCounter(tmp_path / "c.json")
    assert [counter.next() for _ in range(3)] == [1, 2, 3]
    assert json.loads((tmp_path / "c.json").read_text())["seq_reserved"] == SEQ_BLOCK
    again = SeqCounter(tmp_path / "c.json")  # as after a SIGKILL: never reuse 1..3
    assert again.next() == SEQ_BLOCK + 1


def test_retention_deletes_old_days_crops_sessions_and_audit(tmp_path):
    clock = Clock(T0)
    with Store(tmp_path / "d", clock=clock, config=StoreConfig(unknown_retention_days=90)) as s:
        session, _ = running_session(s, clock)
        s.attendance.record(session["id"], "p0")
        old_unknown = s.unknowns.add("unknown", None, unit_vector(1), jpeg_bytes())
        s.sessions.set_state(session["id"], "completed", "t")
        clock.advance(30 * 86400)
        s.audit.log("admin", "later")
        roster_id = session["roster_id"]
        keep = s.sessions.create(roster_id, "room-1", "Later", clock.t, clock.t + 60)
        s.sessions.set_state(keep["id"], "in_progress", "t")
        nothing = {"attendance_days": 0, "unknown_days": 0, "sessions": 0, "audit_months": 0}
        assert s.apply_retention(now=T0 + 89 * 86400) == nothing  # 90 days are kept
        result = s.apply_retention(now=T0 + 91 * 86400)
        assert result["attendance_days"] == 1 and result["unknown_days"] == 1 and result["sessions"] == 1
        assert s.sessions.get(session["id"]) is None and s.sessions.get(keep["id"]) is not None
        assert s.attendance.query() == [] and not s.unknowns.crop_path(old_unknown["id"]).exists()
        assert s.apply_retention(now=T0 + 400 * 86400)["audit_months"] == 1
        # the store audits its own changes now (the session created after "later" too)
        assert [a["action"] for a in s.audit.list()] == ["session.set_state", "session.created", "later"]


def test_audit_log_and_list(tmp_path, clock):
    with Store(tmp_path / "d", clock=clock) as s:
        for i in range(5):
            s.audit.log("admin", f"act{i}", target="x", details={"i": i})
        assert [a["action"] for a in s.audit.list(limit=3)] == ["act4", "act3", "act2"]
        with pytest.raises(ValueError):
            s.audit.log("", "act")


def _fake_v0(data_dir):
    data_dir.mkdir(parents=True)
    legacy = {"people": {"1": {"person_id": "ann", "name": "Ann"}, "2": {"person_id": "bob", "name": "Bob"}},
              "attendance": {"1": {"session_id": None, "person_id": "ann", "status": "present", "ts": T0},
                             "2": {"session_id": None, "person_id": "bob", "status": "late", "ts": T0 + 86400}}}
    (data_dir / "rollcall.json").write_text(json.dumps(legacy))


def test_migration_from_v0_backs_up_then_upgrades(tmp_path, clock):
    data = tmp_path / "d"
    _fake_v0(data)
    assert read_version(data) == 0
    with Store(data, clock=clock) as s:
        assert s.migration["from"] == 0 and s.migration["to"] == CURRENT_VERSION
        assert [p["id"] for p in s.people.list()] == ["ann", "bob"]
        recs = s.attendance.query()
        assert [(r["person_id"], r["status"]) for r in recs] == [("ann", "present"), ("bob", "late")]
        assert all(r["event_id"] for r in recs) and recs[0]["seq"] < recs[1]["seq"]
        s.people.add("cy", "Cy", consent="consent")
        s.outbox.put("event/custom", {})
        assert s.outbox.pending(1)[0]["seq"] > recs[1]["seq"]
    with tarfile.open(s.migration["backup"]) as tar:
        assert "rollcall.json" in tar.getnames()
    assert os.stat(s.migration["backup"]).st_mode & 0o777 == 0o600
    assert (data / "schema_version").read_text().strip() == str(CURRENT_VERSION)
    assert migrate(data)["backup"] is None  # already current: nothing to do


def test_newer_format_is_refused(tmp_path, clock):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "schema_version").write_text("99\n")
    with pytest.raises(StoreError, match="newer firmware"):
        Store(tmp_path / "d", clock=clock)
    Store(tmp_path / "d2", clock=clock).close()
    assert (tmp_path / "d2" / "schema_version").read_text() == f"{CURRENT_VERSION}\n"


def test_every_file_is_private_in_a_populated_store(tmp_path, clock):
    with Store(tmp_path / "d", clock=clock, checkpoint_s=0) as s:
        session, _ = running_session(s, clock)
        s.attendance.record(session["id"], "p0")
        s.people.add_embedding("p1", unit_vector(1), "m1", None, photo_jpeg=jpeg_bytes())
        s.unknowns.add("unknown", session["id"], unit_vector(2), jpeg_bytes(), jpeg_bytes(3))
        s.rosters.apply_bundle({"roster_id": "b1", "version": 1, "people": []})
        s.sessions.set_state(session["id"], "completed", "t")
        assert list((tmp_path / "d" / "journal").glob("wal-*"))  # checked before close too
        for path in (tmp_path / "d").rglob("*"):
            want = 0o700 if path.is_dir() else 0o600
            assert path.stat().st_mode & 0o777 == want, path
            assert path.stat().st_uid == os.getuid()
    for path in (tmp_path / "d").rglob("*"):
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path


def test_small_lookups(store, clock):
    session, ids = running_session(store, clock)
    assert store.rosters.member_ids(session["roster_id"]) == ids
    assert store.rosters.member_ids("gone") == []
    assert store.people.require("p0")["id"] == "p0"
    rec = store.attendance.record(session["id"], "p2")
    assert store.attendance.get(session["id"], "p2")["event_id"] == rec["event_id"]
    assert store.attendance.get(session["id"], "p1") is None
    assert store.outbox.contains(rec["event_id"]) and not store.outbox.contains("nope")
    health = store.outbox.health()
    assert health["depth"] == 2 and health["state"] == "ok" and health["capacity_fraction"] == 0.02
