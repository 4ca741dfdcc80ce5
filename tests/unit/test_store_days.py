"""Attendance days are the device's local dates; reads are cached per day.

Local dates: a check-in at 23:30 local time belongs to that local day, whatever the UTC
date is, while ``captured_at`` stays UTC. A time zone change re-files existing days
(after a backup). Cache: a past day is read from its files once, every write shows up in
the next read, and what a read returns is the caller's to change.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from firmware.config import StoreConfig
from firmware.store import Store, StoreValueError
from firmware.store.migrate import DAY_ZONE_FILE, REZONE_OLD, read_day_zone, rezone
from tests.unit.test_store_support import Clock, jpeg_bytes, running_session  # noqa: F401


def _at(local: str, zone: str) -> float:
    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).timestamp()


def _open(path, clock, timezone="UTC"):
    return Store(path, clock=clock, config=StoreConfig(outbox_max_events=1000), checkpoint_s=0,
                 timezone=timezone)


@pytest.mark.parametrize("zone, utc_text", [("Europe/Berlin", "2026-11-20T22:30:00.000Z"),
                                            ("America/Los_Angeles", "2026-11-21T07:30:00.000Z")])
def test_check_in_at_2330_local_lands_on_the_local_day(tmp_path, zone, utc_text):
    clock = Clock(_at("2026-11-20T23:30:00", zone))
    with _open(tmp_path / "d", clock, zone) as store:
        store.people.add("ann", "Ann")
        store.people.add("bob", "Bob")
        roster = store.rosters.create("R", [{"person_id": "bob"}])
        session = store.sessions.create(roster["id"], "room-1", "Late class",
                                        _at("2026-11-20T23:00:00", zone), _at("2026-11-20T23:55:00", zone))
        assert session["day"] == "2026-11-20"
        store.sessions.set_state(session["id"], "in_progress", "t")
        door = store.attendance.record(None, "ann")
        seen = store.attendance.record(session["id"], "bob")
        for rec in (door, seen):
            assert rec["day"] == "2026-11-20" and rec["captured_at"] == utc_text
        today = store.attendance.query(day_from="2026-11-20", day_to="2026-11-20")
        assert {r["person_id"] for r in today} == {"ann", "bob"}
        assert store.attendance.query(day_from="2026-11-21", day_to="2026-11-21") == []
        assert [s["id"] for s in store.sessions.list(day="2026-11-20")] == [session["id"]]
        store.checkpoint()
        assert (tmp_path / "d" / "attendance" / "2026-11-20").is_dir()
    assert read_day_zone(tmp_path / "d") == zone


def test_open_door_is_one_record_per_person_per_local_day(tmp_path):
    zone = "America/Los_Angeles"
    clock = Clock(_at("2026-11-20T23:30:00", zone))
    with _open(tmp_path / "d", clock, zone) as store:
        store.people.add("ann", "Ann")
        assert store.attendance.record(None, "ann")["duplicate"] is False
        clock.advance(20 * 60)  # 23:50 local, already 07:50 UTC on the next UTC date
        assert store.attendance.record(None, "ann")["duplicate"] is True
        clock.advance(20 * 60)  # 00:10 local: a new local day
        again = store.attendance.record(None, "ann")
        assert again["duplicate"] is False and again["day"] == "2026-11-21"


def test_bad_time_zone_is_refused(tmp_path):
    with pytest.raises(StoreValueError, match="IANA"):
        Store(tmp_path / "d", timezone="Mars/Olympus")


def _utc_history(path, clock):
    """Days written in UTC: a session at 23:00-23:50 UTC on 11-20 and an open-door check-in."""
    with _open(path, clock) as store:
        store.people.add("ann", "Ann")
        store.people.add("bob", "Bob")
        roster = store.rosters.create("R", [{"person_id": "ann"}, {"person_id": "bob"}])
        session = store.sessions.create(roster["id"], "room-1", "Late", clock.t, clock.t + 3000)
        store.sessions.set_state(session["id"], "in_progress", "t")
        store.attendance.record(session["id"], "ann")
        store.attendance.record(None, "bob")
        clock.advance(3000)
        store.sessions.set_state(session["id"], "completed", "t")
        assert {r["day"] for r in store.attendance.query()} == {"2026-11-20"}
        return session["id"]


def test_time_zone_change_re_files_days_after_a_backup(tmp_path):
    data = tmp_path / "d"
    clock = Clock(_at("2026-11-20T23:00:00", "UTC"))
    session_id = _utc_history(data, clock)
    with _open(data, clock, "Europe/Berlin") as store:  # 00:00-00:50 on 11-21 in Berlin
        info = store.migration["rezone"]
        assert info["from"] == "UTC" and info["to"] == "Europe/Berlin" and info["records"] == 3
        assert store.sessions.get(session_id)["day"] == "2026-11-21"
        recs = store.attendance.query(day_from="2026-11-21", day_to="2026-11-21")
        assert sorted((r["person_id"], r["status"], r["session_id"] is None) for r in recs) == [
            ("ann", "present", False), ("bob", "absent", False), ("bob", "present", True)]
        assert [r["person_id"] for r in store.attendance.for_session(session_id)] == ["ann", "bob"]
        assert store.attendance.query(day_from="2026-11-20", day_to="2026-11-20") == []
        store.attendance.set_status(session_id, "ann", "excused", "teacher")
        assert store.attendance.get(session_id, "ann")["status"] == "excused"
    assert sorted(p.name for p in (data / "attendance").iterdir()) == ["2026-11-21"]
    assert (data / DAY_ZONE_FILE).read_text().strip() == "Europe/Berlin"
    assert list((data / "backups").glob("pre-rezone-UTC-to-Europe_Berlin-*.tar.gz"))
    with _open(data, clock, "Europe/Berlin") as store:
        assert "rezone" not in store.migration  # same zone: nothing to do
        assert store.attendance.get(session_id, "ann")["status"] == "excused"


def test_rezone_cut_short_by_a_crash_is_finished_by_running_it_again(tmp_path):
    data = tmp_path / "d"
    clock = Clock(_at("2026-11-20T23:00:00", "UTC"))
    _utc_history(data, clock)
    rezone(data, "Europe/Berlin", clock)
    # as if the power failed after the swap, before the old copy was removed
    (data / "attendance").rename(data / REZONE_OLD)
    rezone(data, "Europe/Berlin", clock)
    assert not (data / REZONE_OLD).exists()
    with _open(data, clock, "Europe/Berlin") as store:
        assert len(store.attendance.query()) == 3


def test_past_days_are_read_once_and_writes_show_up(tmp_path):
    data = tmp_path / "d"
    clock = Clock(_at("2026-11-10T09:00:00", "UTC"))
    ids = []
    with _open(data, clock) as store:
        for day in range(3):
            session, people = running_session(store, clock) if day == 0 else _next_day(store, clock)
            for pid in people:
                store.attendance.record(session["id"], pid)
            clock.advance(3600)
            store.sessions.set_state(session["id"], "completed", "t")
            ids.append(session["id"])
            clock.advance(86400 - 3600)
    with _open(data, clock) as store:
        cache = store._attendance._cache
        assert len(store.attendance.query()) == 9 and cache.loads == 3
        assert len(store.attendance.query(person_id="p1")) == 3 and cache.loads == 3
        assert len(store.attendance.for_session(ids[0])) == 3 and cache.loads == 3
        mine = store.attendance.query(session_id=ids[0])
        mine[0]["status"], mine[0]["extra"]["x"] = "changed", 1  # copies: the cache is untouched
        assert store.attendance.query(session_id=ids[0])[0]["status"] == "present"
        assert "x" not in store.attendance.query(session_id=ids[0])[0]["extra"]
        store.attendance.set_status(ids[0], "p0", "excused", "teacher")
        assert store.attendance.query(session_id=ids[0], person_id="p0")[0]["status"] == "excused"
        assert [r["status"] for r in store.attendance.for_session(ids[0])][0] == "excused"
        clock.advance(200 * 86400)
        store.apply_retention()
        assert store.attendance.query() == [] and store.attendance.days() == []


def _next_day(store, clock):
    roster = store.rosters.list()[0]
    session = store.sessions.create(roster["id"], "room-1", "Maths", clock.t, clock.t + 3600)
    store.sessions.set_state(session["id"], "in_progress", "teacher")
    return store.sessions.get(session["id"]), ["p0", "p1", "p2"]


def test_unknowns_list_and_audit_list_follow_writes(tmp_path):
    clock = Clock(_at("2026-11-20T09:00:00", "UTC"))
    with _open(tmp_path / "d", clock) as store:
        first = store.unknowns.add("unknown", None, None, jpeg_bytes(1))
        store.unknowns.add("spoof", None, None, jpeg_bytes(2))
        assert [u["id"] for u in store.unknowns.list(kind="unknown")] == [first["id"]]
        store.unknowns.resolve(first["id"], "discard", "admin")
        assert store.unknowns.list(kind="unknown") == []
        assert store.unknowns.list(kind="unknown", state=None)[0]["state"] == "discarded"
        store.audit.log("admin", "a.one")
        newest = store.audit.list(limit=2)
        assert [a["action"] for a in newest] == ["a.one", "unknown.discard"]
        newest[0]["details"]["x"] = 1
        store.audit.log("admin", "a.two")
        assert [a["action"] for a in store.audit.list(limit=2)] == ["a.two", "a.one"]
        assert store.audit.list(limit=2)[1]["details"] == {}
    with _open(tmp_path / "d", clock) as store:
        assert [a["action"] for a in store.audit.list(limit=3)] == ["a.two", "a.one",
                                                                    "unknown.discard"]
        assert len(store.unknowns.list(state=None)) == 2


KILLED_WRITER = """
import os, sys
from firmware.config import StoreConfig
from firmware.store import Store
t = float(sys.argv[2])
store = Store(sys.argv[1], clock=lambda: t, config=StoreConfig(outbox_max_events=1000),
              checkpoint_s=0)
