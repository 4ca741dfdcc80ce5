"""store.sessions + store.attendance: state machine, late, duplicates, summary, audit."""

import pytest

from firmware.errors import SessionError
from firmware.store import NotFound, Store, StoreValueError
from tests.unit.test_store_support import clock, running_session, store  # noqa: F401


def test_session_lifecycle_and_active(store, clock):
    store.people.add("ann", "Ann")
    roster = store.rosters.create("R", [{"person_id": "ann"}])
    s = store.sessions.create(roster["id"], "room-1", "Maths", "2026-11-18T09:00:00Z",
                              "2026-11-18T10:00:00Z", "2026-11-18T09:10:00Z")
    assert s["state"] == "scheduled" and s["day"] == "2026-11-18" and s["late_after"].endswith("Z")
    assert store.sessions.active() is None
    store.sessions.set_state(s["id"], "in_progress", "teacher")
    assert store.sessions.active("room-1")["id"] == s["id"]
    assert store.sessions.active("room-2") is None
    assert [x["id"] for x in store.sessions.list(day="2026-11-18", state="in_progress")] == [s["id"]]
    store.sessions.set_state(s["id"], "cancelled", "teacher")
    with pytest.raises(SessionError, match="cannot become"):
        store.sessions.set_state(s["id"], "in_progress", "teacher")
    assert store.sessions.get(s["id"])["state"] == "cancelled"


def test_session_bad_input(store):
    store.people.add("ann", "Ann")
    roster = store.rosters.create("R", [{"person_id": "ann"}])
    with pytest.raises(NotFound):
        store.sessions.create("nope", "room", "X", 0, 10)
    with pytest.raises(SessionError):
        store.sessions.create(roster["id"], "room", "X", 10, 5)
    with pytest.raises(StoreValueError, match="ISO-8601"):
        store.sessions.create(roster["id"], "room", "X", "tomorrow", 5)
    with pytest.raises(StoreValueError, match="room"):
        store.sessions.create(roster["id"], "room 1/..", "X", 0, 10)
    s = store.sessions.create(roster["id"], "room", "X", 0, 10)
    with pytest.raises(SessionError, match="cannot become completed"):
        store.sessions.set_state(s["id"], "completed", "t")
    with pytest.raises(SessionError, match="unknown session state"):
        store.sessions.set_state(s["id"], "paused", "t")
    with pytest.raises(NotFound):
        store.sessions.set_state("nope", "cancelled", "t")


def test_record_present_late_and_duplicate(store, clock):
    session, ids = running_session(store, clock, late_in_s=300)
    clock.advance(60)
    first = store.attendance.record(session["id"], "p0", score=0.8, extra={"track": 3})
    assert first["status"] == "present" and first["duplicate"] is False
    assert first["event_id"] and first["seq"] > 0
    again = store.attendance.record(session["id"], "p0", score=0.9)
    assert again["duplicate"] is True and again["event_id"] == first["event_id"]
    clock.advance(600)
    late = store.attendance.record(session["id"], "p1", "present", 0.7)
    assert late["status"] == "late" and late["seq"] > first["seq"]
    assert len(store.attendance.for_session(session["id"])) == 2
    topics = [e["payload"].get("person_id") for e in store.outbox.pending(100)
              if e["topic"] == "event/attendance"]
    assert topics == ["p0", "p1"]  # the duplicate published nothing


def test_record_bad_input(store, clock):
    session, _ = running_session(store, clock)
    with pytest.raises(NotFound):
        store.attendance.record(session["id"], "ghost")
    with pytest.raises(NotFound):
        store.attendance.record("no-such-session", "p0")
    with pytest.raises(SessionError, match="unknown attendance status"):
        store.attendance.record(session["id"], "p0", "here")
    with pytest.raises(StoreValueError, match="score"):
        store.attendance.record(session["id"], "p0", score=float("nan"))
    with pytest.raises(StoreValueError, match="JSON"):
        store.attendance.record(session["id"], "p0", extra={"x": object()})
    roster_id = session["roster_id"]
    later = store.sessions.create(roster_id, "room-1", "Later", clock.t + 9000, clock.t + 9900)
    with pytest.raises(SessionError, match="in progress"):
        store.attendance.record(later["id"], "p0")
    assert store.attendance.for_session(session["id"]) == []


