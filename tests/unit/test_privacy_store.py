"""Privacy rules of the Store, with an injected clock and sync state: a recorded legal basis
before any face data, erasure that reaches every copy, the retention sweep, clock_synced."""

from __future__ import annotations

import json
import tarfile

import pytest

from firmware.config import PrivacyConfig, StoreConfig
from firmware.store import Store, StoreValueError
from firmware.store.errors import ConsentRequired
from firmware.store.ids import to_iso
from firmware.store.migrate import backup
from tests.unit.test_store_support import Clock, T0, jpeg_bytes, running_session, unit_vector

DAY = 86400.0
BUNDLE_CONSENT = {"basis": "contract", "recorded_by": "hr", "recorded_at": "2026-09-01T08:00:00.000Z"}


def open_store(path, clock, synced=lambda: True, **privacy) -> Store:
    return Store(path, clock=clock, checkpoint_s=0, privacy=PrivacyConfig(**privacy),
                 clock_synced=synced)


def test_face_data_needs_a_recorded_basis(tmp_path):
    clock = Clock()
    with open_store(tmp_path / "d", clock) as store:
        person = store.people.add("ann", "Ann", consent={"basis": "consent", "by": "teacher"})
        assert person["consent"] == {"basis": "consent", "recorded_by": "teacher",
                                     "recorded_at": to_iso(T0)}
        store.people.add_embedding("ann", unit_vector(1), "m1", photo_jpeg=jpeg_bytes(1))
        store.people.add("bob", "Bob")  # a name needs no basis, face data does
        with pytest.raises(ConsentRequired, match="no recorded legal basis"):
            store.people.add_embedding("bob", unit_vector(2), "m1")
        with pytest.raises(StoreValueError, match="basis 'maybe'"):
            store.people.add("cy", "Cy", consent={"basis": "maybe", "by": "x"})
        store.people.set_consent("bob", "legal_obligation", "registrar")
        store.people.add_embedding("bob", unit_vector(2), "m1")
        [audit] = [a for a in store.audit.list() if a["action"] == "person.consent"]
        assert audit["actor"] == "registrar" and audit["details"]["basis"] == "legal_obligation"
    with open_store(tmp_path / "d2", clock, default_basis="contract") as store:
        assert store.people.add("dee", "Dee")["consent"]["basis"] == "contract"


def test_withdrawn_consent_erases_face_data_and_blocks_new(tmp_path):
    clock = Clock()
    with open_store(tmp_path / "d", clock) as store:
        store.people.add("ann", "Ann", consent="consent")
        meta = store.people.add_embedding("ann", unit_vector(1), "m1", photo_jpeg=jpeg_bytes(1))
        assert store.people.photo_path("ann", meta["photo_id"]).exists()
        clock.advance(60)
        erasure = store.withdraw_consent("ann", "office")
        assert erasure["reason"] == "consent_withdrawn"
        assert erasure["counts"]["embeddings"] == 1 and erasure["counts"]["photos"] == 1
        person = store.people.get("ann")
        assert person["name"] == "Ann" and person["consent"]["withdrawn_by"] == "office"
        assert store.people.embeddings("m1")[0] == []
        assert not (tmp_path / "d" / "people" / "ann").exists()
        with pytest.raises(ConsentRequired, match="withdrawn"):
            store.people.add_embedding("ann", unit_vector(1), "m1")


def at_cosine(vec, other, cosine):
    """A unit vector at exactly ``cosine`` to ``vec`` (in the plane of ``vec`` and ``other``)."""
    ortho = other - (other @ vec) * vec
    ortho /= (ortho @ ortho) ** 0.5
    return cosine * vec + (1 - cosine ** 2) ** 0.5 * ortho


def test_withdrawn_consent_erases_their_unknown_faces_at_the_given_threshold_not_strangers(tmp_path):
    clock = Clock()
    with open_store(tmp_path / "d", clock) as store:
        face = unit_vector(1)
        store.people.add("ann", "Ann", consent="consent")
        store.people.add_embedding("ann", face, "m1")
        theirs = store.unknowns.add("unknown", None, at_cosine(face, unit_vector(2), 0.95), jpeg_bytes(1))
        stranger = store.unknowns.add("unknown", None, at_cosine(face, unit_vector(3), 0.85), jpeg_bytes(2),
                                      same_face_cosine=0.925)  # dlib's two strangers: about 0.85
        erasure = store.withdraw_consent("ann", "office", threshold=0.925)  # the embedder's, as the device passes
        assert erasure["counts"]["crops"] == 1 and erasure["counts"]["unknown_records"] == 1
        assert store.unknowns.get(theirs["id"])["state"] == "erased"
        assert store.unknowns.get(stranger["id"])["state"] == "open"
        assert store.unknowns.crop_path(stranger["id"]).exists()


