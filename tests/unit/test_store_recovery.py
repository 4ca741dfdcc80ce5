"""Crash between the steps of one record: the next open finishes it exactly once.

The crash is injected by making the second write raise, then abandoning the Store
without ``close()`` (as a SIGKILL would); the real SIGKILL test is in
tests/integration/test_store_crash.py.
"""

import os

import pytest

from firmware.store import Store
from firmware.store import attendance as attendance_mod
from firmware.store import sessions as sessions_mod
from firmware.store.segments import SegmentedLog
from tests.unit.test_store_support import clock, jpeg_bytes, running_session, unit_vector  # noqa: F401


class Killed(BaseException):
    """Stands for the process dying at this instant."""


def abandon(store: Store) -> None:
    os.close(store._lockfd)  # the kernel would release the flock of a killed process


def test_attendance_cut_after_outbox_is_recovered_once(tmp_path, clock, monkeypatch):
    s = Store(tmp_path / "d", clock=clock)
    session, _ = running_session(s, clock)
    done = s.attendance.record(session["id"], "p0")

    def die(self, day, records):
        raise Killed()

    monkeypatch.setattr(attendance_mod.Attendance, "_insert", die)
    with pytest.raises(Killed):
        s.attendance.record(session["id"], "p1")
    abandon(s)
    monkeypatch.undo()
    with Store(tmp_path / "d", clock=clock) as s2:
        assert s2.recovered["attendance"] == 1
        recs = s2.attendance.for_session(session["id"])
        assert [r["person_id"] for r in recs] == ["p0", "p1"] and recs[0]["event_id"] == done["event_id"]
        assert s2.attendance.record(session["id"], "p1")["duplicate"] is True
        ids = [e["event_id"] for e in s2.outbox.pending(100) if e["topic"] == "event/attendance"]
        assert len(ids) == len(set(ids)) == 2
    with Store(tmp_path / "d", clock=clock) as s3:  # recovery is not repeated
        assert s3.recovered["attendance"] == 0 and len(s3.attendance.for_session(session["id"])) == 2


def test_session_completion_cut_short_is_finished_once(tmp_path, clock, monkeypatch):
    s = Store(tmp_path / "d", clock=clock)
    session, _ = running_session(s, clock, people=2)
    s.attendance.record(session["id"], "p0")

    def die(self, rec):
        raise Killed()

    monkeypatch.setattr(sessions_mod.Sessions, "_finish", die)
    with pytest.raises(Killed):
        s.sessions.set_state(session["id"], "completed", "t")
    abandon(s)
    monkeypatch.undo()
    with Store(tmp_path / "d", clock=clock) as s2:
        assert s2.recovered["sessions"] == 1
        got = s2.sessions.get(session["id"])
        assert got["state"] == "completed" and got["summary"]["counts"]["absent"] == 1
        events = [e for e in s2.outbox.pending(100) if e["payload"].get("state") == "completed"]
        assert len(events) == 1 and events[0]["event_id"] == got["event_id"]
    with Store(tmp_path / "d", clock=clock) as s3:
        assert s3.recovered["sessions"] == 0
        assert len([e for e in s3.outbox.pending(100) if e["topic"] == "event/session"]) == 2


def test_unknown_index_cut_after_outbox_is_recovered(tmp_path, clock, monkeypatch):
    s = Store(tmp_path / "d", clock=clock)
    real_append = SegmentedLog.append

    def die_on_index(self, record):
        if "unknowns" in str(self.directory):
            raise Killed()
        return real_append(self, record)

    monkeypatch.setattr(SegmentedLog, "append", die_on_index)
    with pytest.raises(Killed):
        s.unknowns.add("unknown", None, unit_vector(1), jpeg_bytes(), extra={"model_id": "m1"})
    abandon(s)
    monkeypatch.undo()
    with Store(tmp_path / "d", clock=clock) as s2:
        assert s2.recovered["unknowns"] == 1
        [rec] = s2.unknowns.list()
        assert s2.unknowns.crop_path(rec["id"]).exists()
        s2.people.add("ann", "Ann")
        s2.unknowns.resolve(rec["id"], "assign", by="admin", person_id="ann")
        assert s2.people.embeddings("m1")[0] == ["ann"]  # the embedding survived via the journal
