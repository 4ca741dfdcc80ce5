"""The ``rollcall central ...`` subcommands: argument parsing and printing only."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import time
from pathlib import Path

from firmware.config import MqttConfig
from firmware.errors import BundleError, LinkError
from firmware.link.bundle import sign_bundle
from provisioning.central import devices as fleet_view
from provisioning.central.collect import SESSION_EXPIRY_S, Collector
from provisioning.central.command import send_command, sign_command
from provisioning.central.db import connect
from provisioning.central.export import Selection, export
from provisioning.central.roster import (build_bundle, generate_keypair, load_private_key, publish_bundles,
                                         record_rosters, rosters_from_csv)

logger = logging.getLogger(__name__)

DB_ENV = "ROLLCALL_CENTRAL_DB"
DB_HELP = (f"SQLite file (default) or postgresql://USER@HOST:PORT/DBNAME (default: ${DB_ENV}); "
           "keep a PostgreSQL password out of the command line: ~/.pgpass or PGPASSFILE")


def _add_broker_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--broker", required=required, help="HOST:PORT of the central broker")
    parser.add_argument("--prefix", default="rollcall/v1", help="topic prefix (default rollcall/v1)")
    parser.add_argument("--tls", action="store_true", help="use TLS")
    parser.add_argument("--ca-file", type=Path, help="CA that signed the broker certificate")
    parser.add_argument("--cert-file", type=Path, help="client certificate")
    parser.add_argument("--key-file", type=Path, help="client key")
    parser.add_argument("--username", default="", help="MQTT user name")
    parser.add_argument("--password-file", type=Path, help="file holding the MQTT password")


def _add_db_arg(parser: argparse.ArgumentParser, required: bool = True) -> None:
    default = os.environ.get(DB_ENV)
    parser.add_argument("--db", default=default, required=required and default is None, help=DB_HELP)


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
    {"central collect": _register_collect, "central export": _register_export,
     "central roster": _register_roster, "central devices": _register_devices,
     "central command": _register_command, "central keygen": _register_keygen}[command](parser)


def _register_collect(parser: argparse.ArgumentParser) -> None:
    _add_broker_args(parser)
    _add_db_arg(parser)
    parser.add_argument("--client-id", default="rollcall-central",
                        help="fixed MQTT client id, unique per collector process (its persistent session)")
    parser.add_argument("--group", help="join this MQTT v5 shared-subscription group (several collectors)")
    parser.add_argument("--session-expiry", type=int, default=SESSION_EXPIRY_S,
                        help="seconds the broker keeps this collector's session while it is away")
    parser.add_argument("--leave", action="store_true",
                        help="retire this collector: unsubscribe, store what its session still holds, end the session")
    parser.add_argument("--until-count", type=int, help="stop when the database holds this many events")
    parser.add_argument("--timeout", type=float, help="stop after this many seconds")
    parser.set_defaults(func=_collect)


def _register_export(parser: argparse.ArgumentParser) -> None:
    _add_db_arg(parser)
    parser.add_argument("--session", help="one session id")
    parser.add_argument("--room", help="one room")
    parser.add_argument("--site", help="one site")
    parser.add_argument("--since", help="first local day YYYY-MM-DD (inclusive)")
    parser.add_argument("--until", help="last local day YYYY-MM-DD (inclusive)")
    parser.add_argument("--csv", type=Path, required=True, help="output CSV file")
    parser.set_defaults(func=_export)


def _register_roster(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["publish"])
    parser.add_argument("roster", type=Path, nargs="?", help="roster JSON (people, embeddings, model_id)")
    parser.add_argument("--csv", type=Path, help="many rooms: CSV room,person_id[,name,seat,external_id]")
    parser.add_argument("--people", type=Path, help="with --csv: JSON {model_id, people: [...embeddings]}")
    parser.add_argument("--key", type=Path, required=True, help="roster-signing private key (PEM)")
    parser.add_argument("--site", required=True)
    parser.add_argument("--room", help="room, or _all for the whole site (one roster file)")
    parser.add_argument("--version", type=int, help="roster version (default: UNIX seconds)")
    parser.add_argument("--model-id", help="embedder id (default: the roster file's model_id)")
    parser.add_argument("--basis", choices=["consent", "contract", "legal_obligation"],
                        help="legal basis for people whose roster entry names none")
    _add_db_arg(parser, required=False)
    _add_broker_args(parser)
    parser.set_defaults(func=_roster_publish)


def _register_devices(parser: argparse.ArgumentParser) -> None:
    _add_db_arg(parser)
    parser.add_argument("--site", help="only this site")
    parser.add_argument("--offline", action="store_true", help="only devices not online")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.set_defaults(func=_devices)


def _register_command(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="command name, e.g. session_start, session_stop, telemetry_now")
    parser.add_argument("--key", type=Path, required=True, help="command-signing private key (PEM)")
    parser.add_argument("--site", required=True)
    parser.add_argument("--device", required=True, help="device id (its topic root)")
    parser.add_argument("--room", help="sign for the device's room instead of the device")
    parser.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                        help="a command argument, e.g. session_id=s1 (repeatable)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the result")
    _add_broker_args(parser)
    parser.set_defaults(func=_command)


def _register_keygen(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="directory for the key pair")
    parser.set_defaults(func=lambda a: print("\n".join(map(str, generate_keypair(a.out)))))


def _collect(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _raise_interrupt)  # systemd stop: commit, ack, disconnect
    collector = Collector(mqtt_config(args), args.db, client_id=args.client_id, group=args.group,
                          session_expiry_s=args.session_expiry, leaving=args.leave,
                          keep_trying=not args.leave and args.until_count is None)
    count = 0
    try:
        with collector:
            if args.leave:
                print(f"left group {args.group or '-'}: {collector.leave()} queued events stored, session ended")
                return 0
            count = collector.run(args.until_count, args.timeout)
    except KeyboardInterrupt:
        pass
    s = collector.stats
    print(f"{count} events stored; this collector: {s.received} messages, {s.new} new events, "
          f"{s.duplicates} duplicates ignored, {s.rejected} rejected")
    return 0 if args.until_count is None or count >= args.until_count else 1


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _export(args: argparse.Namespace) -> int:
    if not any((args.session, args.room, args.site, args.since, args.until)):
        raise BundleError("say what to export: --session, or --room/--site with --since/--until")
    selection = Selection(args.session, args.room, args.site, args.since, args.until)
    print(f"{export(args.db, selection, args.csv)} rows")
    return 0


def _roster_publish(args: argparse.Namespace) -> int:
    key = load_private_key(args.key)
    bundles = [sign_bundle(build_bundle(roster, args.site, room, args.version, args.model_id,
                                      basis=args.basis), key)
               for room, roster in _rosters(args).items()]
    topics = publish_bundles(mqtt_config(args), bundles)
    if args.db:
        db = connect(args.db)
        try:
            record_rosters(db, bundles)
        finally:
            db.close()
    for bundle, topic in zip(bundles, topics):
        print(f"roster version {bundle['roster_version']} ({len(bundle['people'])} people) published on {topic}")
    return 0


def _rosters(args: argparse.Namespace) -> dict[str, dict]:
    if args.csv:
        if not args.people:
            raise BundleError("--csv needs --people (the JSON file with everyone's embeddings)")
        return rosters_from_csv(args.csv, json.loads(args.people.read_text(encoding="utf-8")))
    if not args.roster or not args.room:
        raise BundleError("give a roster file and --room, or --csv with --people")
    return {args.room: json.loads(args.roster.read_text(encoding="utf-8"))}


def _devices(args: argparse.Namespace) -> int:
    db = connect(args.db)
    try:
        devices = fleet_view.fleet(db, args.site, args.offline)
    finally:
        db.close()
    print(fleet_view.as_json(devices) if args.json else fleet_view.table(devices))
    if not args.json:
        print(fleet_view.summary(devices))
    return 0


def _command(args: argparse.Namespace) -> int:
    pairs = [a.partition("=") for a in args.arg]
    if any(not sep or not key for key, sep, _ in pairs):
        raise LinkError("--arg must be KEY=VALUE")
    target = {"site": args.site, **({"room": args.room} if args.room else {"device": args.device})}
    raw = sign_command(args.name, target, load_private_key(args.key),
                       {key: value for key, _, value in pairs}, request_id=f"cli-{int(time.time())}")
    result = send_command(mqtt_config(args), args.site, args.device, args.name, raw, args.timeout)
    print(json.dumps(result, indent=2) if result else f"no result within {args.timeout} s")
    return 0 if result and result.get("ok") else 1
