"""store.unknowns: crops on disk, de-duplication, resolve (assign/discard), outbox bound."""

import os

import pytest

from firmware.config import StoreConfig
from firmware.errors import ImageError
from firmware.store import NotFound, OutboxFull, Store, StoreValueError
from tests.unit.test_store_support import clock, jpeg_bytes, running_session, store, unit_vector  # noqa: F401


def test_add_list_get_and_crop_file(store, clock):
    session, _ = running_session(store, clock)
    crop = jpeg_bytes(1)
    rec = store.unknowns.add("unknown", session["id"], unit_vector(1), crop,
                             frame_jpeg=jpeg_bytes(2), extra={"model_id": "m1", "score": 0.3})
    assert rec["state"] == "open" and rec["event_id"] == rec["id"] and rec["room"] == "room-1"
    assert "embedding_b64" not in rec
    path = store.unknowns.crop_path(rec["id"])
    assert path.read_bytes() == crop and os.stat(path).st_mode & 0o777 == 0o600
    assert store.unknowns.get(rec["id"])["id"] == rec["id"]
    assert [u["id"] for u in store.unknowns.list(kind="unknown")] == [rec["id"]]
    assert store.unknowns.list(kind="spoof") == []
    event = [e for e in store.outbox.pending(100) if e["topic"] == "event/unknown"][0]
    assert event["payload"]["unknown_id"] == rec["id"] and "embedding_b64" not in event["payload"]


def test_same_face_again_is_deduplicated_within_the_window(store, clock):
    first = store.unknowns.add("unknown", None, unit_vector(1), jpeg_bytes())
    assert store.unknowns.add("unknown", None, unit_vector(1) + 0.01, jpeg_bytes()) is None
    assert store.unknowns.add("spoof", None, unit_vector(1), jpeg_bytes()) is not None
    assert store.unknowns.add("unknown", None, unit_vector(2), jpeg_bytes()) is not None
    clock.advance(601)
    assert store.unknowns.add("unknown", None, unit_vector(1), jpeg_bytes()) is not None
    assert len(store.unknowns.list()) == 4 and first is not None


def test_bad_input(store):
    with pytest.raises(StoreValueError, match="kind"):
        store.unknowns.add("alien", None, None, jpeg_bytes())
    with pytest.raises(ImageError):
        store.unknowns.add("unknown", None, None, b"PNG....")
    with pytest.raises(NotFound):
        store.unknowns.add("unknown", "no-session", None, jpeg_bytes())
    with pytest.raises(StoreValueError, match="NaN"):
        store.unknowns.add("unknown", None, [float("nan")] * 8, jpeg_bytes())
    assert store.unknowns.get("01ARZ3NDEKTSV4RRFFQ69G5FAV") is None
    with pytest.raises(StoreValueError):
        store.unknowns.crop_path("../../x")
    assert store.unknowns.list(state=None) == []


def test_assign_enrols_and_discard_deletes_crop(store):
    store.people.add("ann", "Ann", consent="consent")
    a = store.unknowns.add("unknown", None, unit_vector(1), jpeg_bytes(1), extra={"model_id": "m1"})
    b = store.unknowns.add("unknown", None, unit_vector(2), jpeg_bytes(2), frame_jpeg=jpeg_bytes(3))
    done = store.unknowns.resolve(a["id"], "assign", by="admin", person_id="ann")
    assert done["state"] == "assigned" and done["person_id"] == "ann"
    assert store.people.embeddings("m1")[0] == ["ann"] and len(store.people.photos("ann")) == 1
    store.unknowns.resolve(b["id"], "discard", by="admin")
    assert not store.unknowns.crop_path(b["id"]).exists()
    assert store.unknowns.list() == [] and len(store.unknowns.list(state=None)) == 2
    with pytest.raises(StoreValueError, match="already"):
        store.unknowns.resolve(b["id"], "discard", by="admin")
    with pytest.raises(StoreValueError, match="action"):
        store.unknowns.resolve(a["id"], "keep", by="admin")
    with pytest.raises(NotFound):
        store.unknowns.resolve("01ARZ3NDEKTSV4RRFFQ69G5FAV", "discard", by="admin")
    assert [x["action"] for x in store.audit.list()[:2]] == ["unknown.discard", "unknown.assign"]


def test_full_outbox_refuses_unknowns_without_writing(tmp_path, clock):
    with Store(tmp_path / "d", clock=clock, config=StoreConfig(outbox_max_events=100)) as s:
        for _ in range(100):
            s.outbox.put("event/custom", {})
        with pytest.raises(OutboxFull):
            s.unknowns.add("spoof", None, None, jpeg_bytes())
        assert s.unknowns.list(state=None) == []
        assert not (s.data_dir / "unknowns").exists()
