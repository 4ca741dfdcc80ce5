"""Reference central side of the MQTT contract v1 (docs/mqtt-contract.md).

- ``rollcall central collect``: a persistent MQTT v5 session (fixed client id, session
  expiry, QoS 1) on every device's events and status, written into SQLite de-duplicated by
  ``event_id``. Messages are acknowledged (manual PUBACK) only after their rows are
  committed, so a crash of the collector loses nothing either.
- ``rollcall central export``: one session's attendance as CSV.
- ``rollcall central roster publish``: build, sign (Ed25519) and publish a roster, retained.
- ``rollcall central keygen``: the roster-signing key pair.

Everything is importable (``Collector``, ``export_session``, ``build_bundle``,
``publish_bundle``, ``generate_keypair``) so tests and benchmarks run it in-process.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.config import MqttConfig
from firmware.errors import BundleError, LinkError
from firmware.link.bundle import SCHEMA_VERSION, encode_embedding, sign_bundle
from firmware.link.client import build_client, describe_connect_error, session_properties, set_nodelay
from firmware.link.payloads import utc_iso
from firmware.link.topics import central_filters, roster_topic, split_device_topic
from firmware.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86400
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
  event_id TEXT PRIMARY KEY, site TEXT, device_id TEXT, kind TEXT, seq INTEGER,
  captured_at TEXT, session_id TEXT, person_id TEXT, model_id TEXT, payload TEXT, received_at TEXT,
  topic TEXT);
CREATE INDEX IF NOT EXISTS events_device_seq ON events(device_id, seq);
CREATE INDEX IF NOT EXISTS events_session ON events(session_id);
CREATE TABLE IF NOT EXISTS devices (
  site TEXT, device_id TEXT, state TEXT, payload TEXT, updated_at TEXT, PRIMARY KEY (site, device_id));
CREATE TABLE IF NOT EXISTS rejects (topic TEXT, reason TEXT, payload TEXT, received_at TEXT);
"""