def test_completion_finalises_absent_and_publishes_summary(store, clock):
    session, ids = running_session(store, clock, people=4, late_in_s=60)
    store.attendance.record(session["id"], "p0")
    clock.advance(120)
    store.attendance.record(session["id"], "p1")
    done = store.sessions.set_state(session["id"], "completed", "teacher")
    summary = done["summary"]
    assert summary["counts"] == {"present": 1, "late": 1, "absent": 2, "excused": 0}
    assert summary["lists"]["absent"] == ["p2", "p3"]
    statuses = {r["person_id"]: r["status"] for r in store.attendance.for_session(session["id"])}
    assert statuses == {"p0": "present", "p1": "late", "p2": "absent", "p3": "absent"}
    events = [e for e in store.outbox.pending(100) if e["topic"] == "event/session"]
    assert [e["payload"]["state"] for e in events] == ["in_progress", "completed"]
    assert events[-1]["payload"]["summary"]["counts"]["absent"] == 2
    with pytest.raises(SessionError):
        store.attendance.record(session["id"], "p2")


def test_set_status_is_audited_and_published(store, clock):
    session, _ = running_session(store, clock)
    rec = store.attendance.record(session["id"], "p0")
    fixed = store.attendance.set_status(session["id"], "p0", "excused", by="ms.smith")
    assert fixed["status"] == "excused" and fixed["revision"] == 1 and fixed["event_id"] == rec["event_id"]
    manual = store.attendance.set_status(session["id"], "p1", "present", by="ms.smith")
    assert manual["source"] == "manual"
    audit = store.audit.list()
    assert [a["action"] for a in audit[:2]] == ["attendance.set_status"] * 2
    assert audit[1]["actor"] == "ms.smith" and audit[1]["details"] == {"from": "present", "to": "excused"}
    revision = [e["payload"] for e in store.outbox.pending(100) if e["payload"].get("revision_of")]
    assert revision[0]["revision_of"] == rec["event_id"] and revision[0]["event_id"] != rec["event_id"]
    with pytest.raises(SessionError):
        store.attendance.set_status(session["id"], "p0", "gone", by="x")
    with pytest.raises(StoreValueError):
        store.attendance.set_status(session["id"], "p0", "late", by="")


def test_query_filters_and_reopen(tmp_path, clock):
    with Store(tmp_path / "d", clock=clock) as s:
        session, ids = running_session(s, clock)
        for pid in ids:
            s.attendance.record(session["id"], pid)
    with Store(tmp_path / "d", clock=clock) as s:
        day = session["day"]
        assert len(s.attendance.query(day_from=day, day_to=day)) == 3
        assert [r["person_id"] for r in s.attendance.query(person_id="p1")] == ["p1"]
        assert s.attendance.query(room="elsewhere") == []
        assert s.attendance.query(day_to="2000-01-01") == []
        assert s.attendance.record(session["id"], "p2")["duplicate"] is True
        with pytest.raises(StoreValueError):
            s.attendance.query(day_from="yesterday")


def test_query_sees_records_not_yet_checkpointed(store, clock):
    session, _ = running_session(store, clock)
    store.attendance.record(session["id"], "p0")
    assert not (store.data_dir / "attendance").exists()  # only in the journal so far
    assert [r["person_id"] for r in store.attendance.query(room="room-1")] == ["p0"]
    assert store.checkpoint() >= 2
    assert [r["person_id"] for r in store.attendance.query(room="room-1")] == ["p0"]
