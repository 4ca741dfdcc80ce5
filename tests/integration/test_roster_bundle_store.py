"""Property-based: no malformed, oversized or wrongly signed bundle changes a real Store."""

from __future__ import annotations


import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.errors import BundleError
from firmware.link.bundle import encode_bundle, encode_embedding, sign_bundle, to_store_form
from firmware.link.roster import RosterSync
from firmware.store import Store

pytestmark = pytest.mark.integration
MODEL = "dlib_resnet_int8"
KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def bundle(version: int, people: int = 2, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"schema_version": 1, "roster_version": version, "roster_id": "r1", "name": "R1", "site": "site1",
            "room": "room1", "model_id": MODEL,
            "people": [{"person_id": f"p{i}", "name": f"P {i}", "seat": f"{i}",
                        "consent": {"basis": "consent", "recorded_by": "office", "recorded_at": "2026-09-01T08:00:00Z"},
                        "embeddings": [encode_embedding(rng.normal(size=64), MODEL)]} for i in range(people)]}


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    base = tmp_path_factory.mktemp("roster")
    pub = base / "roster.pub.pem"
    pub.write_bytes(KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    with Store(base / "data") as store:
        sync = RosterSync(store, pub, MODEL, "site1", "room1")
        assert sync.apply_raw(encode_bundle(sign_bundle(bundle(10), KEY)))["applied"]
        yield sync, store


def snapshot(store) -> tuple:
    return store.rosters.get("r1"), sorted(p["id"] for p in store.people.list())


mutations = st.sampled_from(["resign_other_key", "tamper", "model", "version_old", "drop_field",
                             "bad_vector", "bad_person", "junk_type"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(kind=mutations, junk=st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3)),
       people=st.integers(1, 4))
def test_bad_bundles_never_change_the_store(synced, kind, junk, people):
    sync, store = synced
    before = snapshot(store)
    body = bundle(20, people, seed=people)
    if kind == "model":
        body["model_id"] = "facenet_int8"
    elif kind == "version_old":
        body["roster_version"] = 10
    elif kind == "drop_field":
        body.pop("people")
    elif kind == "bad_vector":
        body["people"][0]["embeddings"][0] = {"model_id": MODEL, "values": [junk]}  # never 2+ numbers
    elif kind == "bad_person":
        body["people"][0]["person_id"] = junk if not isinstance(junk, str) else f"bad id {junk}"
    elif kind == "junk_type":
        body["site"] = junk if not isinstance(junk, str) else f"not-site1-{junk}"
    signed = sign_bundle(body, OTHER if kind == "resign_other_key" else KEY)
    if kind == "tamper":
        signed["name"] = f"changed {junk}"
    try:
        result = sync.apply_raw(encode_bundle(signed))
    except BundleError:
        pass
    else:
        assert result["applied"] is False  # only the "not newer" case is a quiet no-op
    assert snapshot(store) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=500))
def test_random_bytes_never_change_the_store(synced, raw):
    sync, store = synced
    before = snapshot(store)
    with pytest.raises(BundleError):
        sync.apply_raw(raw)
    assert snapshot(store) == before


def test_oversized_bundle_rejected_and_newer_good_one_applied(synced):
    sync, store = synced
    with pytest.raises(BundleError, match="larger than"):
        sync.apply_raw(b" " * (5 * 1024 * 1024))
    assert sync.apply_raw(encode_bundle(sign_bundle(bundle(30, 3), KEY)))["roster_version"] == 30
    assert store.rosters.get("r1")["version"] == 30 and sync.version == 30


def test_older_or_equal_bundle_refused_after_a_restart(tmp_path):
    """Issue 13.5: the newest version per site and per roster survives a restart."""
    pub = tmp_path / "roster.pub.pem"
    pub.write_bytes(KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    v100, v90 = encode_bundle(sign_bundle(bundle(100), KEY)), encode_bundle(sign_bundle(bundle(90), KEY))
    other = bundle(200)
    other["roster_id"] = "r2"
    with Store(tmp_path / "data") as store:
        sync = RosterSync(store, pub, MODEL, "site1", "room1")
        assert sync.apply_raw(v100)["applied"] and sync.apply_raw(encode_bundle(sign_bundle(other, KEY)))["applied"]
    with Store(tmp_path / "data") as store:  # a new process: nothing in memory
        sync = RosterSync(store, pub, MODEL, "site1", "room1")
        assert sync.version == 200 and store.rosters.site_version("site1") == 200
        for raw in (v100, v90):
            assert sync.apply_raw(raw)["applied"] is False
        assert store.rosters.get("r1")["version"] == 100 and store.rosters.get("r2")["version"] == 200
        body = bundle(150)
        body["roster_id"] = "r3"  # a new roster, but older than the site's newest: refused too
        assert sync.apply_raw(encode_bundle(sign_bundle(body, KEY)))["applied"] is False
        with pytest.raises(BundleError, match="not newer"):  # the store refuses on its own too
            store.rosters.apply_bundle({**to_store_form(sign_bundle(body, KEY))})
        assert (tmp_path / "data" / "rosters" / "versions.json").stat().st_mode & 0o777 == 0o600
