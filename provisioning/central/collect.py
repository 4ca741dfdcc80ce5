"""``rollcall central collect``: device messages from the broker into the central database.

- A persistent MQTT v5 session: fixed client id, ``clean_start=False``, session expiry
  (default 7 days). The broker keeps this collector's subscriptions, its queued messages
  and its unacknowledged ones while it is away, and re-sends them when it comes back.
- Manual PUBACK: a batch of messages is written, COMMITTED, and only then acknowledged;
  a crash before the commit means the broker re-sends, and ``ON CONFLICT DO NOTHING`` on
  ``event_id`` makes the re-send harmless. Batches (up to ``batch_max`` messages, whatever
  arrived while the previous commit ran) keep throughput independent of one fsync per event.
- Several collectors (``group=``): events and telemetry come through the MQTT v5 shared
  subscription ``$share/<group>/<prefix>/+/+/event/#`` so the broker splits them between
  the group's members; status (retained) comes through a normal subscription, because a
  broker never sends retained messages to shared subscribers. Each member must have its
  own client id (two processes with one id throw each other off).
- A database error rolls the batch back, nothing is acknowledged, and the same batch is
  retried (the broker holds the messages meanwhile).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.config import MqttConfig
from firmware.errors import LinkError, StoreError
from firmware.link.client import build_client, describe_connect_error, set_nodelay
from provisioning.central.db import Database, connect
from provisioning.central.ingest import BatchResult, Ingest

logger = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 86400
BATCH_MAX = 5000
RECEIVE_MAXIMUM = 5000  # QoS 1 messages the broker may have in flight to us (v5 Receive Maximum)
RETRY_S = 1.0
ISOLATE_AFTER = 2  # failed attempts of one batch before it is written message by message


def collector_filters(prefix: str, group: str | None) -> list[tuple[str, int]]:
    """(filter, QoS): events and telemetry (shared when ``group``), status always plain."""
    share = f"$share/{group}/" if group else ""
    return [(f"{share}{prefix}/+/+/event/#", 1), (f"{share}{prefix}/+/+/telemetry", 0),
            (f"{prefix}/+/+/status", 1)]


def connect_properties(expiry_s: int, receive_maximum: int = RECEIVE_MAXIMUM) -> Properties:
    """CONNECT properties: keep the session ``expiry_s`` seconds; allow that many in flight."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry_s
    props.ReceiveMaximum = receive_maximum
    return props


