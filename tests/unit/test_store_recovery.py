"""Crash between the steps of one record: the next open finishes it exactly once.

The crash is injected by making a step raise, then abandoning the Store without
``close()`` (as a SIGKILL would: no final checkpoint); the real SIGKILL test is in
tests/integration/test_store_crash.py.
"""

import os
import time

import pytest

from firmware.store import Store
from firmware.store import sessions as sessions_mod
from firmware.store.segments import SegmentedLog
from tests.unit.test_store_support import clock, jpeg_bytes, running_session, unit_vector  # noqa: F401


class Killed(BaseException):
    """Stands for the process dying at this instant."""


def abandon(store: Store) -> None:
    os.close(store._lockfd)  # the kernel would release the flock of a killed process


def test_attendance_cut_after_the_journal_step_is_replayed_once(tmp_path, clock, monkeypatch):
    s = Store(tmp_path / "d", clock=clock, checkpoint_s=0)
    session, _ = running_session(s, clock)
    done = s.attendance.record(session["id"], "p0")

    def die(records):
        raise Killed()

    monkeypatch.setitem(s._ctx.appliers, "att.insert", die)
    with pytest.raises(Killed):  # dies after the journal line, before memory/files
        s.attendance.record(session["id"], "p1")
    abandon(s)
    with Store(tmp_path / "d", clock=clock) as s2:
        assert s2.replayed >= 2
        recs = s2.attendance.for_session(session["id"])
        assert [r["person_id"] for r in recs] == ["p0", "p1"] and recs[0]["event_id"] == done["event_id"]
        assert s2.attendance.record(session["id"], "p1")["duplicate"] is True
        ids = [e["event_id"] for e in s2.outbox.pending(100) if e["topic"] == "event/attendance"]
        assert len(ids) == len(set(ids)) == 2
    with Store(tmp_path / "d", clock=clock) as s3:  # the journal was trimmed: no second replay
        assert s3.replayed == 0 and len(s3.attendance.for_session(session["id"])) == 2


def test_killed_before_any_checkpoint_loses_nothing(tmp_path, clock):
    s = Store(tmp_path / "d", clock=clock, checkpoint_s=0)
    session, ids = running_session(s, clock, people=5)
    written = [s.attendance.record(session["id"], pid)["event_id"] for pid in ids]
    acked = s.outbox.pending(2)
    s.outbox.ack_many([e["event_id"] for e in acked])
    assert not list((tmp_path / "d" / "attendance").glob("*/seg-*.json"))  # only in the journal
    abandon(s)
    with Store(tmp_path / "d", clock=clock) as s2:
        assert [r["event_id"] for r in s2.attendance.for_session(session["id"])] == written
        pending = {e["event_id"] for e in s2.outbox.pending(100)}
        assert not pending & {e["event_id"] for e in acked} and set(written[1:]) <= pending


def test_torn_last_journal_line_is_ignored_and_damage_is_kept_aside(tmp_path, clock, caplog):
    s = Store(tmp_path / "d", clock=clock, checkpoint_s=0)
    first = s.outbox.put("event/custom", {"n": 1})
    s.outbox.put("event/custom", {"n": 2})
    abandon(s)
    [wal] = list((tmp_path / "d" / "journal").glob("wal-*.jsonl"))
    wal.write_bytes(wal.read_bytes() + b'{"crc":1,"ops":[["outbox.put",{"ev')  # power cut mid-line
    with Store(tmp_path / "d", clock=clock) as s2:
        assert s2.outbox.depth() == 2 and s2.health()["corrupt_files"] == []
    assert "torn line" in caplog.text
    s3 = Store(tmp_path / "d", clock=clock, checkpoint_s=0)
    s3.outbox.put("event/custom", {"n": 3})
    s3.outbox.put("event/custom", {"n": 4})
    abandon(s3)
    [wal] = list((tmp_path / "d" / "journal").glob("wal-*.jsonl"))
    lines = wal.read_bytes().split(b"\n")
    wal.write_bytes(b"\n".join([lines[0].replace(b"outbox", b"0utbox")] + lines[1:]))
    with Store(tmp_path / "d", clock=clock) as s4:
        assert len(s4.health()["corrupt_files"]) == 1
        assert [e["payload"]["n"] for e in s4.outbox.pending(10)] == [1, 2, 4]
        assert first["event_id"] in {e["event_id"] for e in s4.outbox.pending(10)}
    assert "JOURNAL DAMAGED" in caplog.text


