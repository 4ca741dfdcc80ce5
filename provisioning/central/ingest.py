"""Turning a batch of MQTT messages into rows: events, device status, telemetry, rejects.

Pure database work, no MQTT: the collector hands over ``(topic, payload)`` pairs and commits
afterwards. Everything here is idempotent, so a batch re-delivered after a crash (or the
same retained status seen by every collector) changes nothing the second time:

- events: ``INSERT ... ON CONFLICT (event_id) DO NOTHING``;
- status: applied only when its ``conn_seq`` (the device's per-connection sequence number,
  in both the birth and the will) is newer than the stored one, so a stale will arriving
  after a newer birth is ignored; a birth never follows the will of its own connection;
- telemetry: applied only when its ``at`` is newer than the stored one;
- ``last_seen``: from events at most every ``SEEN_EVERY_S`` per device and collector (a
  busy device would otherwise rewrite its row with every batch), always with a status or
  telemetry message;
- anything malformed goes to ``rejects`` with the reason.

Rows are written in a fixed order (events by ``event_id``, devices by site and id), so two
collectors writing overlapping batches into PostgreSQL cannot deadlock; each kind of row is
one pipelined ``executemany`` (one network round trip per batch, not one per device).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from firmware.link.payloads import utc_iso
from firmware.link.topics import split_device_topic
from provisioning.central.db import Database

logger = logging.getLogger(__name__)

MAX_REJECT_BYTES = 2000
MAX_EVENT_BYTES = 64 * 1024  # the device's own events are < 4 KiB
SEEN_EVERY_S = 5.0  # last_seen of a device is written at most this often per collector (events)
EVENT_COLUMNS = ("event_id", "site", "device_id", "kind", "seq", "captured_at", "session_id",
                 "person_id", "model_id", "payload", "received_at", "topic", "room", "day",
                 "status", "collector")
EVENT_TYPES = tuple("bigint" if c == "seq" else "text" for c in EVENT_COLUMNS)
STATUS_COLUMNS = ("site", "device_id", "state", "payload", "updated_at", "conn_seq", "status_at",
                  "last_seen", "firmware_version", "model_id", "room", "roster_version", "reason")
KEEP_IF_NULL = ("firmware_version", "model_id", "room", "roster_version")
TELEMETRY_COLUMNS = ("site", "device_id", "telemetry_at", "outbox_depth", "outbox_oldest_age_s",
                     "clock_synced", "warnings", "last_seen")


@dataclass
class BatchResult:
    """What one batch did: new events, duplicates ignored, rejects, and the messages seen."""

    new: int = 0
    duplicates: int = 0
    rejected: int = 0
    messages: int = 0
    devices: set = field(default_factory=set)


@dataclass
class _Parsed:
    events: dict = field(default_factory=dict)      # event_id -> row
    status: dict = field(default_factory=dict)      # (site, device) -> rows in arrival order
    telemetry: dict = field(default_factory=dict)   # (site, device) -> latest row
    seen: dict = field(default_factory=dict)        # (site, device) -> received_at
    rejects: list = field(default_factory=list)
    dup_in_batch: int = 0


class Ingest:
    """Writes batches of device messages into the central database (not committing)."""

    def __init__(self, db: Database, prefix: str = "rollcall/v1", collector: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self._clock = clock
        self._seen_written: dict[tuple[str, str], float] = {}  # device -> when we last wrote last_seen
        self.prefix = prefix
        self.collector = collector
        greatest = db.greatest("COALESCE(devices.last_seen, '')", "excluded.last_seen")
        self._upsert_seen = f"ON CONFLICT (site, device_id) DO UPDATE SET last_seen = {greatest}"
        self._upsert_status = _status_sql(greatest)
        self._upsert_telemetry = _telemetry_sql(greatest)

    def write(self, messages: list[tuple[str, bytes]]) -> BatchResult:
        """Write one batch (the caller commits, then acknowledges the messages)."""
        parsed = _Parsed()
        now = utc_iso()
        for topic, raw in messages:
            self._parse(parsed, topic, raw, now)
        result = BatchResult(messages=len(messages), rejected=len(parsed.rejects))
        rows = [parsed.events[k] for k in sorted(parsed.events)]
        result.new = self.db.insert_many("INSERT INTO events", EVENT_COLUMNS, EVENT_TYPES, rows,
                                         "ON CONFLICT (event_id) DO NOTHING")
        result.duplicates = len(rows) - result.new + parsed.dup_in_batch
        self._write_devices(parsed)
        self.db.executemany("INSERT INTO rejects (topic, reason, payload, received_at, collector) "
                            "VALUES (?, ?, ?, ?, ?)", parsed.rejects)
        result.devices = set(parsed.seen)
        return result

    def _write_devices(self, parsed: _Parsed) -> None:
        """Three pipelined statements. ``last_seen`` first, in key order: it locks every device
        row of the batch, so the status and telemetry updates (a subset) take no new locks and
        two collectors cannot deadlock on the devices table."""
        now = self._clock()
        keys = sorted(k for k in parsed.seen if k in parsed.status or k in parsed.telemetry
                      or now - self._seen_written.get(k, -SEEN_EVERY_S) >= SEEN_EVERY_S)
        self._seen_written.update((k, now) for k in keys)
        self.db.insert_many("INSERT INTO devices", ("site", "device_id", "last_seen"), ("text",) * 3,
                            [(*key, parsed.seen[key]) for key in keys], self._upsert_seen)
        self.db.executemany(self._upsert_status, [row for key in keys for row in parsed.status.get(key, ())])
        self.db.executemany(self._upsert_telemetry, [parsed.telemetry[k] for k in keys if k in parsed.telemetry])

    def _parse(self, parsed: _Parsed, topic: str, raw: bytes, now: str) -> None:
        where = split_device_topic(self.prefix, topic)
        try:
            payload = json.loads(raw)
            if where is None:
                raise ValueError("not a device topic")
            if not isinstance(payload, dict):
                raise ValueError("payload is not a JSON object")
            site, device_id, rest = where
            key = (site, device_id)
            if rest.startswith("event/"):
                self._parse_event(parsed, site, device_id, rest, payload, raw, topic, now)
            elif rest == "status":
                parsed.status.setdefault(key, []).append(_status_row(site, device_id, payload, raw, now))
            elif rest == "telemetry":
                parsed.telemetry[key] = _telemetry_row(site, device_id, payload, now)
            else:
                raise ValueError(f"unexpected device topic suffix {rest!r}")
        except (ValueError, UnicodeDecodeError) as exc:
            parsed.rejects.append(self._reject_row(topic, raw, str(exc), now))
            return
        parsed.seen[key] = now

    def _reject_row(self, topic: str, raw: bytes, reason: str, now: str) -> tuple:
        logger.warning("rejected message on %s: %s", _clean(topic[:200]), reason)
        return (_clean(topic[:500]), _clean(reason[:500]),
                _clean(raw[:MAX_REJECT_BYTES].decode(errors="replace")), now, self.collector)

    def reject(self, topic: str, raw: bytes, reason: str) -> None:
        """Write one message to ``rejects`` (e.g. one the database itself refused)."""
        self.db.executemany("INSERT INTO rejects (topic, reason, payload, received_at, collector) "
                            "VALUES (?, ?, ?, ?, ?)", [self._reject_row(topic, raw, reason, utc_iso())])

    def _parse_event(self, parsed: _Parsed, site: str, device_id: str, rest: str, payload: dict,
                     raw: bytes, topic: str, now: str) -> None:
        event_id, seq = payload.get("event_id"), payload.get("seq")
        if not isinstance(event_id, str) or not event_id or len(event_id) > 64:
            raise ValueError("event without a valid event_id")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
            raise ValueError("event without an integer seq (0 <= seq < 2^63)")
        if len(raw) > MAX_EVENT_BYTES:
            raise ValueError(f"event larger than {MAX_EVENT_BYTES} bytes")
        if event_id in parsed.events:
            parsed.dup_in_batch += 1
            return
        text = {k: _text(payload.get(k)) for k in ("captured_at", "session_id", "person_id",
                                                   "model_id", "room", "day", "status")}
        parsed.events[event_id] = (
            event_id, site, device_id, rest.removeprefix("event/"), seq, text["captured_at"],
            text["session_id"], text["person_id"], text["model_id"], raw.decode(), now, topic,
            text["room"], text["day"], text["status"], self.collector)


def _text(value: object) -> str | None:
    """A payload field as a short text column (None stays None; objects are refused; NUL,
    which PostgreSQL text cannot hold, is dropped)."""
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise ValueError("a field that must be text is an object or a list")
    return str(value)[:200].replace("\x00", "")


def _clean(text: str) -> str:
    return text.replace("\x00", "\\0")


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _status_row(site: str, device_id: str, payload: dict, raw: bytes, now: str) -> tuple:
    state = payload.get("state")
    if state not in ("online", "offline"):
        raise ValueError("status without state online/offline")
    return (site, device_id, state, raw.decode()[:8000], now, _int_or_none(payload.get("conn_seq")),
            _text(payload.get("at")), now, _text(payload.get("firmware_version")),
            _text(payload.get("model_id")), _text(payload.get("room")),
            _int_or_none(payload.get("roster_version")), _text(payload.get("reason")))


def _status_sql(greatest: str) -> str:
    """Upsert of a status row, applied only when it is not stale (see the module docstring)."""
    sets = [f"{c} = COALESCE(excluded.{c}, devices.{c})" if c in KEEP_IF_NULL else f"{c} = excluded.{c}"
            for c in STATUS_COLUMNS[2:] if c != "last_seen"]
    sets.append(f"last_seen = {greatest}")
    fresh = ("devices.conn_seq IS NULL OR devices.state IS NULL OR excluded.conn_seq > devices.conn_seq "
             "OR (excluded.conn_seq = devices.conn_seq "
             "AND NOT (excluded.state = 'online' AND devices.state = 'offline'))")
    return (f"INSERT INTO devices ({', '.join(STATUS_COLUMNS)}) VALUES ({', '.join('?' * len(STATUS_COLUMNS))}) "
            f"ON CONFLICT (site, device_id) DO UPDATE SET {', '.join(sets)} WHERE {fresh}")


def _telemetry_row(site: str, device_id: str, payload: dict, now: str) -> tuple:
    depth = _int_or_none(payload.get("outbox_depth"))
    age = payload.get("outbox_oldest_age_s")
    synced = payload.get("clock_synced")
    warnings = payload.get("warnings")
    return (site, device_id, _text(payload.get("at")) or now, depth,
            float(age) if isinstance(age, (int, float)) and not isinstance(age, bool) else None,
            None if synced is None else int(bool(synced)),
            json.dumps(warnings)[:2000] if isinstance(warnings, list) else None, now)


def _telemetry_sql(greatest: str) -> str:
    sets = [f"{c} = excluded.{c}" for c in TELEMETRY_COLUMNS[2:] if c != "last_seen"]
    sets.append(f"last_seen = {greatest}")
    return (f"INSERT INTO devices ({', '.join(TELEMETRY_COLUMNS)}) VALUES "
            f"({', '.join('?' * len(TELEMETRY_COLUMNS))}) ON CONFLICT (site, device_id) DO UPDATE SET "
            f"{', '.join(sets)} WHERE devices.telemetry_at IS NULL OR excluded.telemetry_at > devices.telemetry_at")
