"""Reference central side: order an erasure on every device of a site, and follow it.

- ``rollcall central erase --person ID --site S --key K --db DB --broker H:P [--full]``
  records an erasure request in the central database (SQLite or PostgreSQL), signs one
  ``cmd/erasure`` per device of the site (Ed25519, the roster-signing key, through
  :func:`firmware.link.cmdauth.sign_command`: target, time and nonce signed) and publishes
  it (QoS 1, not retained). Devices are the ones the collector has seen (``devices``,
  from their status messages) plus any ``--device``.
- ``rollcall central erase --resend ...`` signs again (fresh time and nonce) and re-sends
  every request to the devices that have not confirmed yet (a device that was offline:
  devices use clean sessions, so a command sent while one is offline is lost). Devices
  de-duplicate by ``erasure_id``.
- ``rollcall central erasures --db DB`` lists requests and, per device, the confirmation:
  the device's ``event/erasure`` (collected like every event by ``rollcall central
  collect``) with the counts it deleted.
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.config import MqttConfig
from firmware.errors import LinkError
from firmware.link.client import connect_started
from firmware.link.cmdauth import sign_command
from firmware.link.payloads import utc_iso
from provisioning.central.cli import _add_broker_args, _add_db_arg, mqtt_config
from provisioning.central.db import Database, connect
from provisioning.central.roster import load_private_key

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS erasure_requests (
         erasure_id TEXT PRIMARY KEY, site TEXT, person_id TEXT, full_erasure INTEGER,
         requested_by TEXT, requested_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS erasure_sends (
         erasure_id TEXT, device_id TEXT, sent_at TEXT, PRIMARY KEY (erasure_id, device_id))""",
]
FIELDS = ("erasure_id", "site", "person_id", "full", "requested_by", "requested_at")


def open_erasure_db(target) -> Database:
    """The central database with the erasure tables."""
    db = connect(target)
    for statement in SCHEMA:
        db.execute(statement)
    db.commit()
    return db


def site_devices(db: Database, site: str) -> list[str]:
    """Devices of a site the collector has seen (from their status messages)."""
    return [r[0] for r in db.query("SELECT device_id FROM devices WHERE site = ? ORDER BY device_id",
                                   (site,))]


def erasure_command(request: dict, device_id: str, key: Ed25519PrivateKey) -> bytes:
    """The signed ``cmd/erasure`` bytes for one device."""
    args = {"erasure_id": request["erasure_id"], "person_id": request["person_id"],
            "full": bool(request["full"]), "requested_by": request["requested_by"][:40]}
    return sign_command("erasure", {"site": request["site"], "device": device_id}, key, args,
                        request_id=request["erasure_id"])


def request_erasure(db: Database, site: str, person_id: str, full: bool, by: str) -> dict:
    """Record a new request; returns it."""
    request = dict(zip(FIELDS, (f"er-{uuid.uuid4().hex[:20]}", site, person_id, full, by, utc_iso())))
    db.execute("INSERT INTO erasure_requests VALUES (?,?,?,?,?,?)",
               (request["erasure_id"], site, person_id, int(full), by, request["requested_at"]))
    db.commit()
    return request


def confirmations(db: Database, erasure_id: str) -> dict[str, dict]:
    """device_id -> the payload of its ``event/erasure`` for this request."""
    out = {}
    for device_id, raw in db.query("SELECT device_id, payload FROM events WHERE kind = 'erasure'"):
        payload = json.loads(raw)
        if payload.get("request_id") == erasure_id:
            out[device_id] = payload
    return out


def list_erasures(db: Database) -> list[dict]:
    """Every request with the devices it was sent to and their confirmations."""
    out = []
    for row in db.query("SELECT erasure_id, site, person_id, full_erasure, requested_by, requested_at "
                        "FROM erasure_requests ORDER BY requested_at"):
        request = dict(zip(FIELDS, row))
        request["full"] = bool(request["full"])
        sent = [r[0] for r in db.query("SELECT device_id FROM erasure_sends WHERE erasure_id = ?",
                                       (request["erasure_id"],))]
        done = confirmations(db, request["erasure_id"])
        request["devices"] = {d: done.get(d, {}).get("counts") for d in sorted(set(sent) | set(done))}
        request["pending"] = sorted(set(sent) - set(done))
        out.append(request)
    return out


