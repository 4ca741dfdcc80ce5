"""The central database on both engines (SQLite file, real PostgreSQL): migrations,
idempotent ingest, stale wills, rejects, fleet status, exports with absentees."""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest
from paho.mqtt.client import MQTTMessage

from firmware.config import MqttConfig
from provisioning.central import Collector, collect
from provisioning.central import devices as fleet_view
from provisioning.central.db import MIGRATIONS, connect
from provisioning.central.export import Selection, export
from provisioning.central.ingest import Ingest
from provisioning.central.roster import record_rosters

pytestmark = pytest.mark.integration
ROOT = "rollcall/v1/s1"


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    return tmp_path / "c.db" if request.param == "sqlite" else request.getfixturevalue("postgres")


@pytest.fixture
def db(target):
    database = connect(target)
    yield database
    database.close()


def event(n: int, device: str = "d1", **fields) -> tuple[str, bytes]:
    payload = {"event_id": f"E{n:04d}", "seq": n, "device_id": device, "model_id": "m1",
               "captured_at": f"2026-11-30T08:00:{n % 60:02d}.000Z", "room": "hall", "day": "2026-11-30",
               "status": "present", "score": 0.8, "revision": 0, **fields}
    return f"{ROOT}/{device}/event/attendance", json.dumps(payload).encode()


def status(device: str, state: str, conn_seq: int | None, **fields) -> tuple[str, bytes]:
    payload = {"state": state, "device_id": device, "contract": "v1", "at": "2026-11-30T08:00:00.000Z",
               **({"conn_seq": conn_seq} if conn_seq is not None else {}), **fields}
    return f"{ROOT}/{device}/status", json.dumps(payload).encode()


def test_migrations_are_recorded_and_rerun_safely(db, target):
    assert db.schema_version() == MIGRATIONS[-1][0]
    again = connect(target)
    try:
        assert again.schema_version() == MIGRATIONS[-1][0]
        versions = [v for (v,) in again.query("SELECT version FROM schema_version ORDER BY version")]
    finally:
        again.close()
    assert versions == [v for v, _ in MIGRATIONS]


def test_legacy_sqlite_file_is_upgraded_keeping_its_rows(tmp_path):
    legacy = sqlite3.connect(tmp_path / "old.db")
    legacy.executescript(";".join(MIGRATIONS[0][1]))
    legacy.execute("INSERT INTO events (event_id, device_id, seq) VALUES ('E1', 'd1', 1)")
    legacy.commit()
    legacy.close()
    db = connect(tmp_path / "old.db")
    try:
        assert db.schema_version() == MIGRATIONS[-1][0]
        assert db.query("SELECT event_id, room FROM events") == [("E1", None)]
    finally:
        db.close()


def test_ingest_is_idempotent_and_rejects_with_reasons(db):
    ingest = Ingest(db, collector="c1")
    first = ingest.write([event(1), event(2), event(2), (f"{ROOT}/d1/event/attendance", b"{not json"),
                          (f"{ROOT}/d1/event/attendance", b'{"seq": 3}'), ("elsewhere/x", b"{}"),
                          event(4, person_id={"nested": 1})])
    db.commit()
    again = ingest.write([event(1), event(2)])  # the broker re-sends after a crash before PUBACK
    db.commit()
    assert (first.new, first.duplicates, first.rejected) == (2, 1, 4)
    assert (again.new, again.duplicates) == (0, 2)
    assert db.query("SELECT COUNT(*) FROM events")[0][0] == 2
    reasons = sorted(r for (r,) in db.query("SELECT reason FROM rejects"))
    assert any("Expecting" in r or "JSON" in r for r in reasons)  # the decoder's own words
    assert "event without a valid event_id" in reasons and "not a device topic" in reasons
    assert "a field that must be text is an object or a list" in reasons


def test_stale_will_after_newer_birth_is_ignored(db):
    ingest = Ingest(db)

    def apply(*messages):
        ingest.write(list(messages))
        db.commit()
        return db.query("SELECT state, conn_seq FROM devices WHERE device_id = 'd1'")[0]

    assert apply(status("d1", "online", 5, firmware_version="1.0", model_id="m1", room="hall",
                        roster_version=7)) == ("online", 5)
    assert apply(status("d1", "offline", 4, reason="connection lost")) == ("online", 5)  # stale
    assert apply(status("d1", "offline", 5, reason="connection lost")) == ("offline", 5)  # its own will
    assert apply(status("d1", "online", 5)) == ("offline", 5)  # a replayed retained birth of that connection
    assert apply(status("d1", "offline", 6), status("d1", "online", 7)) == ("online", 7)
    assert apply(status("d1", "online", 9), status("d1", "offline", 8)) == ("online", 9)  # same batch
    row = db.query("SELECT firmware_version, model_id, room, roster_version FROM devices")[0]
    assert row == ("1.0", "m1", "hall", 7)  # a will does not wipe what the birth said


