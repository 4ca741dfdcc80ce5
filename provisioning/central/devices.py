"""``rollcall central devices``: the fleet at a glance, from the ``fleet_status`` view.

Online/offline comes from the devices' retained births and wills (a stale will, older
than the birth already stored, is ignored by the collector); last seen is the last time any
message of the device reached a collector; outbox depth and clock state come from telemetry;
``roster`` shows the version the device reported and, when it is behind, the newest one the
centre published for its room.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from provisioning.central.db import Database

COLUMNS = ("site", "device_id", "state", "reason", "conn_seq", "status_at", "last_seen", "firmware_version",
           "model_id", "room", "roster_version", "roster_latest", "telemetry_at", "outbox_depth",
           "outbox_oldest_age_s", "clock_synced", "warnings")
HEADER = ("SITE", "DEVICE", "STATE", "LAST SEEN", "FIRMWARE", "MODEL", "ROOM", "ROSTER", "OUTBOX", "CLOCK")


def fleet(db: Database, site: str | None = None, offline_only: bool = False) -> list[dict]:
    """Every device (dicts keyed by :data:`COLUMNS`), sorted by site and id."""
    where, params = [], []
    if site:
        where.append("site = ?")
        params.append(site)
    if offline_only:
        where.append("(state IS NULL OR state <> 'online')")
    sql = f"SELECT {', '.join(COLUMNS)} FROM fleet_status"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = db.query(sql + " ORDER BY site, device_id", params)
    db.commit()
    return [dict(zip(COLUMNS, row)) for row in rows]


def summary(devices: list[dict]) -> str:
    """``N devices: X online, Y offline, Z never reported status; W with an outbox backlog``."""
    online = sum(d["state"] == "online" for d in devices)
    offline = sum(d["state"] == "offline" for d in devices)
    backlog = sum((d["outbox_depth"] or 0) > 0 for d in devices)
    return (f"{len(devices)} devices: {online} online, {offline} offline, "
            f"{len(devices) - online - offline} without status; {backlog} with events waiting")


def table(devices: list[dict], now: datetime | None = None) -> str:
    """A fixed-width text table of the fleet."""
    now = now or datetime.now(timezone.utc)
    lines = [HEADER] + [_cells(d, now) for d in devices]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def _cells(d: dict, now: datetime) -> tuple:
    state = d["state"] or "?"
    if state == "offline" and d["reason"]:
        state = f"offline ({d['reason']})"
    roster = "-" if d["roster_version"] is None else str(d["roster_version"])
    if d["roster_latest"] is not None and (d["roster_version"] or 0) < d["roster_latest"]:
        roster += f" (behind: {d['roster_latest']})"
    clock = {None: "?", 1: "synced", 0: "NOT SYNCED"}.get(d["clock_synced"], "?")
    return (d["site"] or "", d["device_id"] or "", state, _ago(d["last_seen"], now),
            d["firmware_version"] or "-", d["model_id"] or "-", d["room"] or "-", roster,
            "-" if d["outbox_depth"] is None else str(d["outbox_depth"]), clock)


def _ago(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "never"
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return stamp
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def as_json(devices: list[dict]) -> str:
    return json.dumps(devices, indent=2, default=str)
