"""Rosters from the centre: the signing key, building and signing bundles, publishing them
(retained, QoS 1) and remembering what was published, so exports can list absentees.

One roster file gives one room; one CSV (``room,person_id[,name,seat,external_id]``) plus a
people file holding the embeddings gives many rooms, published over one connection with one
``roster_version``.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.config import MqttConfig
from firmware.errors import BundleError, LinkError
from firmware.link.bundle import SCHEMA_VERSION, encode_bundle, encode_embedding
from firmware.link.client import connect_started
from firmware.link.payloads import utc_iso
from firmware.link.topics import roster_topic
from firmware.store.atomic import atomic_write_bytes
from provisioning.central.db import Database

CSV_REQUIRED = ("room", "person_id")
CSV_OPTIONAL = ("name", "seat", "external_id")
MAX_CSV_ROWS = 500_000


def generate_keypair(out_dir: Path) -> tuple[Path, Path]:
    """Write ``roster_signing_key.pem`` (0600) and ``roster_signing_key.pub.pem``; return both paths."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    out_dir = Path(out_dir)
    atomic_write_bytes(out_dir / "roster_signing_key.pem", private, mode=0o600)
    atomic_write_bytes(out_dir / "roster_signing_key.pub.pem", public, mode=0o644)
    return out_dir / "roster_signing_key.pem", out_dir / "roster_signing_key.pub.pem"


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The roster-signing private key (PEM, unencrypted PKCS8)."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path} is not an Ed25519 private key; make one with `rollcall central keygen`")
    return key


def build_bundle(roster: dict, site: str, room: str, version: int | None = None,
                 model_id: str | None = None, basis: str | None = None, by: str = "central") -> dict:
    """An unsigned bundle from a simple roster file (embeddings as lists or wire objects).

    Each person's legal basis for face data comes from their ``consent`` object, their
    ``basis``, the roster's ``basis`` or ``basis`` here; a person with embeddings and none
    is refused (the device would keep no face data of them anyway).
    """
    model = model_id or roster.get("model_id")
    if not model:
        raise BundleError("roster has no model_id; pass --model-id (the device's embedder id)")
    people = []
    for person in roster.get("people", []):
        item = {k: person[k] for k in ("person_id", "name", "external_id", "seat") if person.get(k) is not None}
        consent = _consent(person, roster.get("basis") or basis, by)
        if consent is not None:
            item["consent"] = consent
        elif person.get("embeddings"):
            raise BundleError(f"person {person.get('person_id')!r} has embeddings but no legal basis: "
                              "give them a consent object or basis, or pass --basis")
        item["embeddings"] = [e if isinstance(e, dict) else encode_embedding(e, model)
                              for e in person.get("embeddings", [])]
        people.append(item)
    roster_id = roster.get("roster_id") or "".join(c if c.isalnum() or c in "_-" else "-"
                                                   for c in f"{site}-{room}")[:64]
    return {"schema_version": SCHEMA_VERSION, "roster_version": int(version or time.time()),
            "roster_id": roster_id, "name": roster.get("name") or roster_id, "site": site,
            "room": room, "issued_at": utc_iso(), "model_id": model, "people": people}


def _consent(person: dict, basis: str | None, by: str) -> dict | None:
    """The bundle's consent object for one roster-file person (None: no basis known)."""
    if isinstance(person.get("consent"), dict):
        return {k: person["consent"][k] for k in ("basis", "recorded_by", "recorded_at")}
    basis = person.get("basis") or basis
    return None if basis is None else {"basis": basis, "recorded_by": by, "recorded_at": utc_iso()}


def rosters_from_csv(csv_path: Path, people_file: dict) -> dict[str, dict]:
    """Room -> roster dict, from a room/person CSV and a people file with the embeddings.

    Raises BundleError naming the line for a missing column, an unknown person or a
    person listed twice in one room; nothing is published then.
    """
    gallery = {p.get("person_id"): p for p in people_file.get("people", [])}
    rooms: dict[str, dict] = {}
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise BundleError(f"{csv_path}: missing column(s) {', '.join(missing)} "
                              f"(need {', '.join(CSV_REQUIRED)}; optional {', '.join(CSV_OPTIONAL)})")
        for line, row in enumerate(reader, start=2):
            if line > MAX_CSV_ROWS:
                raise BundleError(f"{csv_path}: more than {MAX_CSV_ROWS} rows")
            _add_csv_row(rooms, gallery, row, f"{csv_path}:{line}")
    for room, roster in rooms.items():
        del roster["_ids"]
        roster["model_id"] = people_file.get("model_id")
        roster["basis"] = people_file.get("basis")  # legal basis for everyone, unless a person names one
        roster["name"] = room
    return rooms


def _add_csv_row(rooms: dict, gallery: dict, row: dict, where: str) -> None:
    room, person_id = (row.get("room") or "").strip(), (row.get("person_id") or "").strip()
    if not room or not person_id:
        raise BundleError(f"{where}: room and person_id must not be empty")
    if person_id not in gallery:
        raise BundleError(f"{where}: person {person_id!r} is not in the people file")
    roster = rooms.setdefault(room, {"people": [], "_ids": set()})
    if person_id in roster["_ids"]:
        raise BundleError(f"{where}: person {person_id!r} is listed twice for room {room!r}")
    roster["_ids"].add(person_id)
    person = dict(gallery[person_id])
    for column in CSV_OPTIONAL:
        if (row.get(column) or "").strip():
            person[column] = row[column].strip()
    roster["people"].append(person)


def publish_bundles(cfg: MqttConfig, bundles: list[dict], timeout: float = 10.0) -> list[str]:
    """Publish signed bundles retained (QoS 1) over one connection; returns their topics."""
    client = connect_started(cfg, f"rollcall-central-roster-{int(time.time() * 1000) % 10**9}")
    try:
        sent = [(roster_topic(cfg.prefix, b["site"], b["room"]),
                 client.publish(roster_topic(cfg.prefix, b["site"], b["room"]),
                                encode_bundle(b), qos=1, retain=True)) for b in bundles]
        deadline = time.monotonic() + timeout + len(bundles) * 0.05
        for topic, info in sent:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise LinkError(f"broker did not acknowledge the roster on {topic} in time")
    finally:
        client.disconnect()
        client.loop_stop()
    return [topic for topic, _ in sent]


def publish_bundle(cfg: MqttConfig, bundle: dict, timeout: float = 10.0) -> str:
    """Publish one signed bundle retained (QoS 1) on its roster topic; returns the topic."""
    return publish_bundles(cfg, [bundle], timeout)[0]


def record_rosters(db: Database, bundles: list[dict]) -> None:
    """Remember published bundles (people without embeddings) for exports; idempotent."""
    rows = []
    for b in bundles:
        people = [{k: p.get(k) for k in ("person_id", "name", "external_id", "seat")} for p in b["people"]]
        rows.append((b["site"], b["room"], b["roster_version"], b.get("roster_id"), b.get("name"),
                     b.get("model_id"), b.get("issued_at"), utc_iso(), json.dumps(people)))
    db.executemany("INSERT INTO rosters (site, room, version, roster_id, name, model_id, issued_at, "
                   "published_at, people) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (site, room, version) DO NOTHING", rows)
    db.commit()