def test_erasure_reaches_crops_outbox_backups_and_is_published(tmp_path):
    clock = Clock()
    data = tmp_path / "d"
    with open_store(data, clock) as store:
        session, _ = running_session(store, clock)
        face = unit_vector(7)
        store.people.add("ann", "Ann", consent="consent")
        store.people.add_embedding("ann", face, "m1", photo_jpeg=jpeg_bytes(1))
        assigned = store.unknowns.add("unknown", session["id"], unit_vector(8), jpeg_bytes(2),
                                      frame_jpeg=jpeg_bytes(3), extra={"model_id": "m1"})
        store.unknowns.resolve(assigned["id"], "assign", "teacher", person_id="ann")
        lookalike = store.unknowns.add("spoof", None, face + 0.02, jpeg_bytes(4))
        stranger = store.unknowns.add("unknown", None, unit_vector(9), jpeg_bytes(5))
        store.checkpoint()
        secrets = face_strings(data, [assigned["id"], lookalike["id"]], "ann")
        assert len(secrets) == 3  # Ann's 2 templates (one is the assigned face) + the look-alike
    backup(data, "pre-v9", clock)  # a backup holding Ann's face
    with open_store(data, clock) as store:
        clock.advance(10)
        erasure = store.erase("ann", "dpo", request_id="req-1")
        counts = erasure["counts"]
        assert counts["embeddings"] == 2 and counts["photos"] == 2  # the assigned crop was enrolled
        assert counts["crops"] == 2 and counts["frames"] == 1 and counts["unknown_records"] == 2
        assert counts["backups"] == 1 and counts["attendance"] == 0
        for rec in (assigned, lookalike):
            assert not store.unknowns.crop_path(rec["id"]).exists()
            assert store.unknowns.get(rec["id"])["state"] == "erased"
        assert store.unknowns.crop_path(stranger["id"]).exists()
        pending = {e["topic"]: e for e in store.outbox.pending(1000)}
        assert pending["event/erasure"]["payload"]["counts"] == counts
        assert pending["event/erasure"]["payload"]["request_id"] == "req-1"
        assert store.erase("ann", "dpo", request_id="req-1")["repeat"] is True  # centre re-sent
        assert len(store.erasures.list("ann")) == 1
        assert store.people.get("ann")["name"] == "Ann"  # attendance keeps the name
    raw = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    assert [s for s in secrets if s.encode() in raw] == []  # no file (journal, outbox...) keeps one
    assert not list((data / "backups").glob("*.tar.gz"))


def face_strings(data, unknown_ids: list[str], person_id: str) -> set[str]:
    """The base64 vectors of these kept faces and of the person's templates, as stored."""
    found = set()
    for path in data.rglob("*.json"):
        for rec in json.loads(path.read_text()).get("_default", {}).values():
            if rec.get("id") in unknown_ids and rec.get("embedding_b64"):
                found.add(rec["embedding_b64"])
            if path.parent.name == person_id and rec.get("vector_b64"):
                found.add(rec["vector_b64"])
    return found


def test_full_erasure_drops_person_roster_place_and_attendance(tmp_path):
    clock = Clock()
    with open_store(tmp_path / "d", clock) as store:
        session, ids = running_session(store, clock)
        store.attendance.record(session["id"], "p1")
        store.attendance.record(session["id"], "p2")
        erasure = store.erase("p1", "dpo", full=True)
        assert erasure["counts"]["attendance"] == 1 and erasure["counts"]["person"] == 1
        assert store.people.get("p1") is None
        assert [r["person_id"] for r in store.attendance.query()] == ["p2"]
        assert "p1" not in store.rosters.member_ids(session["roster_id"])
    with open_store(tmp_path / "d", clock) as store:  # survives a restart (journal replay)
        assert [r["person_id"] for r in store.attendance.query()] == ["p2"]


def synced_bundle(version: int, consent: dict | None = BUNDLE_CONSENT) -> dict:
    person = {"person_id": "sam", "name": "Sam", "seat": "1",
              "embeddings": [{"model_id": "m1", "vector": unit_vector(3, 16).tolist()}]}
    if consent:
        person["consent"] = consent
    return {"roster_id": "r1", "version": version, "name": "R1", "people": [person]}


def test_synced_people_need_a_basis_and_stay_erased(tmp_path):
    clock = Clock()
    with open_store(tmp_path / "d", clock) as store:
        result = store.rosters.apply_bundle(synced_bundle(1, consent=None))
        assert result["without_basis"] == ["sam"] and store.people.embeddings("m1")[0] == []
        store.rosters.apply_bundle(synced_bundle(2))
        assert store.people.embeddings("m1")[0] == ["sam"]
        assert store.people.get("sam")["consent"]["basis"] == "contract"
        erasure = store.erase("sam", "centre", reason="central", request_id="c-1")
        assert erasure["counts"]["embeddings"] == 1 and store.people.embeddings("m1")[0] == []
        bundles = list((tmp_path / "d" / "rosters" / "synced").rglob("bundle.json"))
        assert [json.loads(b.read_text())["people"][0]["embeddings"] for b in bundles] == [[]]
        again = store.rosters.apply_bundle(synced_bundle(3))  # basis older than the erasure
        assert again["erased"] == ["sam"] and store.people.embeddings("m1")[0] == []
        fresh = {**BUNDLE_CONSENT, "recorded_at": "2026-12-01T00:00:00.000Z"}
        store.rosters.apply_bundle(synced_bundle(4, fresh))
        assert store.people.embeddings("m1")[0] == ["sam"]


