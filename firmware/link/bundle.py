"""Signed roster bundles: build, sign (central side) and verify (device side). Pure, no I/O.

A bundle is one JSON object (schema: ``firmware/contract/roster-bundle.schema.json``)::

    {"schema_version": 1, "roster_version": 1763712000, "site": "s1", "room": "hall-1" | "_all",
     "issued_at": "...Z", "model_id": "dlib_resnet_int8", "roster_id": "maths-101", "name": "...",
     "people": [{"person_id", "name", "external_id"?, "seat"?,
                 "consent"?: {"basis", "recorded_by", "recorded_at"},
                 "embeddings": [{"model_id", "float32_b64"} | {"model_id", "values": [...]}]}],

A person's ``consent`` records the legal basis for their face data (``consent``,
``contract`` or ``legal_obligation``); without one the device keeps no embeddings of them
unless its ``privacy.default_basis`` is set.
     "signature": {"alg": "ed25519", "key_id": "<16 hex>", "value": "<base64>"}}

The Ed25519 signature covers :func:`canonical_bytes` of everything except ``signature``
(sorted keys, no spaces, UTF-8, no NaN). Use ``float32_b64`` for embeddings: its bytes are
exact in every language, while float text formatting differs between JSON libraries.
``roster_version`` is one increasing number per site (the reference central side uses
UNIX seconds), so a room bundle and an ``_all`` bundle compare correctly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware.errors import BundleError
from firmware.link.signing import MARKER, split_signed, verify_member

SCHEMA_VERSION = 1
MAX_BUNDLE_BYTES = 4 * 1024 * 1024
MAX_PEOPLE = 10_000
MAX_EMBEDDINGS_PER_PERSON = 32
MAX_DIM = 2048
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")          # site, room, model id
PERSON_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")   # person_id, roster_id (store rules)
MAX_SEAT = 16
TOP_KEYS = {"schema_version", "roster_version", "site", "room", "issued_at", "model_id",
            "roster_id", "name", "people", "signature"}
PERSON_KEYS = {"person_id", "name", "external_id", "seat", "embeddings", "consent"}
BASES = ("consent", "contract", "legal_obligation")


def canonical_bytes(bundle: dict) -> bytes:
    """The signed bytes: every field but ``signature``, sorted keys, compact, UTF-8."""
    body = {k: v for k, v in bundle.items() if k != "signature"}
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise BundleError(f"bundle is not plain JSON ({exc})") from None


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short fingerprint of a public key (first 16 hex digits of SHA-256 of its raw bytes)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign_bundle(bundle: dict, private_key: Ed25519PrivateKey) -> dict:
    """A copy of ``bundle`` with a fresh Ed25519 ``signature`` over its canonical bytes."""
    body = {k: v for k, v in bundle.items() if k != "signature"}
    signature = private_key.sign(canonical_bytes(body))
    body["signature"] = {"alg": "ed25519", "key_id": key_id(private_key.public_key()),
                         "value": base64.b64encode(signature).decode("ascii")}
    return body


def encode_bundle(bundle: dict) -> bytes:
    """Wire bytes of a signed bundle: canonical body, then ``signature`` as the LAST field,
    so the device verifies the raw bytes before parsing them (see ``firmware.link.signing``)."""
    signature = bundle.get("signature")
    if not isinstance(signature, dict):
        raise BundleError("bundle is not signed; sign it with sign_bundle first")
    member = json.dumps(signature, separators=(",", ":"), sort_keys=True).encode("ascii")
    return canonical_bytes(bundle)[:-1] + MARKER + member + b"}"


def encode_embedding(vector: np.ndarray | list[float], model_id: str) -> dict:
    """One embedding in wire form (little-endian float32, base64)."""
    array = np.asarray(vector, dtype="<f4").ravel()
    return {"model_id": model_id, "float32_b64": base64.b64encode(array.tobytes()).decode("ascii")}


def to_store_form(bundle: dict) -> dict:
    """A verified bundle in the shape ``store.rosters.apply_bundle`` takes (vectors decoded)."""
    people = [{"person_id": p["person_id"], "name": p["name"], "external_id": p.get("external_id"),
               "seat": p.get("seat"), "consent": p.get("consent"),
               "embeddings": [{"model_id": e["model_id"], "vector": decode_embedding(e)}
                              for e in p.get("embeddings", [])]} for p in bundle["people"]]
    return {"roster_id": bundle["roster_id"], "version": bundle["roster_version"],
            "name": bundle.get("name") or bundle["roster_id"], "site": bundle["site"],
            "room": bundle["room"], "model_id": bundle["model_id"], "people": people}


def decode_embedding(embedding: dict) -> np.ndarray:
    """Wire form -> float32 vector (from ``float32_b64`` or ``values``)."""
    if "float32_b64" in embedding:
        raw = base64.b64decode(embedding["float32_b64"], validate=True)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    return np.asarray(embedding["values"], dtype=np.float32)


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Parse the roster-signing public key (PEM) installed at provisioning."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise BundleError(f"roster public key is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError("roster public key is not an Ed25519 key; run `rollcall central keygen`")
    return key


def verify_bundle(raw: bytes, public_key: Ed25519PublicKey, expected_model_id: str,
                  current_version: int | None, *, site: str | None = None,
                  room: str | None = None) -> dict:
    """Check size, JSON, signature, schema, site/room, model id and version; return the bundle.

    Raises ``BundleError`` whose message says what was wrong. Equal or older versions
    raise ``BundleError`` too (``stale`` attribute True) so callers can ignore them quietly.
    """
    if not isinstance(raw, (bytes, bytearray)):
        raise BundleError("bundle must be bytes")
    if len(raw) > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle is {len(raw)} bytes, larger than the {MAX_BUNDLE_BYTES} byte limit")
    signed, member = split_signed(raw, "bundle")
    if not verify_member(signed, member, public_key):
        raise BundleError("bundle signature does not verify with the installed roster key "
                          f"(key id {key_id(public_key)}); was it signed by the central key?")
    bundle = parse_json(signed)  # only now: the bytes are the centre's
    if "signature" in bundle:
        raise BundleError("bundle has a second signature field")
    return _check_verified(bundle, expected_model_id, current_version, site, room)


def verify_bundle_dict(bundle: object, public_key: Ed25519PublicKey, expected_model_id: str,
                       current_version: int | None, *, site: str | None = None,
                       room: str | None = None) -> dict:
    """:func:`verify_bundle` for an already parsed (size-checked, strict) JSON object."""
    if not isinstance(bundle, dict):
        raise BundleError("bundle must be a JSON object")
    check_signature(bundle, public_key)
    return _check_verified(bundle, expected_model_id, current_version, site, room)


def _check_verified(bundle: dict, expected_model_id: str, current_version: int | None,
                    site: str | None, room: str | None) -> dict:
    """Schema, target, model and version checks of a bundle whose signature verified."""
    check_schema(bundle)
    _check_target(bundle, expected_model_id, site, room)
    version = bundle["roster_version"]
    if current_version is not None and version <= current_version:
        error = BundleError(f"roster version {version} is not newer than the installed {current_version}")
        error.stale = True  # type: ignore[attr-defined]
        raise error
    return bundle


def parse_json(raw: bytes) -> dict:
    """Strict JSON object: UTF-8, no NaN/Infinity, no duplicate keys, bounded nesting."""
    def no_constant(name: str) -> None:
        raise BundleError(f"bundle contains {name}, which is not JSON")

    def no_duplicates(pairs: list) -> dict:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise BundleError("bundle has a duplicated key")
        return dict(pairs)

    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=no_constant, object_pairs_hook=no_duplicates)
    except UnicodeDecodeError:
        raise BundleError("bundle is not UTF-8 text") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BundleError(f"bundle is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(data, dict):
        raise BundleError("bundle must be a JSON object")
    return data


def check_signature(bundle: dict, public_key: Ed25519PublicKey) -> None:
    """Verify the Ed25519 signature; BundleError when missing, malformed or wrong."""
    sig = bundle.get("signature")
    if not isinstance(sig, dict) or sig.get("alg") != "ed25519" or not isinstance(sig.get("value"), str):
        raise BundleError("bundle has no ed25519 signature (expected signature.alg = 'ed25519')")
    try:
        value = base64.b64decode(sig["value"], validate=True)
    except (binascii.Error, ValueError):
        raise BundleError("bundle signature is not base64") from None
    try:
        public_key.verify(value, canonical_bytes(bundle))
    except InvalidSignature:
        raise BundleError("bundle signature does not verify with the installed roster key "
                          f"(key id {key_id(public_key)}); was it signed by the central key?") from None


def check_schema(bundle: dict) -> None:
    """Structural checks matching ``roster-bundle.schema.json`` (no jsonschema at runtime)."""
    extra = set(bundle) - TOP_KEYS
    if extra:
        raise BundleError(f"bundle has unknown fields: {', '.join(sorted(extra))[:120]}")
    if bundle.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(f"bundle schema_version must be {SCHEMA_VERSION}")
    version = bundle.get("roster_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < 2**53:
        raise BundleError("roster_version must be a positive integer")
    for name in ("site", "room", "model_id"):
        if not isinstance(bundle.get(name), str) or not ID_RE.match(bundle[name]):
            raise BundleError(f"bundle field {name!r} is missing or not an id")
    if not isinstance(bundle.get("roster_id"), str) or not PERSON_ID_RE.match(bundle["roster_id"]):
        raise BundleError("bundle field 'roster_id' is missing or not like 'maths-101' (letters, digits, _ -)")
    for name in ("issued_at", "name"):
        if name in bundle and (not isinstance(bundle[name], str) or len(bundle[name]) > 200):
            raise BundleError(f"bundle field {name!r} must be a short string")
    people = bundle.get("people")
    if not isinstance(people, list) or len(people) > MAX_PEOPLE:
        raise BundleError(f"bundle people must be a list of at most {MAX_PEOPLE}")
    seen: set[str] = set()
    for index, person in enumerate(people):
        _check_person(person, index, seen)


def _check_person(person: object, index: int, seen: set[str]) -> None:
    where = f"people[{index}]"
    if not isinstance(person, dict) or set(person) - PERSON_KEYS:
        raise BundleError(f"{where} must be an object with only {', '.join(sorted(PERSON_KEYS))}")
    pid = person.get("person_id")
    if not isinstance(pid, str) or not PERSON_ID_RE.match(pid):
        raise BundleError(f"{where}.person_id is missing or not an id")
    if pid in seen:
        raise BundleError(f"{where}.person_id {pid!r} appears twice")
    seen.add(pid)
    if not isinstance(person.get("name"), str) or not 0 < len(person["name"]) <= 120:
        raise BundleError(f"{where}.name must be 1..120 characters")
    for name, limit in (("external_id", 64), ("seat", MAX_SEAT)):
        value = person.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise BundleError(f"{where}.{name} must be a string of at most {limit} characters")
    _check_consent(person.get("consent"), where)
    embeddings = person.get("embeddings", [])
    if not isinstance(embeddings, list) or len(embeddings) > MAX_EMBEDDINGS_PER_PERSON:
        raise BundleError(f"{where}.embeddings must be a list of at most {MAX_EMBEDDINGS_PER_PERSON}")
    for number, embedding in enumerate(embeddings):
        _check_embedding(embedding, f"{where}.embeddings[{number}]")


def _check_consent(consent: object, where: str) -> None:
    if consent is None:
        return
    if not isinstance(consent, dict) or set(consent) != {"basis", "recorded_by", "recorded_at"}:
        raise BundleError(f"{where}.consent must be {{basis, recorded_by, recorded_at}}")
    if consent["basis"] not in BASES:
        raise BundleError(f"{where}.consent.basis must be one of {', '.join(BASES)}")
    for name, limit in (("recorded_by", 80), ("recorded_at", 40)):
        if not isinstance(consent[name], str) or not 0 < len(consent[name]) <= limit:
            raise BundleError(f"{where}.consent.{name} must be a string of 1..{limit} characters")


def _check_embedding(embedding: object, where: str) -> None:
    if not isinstance(embedding, dict) or not isinstance(embedding.get("model_id"), str):
        raise BundleError(f"{where} must be an object with a model_id")
    keys = set(embedding) - {"model_id"}
    if keys not in ({"float32_b64"}, {"values"}):
        raise BundleError(f"{where} needs exactly one of float32_b64 or values")
    if "values" in embedding:
        values = embedding["values"]
        if not isinstance(values, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise BundleError(f"{where}.values must be a list of numbers")
    elif not isinstance(embedding["float32_b64"], str):
        raise BundleError(f"{where}.float32_b64 must be a base64 string")
    try:
        vector = decode_embedding(embedding)
    except (binascii.Error, ValueError, OverflowError):
        raise BundleError(f"{where} is not a float32 vector") from None
    if not 2 <= vector.size <= MAX_DIM or not np.all(np.isfinite(vector)):
        raise BundleError(f"{where} must have 2..{MAX_DIM} finite values")


def _check_target(bundle: dict, expected_model_id: str, site: str | None, room: str | None) -> None:
    if bundle["model_id"] != expected_model_id:
        raise BundleError(f"bundle is for model {bundle['model_id']!r} but this device runs "
                          f"{expected_model_id!r}; re-embed the roster with the device's model")
    dims = set()
    for person in bundle["people"]:
        for embedding in person.get("embeddings", []):
            if embedding["model_id"] != expected_model_id:
                raise BundleError(f"an embedding of {person['person_id']} was made by "
                                  f"{embedding['model_id']!r}, not {expected_model_id!r}")
            dims.add(decode_embedding(embedding).size)
    if len(dims) > 1:
        raise BundleError(f"embeddings have different sizes {sorted(dims)}")
    if site is not None and bundle["site"] != site:
        raise BundleError(f"bundle is for site {bundle['site']!r}, this device is in {site!r}")
    if room is not None and bundle["room"] not in (room, "_all"):
        raise BundleError(f"bundle is for room {bundle['room']!r}, this device is in {room!r}")


def is_stale(error: BaseException) -> bool:
    """True when a BundleError only says the bundle is not newer than the installed one."""
    return bool(getattr(error, "stale", False))


__all__ = ["MAX_BUNDLE_BYTES", "canonical_bytes", "sign_bundle", "encode_bundle", "verify_bundle", "verify_bundle_dict", "decode_embedding",
           "encode_embedding", "load_public_key", "key_id", "is_stale"]
