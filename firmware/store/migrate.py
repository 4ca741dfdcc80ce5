"""Data-format versions: ``<data_dir>/schema_version`` and upgrades of older layouts.

``migrate(data_dir)`` is run by ``Store`` at open. It backs the whole data dir up first
(``<data_dir>/backups/pre-v<N>-<stamp>.tar.gz``, 0600), runs each upgrade step in order
and writes the new version number last, so a crash mid-way simply re-runs the steps
(each step overwrites what it writes). Versions:

- v0: the prototype's single TinyDB file ``rollcall.json`` (tables ``people`` and
  ``attendance`` without event ids).
- v1: the partitioned layout described in ``docs/interfaces.md``.
- v2: attendance records keep ``name``, ``external_id`` and ``seat`` as they were when
  written, and completed sessions keep their roster (``roster_entries``). The upgrade
  fills them in from the people and rosters still on the device (a person already
  deleted keeps ``name: null``; nothing else is known about them).

Attendance and session days are local dates in the device's time zone, named in
``<data_dir>/day_zone`` (missing: ``UTC``, as every data dir written before it existed).
When the Store opens with another zone, ``rezone`` (after a backup) re-files every
attendance record under its new local day and rewrites the sessions' days; it is safe to
re-run after a crash (it rebuilds from whatever old and new copies exist, and writes
``day_zone`` last).
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import Callable

from firmware.errors import StoreError
from firmware.store.atomic import atomic_write_bytes, fsync_dir
from firmware.store.ids import (DAY_RE, SEQ_BLOCK, check_zone, day_of, local_day, new_ulid,
                                parse_time, to_iso)
from firmware.store.segments import SegmentedLog, segment_name
from firmware.store.tinyfile import (DIR_MODE, FILE_MODE, TABLE, dumps, ensure_dir,
                                     read_json_file, utc_stamp)

logger = logging.getLogger(__name__)

CURRENT_VERSION = 2
VERSION_FILE = "schema_version"
BACKUP_DIR = "backups"
LEGACY_V0 = "rollcall.json"
DAY_ZONE_FILE = "day_zone"
REZONE_NEW, REZONE_OLD = "attendance.rezone-new", "attendance.rezone-old"


def read_version(data_dir: Path) -> int | None:
    """The data dir's format version; None for a fresh (empty) dir."""
    data_dir = Path(data_dir)
    try:
        text = (data_dir / VERSION_FILE).read_text().strip()
    except FileNotFoundError:
        if (data_dir / LEGACY_V0).exists():
            return 0
        entries = [p for p in data_dir.iterdir() if p.name not in (BACKUP_DIR, ".lock")] \
            if data_dir.is_dir() else []
        return None if not entries else CURRENT_VERSION
    if not text.isdigit():
        raise StoreError(f"{data_dir / VERSION_FILE}: {text!r} is not a version number")
    return int(text)


def write_version(data_dir: Path, version: int) -> None:
    atomic_write_bytes(Path(data_dir) / VERSION_FILE, f"{version}\n".encode(), FILE_MODE, DIR_MODE)


def backup(data_dir: Path, label: str, clock: Callable[[], float] = time.time) -> Path:
    """tar.gz of the data dir (without earlier backups) into ``<data_dir>/backups/``."""
    data_dir = Path(data_dir)
    target = ensure_dir(data_dir / BACKUP_DIR) / f"{label}-{utc_stamp(clock())}.tar.gz"
    tmp = target.with_name(f".{target.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for item in sorted(data_dir.iterdir()):
            if item.name not in (BACKUP_DIR, ".lock"):
                tar.add(item, arcname=item.name)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, target)
    logger.info("backed up %s to %s", data_dir, target)
    return target


def migrate(data_dir: Path, clock: Callable[[], float] = time.time,
            timezone: str = "UTC") -> dict:
    """Bring ``data_dir`` to ``CURRENT_VERSION``; returns ``{from, to, backup}``.

    A fresh dir is stamped with ``timezone`` for its days (see ``rezone`` for a change).
    """
    data_dir = ensure_dir(Path(data_dir))
    version = read_version(data_dir)
    if version is None:
        write_day_zone(data_dir, timezone)
    if version is None or (version == CURRENT_VERSION and not (data_dir / VERSION_FILE).exists()):
        write_version(data_dir, CURRENT_VERSION)
        return {"from": version, "to": CURRENT_VERSION, "backup": None}
    if version > CURRENT_VERSION:
        raise StoreError(f"{data_dir} holds data format v{version} from newer firmware; this "
                         f"firmware reads up to v{CURRENT_VERSION}: upgrade the firmware")
    if version == CURRENT_VERSION:
        return {"from": version, "to": version, "backup": None}
    saved = backup(data_dir, f"pre-v{CURRENT_VERSION}-from-v{version}", clock)
    for step in range(version, CURRENT_VERSION):
        logger.warning("migrating %s from data format v%d to v%d", data_dir, step, step + 1)
        STEPS[step](data_dir, clock)
    write_version(data_dir, CURRENT_VERSION)
    return {"from": version, "to": CURRENT_VERSION, "backup": str(saved)}


