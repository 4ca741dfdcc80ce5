"""Records that keep history, sessions that cannot collide, paging and report indexes
(real Store on a temporary directory)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from firmware.errors import SessionError
from firmware.store import Store
from firmware.store.migrate import read_version
from firmware.store.tinyfile import TABLE

T0 = 1_790_000_000.0  # 2026-09-21 (UTC)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _school(store: Store) -> tuple[list[str], dict]:
    ids = [store.people.add(f"p{i}", f"Pupil {i}", f"S-{i:03d}", consent="consent")["id"] for i in range(4)]
    roster = store.rosters.create("Year 9", [{"person_id": p, "seat": str(10 - i)}
                                             for i, p in enumerate(ids)])
    return ids, roster


def _session(store: Store, roster: dict, start: float, room: str = "lab", name: str = "Maths") -> dict:
    return store.sessions.create(roster["id"], room, name, start, start + 3600, start + 600)


def test_overlapping_sessions_in_one_room_are_refused(tmp_path):
    with Store(tmp_path / "d", clock=Clock()) as store:
        _, roster = _school(store)
        first = _session(store, roster, T0)
        with pytest.raises(SessionError, match="cannot overlap") as refused:
            _session(store, roster, T0 + 1800, name="Physics")
        assert "Maths" in str(refused.value)
        assert [s["name"] for s in store.sessions.list()] == ["Maths"]
        _session(store, roster, T0 + 1800, room="hall")  # another room: fine
        back_to_back = _session(store, roster, T0 + 3600, name="Physics")  # touching: fine
        store.sessions.set_state(first["id"], "in_progress", "t", T0)
        with pytest.raises(SessionError, match="already running in room lab"):
            store.sessions.set_state(back_to_back["id"], "in_progress", "t", T0 + 60)
        assert store.sessions.get(back_to_back["id"])["state"] == "scheduled"
        store.sessions.set_state(first["id"], "cancelled", "t", T0 + 120)
        store.sessions.set_state(back_to_back["id"], "in_progress", "t", T0 + 130)  # room free
        store.sessions.set_state(back_to_back["id"], "cancelled", "t", T0 + 140)
        _session(store, roster, T0 + 600, name="Chemistry", room="lab")  # slots freed


def test_completed_session_keeps_names_seats_and_summary_after_edit_and_delete(tmp_path):
    clock = Clock()
    with Store(tmp_path / "d", clock=clock) as store:
        ids, roster = _school(store)
        vec = np.ones(8, np.float32) / np.sqrt(8)
        store.people.add_embedding(ids[0], vec, "m1")
        crop = store.unknowns.add("unknown", None, -vec, _jpeg())
        store.unknowns.resolve(crop["id"], "assign", "t", ids[0])
        session = _session(store, roster, T0)
        store.sessions.set_state(session["id"], "in_progress", "t", T0)
        rec = store.attendance.record(session["id"], ids[0], score=0.9, captured_at=T0 + 60)
        assert (rec["name"], rec["external_id"], rec["seat"]) == ("Pupil 0", "S-000", "10")
        done = store.sessions.set_state(session["id"], "completed", "t", T0 + 3600)
        before = (store.attendance.for_session(session["id"]), done["summary"],
                  store.sessions.get(session["id"])["roster_entries"])
        assert {e["person_id"]: e["seat"] for e in before[2]} == {ids[0]: "10", ids[1]: "9",
                                                                 ids[2]: "8", ids[3]: "7"}
        assert {r["person_id"]: r["seat"] for r in before[0]}[ids[1]] == "9"  # absentees too

        store.people.update(ids[1], name="Renamed", external_id="S-999")
        store.people.delete(ids[0])
        store.rosters.update(roster["id"], entries=[{"person_id": ids[2], "seat": "1"}])

        after = (store.attendance.for_session(session["id"]), store.sessions.get(session["id"])["summary"],
                 store.sessions.get(session["id"])["roster_entries"])
        assert after == before
        assert not (tmp_path / "d" / "people" / ids[0]).exists()  # embeddings and photos gone
        assert not store.unknowns.crop_path(crop["id"]).exists()  # and the assigned crop
        assigned = [u for u in store.unknowns.list(state=None) if u["id"] == crop["id"]]
        on_disk = [r for seg in (tmp_path / "d" / "unknowns").glob("*/seg-*.json")
                   for r in json.loads(seg.read_text())[TABLE].values() if r["id"] == crop["id"]]
        assert assigned[0]["erased"] is True and on_disk[0]["embedding_b64"] is None
        # an audited correction is still possible on the kept record of the deleted person
        fixed = store.attendance.set_status(session["id"], ids[0], "excused", "office")
        assert fixed["name"] == "Pupil 0" and fixed["status"] == "excused"
        assert store.sessions.get(session["id"])["summary"] == before[1]


def test_open_v1_data_fills_snapshots_from_what_is_left(tmp_path):
    data = tmp_path / "d"
    with Store(data, clock=Clock()) as store:
        ids, roster = _school(store)
        session = _session(store, roster, T0)
        store.sessions.set_state(session["id"], "in_progress", "t", T0)
        store.attendance.record(session["id"], ids[0], captured_at=T0 + 5)
        store.sessions.set_state(session["id"], "completed", "t", T0 + 3600)
    # make it look like data written before the snapshots existed (format v1)
    for seg in (data / "attendance").glob("*/seg-*.json"):
        doc = json.loads(seg.read_text())
        for rec in doc[TABLE].values():
            for key in ("name", "external_id", "seat"):
                rec.pop(key)
        seg.write_text(json.dumps(doc))
    sessions = data / "sessions" / "sessions.json"
    doc = json.loads(sessions.read_text())
    for rec in doc[TABLE].values():
        rec.pop("roster_entries")
    sessions.write_text(json.dumps(doc))
    (data / "schema_version").write_text("1\n")

    with Store(data, clock=Clock()) as store:
        assert store.migration["from"] == 1 and store.migration["backup"]
        recs = {r["person_id"]: r for r in store.attendance.for_session(session["id"])}
        assert (recs[ids[0]]["name"], recs[ids[0]]["external_id"], recs[ids[0]]["seat"]) == \
            ("Pupil 0", "S-000", "10")
        assert recs[ids[3]]["status"] == "absent" and recs[ids[3]]["seat"] == "7"
        entries = store.sessions.get(session["id"])["roster_entries"]
        assert [e["name"] for e in entries] == ["Pupil 0", "Pupil 1", "Pupil 2", "Pupil 3"]
    assert read_version(data) == 2


def test_page_matches_a_full_sort_and_counts_from_indexes(tmp_path):
    clock = Clock()
    with Store(tmp_path / "d", clock=clock) as store:
        ids, roster = _school(store)
        for day in (3, 1, 2, 0):  # written out of day order: seq order != time order
            start = T0 + day * 86400
            session = _session(store, roster, start)
            store.sessions.set_state(session["id"], "in_progress", "t", start)
            for i, pid in enumerate(ids[:3]):
                store.attendance.record(session["id"], pid, captured_at=start + 700 * (3 - i))
            store.sessions.set_state(session["id"], "completed", "t", start + 3600)
        everything = sorted(store.attendance.query(), key=lambda r: (r["day"], r["captured_at"], r["seq"]))
        assert len(everything) == 16
        newest = [r["event_id"] for r in everything[::-1]]
        for offset, limit in ((0, 5), (3, 6), (14, 10), (20, 5)):
            items, total = store.attendance.page(newest=True, offset=offset, limit=limit)
            assert total == 16 and [r["event_id"] for r in items] == newest[offset:offset + limit]
        items, total = store.attendance.page(status="absent", limit=100)
        assert total == 4 and {r["status"] for r in items} == {"absent"}
        day1 = store.sessions.list()[1]["day"]
        items, total = store.attendance.page(day_from=day1, day_to=day1)
        assert total == 4 and {r["day"] for r in items} == {day1}
        marks = store.attendance.marks(store.sessions.list())
        assert all(len(m) == 4 and list(m.values()).count("absent") == 1 for m in marks.values())


def _jpeg() -> bytes:
    import cv2

    image = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()
