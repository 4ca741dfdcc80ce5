"""Data-format versions: ``<data_dir>/schema_version`` and upgrades of older layouts.

``migrate(data_dir)`` is run by ``Store`` at open. It backs the whole data dir up first
(``<data_dir>/backups/pre-v<N>-<stamp>.tar.gz``, 0600), runs each upgrade step in order
and writes the new version number last, so a crash mid-way simply re-runs the steps
(each step overwrites what it writes). Versions:

- v0: the prototype's single TinyDB file ``rollcall.json`` (tables ``people`` and
  ``attendance`` without event ids).
- v1: the partitioned layout described in ``docs/interfaces.md``.
"""

from __future__ import annotations

import logging
import os
import tarfile
import time
from pathlib import Path
from typing import Callable

from firmware.errors import StoreError
from firmware.store.atomic import atomic_write_bytes
from firmware.store.ids import SEQ_BLOCK, day_of, new_ulid, to_iso
from firmware.store.segments import segment_name
from firmware.store.tinyfile import DIR_MODE, FILE_MODE, TABLE, dumps, ensure_dir, read_json_file, utc_stamp

logger = logging.getLogger(__name__)

CURRENT_VERSION = 1
VERSION_FILE = "schema_version"
BACKUP_DIR = "backups"
LEGACY_V0 = "rollcall.json"


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


def migrate(data_dir: Path, clock: Callable[[], float] = time.time) -> dict:
    """Bring ``data_dir`` to ``CURRENT_VERSION``; returns ``{from, to, backup}``."""
    data_dir = ensure_dir(Path(data_dir))
    version = read_version(data_dir)
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


STEPS: dict[int, Callable[[Path, Callable[[], float]], None]] = {0: _v0_to_v1}