def open_db(path: Path) -> sqlite3.Connection:
    """The collector database (WAL), created when missing."""
    db = sqlite3.connect(str(path), check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


class Collector:
    """Collects events into SQLite; ``run()`` until a count or a timeout. A context manager."""

    def __init__(self, cfg: MqttConfig, db_path: Path, client_id: str = "rollcall-central",
                 session_expiry_s: int = SESSION_EXPIRY_S) -> None:
        self.cfg = cfg
        self.db = open_db(Path(db_path))
        self.client_id = client_id
        self.session_expiry_s = session_expiry_s
        self.duplicates = 0
        self.received = 0
        self.connected = threading.Event()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._client = None
        self._closed = False

    def start(self) -> "Collector":
        """Connect (persistent session) and subscribe; messages queue until ``run`` stores them."""
        client = build_client(self.cfg, self.client_id, manual_ack=True)
        client.reconnect_delay_set(1, 5)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        client.on_message = lambda c, u, msg: self._queue.put(msg)
        try:
            client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s,
                           clean_start=False, properties=session_properties(self.session_expiry_s))
        except OSError as exc:
            self.close()
            raise LinkError(describe_connect_error(exc, self.cfg)) from None
        set_nodelay(client)
        self._client = client
        client.loop_start()
        return self

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.error("broker refused the collector: %s", reason_code)
            return
        client.subscribe([(topic, 1) for topic in central_filters(self.cfg.prefix)])
        logger.info("collector connected (session present: %s)", flags.session_present)
        self.connected.set()

    def count(self) -> int:
        """Unique events stored."""
        return self.db.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def run(self, until_count: int | None = None, timeout: float | None = None) -> int:
        """Store messages until ``until_count`` unique events or ``timeout`` seconds; returns the count."""
        deadline = None if timeout is None else time.monotonic() + timeout
        count = self.count()
        while until_count is None or count < until_count:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            count += self.store_batch(min(0.2, left) if left is not None else 0.2)
        return count

    def store_batch(self, wait_s: float) -> int:
        """Wait up to ``wait_s`` for messages, store all that are queued, commit, then PUBACK them."""
        try:
            batch = [self._queue.get(timeout=wait_s)]
        except queue.Empty:
            return 0
        while len(batch) < 5000:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        added = sum(self._store(msg) for msg in batch)
        self.db.commit()
        for msg in batch:
            if msg.qos > 0:
                self._client.ack(msg.mid, msg.qos)
        return added

    def _store(self, msg) -> int:
        return self.store_message(msg.topic, msg.payload)

    def store_message(self, topic: str, raw: bytes) -> int:
        """Store one message (not committed); returns 1 for a new event, else 0."""
        self.received += 1
        now = utc_iso()
        where = split_device_topic(self.cfg.prefix, topic)
        try:
            payload = json.loads(raw)
            if where is None or not isinstance(payload, dict):
                raise ValueError("not a device topic or not a JSON object")
        except ValueError as exc:
            self._reject(topic, raw, str(exc), now)
            return 0
        site, device_id, rest = where
        if rest == "status":
            self.db.execute("INSERT OR REPLACE INTO devices VALUES (?,?,?,?,?)",
                            (site, device_id, payload.get("state"), raw.decode(), now))
            return 0
        if not isinstance(payload.get("event_id"), str) or not isinstance(payload.get("seq"), int):
            self._reject(topic, raw, "event without event_id/seq", now)
            return 0
        cur = self.db.execute(
            "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (payload["event_id"], site, device_id, rest.removeprefix("event/"), payload["seq"],
             payload.get("captured_at"), payload.get("session_id"), payload.get("person_id"),
             payload.get("model_id"), raw.decode(), now, topic))
        if cur.rowcount == 0:
            self.duplicates += 1
        return cur.rowcount

    def _reject(self, topic: str, raw: bytes, reason: str, now: str) -> None:
        logger.warning("rejected message on %s: %s", topic, reason)
        self.db.execute("INSERT INTO rejects VALUES (?,?,?,?)",
                        (topic, reason, raw[:2000].decode(errors="replace"), now))

    def close(self) -> None:
        """Store what is queued, disconnect (the broker keeps the session), close the db; safe twice."""
        if self._closed:
            return
        self._closed = True
        if self._client is not None:
            while self.store_batch(0.05):
                pass
            self._client.disconnect()
            self._client.loop_stop()
        self.db.close()

    def __enter__(self) -> "Collector":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


EXPORT_COLUMNS = ["event_id", "device_id", "seq", "captured_at", "session_id", "person_id",
                  "name", "status", "seat", "score"]