def test_fleet_status_table(db):
    ingest = Ingest(db)
    telemetry = {"device_id": "d2", "at": "2026-11-30T08:01:00.000Z", "outbox_depth": 12,
                 "outbox_capacity_fraction": 0.0, "warnings": [], "clock_synced": False}
    ingest.write([status("d1", "online", 3, firmware_version="0.1.0", model_id="m1", room="hall",
                         roster_version=100), status("d2", "offline", 2, reason="connection lost"),
                  (f"{ROOT}/d2/telemetry", json.dumps(telemetry).encode()), event(1, "d3")])
    db.commit()
    record_rosters(db, [{"site": "s1", "room": "hall", "roster_version": 200, "people": []}])
    devices = fleet_view.fleet(db)
    text = fleet_view.table(devices)
    assert [d["device_id"] for d in devices] == ["d1", "d2", "d3"]
    assert "100 (behind: 200)" in text and "offline (connection lost)" in text and "NOT SYNCED" in text
    assert devices[1]["outbox_depth"] == 12 and devices[2]["last_seen"] is not None
    assert fleet_view.summary(devices).startswith("3 devices: 1 online, 1 offline, 1 without status")
    assert [d["device_id"] for d in fleet_view.fleet(db, offline_only=True)] == ["d2", "d3"]


def test_export_lists_every_roster_member_with_absentees(db, tmp_path):
    people = [{"person_id": "p1", "name": "Ada", "seat": "A1"}, {"person_id": "p2", "name": "Bob", "seat": "A2"},
              {"person_id": "p3", "name": "Cy", "seat": "A3"}]
    record_rosters(db, [{"site": "s1", "room": "hall", "roster_version": 1, "people": people}])
    ingest = Ingest(db)
    ingest.write([event(1, person_id="p1", session_id="S1"), event(2, person_id="p9", session_id="S1"),
                  event(3, person_id="p1", session_id="S1", status="late", revision=1),  # a correction
                  event(4, person_id="p2", day="2026-12-01"),  # open door, next day
                  (f"{ROOT}/d1/event/session", json.dumps({"event_id": "E0900", "seq": 900, "session_id": "S2",
                                                            "room": "hall", "day": "2026-12-02",
                                                            "state": "completed"}).encode())])
    db.commit()
    assert export(db, Selection(session="S1"), tmp_path / "s1.csv") == 4
    rows = list(csv.DictReader(open(tmp_path / "s1.csv")))
    got = {r["person_id"]: (r["name"], r["seat"], r["status"], r["on_roster"]) for r in rows}
    assert got == {"p1": ("Ada", "A1", "late", "yes"), "p2": ("Bob", "A2", "absent", "yes"),
                   "p3": ("Cy", "A3", "absent", "yes"), "p9": ("", "", "present", "no")}
    assert export(db, Selection(room="hall", since="2026-12-01", until="2026-12-02"), tmp_path / "r.csv") == 6
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert {(r["day"], r["session_id"]) for r in rows} == {("2026-12-01", ""), ("2026-12-02", "S2")}
    assert sum(r["status"] == "absent" for r in rows) == 5  # S2: nobody came; 12-01: only p2


def test_a_message_the_database_refuses_is_isolated_not_retried_forever(postgres, caplog):
    """A poison message (here: refused by a real trigger) must not block the messages with it."""
    collector = Collector(MqttConfig(host="x"), postgres, client_id="c-poison")
    collector.db.execute("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.person_id = 'poison' "
                         "THEN RAISE EXCEPTION 'refused by policy'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
    collector.db.execute("CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse()")
    collector.db.commit()
    for n, person in enumerate(["p1", "poison", "p2"], start=1):
        msg = MQTTMessage(mid=n, topic=event(n)[0].encode())
        msg.payload = event(n, person_id=person)[1]
        collector._queue.put((0, msg))
    retry, collect.RETRY_S = collect.RETRY_S, 0.01
    try:
        stored = sum(collector.store_batch(0.1) for _ in range(collect.ISOLATE_AFTER + 1))
        rows = collector.db.query("SELECT person_id FROM events ORDER BY seq")
        rejects = collector.db.query("SELECT reason FROM rejects")
    finally:
        collect.RETRY_S = retry
        collector.close()
    assert stored == 2 and rows == [("p1",), ("p2",)]
    assert rejects == [("the database refused it: refused by policy",)]


def test_hostile_fields_are_rejected_or_cleaned(db):
    ingest = Ingest(db)
    result = ingest.write([event(1, person_id="a\u0000b"), event(2, seq=2**70),
                           event(3, extra={"blob": "x" * 70_000})])
    db.commit()
    assert (result.new, result.rejected) == (1, 2)
    assert db.query("SELECT person_id FROM events") == [("ab",)]
    reasons = sorted(r for (r,) in db.query("SELECT reason FROM rejects"))
    assert reasons == ["event larger than 65536 bytes", "event without an integer seq (0 <= seq < 2^63)"]
