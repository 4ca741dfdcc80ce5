"""Reference central side: order an erasure on every device of a site, and follow it.

- ``rollcall central erase --person ID --site S --key K --db central.db --broker H:P [--full]``
  records an erasure request in the collector's SQLite database, signs one ``cmd/erasure``
  per device of the site (Ed25519, the roster-signing key; ``firmware/link/signed.py``)
  and publishes it (QoS 1, not retained). Devices are the ones the collector has seen
  (``devices`` table, from their status messages) plus any ``--device``.
- ``rollcall central erase --resend --db ... --key ... --broker ...`` re-signs (fresh time
  and nonce) and re-sends every request to the devices that have not confirmed yet (a
  device that was offline; devices use clean sessions, so a command sent while they are
  offline is lost). Devices de-duplicate by ``request_id``.
- ``rollcall central erasures --db central.db`` lists requests and, per device, the
  confirmation: the device's ``event/erasure`` (collected like every event by
  ``rollcall central collect``) with the counts it deleted.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.config import MqttConfig
from firmware.errors import LinkError
from firmware.link.client import build_client, describe_connect_error
from firmware.link.payloads import utc_iso
from firmware.link.signed import sign_command
from provisioning.central import _add_broker_args, load_private_key, mqtt_config, open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS erasure_requests (
  request_id TEXT PRIMARY KEY, site TEXT, person_id TEXT, full INTEGER, by TEXT, requested_at TEXT);
CREATE TABLE IF NOT EXISTS erasure_sends (
  request_id TEXT, device_id TEXT, sent_at TEXT, PRIMARY KEY (request_id, device_id));
"""


def open_erasure_db(path: Path) -> sqlite3.Connection:
    """The collector database with the erasure tables."""
    db = open_db(Path(path))
    db.executescript(SCHEMA)
    return db


def site_devices(db: sqlite3.Connection, site: str) -> list[str]:
    """Devices of a site the collector has seen (from their status messages)."""
    return [r[0] for r in db.execute("SELECT device_id FROM devices WHERE site = ? ORDER BY device_id",
                                     (site,))]


def erasure_command(request: dict, device_id: str, key: Ed25519PrivateKey) -> dict:
    """The signed ``cmd/erasure`` payload for one device."""
    body = {"command": "erasure", "site": request["site"], "target": device_id,
            "issued_at": utc_iso(), "request_id": request["request_id"],
            "person_id": request["person_id"], "full": bool(request["full"]), "by": request["by"]}
    return sign_command(body, key)


def request_erasure(db: sqlite3.Connection, site: str, person_id: str, full: bool, by: str) -> dict:
    """Record a new request; returns it."""
    request = {"request_id": f"er-{uuid.uuid4().hex[:20]}", "site": site, "person_id": person_id,
               "full": full, "by": by, "requested_at": utc_iso()}
    db.execute("INSERT INTO erasure_requests VALUES (?,?,?,?,?,?)",
               (request["request_id"], site, person_id, int(full), by, request["requested_at"]))
    db.commit()
    return request


def confirmations(db: sqlite3.Connection, request_id: str) -> dict[str, dict]:
    """device_id -> the payload of its ``event/erasure`` for this request."""
    rows = db.execute("SELECT device_id, payload FROM events WHERE kind = 'erasure'").fetchall()
    out = {}
    for device_id, raw in rows:
        payload = json.loads(raw)
        if payload.get("request_id") == request_id:
            out[device_id] = payload
    return out


def list_erasures(db: sqlite3.Connection) -> list[dict]:
    """Every request with the devices it was sent to and their confirmations."""
    out = []
    for row in db.execute("SELECT request_id, site, person_id, full, by, requested_at FROM "
                          "erasure_requests ORDER BY requested_at").fetchall():
        request = dict(zip(("request_id", "site", "person_id", "full", "by", "requested_at"), row))
        sent = [r[0] for r in db.execute("SELECT device_id FROM erasure_sends WHERE request_id = ?",
                                         (request["request_id"],))]
        done = confirmations(db, request["request_id"])
        request["devices"] = {d: done.get(d, {}).get("counts") for d in sorted(set(sent) | set(done))}
        request["pending"] = sorted(set(sent) - set(done))
        out.append(request)
    return out


def send(cfg: MqttConfig, db: sqlite3.Connection, request: dict, devices: list[str],
         key: Ed25519PrivateKey, timeout: float = 10.0) -> list[str]:
    """Sign and publish the command to each device (QoS 1); returns the devices sent to."""
    client = build_client(cfg, f"rollcall-central-erasure-{uuid.uuid4().hex[:8]}")
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
    except OSError as exc:
        raise LinkError(describe_connect_error(exc, cfg)) from None
    client.loop_start()
    try:
        for device_id in devices:
            topic = f"{cfg.prefix}/{request['site']}/{device_id}/cmd/erasure"
            payload = json.dumps(erasure_command(request, device_id, key), separators=(",", ":"))
            info = client.publish(topic, payload, qos=1, retain=False)
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise LinkError(f"broker did not acknowledge the erasure for {device_id} within {timeout} s")
            db.execute("INSERT OR REPLACE INTO erasure_sends VALUES (?,?,?)",
                       (request["request_id"], device_id, utc_iso()))
            db.commit()
    finally:
        client.disconnect()
        client.loop_stop()
    return devices


# ----- CLI ----------------------------------------------------------------------------------

def register(parser: argparse.ArgumentParser, command: str) -> None:
    """``central erase`` / ``central erasures``."""
    parser.add_argument("--db", type=Path, required=True, help="the collector's SQLite file")
    if command == "central erasures":
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.set_defaults(func=_list)
        return
    parser.add_argument("--person", help="person id to erase")
    parser.add_argument("--site", help="site whose devices must erase")
    parser.add_argument("--device", action="append", default=[], help="also send to this device id")
    parser.add_argument("--full", action="store_true", help="also delete the person's attendance records")
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
            for request in list_erasures(db):
                if request["pending"]:
                    send(cfg, db, request, request["pending"], key)
                    print(f"{request['request_id']}: re-sent to {', '.join(request['pending'])}")
            return 0
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
        print(f"erasure {request['request_id']} of {args.person} sent to {len(devices)} devices: "
              f"{', '.join(devices)}")
        return 0
    finally:
        db.close()


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
        print(f"{r['requested_at']}  {r['request_id']}  site {r['site']}  person {r['person_id']}"
              f"{'  FULL' if r['full'] else ''}  by {r['by']}")
        for device, counts in r["devices"].items():
            print(f"    {device}: " + (f"confirmed {json.dumps(counts)}" if counts is not None
                                       else "PENDING (no confirmation yet)"))
    if not rows:
        print("no erasure requests")
    return 0


__all__ = ["request_erasure", "send", "list_erasures", "erasure_command", "open_erasure_db"]
