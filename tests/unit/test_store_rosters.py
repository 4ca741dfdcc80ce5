"""store.rosters: local rosters and atomic replacement from synced bundles."""

import pytest

from firmware.errors import BundleError, StoreError
from firmware.store import NotFound, Store, StoreValueError
from firmware.store import rosters as rosters_mod
from tests.unit.test_store_support import clock, running_session, store, unit_vector  # noqa: F401


CONSENT = {"basis": "consent", "recorded_by": "registrar", "recorded_at": "2026-09-01T08:00:00.000Z"}


def bundle(version=1, people=("s1", "s2"), dim=16):
    return {"roster_id": "class-7b", "version": version, "name": "7B",
            "people": [{"person_id": pid, "name": pid.upper(), "seat": i + 1, "consent": CONSENT,
                        "embeddings": [{"model_id": "m1", "vector": unit_vector(i, dim).tolist()}]}
                       for i, pid in enumerate(people)]}


def test_local_roster_crud(store):
    store.people.add("ann", "Ann", consent="consent")
    store.people.add("bob", "Bob", consent="consent")
    roster = store.rosters.create("Maths", [{"person_id": "ann", "seat": 4}], roster_id="maths")
    assert roster["entries"] == [{"person_id": "ann", "seat": "4"}] and roster["version"] == 1
    updated = store.rosters.update("maths", entries=[{"person_id": "bob", "seat": None}], name="M2")
    assert updated["version"] == 2 and updated["name"] == "M2"
    assert [r["id"] for r in store.rosters.list()] == ["maths"]
    store.people.delete("bob")  # a deleted person leaves local rosters
    assert store.rosters.get("maths")["entries"] == []
    store.rosters.delete("maths")
    assert store.rosters.get("maths") is None


def test_roster_bad_input(store):
    store.people.add("ann", "Ann", consent="consent")
    with pytest.raises(NotFound):
        store.rosters.create("R", [{"person_id": "ghost"}])
    with pytest.raises(StoreValueError, match="twice"):
        store.rosters.create("R", [{"person_id": "ann"}, {"person_id": "ann"}])
    with pytest.raises(StoreValueError):
        store.rosters.create("R", [{"person_id": "ann", "colour": "red"}])
    with pytest.raises(StoreValueError):
        store.rosters.create("R", "ann")
    with pytest.raises(NotFound):
        store.rosters.update("nope", name="x")


def test_roster_in_use_cannot_be_deleted(store, clock):
    session, _ = running_session(store, clock)
    with pytest.raises(StoreValueError, match="used by"):
        store.rosters.delete(session["roster_id"])


def test_apply_bundle_people_embeddings_and_versions(store):
    roster = store.rosters.apply_bundle(bundle())
    assert roster["unchanged"] is False and roster["version"] == 1
    assert store.people.get("s1")["source"] == "bundle:class-7b"
    ids, matrix = store.people.embeddings("m1")
    assert ids == ["s1", "s2"] and matrix.shape == (2, 16)
    assert store.rosters.apply_bundle(bundle())["unchanged"] is True
    store.rosters.apply_bundle(bundle(version=2, people=("s3",)))
    assert store.people.get("s1") is None and store.people.embeddings("m1")[0] == ["s3"]
    with pytest.raises(BundleError, match="older"):
        store.rosters.apply_bundle(bundle(version=1))
    with pytest.raises(StoreValueError, match="centrally"):
        store.people.update("s3", name="x")
    gens = list((store.data_dir / "rosters" / "synced" / "class-7b").glob("gen-*"))
    assert len(gens) == 1  # old generations are removed


@pytest.mark.parametrize("broken", [
    {"version": 2, "roster_id": "class-7b"},                       # no people
    {**bundle(2), "version": "2"},
    {**bundle(2), "roster_id": "../etc"},
    {**bundle(2), "people": [{"person_id": "x", "name": "X",
                              "embeddings": [{"model_id": "m1", "vector": [float("nan")] * 16}]}]},
    "not a dict",
])
def test_bad_bundle_keeps_previous_roster(store, broken):
    store.rosters.apply_bundle(bundle())
    with pytest.raises(BundleError):
        store.rosters.apply_bundle(broken)
    assert store.rosters.get("class-7b")["version"] == 1
    assert store.people.embeddings("m1")[0] == ["s1", "s2"]


def test_failure_before_the_switch_keeps_previous_roster(tmp_path, clock, monkeypatch):
    with Store(tmp_path / "d", clock=clock) as s:
        s.rosters.apply_bundle(bundle())
        real = rosters_mod.atomic_write_bytes

        def fail_on_switch(path, *args, **kwargs):
            if path.name == "CURRENT":
                raise StoreError("disk full (injected)")
            return real(path, *args, **kwargs)

        monkeypatch.setattr(rosters_mod, "atomic_write_bytes", fail_on_switch)
        with pytest.raises(StoreError):
            s.rosters.apply_bundle(bundle(version=2, people=("s9",)))
        assert s.rosters.get("class-7b")["version"] == 1
    monkeypatch.undo()
    with Store(tmp_path / "d", clock=clock) as s:  # after a restart too; leftovers removed
        assert s.rosters.get("class-7b")["version"] == 1
        assert [p["id"] for p in s.people.list()] == ["s1", "s2"]
        assert len(list((s.data_dir / "rosters" / "synced" / "class-7b").glob("gen-*"))) == 1


def test_bundle_with_other_vector_length_is_rejected(store):
    store.people.add("ann", "Ann", consent="consent")
    store.people.add_embedding("ann", unit_vector(0, 32), "m1", None)
    with pytest.raises(BundleError, match="expected 32"):
        store.rosters.apply_bundle(bundle(dim=16))
    mixed = bundle(dim=32)
    mixed["people"][1]["embeddings"][0]["vector"] = unit_vector(1, 8).tolist()
    with pytest.raises(BundleError):
        store.rosters.apply_bundle(mixed)
    assert store.rosters.get("class-7b") is None and store.people.embeddings("m1")[0] == ["ann"]