def _v0_to_v1(data_dir: Path, clock: Callable[[], float]) -> None:
    """Split the prototype's single file into the partitioned v1 layout."""
    legacy = read_json_file(data_dir / LEGACY_V0, clock) or {}
    now = to_iso(clock())
    people = {}
    for i, (_, p) in enumerate(sorted(legacy.get("people", {}).items(), key=lambda kv: int(kv[0]))):
        people[str(i + 1)] = {"id": p["person_id"], "name": p["name"],
                              "external_id": p.get("external_id"), "source": "local",
                              "created_at": now, "updated_at": now}
    _write_table(data_dir / "people" / "people.json", people)
    rows = sorted(legacy.get("attendance", {}).values(), key=lambda r: r["ts"])
    by_day: dict[str, list[dict]] = {}
    for seq, row in enumerate(rows, start=1):
        rec = {"event_id": new_ulid(row["ts"]), "seq": seq, "session_id": row.get("session_id"),
               "room": None, "day": day_of(row["ts"]), "person_id": row["person_id"],
               "status": row["status"], "score": None, "captured_at": to_iso(row["ts"]),
               "recorded_at": to_iso(row["ts"]), "source": "migrated-v0", "revision": 0, "extra": {}}
        by_day.setdefault(rec["day"], []).append(rec)
    for day, recs in by_day.items():
        table = {str(i + 1): r for i, r in enumerate(recs)}
        _write_table(data_dir / "attendance" / day / segment_name(1), table)
    atomic_write_bytes(data_dir / "counters.json", dumps({"seq_reserved": len(rows) + SEQ_BLOCK}),
                       FILE_MODE, DIR_MODE)
    os.replace(data_dir / LEGACY_V0, data_dir / f"{LEGACY_V0}.v0-migrated")


def _write_table(path: Path, table: dict) -> None:
    atomic_write_bytes(path, dumps({TABLE: table}), FILE_MODE, DIR_MODE)


def _v1_to_v2(data_dir: Path, clock: Callable[[], float]) -> None:
    """Snapshot names, student numbers and seats into records and completed sessions."""
    people = _known_people(data_dir, clock)
    seats = _roster_seats(data_dir, clock)
    session_seats = _snapshot_sessions(data_dir, clock, people, seats)
    root = data_dir / "attendance"
    days = sorted(p for p in root.iterdir() if DAY_RE.match(p.name)) if root.is_dir() else []
    for day_dir in days:
        for seg in sorted(day_dir.glob("seg-*.json")):
            data = read_json_file(seg, clock)
            if not data:
                continue
            for rec in data.get(TABLE, {}).values():
                if "name" not in rec:
                    person = people.get(rec.get("person_id"), {})
                    rec.update(name=person.get("name"), external_id=person.get("external_id"),
                               seat=session_seats.get(rec.get("session_id"), {}).get(rec.get("person_id")))
            atomic_write_bytes(seg, dumps(data), FILE_MODE, DIR_MODE)


def _known_people(data_dir: Path, clock: Callable[[], float]) -> dict[str, dict]:
    """person id -> {name, external_id} of local people and synced-roster people."""
    found: dict[str, dict] = {}
    for bundle in _synced_bundles(data_dir, clock):
        found.update({p["id"]: p for p in bundle.get("people", [])})
    local = read_json_file(data_dir / "people" / "people.json", clock) or {}
    found.update({p["id"]: p for p in local.get(TABLE, {}).values()})
    return found


def _synced_bundles(data_dir: Path, clock: Callable[[], float]) -> list[dict]:
    root = data_dir / "rosters" / "synced"
    out = []
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        gen = (directory / "CURRENT").read_text().strip() if (directory / "CURRENT").is_file() else ""
        content = read_json_file(directory / gen / "bundle.json", clock) if gen else None
        if content:
            out.append(content)
    return out


def _roster_seats(data_dir: Path, clock: Callable[[], float]) -> dict[str, dict[str, str | None]]:
    """roster id -> {person id -> seat} of the rosters on the device."""
    rosters = [b["roster"] for b in _synced_bundles(data_dir, clock) if "roster" in b]
    local = read_json_file(data_dir / "rosters" / "rosters.json", clock) or {}
    rosters += list(local.get(TABLE, {}).values())
    return {r["id"]: {e["person_id"]: e.get("seat") for e in r.get("entries", [])} for r in rosters}