store.people.add("ann", "Ann")
store.attendance.record(None, "ann")
os._exit(0)  # no close(): the record is only in the journal
"""


def test_journal_left_by_a_dead_process_is_replayed_before_the_days_move(tmp_path):
    import subprocess
    import sys

    data, t = tmp_path / "d", _at("2026-11-20T23:30:00", "UTC")  # 00:30 on 11-21 in Berlin
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(data), str(t)], check=True)
    assert list((data / "journal").glob("wal-*.jsonl")) and not (data / "attendance").exists()
    with _open(data, Clock(t), "Europe/Berlin") as store:
        # two steps: the audited person.created (file + audit) and the attendance record
        assert store.replayed == 2 and store.migration["rezone"]["records"] == 1
        assert [a["action"] for a in store.audit.list()] == ["person.created"]
        [rec] = store.attendance.query(day_from="2026-11-21", day_to="2026-11-21")
        assert rec["person_id"] == "ann" and rec["captured_at"] == "2026-11-20T23:30:00.000Z"
        assert store.attendance.record(None, "ann")["duplicate"] is True
        assert len(store.outbox.pending(10)) == 1


def test_reads_without_the_lock_stay_consistent_while_the_device_writes(tmp_path):
    import threading
    import time

    clock = Clock(_at("2026-11-20T09:00:00", "UTC"))
    errors: list[BaseException] = []
    with _open(tmp_path / "d", clock) as store:
        session, _ = running_session(store, clock, people=0)
        people = [f"w{i:03d}" for i in range(40)]
        for pid in people:
            store.people.add(pid, pid)
        done = threading.Event()

        def reader() -> None:
            try:
                while not done.is_set():
                    rows = store.attendance.query(day_from="2026-11-20", day_to="2026-11-20")
                    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
                    assert len({r["person_id"] for r in rows}) == len(rows)
                    store.attendance.for_session(session["id"])
                    time.sleep(0.001)  # a page every millisecond per reader: still plenty
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for thread in threads:
            thread.start()
        for pid in people:
            store.attendance.record(session["id"], pid)
            if pid.endswith("0"):
                store.checkpoint()
        done.set()
        for thread in threads:
            thread.join()
        assert not errors
        assert [r["person_id"] for r in store.attendance.for_session(session["id"])] == people


def test_day_cache_keeps_the_newest_days_and_never_caches_a_stale_read():
    import threading

    from firmware.store.daycache import DayCache

    cache = DayCache(threading.RLock(), max_records=4)
    disk = {d: [{"seq": i, "d": d}, {"seq": i + 10, "d": d}] for i, d in
            enumerate(["2026-11-01", "2026-11-02", "2026-11-03"])}
    reads: list[str] = []

    def from_disk(day):
        reads.append(day)
        return disk[day]

    cache.read(sorted(disk), lambda day: None, from_disk)  # 6 records > 4: the oldest goes
    cache.read(sorted(disk), lambda day: None, from_disk)
    assert reads == sorted(disk) + ["2026-11-01"]

    def writes_meanwhile(day):  # a write lands while the day is read without the lock
        cache.invalidate(day)
        return [{"seq": 99}]

    cache.invalidate("2026-11-03")
    assert cache.read(["2026-11-03"], lambda day: None, writes_meanwhile) == [({"seq": 99},)]
    assert cache.read(["2026-11-03"], lambda day: None, from_disk)[0][0]["d"] == "2026-11-03"