@dataclass
class CollectorStats:
    """Running totals of one collector process."""

    received: int = 0
    new: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    db_errors: int = 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Collector:
    """Collects device messages into the central database; a context manager."""

    def __init__(self, cfg: MqttConfig, db: str | Path | Database, client_id: str = "rollcall-central",
                 session_expiry_s: int = SESSION_EXPIRY_S, group: str | None = None,
                 batch_max: int = BATCH_MAX, leaving: bool = False, keep_trying: bool = False) -> None:
        self.cfg = cfg
        self.target = db
        self.db = db if isinstance(db, Database) else connect(db)
        self.client_id = client_id
        self.group = group
        self.session_expiry_s = session_expiry_s
        self.batch_max = batch_max
        self.ingest = Ingest(self.db, cfg.prefix, client_id)
        self.stats = CollectorStats()
        self.connected = threading.Event()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._pending: list = []  # a batch whose commit failed: retried before anything new
        self._failures = 0  # failed attempts of the pending batch
        self._client = None
        self._generation = 0  # connections so far: a PUBACK is only valid on the connection
        self._leaving = leaving  # connect only to retire (see ``leave``)
        self.keep_trying = keep_trying  # broker down at start: retry (a service) instead of raising
        self._closed = False

    @property
    def duplicates(self) -> int:
        return self.stats.duplicates

    def start(self) -> "Collector":
        """Connect (persistent session) and subscribe; messages queue until ``run`` stores them."""
        client = build_client(self.cfg, self.client_id, manual_ack=True)
        client.reconnect_delay_set(1, 2)  # back quickly after a broker restart: see README "Fleet"
        client.on_connect = self._on_connect
        client.on_disconnect = lambda c, u, f, rc, p: self.connected.clear()
        client.on_message = lambda c, u, msg: self._queue.put((self._generation, msg))
        args = dict(keepalive=self.cfg.keepalive_s, clean_start=False,
                    properties=connect_properties(self.session_expiry_s))
        try:
            client.connect(self.cfg.host, self.cfg.port, **args)
        except OSError as exc:
            if not self.keep_trying:
                self.close()
                raise LinkError(describe_connect_error(exc, self.cfg)) from None
            logger.warning("%s; retrying in the background", describe_connect_error(exc, self.cfg))
            client.connect_async(self.cfg.host, self.cfg.port, **args)  # the loop thread retries
        set_nodelay(client)
        self._client = client
        client.loop_start()
        return self

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.error("broker refused the collector: %s", reason_code)
            return
        self._generation += 1
        set_nodelay(client)
        filters = collector_filters(self.cfg.prefix, self.group)
        if self._leaving:  # no new share for us; what is queued in our session still comes
            client.unsubscribe([topic for topic, _ in filters])
        else:
            client.subscribe(filters)
        logger.info("collector %s connected (session present: %s, group: %s)",
                    self.client_id, flags.session_present, self.group or "-")
        self.connected.set()

    def count(self) -> int:
        """Unique events stored (by every collector writing this database)."""
        row = self.db.execute("SELECT COUNT(*) FROM events").fetchone()
        self.db.commit()
        return int(row[0])

    def run(self, until_count: int | None = None, timeout: float | None = None) -> int:
        """Store messages until ``until_count`` events are in the database or ``timeout`` s pass."""
        deadline = None if timeout is None else time.monotonic() + timeout
        count = self.count()
        next_count = time.monotonic() + 1.0
        while until_count is None or count < until_count:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            count += self.store_batch(min(0.2, left) if left is not None else 0.2)
            if until_count is not None and time.monotonic() >= next_count:
                count, next_count = self.count(), time.monotonic() + 1.0  # others write here too
        return count if until_count is None else self.count()

    def store_batch(self, wait_s: float) -> int:
        """Wait up to ``wait_s`` for messages, write what is queued, commit, then PUBACK it all.

        Returns the number of new events; 0 on a database error (the batch is kept and retried).
        """
        batch = self._pending or self._take(wait_s)
        if not batch:
            return 0
        if self._failures >= ISOLATE_AFTER:
            result = self._isolate(batch)
            if result is None:
                return 0
        else:
            try:
                result = self.ingest.write([(m.topic, m.payload) for _, m in batch])
                self.db.commit()
            except Exception as exc:  # noqa: BLE001 - any DB failure: keep the batch, retry later
                self._db_failed(batch, exc)
                return 0
        self._pending, self._failures = [], 0
        self._ack(batch)
        self._count(result)
        return result.new

    def _take(self, wait_s: float) -> list:
        try:
            batch = [self._queue.get(timeout=wait_s)]
        except queue.Empty:
            return []
        while len(batch) < self.batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _ack(self, batch: list) -> None:
        """PUBACK what arrived on the current connection. A message from an earlier connection
        is not acknowledged: the broker re-sends it on the new one (its packet id may by now
        name another message), and that copy is acknowledged after its own commit."""
        for generation, msg in batch:
            if msg.qos > 0 and self._client is not None and generation == self._generation:
                self._client.ack(msg.mid, msg.qos)

    def _count(self, result: BatchResult) -> None:
        stats = self.stats
        stats.received += result.messages
        stats.new += result.new
        stats.duplicates += result.duplicates
        stats.rejected += result.rejected
        stats.batches += 1

    def _isolate(self, batch: list) -> BatchResult | None:
        """The batch failed again and again: one transaction per message, so one message the
        database refuses (a poison message) goes to ``rejects`` instead of blocking the rest.
        Returns None (batch kept) when the database refuses even that: it is down."""
        total = BatchResult()
        for _, msg in batch:
            try:
                one = self.ingest.write([(msg.topic, msg.payload)])
                self.db.commit()
            except Exception as exc:  # noqa: BLE001
                self.db.rollback()
                try:
                    self.ingest.reject(msg.topic, msg.payload, f"the database refused it: {_first_line(exc)}")
                    self.db.commit()
                except Exception as again:  # noqa: BLE001
                    self._db_failed(batch, again)
                    return None
                one = BatchResult(messages=1, rejected=1)
            total.messages += one.messages
            total.new += one.new
            total.duplicates += one.duplicates
            total.rejected += one.rejected
        return total

    def _db_failed(self, batch: list, exc: BaseException) -> None:
        self._failures += 1
        self.stats.db_errors += 1
        self.db.rollback()
        self._pending = batch
        logger.error("central database write failed (%s); %d messages kept unacknowledged, retrying in %.0f s",
                     _first_line(exc), len(batch), RETRY_S)
        time.sleep(RETRY_S)
        if self.db.dialect == "postgresql" and getattr(self.db.conn, "closed", False):
            self._reconnect_db()

    def _reconnect_db(self) -> None:
        try:
            self.db = connect(self.target)
            self.ingest = Ingest(self.db, self.cfg.prefix, self.client_id)
            logger.info("reconnected to the central database %s", self.db.where)
        except StoreError as exc:
            logger.error("%s", exc)

    def leave(self, idle_s: float = 3.0, timeout: float = 600.0) -> int:
        """Retire this member for good: unsubscribe, store what its session still holds
        (until nothing came for ``idle_s``), then end the session (expiry 0). Without this,
        messages queued for a member that never returns are deleted when its session expires.
        Returns the new events stored."""
        if self._client is None:
            self._leaving = True
            self.start()
        elif not self._leaving:
            self._leaving = True
            self._client.unsubscribe([topic for topic, _ in collector_filters(self.cfg.prefix, self.group)])
        if not self.connected.wait(30):
            raise LinkError("could not reconnect to the broker to leave the group")
        new, deadline, idle_since = 0, time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - idle_since < idle_s:
            before = self.stats.received
            new += self.store_batch(0.2)
            if self.stats.received != before or self._pending:
                idle_since = time.monotonic()
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0
        self._client.disconnect(properties=props)
        return new

    def store_message(self, topic: str, raw: bytes) -> int:
        """Write one message (not committed); returns 1 for a new event, else 0."""
        result = self.ingest.write([(topic, raw)])
        self._count(result)
        return result.new

    def close(self) -> None:
        """Store what is queued, disconnect (the broker keeps the session), close the db; safe twice."""
        if self._closed:
            return
        self._closed = True
        if self._client is not None:
            errors = self.stats.db_errors
            while (not self._queue.empty() or self._pending) and self.stats.db_errors - errors < 3:
                self.store_batch(0.05)
            self._client.disconnect()
            self._client.loop_stop()
        self.db.close()

    def __enter__(self) -> "Collector":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