def _snapshot_sessions(data_dir: Path, clock: Callable[[], float], people: dict[str, dict],
                       seats: dict[str, dict]) -> dict[str, dict[str, str | None]]:
    """Give completed sessions ``roster_entries``; returns session id -> {person -> seat}."""
    path = data_dir / "sessions" / "sessions.json"
    data = read_json_file(path, clock) or {}
    out = {}
    for rec in data.get(TABLE, {}).values():
        roster_seats = seats.get(rec.get("roster_id"), {})
        if rec.get("state") == "completed" and "roster_entries" not in rec:
            rec["roster_entries"] = [
                {"person_id": pid, "seat": roster_seats.get(pid),
                 "name": people.get(pid, {}).get("name"),
                 "external_id": people.get(pid, {}).get("external_id")}
                for pid in rec.get("roster_ids", [])]
        entries = rec.get("roster_entries")
        out[rec["id"]] = ({e["person_id"]: e.get("seat") for e in entries} if entries is not None
                          else roster_seats)
    if data:
        atomic_write_bytes(path, dumps(data), FILE_MODE, DIR_MODE)
    return out


STEPS: dict[int, Callable[[Path, Callable[[], float]], None]] = {0: _v0_to_v1, 1: _v1_to_v2}


def read_day_zone(data_dir: Path) -> str:
    """The time zone whose local dates name the attendance/session days (default UTC)."""
    try:
        return (Path(data_dir) / DAY_ZONE_FILE).read_text().strip() or "UTC"
    except FileNotFoundError:
        return "UTC"


def write_day_zone(data_dir: Path, timezone: str) -> None:
    atomic_write_bytes(Path(data_dir) / DAY_ZONE_FILE, f"{timezone}\n".encode(), FILE_MODE, DIR_MODE)


def rezone(data_dir: Path, timezone: str, clock: Callable[[], float] = time.time,
           segment_max: int = 256) -> dict:
    """Re-file attendance and session days as local dates in ``timezone`` (backup first).

    Run by ``Store`` at open, with the journal empty and no file open. Returns
    ``{from, to, backup, records}``.
    """
    data_dir, zone = Path(data_dir), check_zone(timezone)
    old_zone = read_day_zone(data_dir)
    label = f"pre-rezone-{old_zone}-to-{timezone}".replace("/", "_")
    saved = backup(data_dir, label, clock)
    logger.warning("time zone %s -> %s: moving attendance and session days to local dates "
                   "(backup %s)", old_zone, timezone, saved.name)
    session_days = _rezone_sessions(data_dir, zone, clock)
    records = _rezone_attendance(data_dir, zone, session_days, clock, segment_max)
    write_day_zone(data_dir, timezone)
    return {"from": old_zone, "to": timezone, "backup": str(saved), "records": records}


def _rezone_sessions(data_dir: Path, zone, clock: Callable[[], float]) -> dict[str, str]:
    path = data_dir / "sessions" / "sessions.json"
    data = read_json_file(path, clock)
    if not data:
        return {}
    for rec in data.get(TABLE, {}).values():
        rec["day"] = local_day(rec["start_ts"], zone)
    atomic_write_bytes(path, dumps(data), FILE_MODE, DIR_MODE)
    return {rec["id"]: rec["day"] for rec in data.get(TABLE, {}).values()}


def _rezone_attendance(data_dir: Path, zone, session_days: dict[str, str],
                       clock: Callable[[], float], segment_max: int) -> int:
    root, new, old = data_dir / "attendance", data_dir / REZONE_NEW, data_dir / REZONE_OLD
    by_day: dict[str, list[dict]] = {}
    for rec in _all_attendance((old, root), clock):
        sid = rec.get("session_id")
        rec["day"] = session_days[sid] if sid in session_days else \
            local_day(parse_time(rec["captured_at"], "captured_at"), zone)
        by_day.setdefault(rec["day"], []).append(rec)
    shutil.rmtree(new, ignore_errors=True)
    ensure_dir(new)
    for day, recs in by_day.items():
        for start in range(0, len(recs), segment_max):
            chunk = recs[start:start + segment_max]
            _write_table(new / day / segment_name(start // segment_max + 1),
                         {str(i + 1): r for i, r in enumerate(chunk)})
    if root.is_dir():
        if old.is_dir():  # a crash after the swap below: ``root`` is already a complete set
            shutil.rmtree(old)
        os.replace(root, old)
    os.replace(new, root)
    fsync_dir(data_dir)
    shutil.rmtree(old, ignore_errors=True)
    return sum(len(r) for r in by_day.values())


def _all_attendance(sources: tuple[Path, ...], clock: Callable[[], float]) -> list[dict]:
    """Every record under the given attendance roots, newest revision per event, by seq."""
    found: dict[str, dict] = {}
    for src in sources:
        days = sorted(p for p in src.iterdir() if DAY_RE.match(p.name)) if src.is_dir() else []
        for day_dir in days:
            for _, rec in SegmentedLog(day_dir, 1, clock).iter_records():
                rec = {k: v for k, v in rec.items() if k != "_id"}
                prev = found.get(rec["event_id"])
                if prev is None or rec.get("revision", 0) >= prev.get("revision", 0):
                    found[rec["event_id"]] = rec
    return sorted(found.values(), key=lambda r: r["seq"])