def test_events_say_whether_the_clock_was_synchronised(tmp_path):
    clock, synced = Clock(), {"value": False}
    with open_store(tmp_path / "d", clock, synced=lambda: synced["value"]) as store:
        session, _ = running_session(store, clock)
        first = store.attendance.record(session["id"], "p0")
        synced["value"] = True
        second = store.attendance.record(session["id"], "p1")
        assert first["clock_synced"] is False and second["clock_synced"] is True
        events = [e["payload"] for e in store.outbox.pending(100) if e["topic"] == "event/attendance"]
        assert [e["clock_synced"] for e in events] == [False, True]
        assert all(e["payload"]["clock_synced"] is False for e in store.outbox.pending(100)
                   if e["topic"] == "event/session")


def test_retention_sweep_daily_by_injected_clock(tmp_path):
    clock, synced = Clock(), {"value": True}
    config = StoreConfig(retention_days=90, unknown_retention_days=30)
    store = Store(tmp_path / "d", clock=clock, config=config, checkpoint_s=0,
                  privacy=PrivacyConfig(review_absent_days=10), clock_synced=lambda: synced["value"])
    with store:
        session, _ = running_session(store, clock)
        store.attendance.record(session["id"], "p0")
        store.sessions.set_state(session["id"], "completed", "teacher")
        crop = store.unknowns.add("unknown", None, unit_vector(5), jpeg_bytes(5))
        store.people.add("old", "Old", consent="consent")
        store.people.add_embedding("old", unit_vector(6), "m1")
        assert store.retention.due(clock.t)
        first = store.sweep_retention()
        assert first["deleted"] == {"attendance_days": 0, "unknown_days": 0, "sessions": 0,
                                    "audit_months": 0}
        assert not store.retention.due(clock.t + DAY - 1) and store.retention.due(clock.t + DAY)
        clock.advance(31 * DAY)
        synced["value"] = False
        assert "not synchronised" in store.sweep_retention()["skipped"]
        assert store.unknowns.crop_path(crop["id"]).exists()
        synced["value"] = True
        second = store.sweep_retention()
        assert second["deleted"]["unknown_days"] == 1 and second["deleted"]["attendance_days"] == 0
        assert not store.unknowns.crop_path(crop["id"]).exists()
        assert second["flagged_for_review"] == ["old"]  # on no roster for 31 days > 10
        status = store.retention.status(config)
        assert [r["person_id"] for r in status["review"] if r["flagged"]] == ["old"]
        held = {row["what"]: row for row in status["held"]}
        assert held["attendance records (names via person id, no face data)"]["until"].startswith(
            "oldest deleted after 2027-02-16")
        clock.advance(60 * DAY)
        third = store.sweep_retention()
        assert third["deleted"]["attendance_days"] == 1 and third["deleted"]["sessions"] == 1
        assert store.attendance.query() == []


def test_erase_bad_input_changes_nothing(tmp_path):
    with open_store(tmp_path / "d", Clock()) as store:
        store.people.add("ann", "Ann", consent="consent")
        store.people.add_embedding("ann", unit_vector(1), "m1")
        for kwargs, field in (({"person_id": "../etc"}, "person_id"), ({"reason": "whim"}, "reason"),
                              ({"request_id": "x" * 65}, "request_id"), ({"by": ""}, "by")):
            args = {"person_id": "ann", "by": "dpo", **kwargs}
            with pytest.raises(StoreValueError) as bad:
                store.erase(**args)
            assert bad.value.field == field
        assert store.people.embeddings("m1")[0] == ["ann"] and store.erasures.list() == []


def test_backup_without_the_person_is_kept(tmp_path):
    clock = Clock()
    data = tmp_path / "d"
    with open_store(data, clock) as store:
        store.people.add("bob", "Bob", consent="consent")
        store.people.add_embedding("bob", unit_vector(1), "m1")
    archive = backup(data, "pre-v9", clock)
    with tarfile.open(archive) as tar:
        assert any(m.name.startswith("people/bob") for m in tar)
    with open_store(data, clock) as store:
        store.people.add("ann", "Ann", consent="consent")
        assert store.erase("ann", "dpo")["counts"]["backups"] == 0
    assert archive.exists()
