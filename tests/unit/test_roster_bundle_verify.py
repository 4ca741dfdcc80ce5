"""Roster bundles: sign/verify round trip and every rejection reason (incl. property-based)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.errors import BundleError
from firmware.link.signing import signature_member
from firmware.link.bundle import (MAX_BUNDLE_BYTES, canonical_bytes, decode_embedding, encode_embedding,
                                  encode_bundle, is_stale, sign_bundle, to_store_form,
                                  verify_bundle)

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()
MODEL = "dlib_resnet_int8"


def make_bundle(version: int = 5, people: int = 3, model: str = MODEL, **extra) -> dict:
    rng = np.random.default_rng(version)
    body = {"schema_version": 1, "roster_version": version, "roster_id": "maths-101", "name": "Maths",
            "site": "site1", "room": "room1", "issued_at": "2026-11-21T08:00:00.000Z", "model_id": model,
            "people": [{"person_id": f"p{i}", "name": f"Person {i}", "seat": f"A{i}",
                        "embeddings": [encode_embedding(rng.normal(size=128), model)]} for i in range(people)]}
    body.update(extra)
    return body


def raw(bundle: dict) -> bytes:
    """Wire bytes as the central side sends them (signature last), or plain JSON if unsigned."""
    if isinstance(bundle.get("signature"), dict):
        return encode_bundle(bundle)
    return json.dumps(bundle).encode()


def verify(data: bytes, current: int | None = 1) -> dict:
    return verify_bundle(data, PUB, MODEL, current, site="site1", room="room1")


def test_round_trip_and_store_form():
    bundle = sign_bundle(make_bundle(), KEY)
    got = verify(raw(bundle))
    assert got["roster_version"] == 5 and len(got["people"]) == 3
    form = to_store_form(got)
    assert form["version"] == 5 and form["roster_id"] == "maths-101"
    assert form["people"][0]["embeddings"][0]["vector"].shape == (128,)
    assert form["people"][0]["seat"] == "A0"


def test_values_form_and_canonical_order_independent():
    body = make_bundle(people=1)
    body["people"][0]["embeddings"] = [{"model_id": MODEL, "values": [0.5, -0.25, 1.0]}]
    shuffled = dict(reversed(list(body.items())))
    assert canonical_bytes(body) == canonical_bytes(shuffled)
    got = verify(raw(sign_bundle(shuffled, KEY)))
    assert decode_embedding(got["people"][0]["embeddings"][0]).tolist() == [0.5, -0.25, 1.0]


@pytest.mark.parametrize("mutate, reason", [
    (lambda b: b.update(name="Changed after signing"), "signature does not verify"),
    (lambda b: b["people"][0].update(seat="Z9"), "signature does not verify"),
    (lambda b: b.pop("signature"), "no ed25519 signature"),
    (lambda b: b["signature"].update(value="!!!"), "does not verify"),
    (lambda b: b["signature"].update(alg="rsa"), "no ed25519 signature"),
])
def test_tampered_bundles_are_rejected(mutate, reason):
    bundle = sign_bundle(make_bundle(), KEY)
    mutate(bundle)
    with pytest.raises(BundleError, match=reason):
        verify(raw(bundle))


def test_wrong_key_is_rejected_with_key_id():
    other = Ed25519PrivateKey.generate()
    with pytest.raises(BundleError, match="installed roster key"):
        verify(raw(sign_bundle(make_bundle(), other)))


@pytest.mark.parametrize("bundle, reason", [
    (make_bundle(model="facenet_int8"), "re-embed"),
    (make_bundle(site="other"), "site"),
    (make_bundle(room="room2"), "room"),
    (make_bundle(schema_version=2), "schema_version"),
    (make_bundle(roster_version=0), "positive integer"),
    (make_bundle(roster_id="bad id!"), "roster_id"),
    (make_bundle(unexpected=1), "unknown fields"),
])
def test_signed_but_invalid_bundles_are_rejected(bundle, reason):
    with pytest.raises(BundleError, match=reason):
        verify(raw(sign_bundle(bundle, KEY)))


def test_embedding_from_another_model_is_rejected():
    body = make_bundle()
    body["people"][1]["embeddings"] = [encode_embedding(np.ones(128), "facenet_int8")]
    with pytest.raises(BundleError, match="facenet_int8"):
        verify(raw(sign_bundle(body, KEY)))


def test_room_all_is_accepted():
    assert verify(raw(sign_bundle(make_bundle(room="_all"), KEY)))["room"] == "_all"


def test_older_or_equal_version_is_stale():
    data = raw(sign_bundle(make_bundle(version=5), KEY))
    for current in (5, 6):
        with pytest.raises(BundleError) as info:
            verify(data, current)
        assert is_stale(info.value)
    assert verify(data, None)["roster_version"] == 5


def test_oversized_rejected_before_parsing():
    data = b"{" + b" " * MAX_BUNDLE_BYTES + b"}"
    with pytest.raises(BundleError, match="larger than"):
        verify(data)


@pytest.mark.parametrize("data, reason", [
    (b"\xff\xfe", "UTF-8"), (b"[1,2]", "JSON object"), (b"{", "not valid JSON"),
    (b'{"a": NaN}', "not JSON"), (b'{"a": 1, "a": 2}', "duplicated key"),
    (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
])
def test_malformed_bytes_are_rejected_before_parsing_unless_signed(data, reason):
    """Unsigned junk never reaches the JSON parser; signed junk is parsed and refused."""
    with pytest.raises(BundleError, match="signature"):
        verify(data)
    signed = b'{"x":' + data + b"}"
    wire = signed[:-1] + b',"signature":' + json.dumps(
        signature_member(signed, KEY, "k")).encode() + b"}"
    with pytest.raises(BundleError, match=reason if reason != "JSON object" else "unknown fields"):
        verify(wire)


def test_signature_must_be_the_last_field():
    bundle = sign_bundle(make_bundle(), KEY)
    reordered = json.dumps({"signature": bundle["signature"], **bundle}).encode()
    with pytest.raises(BundleError, match="last field"):
        verify(reordered)


def test_non_finite_embedding_rejected():
    body = make_bundle()
    body["people"][0]["embeddings"] = [encode_embedding(np.array([1.0, np.inf], dtype=np.float32), MODEL)]
    with pytest.raises(BundleError, match="finite"):
        verify(raw(sign_bundle(body, KEY)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_only_ever_raise_bundle_error(data):
    with pytest.raises(BundleError):
        verify(data)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                           max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(["roster_version", "roster_id", "site", "room", "model_id", "people", "name", "extra"]),
       value=json_values, resign=st.booleans())
def test_mutated_bundles_rejected_or_still_consistent(field, value, resign):
    """Any change is rejected unless re-signed; a re-signed one is accepted only if it is valid."""
    body = make_bundle()
    original = body.get(field)
    body[field] = value
    bundle = sign_bundle(body, KEY) if resign else {**sign_bundle(make_bundle(), KEY), field: value}
    try:
        got = verify(raw(bundle))
    except BundleError:
        return
    assert resign or value == original
    assert got["model_id"] == MODEL and got["site"] == "site1" and got["roster_version"] > 1