def send(cfg: MqttConfig, db: Database, request: dict, devices: list[str],
         key: Ed25519PrivateKey, timeout: float = 10.0) -> list[str]:
    """Sign and publish the command to each device (QoS 1); returns the devices sent to."""
    client = connect_started(cfg, f"rollcall-central-erasure-{uuid.uuid4().hex[:8]}")
    try:
        for device_id in devices:
            _publish_one(client, cfg, request, device_id, key, timeout)
            db.execute("DELETE FROM erasure_sends WHERE erasure_id = ? AND device_id = ?",
                       (request["erasure_id"], device_id))
            db.execute("INSERT INTO erasure_sends VALUES (?,?,?)",
                       (request["erasure_id"], device_id, utc_iso()))
            db.commit()
    finally:
        client.disconnect()
        client.loop_stop()
    return devices


def _publish_one(client, cfg: MqttConfig, request: dict, device_id: str, key: Ed25519PrivateKey,
                 timeout: float) -> None:
    topic = f"{cfg.prefix}/{request['site']}/{device_id}/cmd/erasure"
    info = client.publish(topic, erasure_command(request, device_id, key), qos=1, retain=False)
    info.wait_for_publish(timeout)
    if not info.is_published():
        raise LinkError(f"broker did not acknowledge the erasure for {device_id} within {timeout} s")


# ----- CLI ----------------------------------------------------------------------------------

def register(parser: argparse.ArgumentParser, command: str) -> None:
    """``central erase`` / ``central erasures``."""
    _add_db_arg(parser)
    if command == "central erasures":
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=_list)
        return
    parser.add_argument("--person", help="person id to erase")
    parser.add_argument("--site", help="site whose devices must erase")
    parser.add_argument("--device", action="append", default=[], help="also send to this device id")
    parser.add_argument("--full", action="store_true", help="also delete the person and their attendance")
    parser.add_argument("--by", default="central", help="who asks (kept in the devices' audit logs)")
    parser.add_argument("--resend", action="store_true", help="re-send unconfirmed requests")
    parser.add_argument("--key", type=Path, required=True, help="roster-signing private key (PEM)")
    _add_broker_args(parser)
    parser.set_defaults(func=_erase)


def _erase(args: argparse.Namespace) -> int:
    db = open_erasure_db(args.db)
    key, cfg = load_private_key(args.key), mqtt_config(args)
    try:
        if args.resend:
            return _resend(cfg, db, key)
        if not args.person or not args.site:
            print("--person and --site are needed (or --resend)")
            return 2
        devices = sorted(set(site_devices(db, args.site)) | set(args.device))
        if not devices:
            print(f"no device of site {args.site!r} is known yet: run `rollcall central collect` "
                  "or name them with --device")
            return 1
        request = request_erasure(db, args.site, args.person, args.full, args.by)
        send(cfg, db, request, devices, key)
        print(f"erasure {request['erasure_id']} of {args.person} sent to {len(devices)} devices: "
              f"{', '.join(devices)}")
        return 0
    finally:
        db.close()


def _resend(cfg: MqttConfig, db: Database, key: Ed25519PrivateKey) -> int:
    for request in list_erasures(db):
        if request["pending"]:
            send(cfg, db, request, request["pending"], key)
            print(f"{request['erasure_id']}: re-sent to {', '.join(request['pending'])}")
    return 0


def _list(args: argparse.Namespace) -> int:
    db = open_erasure_db(args.db)
    try:
        rows = list_erasures(db)
    finally:
        db.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['requested_at']}  {r['erasure_id']}  site {r['site']}  person {r['person_id']}"
              f"{'  FULL' if r['full'] else ''}  by {r['requested_by']}")
        for device, counts in r["devices"].items():
            print(f"    {device}: " + (f"confirmed {json.dumps(counts)}" if counts is not None
                                       else "PENDING (no confirmation yet)"))
    if not rows:
        print("no erasure requests")
    return 0
