"""The central database: SQLite (default, one file) or PostgreSQL (``postgresql://...``).

One small wrapper (:class:`Database`) gives both the same calls; SQL is written once with
``?`` placeholders (turned into ``%s`` for psycopg) and uses only what both engines share
(``INSERT ... ON CONFLICT``, upserts with a ``WHERE``). The schema is managed by the
versioned :data:`MIGRATIONS`; ``schema_version`` records which ones ran. On PostgreSQL the
migrations run under an advisory lock, so several collectors starting together do not race.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Sequence

from firmware.errors import StoreError
from firmware.link.payloads import utc_iso

logger = logging.getLogger(__name__)

MIGRATION_LOCK_ID = 7_341_015  # pg_advisory_xact_lock key: "rollcall central migrations"

# (version, statements). Never edit a released entry: add a new one.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [  # the schema of the first reference collector (SQLite files made by it carry it)
        """CREATE TABLE IF NOT EXISTS events (
             event_id TEXT PRIMARY KEY, site TEXT, device_id TEXT, kind TEXT, seq BIGINT,
             captured_at TEXT, session_id TEXT, person_id TEXT, model_id TEXT, payload TEXT,
             received_at TEXT, topic TEXT)""",
        "CREATE INDEX IF NOT EXISTS events_device_seq ON events(device_id, seq)",
        "CREATE INDEX IF NOT EXISTS events_session ON events(session_id)",
        """CREATE TABLE IF NOT EXISTS devices (
             site TEXT, device_id TEXT, state TEXT, payload TEXT, updated_at TEXT,
             PRIMARY KEY (site, device_id))""",
        "CREATE TABLE IF NOT EXISTS rejects (topic TEXT, reason TEXT, payload TEXT, received_at TEXT)",
    ]),
    (2, [  # fleet: event columns for exports, device status, published rosters
        "ALTER TABLE events ADD COLUMN room TEXT",
        "ALTER TABLE events ADD COLUMN day TEXT",
        "ALTER TABLE events ADD COLUMN status TEXT",
        "ALTER TABLE events ADD COLUMN collector TEXT",
        "CREATE INDEX IF NOT EXISTS events_room_day ON events(room, day)",
        "ALTER TABLE devices ADD COLUMN conn_seq BIGINT",
        "ALTER TABLE devices ADD COLUMN status_at TEXT",
        "ALTER TABLE devices ADD COLUMN last_seen TEXT",
        "ALTER TABLE devices ADD COLUMN firmware_version TEXT",
        "ALTER TABLE devices ADD COLUMN model_id TEXT",
        "ALTER TABLE devices ADD COLUMN room TEXT",
        "ALTER TABLE devices ADD COLUMN roster_version BIGINT",
        "ALTER TABLE devices ADD COLUMN reason TEXT",
        "ALTER TABLE devices ADD COLUMN telemetry_at TEXT",
        "ALTER TABLE devices ADD COLUMN outbox_depth BIGINT",
        "ALTER TABLE devices ADD COLUMN outbox_oldest_age_s DOUBLE PRECISION",
        "ALTER TABLE devices ADD COLUMN clock_synced INTEGER",
        "ALTER TABLE devices ADD COLUMN warnings TEXT",
        "ALTER TABLE rejects ADD COLUMN collector TEXT",
        """CREATE TABLE IF NOT EXISTS rosters (
             site TEXT NOT NULL, room TEXT NOT NULL, version BIGINT NOT NULL, roster_id TEXT,
             name TEXT, model_id TEXT, issued_at TEXT, published_at TEXT, people TEXT,
             PRIMARY KEY (site, room, version))""",
    ]),
    (3, [  # what `rollcall central devices` prints: devices plus the newest roster for their room
        """CREATE VIEW fleet_status AS
             SELECT d.site, d.device_id, d.state, d.reason, d.conn_seq, d.status_at, d.last_seen,
                    d.firmware_version, d.model_id, d.room, d.roster_version,
                    (SELECT MAX(r.version) FROM rosters r
                      WHERE r.site = d.site AND (r.room = d.room OR r.room = '_all')) AS roster_latest,
                    d.telemetry_at, d.outbox_depth, d.outbox_oldest_age_s, d.clock_synced, d.warnings
               FROM devices d""",
    ]),
]


class Database:
    """A DB-API connection plus the dialect's small differences; not thread-safe."""

    def __init__(self, conn: Any, dialect: str, where: str) -> None:
        self.conn = conn
        self.dialect = dialect  # "sqlite" | "postgresql"
        self.where = where  # for messages: a path, or the URL without its password

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence = ()) -> Any:
        """Run one statement; returns the cursor (``fetchone``/``fetchall``/``rowcount``)."""
        cur = self.conn.cursor()
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence]) -> int:
        """Run one statement per row (pipelined on PostgreSQL); returns the rows changed."""
        rows = [tuple(r) for r in rows]
        if not rows:
            return 0
        cur = self.conn.cursor()
        cur.executemany(self._sql(sql), rows)
        return max(cur.rowcount, 0)

    def insert_many(self, head: str, columns: Sequence[str], types: Sequence[str], rows: list[Sequence],
                    tail: str = "") -> int:
        """``<head> (<columns>) VALUES ... <tail>`` for many rows; returns the rows changed.

        PostgreSQL: ONE statement over ``unnest`` of one array per column (``types`` are the
        SQL element types), not one per row: ~10x less server work per event. SQLite: a plain
        ``executemany``. ``tail`` is e.g. an ``ON CONFLICT`` clause (no placeholders).
        """
        if not rows:
            return 0
        if self.dialect != "postgresql":
            marks = ", ".join("?" * len(columns))
            return self.executemany(f"{head} ({', '.join(columns)}) VALUES ({marks}) {tail}", rows)
        arrays = [list(column) for column in zip(*rows)]
        unnest = ", ".join(f"%b::{t}[]" for t in types)  # binary: no text escaping of payloads
        cur = self.conn.cursor()
        cur.execute(f"{head} ({', '.join(columns)}) SELECT * FROM unnest({unnest}) {tail}", arrays)
        return max(cur.rowcount, 0)

    def query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        return self.execute(sql, params).fetchall()

    def greatest(self, a: str, b: str) -> str:
        """SQL for the larger of two non-NULL text/number expressions."""
        return f"GREATEST({a}, {b})" if self.dialect == "postgresql" else f"MAX({a}, {b})"

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        try:
            self.conn.rollback()
        except Exception:  # noqa: BLE001 - a dead connection has nothing to roll back
            logger.debug("rollback on a broken connection", exc_info=True)

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            logger.debug("close on a broken connection", exc_info=True)

    def schema_version(self) -> int:
        rows = self.query("SELECT MAX(version) FROM schema_version")
        return int(rows[0][0] or 0)


