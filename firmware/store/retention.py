"""Retention: the daily sweep, what is held and until when, and templates to review.

``sweep(now)`` runs ``Store.apply_retention`` (attendance and finished sessions after
``store.retention_days``, unknown/spoof crops after ``store.unknown_retention_days``,
audit months after ``store.audit_retention_days``), then updates the review list: a local
person with face data who is on no roster (local or synced) gets ``off_roster_since``; after
``privacy.review_absent_days`` their templates are flagged for review (never deleted
silently). The sweep REFUSES to run while the clock is not synchronised: a wrong time in
the future would delete everything. State (last sweep, review list) lives in
``privacy/retention.json``.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from firmware.config import StoreConfig
from firmware.store.atomic import atomic_write_bytes
from firmware.store.context import StoreContext
from firmware.store.ids import to_iso
from firmware.store.people import People
from firmware.store.tinyfile import DIR_MODE, FILE_MODE, dumps, read_json_file

logger = logging.getLogger(__name__)

DAY_S = 86400.0


class Retention:
    """``store.retention``: ``due``, ``sweep``, ``status``."""

    def __init__(self, ctx: StoreContext, parts: dict, apply: Callable[[float], dict],
                 review_absent_days: int = 90) -> None:
        self._ctx = ctx
        self._parts = parts  # people, rosters, unknowns, attendance, sessions, audit
        self._apply = apply
        self.review_absent_days = review_absent_days
        self._path = ctx.data_dir / "privacy" / "retention.json"
        self._state = read_json_file(self._path, ctx.clock, ctx.on_corrupt) or {}

    def due(self, now: float) -> bool:
        """True when no sweep ran in the last 24 h (of synchronised time)."""
        last = self._state.get("last_sweep_ts")
        return last is None or now - last >= DAY_S or now < last - DAY_S

    def sweep(self, now: float | None = None) -> dict:
        """Delete what is past its retention and update the review list; returns what it did."""
        now = self._ctx.clock() if now is None else now
        if not self._ctx.clock_synced():
            logger.warning("retention sweep skipped: the clock is not synchronised")
            return {"skipped": "the clock is not synchronised (a wrong time could delete "
                               "data too early); the sweep runs once it is"}
        deleted = self._apply(now)
        flagged = self._update_review(now)
        self._state.update(last_sweep_ts=now, last_sweep_at=to_iso(now), last_result=deleted)
        self._save()
        return {"deleted": deleted, "flagged_for_review": flagged, "at": to_iso(now)}

    def _update_review(self, now: float) -> list[str]:
        people, rosters = self._parts["people"], self._parts["rosters"]
        on_roster = rosters.roster_people()
        with_faces = {pid for pid, dim in _local_with_faces(people)}
        review = self._state.get("off_roster", {})
        review = {pid: since for pid, since in review.items() if pid in with_faces and pid not in on_roster}
        for pid in with_faces - on_roster:
            review.setdefault(pid, now)
        self._state["off_roster"] = review
        return sorted(pid for pid, since in review.items()
                      if now - since >= self.review_absent_days * DAY_S)

    def review(self, now: float | None = None) -> list[dict]:
        """People with face data on no roster now: ``{person_id, name, off_roster_since,
        flagged}`` (``off_roster_since`` None until a sweep has seen them)."""
        now = self._ctx.clock() if now is None else now
        people, known = self._parts["people"], self._state.get("off_roster", {})
        off = {pid for pid, _ in _local_with_faces(people)} - self._parts["rosters"].roster_people()
        out = []
        for pid in sorted(off):
            person, since = people.get(pid), known.get(pid)
            out.append({"person_id": pid, "name": person["name"] if person else pid,
                        "off_roster_since": to_iso(since) if since else None,
                        "flagged": since is not None and now - since >= self.review_absent_days * DAY_S})
        return out

    def status(self, config: StoreConfig, now: float | None = None) -> dict:
        """What is held, where, and until when (for the console's privacy page)."""
        now = self._ctx.clock() if now is None else now
        return {"held": self._held(config), "review": self.review(now),
                "review_absent_days": self.review_absent_days,
                "last_sweep_at": self._state.get("last_sweep_at"),
                "last_result": self._state.get("last_result"),
                "clock_synced": bool(self._ctx.clock_synced())}

    def _held(self, config: StoreConfig) -> list[dict]:
        p = self._parts
        local = _local_with_faces(p["people"])
        photos = sum(len(p["people"].photos(pid)) for pid, _ in local)
        unknown = p["unknowns"].held()
        att_days = p["attendance"].days()
        months = p["audit"].months()
        return [
            {"what": "face templates and enrolment photos (local)", "where": "people/<id>/",
             "count": f"{len(local)} people, {sum(n for _, n in local)} templates, {photos} photos",
             "until": "erasure, withdrawn consent, or review when off every roster"},
            {"what": "face templates from the centre's rosters", "where": "rosters/synced/",
             "count": f"{p['people'].synced_template_count()} templates",
             "until": "the centre removes the person, or an erasure"},
            {"what": "unknown and spoof face crops", "where": "unknowns/<day>/crops/",
             "count": f"{unknown['crops']} crops ({unknown['records']} records)",
             "until": _until(unknown["oldest_day"], config.unknown_retention_days)},
            {"what": "attendance records (names via person id, no face data)", "where": "attendance/<day>/",
             "count": f"{len(att_days)} days", "until": _until(att_days[0] if att_days else None,
                                                              config.retention_days)},
            {"what": "audit log", "where": "audit/<month>/", "count": f"{len(months)} months",
             "until": _until(f"{months[0]}-01" if months else None, config.audit_retention_days)},
        ]

    def _save(self) -> None:
        atomic_write_bytes(self._path, dumps(self._state), FILE_MODE, DIR_MODE)


def _local_with_faces(people: People) -> list[tuple[str, int]]:
    """(person id, number of templates) for local people holding any."""
    return sorted(people.template_counts().items())


def _until(oldest_day: str | None, days: int) -> str:
    if oldest_day is None:
        return f"nothing held; kept {days} days"
    start = time.mktime(time.strptime(oldest_day, "%Y-%m-%d"))
    return f"oldest deleted after {time.strftime('%Y-%m-%d', time.localtime(start + days * DAY_S))} ({days} days)"