def test_background_checkpoint_writes_the_files(tmp_path, clock):
    with Store(tmp_path / "d", clock=clock, checkpoint_s=0.05) as s:
        s.outbox.put("event/custom", {})
        deadline = time.monotonic() + 10

        def done() -> bool:  # the segment is written first, the journal trimmed just after
            return bool(list((tmp_path / "d" / "outbox").glob("seg-*.json"))) and \
                not list((tmp_path / "d" / "journal").glob("wal-*.jsonl"))

        while not done() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list((tmp_path / "d" / "outbox").glob("seg-*.json"))
        assert list((tmp_path / "d" / "journal").glob("wal-*.jsonl")) == []


def test_session_completion_cut_short_is_finished_once(tmp_path, clock, monkeypatch):
    s = Store(tmp_path / "d", clock=clock, checkpoint_s=0)
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
    s = Store(tmp_path / "d", clock=clock, checkpoint_s=0)
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
        s2.people.add("ann", "Ann", consent="consent")
        s2.unknowns.resolve(rec["id"], "assign", by="admin", person_id="ann")
        assert s2.people.embeddings("m1")[0] == ["ann"]  # the embedding survived via the journal


def test_failed_checkpoint_keeps_the_journal_and_retries(tmp_path, clock, monkeypatch):
    from firmware.errors import StoreError
    from firmware.store import checkpoint as checkpoint_mod

    s = Store(tmp_path / "d", clock=clock, checkpoint_s=0)
    entry = s.outbox.put("event/custom", {"n": 1})

    def disk_full(path, data):
        raise StoreError("disk full (injected)")

    monkeypatch.setattr(checkpoint_mod, "_write_one", disk_full)
    assert s.checkpoint() == 1
    assert list((tmp_path / "d" / "journal").glob("wal-*.jsonl"))  # kept for replay
    assert s.outbox.pending(1)[0]["event_id"] == entry["event_id"]
    monkeypatch.undo()
    assert s.checkpoint() == 1  # the same segment is written on the retry
    assert list((tmp_path / "d" / "outbox").glob("seg-*.json"))
    assert not list((tmp_path / "d" / "journal").glob("wal-*.jsonl"))
    s.close()


def test_publisher_thread_and_recorder_thread_interleave_safely(tmp_path, clock):
    import threading

    with Store(tmp_path / "d", clock=clock, checkpoint_s=0.01) as s:
        session, ids = running_session(s, clock, people=60)
        acked: list[str] = []
        done = threading.Event()

        def publisher() -> None:
            while not done.is_set() or s.outbox.depth():
                batch = [e["event_id"] for e in s.outbox.pending(7)]
                s.outbox.ack_many(batch)
                acked.extend(batch)

        thread = threading.Thread(target=publisher)
        thread.start()
        written = [s.attendance.record(session["id"], pid)["event_id"] for pid in ids]
        done.set()
        thread.join(30)
        assert not thread.is_alive()
        assert set(written) <= set(acked) and len(acked) == len(set(acked))
        assert s.outbox.depth() == 0
    with Store(tmp_path / "d", clock=clock) as s2:
        assert [r["event_id"] for r in s2.attendance.for_session(session["id"])] == written
        assert s2.outbox.depth() == 0 and not list((tmp_path / "d" / "outbox").glob("seg-*.json"))