def is_url(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    head, sep, tail = url.partition("://")
    creds, at, host = tail.rpartition("@")
    if not at:
        return url
    user = creds.split(":", 1)[0]
    return f"{head}{sep}{user}:***@{host}" if ":" in creds else url


def connect(target: str | Path) -> Database:
    """Open (and migrate) the central database: a ``postgresql://`` URL or a SQLite path."""
    db = _connect_pg(str(target)) if is_url(target) else _connect_sqlite(Path(target))
    try:
        migrate(db)
    except Exception:
        db.close()
        raise
    return db


def _connect_sqlite(path: Path) -> Database:
    try:
        conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the central database {path}: {exc}") from None
    return Database(conn, "sqlite", str(path))


def _connect_pg(url: str) -> Database:
    import psycopg  # lazily: SQLite users need not install it

    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL {redact(url)}: {_pg_reason(exc)}") from None
    return Database(conn, "postgresql", redact(url))


def _pg_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else exc.__class__.__name__


def migrate(db: Database) -> int:
    """Apply the migrations not yet recorded in ``schema_version``; returns the version."""
    if db.dialect == "postgresql":
        db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_ID,))
    else:
        db.conn.execute("BEGIN IMMEDIATE")
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
    current = db.schema_version()
    if current == 0 and _has_legacy_events(db):
        current = 1  # a file made by the first collector: its tables are version 1
        db.execute("INSERT INTO schema_version VALUES (1, ?)", (_now(),))
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        for statement in statements:
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (?, ?)", (version, _now()))
        logger.info("central database %s migrated to schema version %d", db.where, version)
        current = version
    db.commit()
    return current


def _has_legacy_events(db: Database) -> bool:
    if db.dialect != "sqlite":
        return False
    return bool(db.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name='events'"))


def _now() -> str:
    return utc_iso()