def export_session(db_path: Path, session_id: str, out_csv: Path) -> int:
    """Write one session's attendance events as CSV (ordered by capture time); returns rows."""
    db = open_db(Path(db_path))
    try:
        rows = db.execute("SELECT payload FROM events WHERE session_id = ? AND kind = 'attendance' "
                          "ORDER BY captured_at, device_id, seq", (session_id,)).fetchall()
    finally:
        db.close()
    with open(out_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, EXPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for (payload,) in rows:
            writer.writerow(json.loads(payload))
    return len(rows)


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

    Each person's legal basis comes from their ``consent`` object, their ``basis``, the
    roster's ``basis`` or ``basis`` here; a person with embeddings and none is refused.
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


def publish_bundle(cfg: MqttConfig, bundle: dict, timeout: float = 10.0) -> str:
    """Publish a signed bundle retained (QoS 1) on its roster topic; returns the topic."""
    topic = roster_topic(cfg.prefix, bundle["site"], bundle["room"])
    client = build_client(cfg, f"rollcall-central-roster-{int(time.time() * 1000) % 10**9}")
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
    except OSError as exc:
        raise LinkError(describe_connect_error(exc, cfg)) from None
    client.loop_start()
    try:
        info = client.publish(topic, json.dumps(bundle, separators=(",", ":")), qos=1, retain=True)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise LinkError(f"broker did not acknowledge the roster within {timeout} s")
    finally:
        client.disconnect()
        client.loop_stop()
    return topic


# ----- CLI ----------------------------------------------------------------------------------

def _add_broker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", required=True, help="HOST:PORT of the central broker")
    parser.add_argument("--prefix", default="rollcall/v1", help="topic prefix (default rollcall/v1)")
    parser.add_argument("--tls", action="store_true", help="use TLS")
    parser.add_argument("--ca-file", type=Path, help="CA that signed the broker certificate")
    parser.add_argument("--cert-file", type=Path, help="client certificate")
    parser.add_argument("--key-file", type=Path, help="client key")
    parser.add_argument("--username", default="", help="MQTT user name")
    parser.add_argument("--password-file", type=Path, help="file holding the MQTT password")


def mqtt_config(args: argparse.Namespace) -> MqttConfig:
    """MqttConfig from the broker arguments."""
    host, _, port = args.broker.rpartition(":")
    if not host or not port.isdigit():
        raise LinkError(f"--broker {args.broker!r} is not HOST:PORT")
    return MqttConfig(host=host, port=int(port), prefix=args.prefix, tls=args.tls or bool(args.ca_file),
                      ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file,
                      username=args.username, password_file=args.password_file)


def register(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the arguments of one ``central`` subcommand and set ``func``."""
    if command == "central collect":
        _add_broker_args(parser)
        parser.add_argument("--db", type=Path, required=True, help="SQLite file")
        parser.add_argument("--client-id", default="rollcall-central", help="fixed MQTT client id")
        parser.add_argument("--until-count", type=int, help="stop after this many unique events")
        parser.add_argument("--timeout", type=float, help="stop after this many seconds")
        parser.set_defaults(func=_collect)
    elif command == "central export":
        parser.add_argument("--db", type=Path, required=True)
        parser.add_argument("--session", required=True, help="session id")
        parser.add_argument("--csv", type=Path, required=True, help="output CSV file")
        parser.set_defaults(func=lambda a: print(f"{export_session(a.db, a.session, a.csv)} rows"))
    elif command == "central roster":
        parser.add_argument("action", choices=["publish"])
        parser.add_argument("roster", type=Path, help="roster JSON (people, embeddings, model_id)")
        parser.add_argument("--key", type=Path, required=True, help="roster-signing private key (PEM)")
        parser.add_argument("--site", required=True)
        parser.add_argument("--room", required=True, help="room, or _all for the whole site")
        parser.add_argument("--version", type=int, help="roster version (default: UNIX seconds)")
        parser.add_argument("--model-id", help="embedder id (default: the roster file's model_id)")
        parser.add_argument("--basis", choices=["consent", "contract", "legal_obligation"],
                            help="legal basis for people whose roster entry names none")
        _add_broker_args(parser)
        parser.set_defaults(func=_roster_publish)
    else:
        parser.add_argument("--out", type=Path, required=True, help="directory for the key pair")
        parser.set_defaults(func=lambda a: print("\n".join(map(str, generate_keypair(a.out)))))


def _collect(args: argparse.Namespace) -> int:
    with Collector(mqtt_config(args), args.db, client_id=args.client_id) as collector:
        count = collector.run(args.until_count, args.timeout)
        print(f"{count} events stored, {collector.duplicates} duplicates ignored")
    return 0 if args.until_count is None or count >= args.until_count else 1


def _roster_publish(args: argparse.Namespace) -> int:
    roster = json.loads(args.roster.read_text(encoding="utf-8"))
    bundle = sign_bundle(build_bundle(roster, args.site, args.room, args.version, args.model_id,
                                      basis=args.basis),
                         load_private_key(args.key))
    topic = publish_bundle(mqtt_config(args), bundle)
    print(f"roster version {bundle['roster_version']} ({len(bundle['people'])} people) published on {topic}")
    return 0
