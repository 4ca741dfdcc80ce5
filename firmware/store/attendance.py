"""Attendance records: one per person per session, partitioned per local day.

Layout: ``attendance/<YYYY-MM-DD>/seg-NNNNNN.json`` (day = the session's scheduled day,
or the capture day without a session; both the device's LOCAL date in the Store's time
zone, as the console shows them; ``captured_at`` stays UTC). A record and its outbox entry are ONE journal
step (``journal.py``: a single fdatasync'd line holding both): after a SIGKILL or a
power cut either both exist or neither does, and replay at open is idempotent (keyed by
``event_id`` and by session+person), so nothing is ever duplicated. The day segments
are written by the checkpointer.

Reads (``query``, ``page``, ``for_session``, ``marks``) go through a per-day cache
(``daycache.py``): a past day is read from disk once, and the Store lock is held only to
pick up the cached lists, never while filtering or copying them. Counts and reports use
the cache's small per-day indexes, so a page of the newest records or a term report over
100,000 records touches only the days it shows.

Every record keeps a snapshot of who it was about when it was written: ``name``,
``external_id`` (the student number) and ``seat`` (from the session's roster). Deleting
a person later erases their biometric data but never rewrites history.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from operator import itemgetter

from firmware.domain import sessions as rules
from firmware.errors import SessionError
from firmware.store.context import StoreContext, audited, check_extra, check_score, check_text, locks_itself
from firmware.store.daycache import DayCache, DayIndex, by_seq
from firmware.store.errors import NotFound, StoreValueError
from firmware.store.ids import DAY_RE, check_day, new_ulid, parse_time, to_iso
from firmware.store.segments import SegmentedLog

logger = logging.getLogger(__name__)

LIVENESS_POLICIES = ("blink", "blink_challenge", "challenge", "off")

TOPIC = "event/attendance"
HOT_DAYS = 4


class _Day:
    """One day's records in memory (event_id -> record with ``_seg``/``_id``)."""

    def __init__(self, log: SegmentedLog) -> None:
        self.log = log
        self.records: dict[str, dict] = {}
        self.by_key: dict[tuple[str, str], str] = {}
        for number, rec in log.iter_records():
            self.add(rec, number, rec["_id"])

    def add(self, rec: dict, number: int, doc_id: int) -> None:
        rec = {**rec, "_seg": number, "_id": doc_id}
        self.records[rec["event_id"]] = rec
        self.by_key[(rec.get("session_id") or "", rec["person_id"])] = rec["event_id"]


class Attendance:
    """``store.attendance``: record, query and correct attendance."""

    def __init__(self, ctx: StoreContext, people, sessions) -> None:
        self._ctx = ctx
        self._root = ctx.data_dir / "attendance"
        self._people = people
        self._sessions = sessions
        self._days: OrderedDict[str, _Day] = OrderedDict()  # hot days, writable
        self._names: set[str] | None = None  # every day with records (loaded lazily)
        self._cache = DayCache(ctx.lock)  # read side: immutable per-day lists

    # -- internals -------------------------------------------------------------
    def _day(self, day: str) -> _Day:
        if day in self._days:
            self._days.move_to_end(day)
            return self._days[day]
        log = SegmentedLog(self._root / day, self._ctx.segment_max, self._ctx.clock,
                           self._ctx.on_corrupt, deferred=True)
        self._days[day] = _Day(log)
        for name in [d for d, v in self._days.items() if not v.log.has_pending()][:-HOT_DAYS]:
            if name != day:
                self._days.pop(name).log.close()
        return self._days[day]

    def logs(self) -> list[SegmentedLog]:
        """Open day segments (for the checkpointer)."""
        return [d.log for d in self._days.values()]

    def apply_insert(self, records: list[dict]) -> None:
        """Journal applier (idempotent): add committed records not present yet."""
        for rec in records:
            if "name" not in rec:  # journaled by firmware older than the snapshot fields
                session = self._sessions.get(rec.get("session_id"))
                rec = {**self._snapshot(session, rec["person_id"]), **rec}
            day = self._day(rec["day"])
            key = (rec.get("session_id") or "", rec["person_id"])
            if rec["event_id"] in day.records or key in day.by_key:
                continue
            [(number, doc_id)] = day.log.append_many([rec])
            day.add(rec, number, doc_id)
            self._cache.invalidate(rec["day"])
            self._day_names().add(rec["day"])

    def apply_update(self, change: dict) -> None:
        """Journal applier (idempotent): apply a revision newer than the stored one."""
        rec = self._day(change["day"]).records.get(change["event_id"])
        if rec is not None and rec.get("revision", 0) < change["fields"]["revision"]:
            self._day(change["day"]).log.update(rec["_seg"], rec["_id"], change["fields"])
            rec.update(change["fields"])
            self._cache.invalidate(change["day"])

    def _snapshot(self, session: dict | None, person_id: str,
                  seats: dict[str, str | None] | None = None) -> dict:
        """Name, student number and seat of ``person_id`` now (kept in the record)."""
        person = self._people.get(person_id) or {}
        if seats is None:
            seats = self._sessions.seats(session) if session else {}
        return {"name": person.get("name"), "external_id": person.get("external_id"),
                "seat": seats.get(person_id)}

    def _new_record(self, session: dict | None, person_id: str, status: str,
                    score: float | None, captured: float, extra: dict, source: str,
                    seats: dict[str, str | None] | None = None) -> dict:
        now = self._ctx.clock()
        return {**self._snapshot(session, person_id, seats),
                "event_id": new_ulid(now), "seq": self._ctx.seq.next(),
                "session_id": session["id"] if session else None,
                "room": session["room"] if session else None,
                "day": session["day"] if session else self._ctx.day_of(captured),
                "person_id": person_id, "status": status, "score": score,
                "captured_at": to_iso(captured), "recorded_at": to_iso(now),
                "source": source, "revision": 0, "extra": extra,
                "clock_synced": bool(self._ctx.clock_synced())}

    # -- API ---------------------------------------------------------------------
    def record(self, session_id: str | None, person_id: str, status: str | None = None,
               score: float | None = None, captured_at: object = None,
               extra: dict | None = None, liveness_policy: str | None = None) -> dict:
        """Record an arrival; returns the record with ``duplicate`` True/False.
        ``liveness_policy``: the liveness policy the face passed (None: not a camera
        check-in).

        ``status`` None or ``present`` becomes ``late`` when captured after the session's
        ``late_after``. A second record for the same person and session writes nothing
        and returns the first one with ``duplicate=True``.
        """
        session = self._sessions.get(session_id) if session_id is not None else None
        if session_id is not None and session is None:
            raise NotFound(f"session {session_id!r} does not exist", "session_id")
        if session and not rules.can_record(session["state"]):
            raise SessionError(f"session {session_id} is {session['state']}: attendance is "
                               "recorded only while it is in progress")
        self._people.require(person_id)
        captured = parse_time(captured_at if captured_at is not None else self._ctx.clock(),
                              "captured_at")
        status = self._arrival_status(status, captured, session)
        score, extra = check_score(score), check_extra(extra)
        day_name = session["day"] if session else self._ctx.day_of(captured)
        day = self._day(day_name)
        existing = day.by_key.get((session_id or "", person_id))
        if existing:
            logger.info("duplicate check-in ignored: %s in session %s", person_id, session_id)
            return {**_public(day.records[existing]), "duplicate": True}
        if liveness_policy is not None and liveness_policy not in LIVENESS_POLICIES:
            raise StoreValueError(f"liveness_policy {liveness_policy!r}: use one of "
                                  f"{', '.join(LIVENESS_POLICIES)}", "liveness_policy")
        rec = self._new_record(session, person_id, status, score, captured, extra, "auto")
        rec["liveness_policy"] = liveness_policy
        self._commit_new(rec)
        return {**rec, "duplicate": False}

    def _commit_new(self, rec: dict) -> None:
        entry = self._ctx.outbox.make_entry(TOPIC, rec, rec["event_id"], rec["seq"])
        self._ctx.commit([("outbox.put", entry), ("att.insert", [rec])])

    def _arrival_status(self, status: str | None, captured: float, session: dict | None) -> str:
        if status is not None:
            rules.check_status(status)
        if status in (None, rules.PRESENT):
            late_after = session.get("late_after_ts") if session else None
            return rules.arrival_status(captured, late_after)
        return status

    def get(self, session_id: str, person_id: str) -> dict | None:
        """The record of one person in one session, or None."""
        session = self._sessions.require(session_id)
        day = self._day(session["day"])
        event_id = day.by_key.get((session_id, person_id))
        return _public(day.records[event_id]) if event_id else None

    @locks_itself
    def for_session(self, session_id: str) -> list[dict]:
        """All records of a session, by seq."""
        with self._ctx.lock:
            session = self._sessions.require(session_id)
        [recs] = self._read_days([session["day"]])
        return [_copy(r) for r in recs if r.get("session_id") == session_id]

    @locks_itself
    def query(self, day_from: str | None = None, day_to: str | None = None,
              session_id: str | None = None, room: str | None = None,
              person_id: str | None = None, status: str | None = None) -> list[dict]:
        """Records matching every given filter (days inclusive, local dates), by seq."""
        if status is not None:
            rules.check_status(status)
        lo = check_day(day_from, "day_from") if day_from else "0000-00-00"
        hi = check_day(day_to, "day_to") if day_to else "9999-99-99"
        want = {"session_id": session_id, "room": room, "person_id": person_id, "status": status}
        want = {k: v for k, v in want.items() if v is not None}
        with self._ctx.lock:
            names = [d for d in self.days() if lo <= d <= hi]
            session = self._sessions.get(session_id) if session_id is not None else None
        if session is not None:  # a session's records all live in its day
            names = [d for d in names if d == session["day"]]
        chosen = self._read_days(names)
        if want:
            out = [r for recs in chosen for r in recs if all(r.get(k) == v for k, v in want.items())]
        else:
            out = [r for recs in chosen for r in recs]
        out.sort(key=by_seq)  # each day is sorted already: a cheap merge
        return [_copy(r) for r in out]

    @locks_itself
    def page(self, day_from: str | None = None, day_to: str | None = None,
             status: str | None = None, newest: bool = False, offset: int = 0,
             limit: int = 100) -> tuple[list[dict], int]:
        """(one page of records, total matching) by day, then capture time, then seq.

        Only the days that hold the page are read; the total comes from the per-day
        indexes. ``newest`` counts ``offset`` from the newest end and returns the page
        newest first. (For other filters use ``query``.)
        """
        if status is not None:
            rules.check_status(status)
        lo = check_day(day_from, "day_from") if day_from else "0000-00-00"
        hi = check_day(day_to, "day_to") if day_to else "9999-99-99"
        with self._ctx.lock:
            names = [d for d in self.days() if lo <= d <= hi]
        counts = [ix.statuses.get(status, 0) if status else ix.count for ix in self._indexes(names)]
        order = list(zip(names, counts))
        return self._take(order[::-1] if newest else order, status, newest, offset, limit), sum(counts)

    def _take(self, order: list[tuple[str, int]], status: str | None, newest: bool,
              offset: int, limit: int) -> list[dict]:
        """Copies of ``limit`` records after ``offset`` over (day, matching count) pairs,
        reading only the days that hold them."""
        out: list[dict] = []
        skip = offset
        for name, count in order:
            if len(out) >= limit:
                break
            if skip >= count:
                skip -= count
                continue
            [recs] = self._read_days([name])
            rows = by_capture_time([r for r in recs if not status or r.get("status") == status])
            if newest:
                rows.reverse()
            out.extend(_copy(r) for r in rows[skip:skip + limit - len(out)])
            skip = 0
        return out

    @locks_itself
    def marks(self, sessions: list[dict]) -> dict[str, dict[str, str]]:
        """session id -> {person id -> status} of ``sessions`` (from the per-day indexes;
        shared, read-only maps: copy before changing one)."""
        with self._ctx.lock:
            have = set(self.days())
        names = sorted({s["day"] for s in sessions} & have)
        indexes = dict(zip(names, self._indexes(names)))
        empty: dict[str, str] = {}
        return {s["id"]: indexes[s["day"]].sessions.get(s["id"], empty) if s["day"] in indexes
                else {} for s in sessions}

    def _indexes(self, names: list[str]) -> list[DayIndex]:
        return self._cache.indexes(names, self._live_records, self._disk_records)

    @locks_itself
    def warm(self) -> int:
        """Index every day once (at start, in the background); returns days indexed."""
        with self._ctx.lock:
            names = self.days()
        for name in names:
            self._indexes([name])
        return len(names)

    def _read_days(self, names: list[str]) -> list[tuple[dict, ...]]:
        return self._cache.read(names, self._live_records, self._disk_records)

    def _live_records(self, day_name: str) -> list[dict] | None:
        """A hot day's records (maybe not on disk yet); None for a day only on disk."""
        day = self._days.get(day_name)
        return None if day is None else [_public(r) for r in day.records.values()]

    def _disk_records(self, day_name: str) -> list[dict]:
        """A day's records from its files (called WITHOUT the lock: touches no shared state)."""
        log = SegmentedLog(self._root / day_name, self._ctx.segment_max, self._ctx.clock,
                           self._ctx.on_corrupt)
        try:
            return [_public(rec) for _, rec in log.iter_records()]
        except FileNotFoundError:  # deleted by retention meanwhile
            return []

    def _day_records(self, day_name: str) -> list[dict]:
        if day_name in self._days:
            return list(self._days[day_name].records.values())
        log = SegmentedLog(self._root / day_name, self._ctx.segment_max, self._ctx.clock,
                           self._ctx.on_corrupt)
        return [rec for _, rec in log.iter_records()]  # not kept: old days stay on disk

    def days(self) -> list[str]:
        """Days with attendance (on disk or still only journaled), ascending."""
        return sorted(self._day_names())

    def _day_names(self) -> set[str]:
        if self._names is None:  # the Store is the only writer: list the directory once
            self._names = {p.name for p in self._root.iterdir()
                           if DAY_RE.match(p.name) and p.is_dir()} if self._root.is_dir() else set()
            self._names |= {name for name, day in self._days.items() if day.records}
        return self._names

    @audited("attendance.set_status", actor="by")
    def set_status(self, session_id: str, person_id: str, status: str, by: str) -> dict:
        """Correct a status by hand (audited with ``by``); creates a manual record if none."""
        session = self._sessions.require(session_id)
        rules.check_status(status)
        by = check_text(by, "by", 80)
        if session["state"] not in (rules.IN_PROGRESS, rules.COMPLETED):
            raise SessionError(f"session {session_id} is {session['state']}: statuses can be "
                               "changed only in progress or completed sessions")
        day = self._day(session["day"])
        event_id = day.by_key.get((session_id, person_id))
        if event_id is None:  # a kept record of a since-deleted person may still be corrected
            self._people.require(person_id)
        old = day.records[event_id]["status"] if event_id else None
        self._ctx.audit_note(f"{session_id}/{person_id}", **{"from": old, "to": status})
        if event_id is None:
            now = self._ctx.clock()
            rec = self._new_record(session, person_id, status, None, now, {"by": by}, "manual")
            self._commit_new(rec)
            return rec
        return self._revise(day, day.records[event_id], status, by)

    def _revise(self, day: _Day, rec: dict, status: str, by: str) -> dict:
        fields = {"status": status, "updated_by": by, "revision": rec.get("revision", 0) + 1,
                  "updated_at": to_iso(self._ctx.clock())}
        revised = {**_public(rec), **fields}
        entry = self._ctx.outbox.make_entry(TOPIC, {**revised, "revision_of": rec["event_id"]})
        change = {"day": rec["day"], "event_id": rec["event_id"], "fields": fields}
        self._ctx.commit([("outbox.put", entry), ("att.update", change)])
        return revised

    def finalise_absent(self, session: dict, person_ids: list[str]) -> list[dict]:
        """Write ``absent`` records for roster members never seen (one batch write)."""
        day = self._day(session["day"])
        now = self._ctx.clock()
        todo = [p for p in person_ids if (session["id"], p) not in day.by_key]
        seats = self._sessions.seats(session)
        recs = [self._new_record(session, p, rules.ABSENT, None, now, {}, "finalise", seats)
                for p in todo]
        if recs:
            self._ctx.commit([("att.insert", recs)])
        return recs

    def max_seq(self) -> int:
        """Highest seq in the newest day (a floor for the seq counter)."""
        days = self.days()
        return max((r["seq"] for r in self._day_records(days[-1])), default=0) if days else 0

    def erase_person(self, person_id: str) -> int:
        """Delete every record of one person (full erasure); returns how many."""
        removed = 0
        for name in self.days():
            day = self._day(name)
            victims = [r for r in day.records.values() if r["person_id"] == person_id]
            by_segment: dict[int, list[int]] = {}
            for rec in victims:
                by_segment.setdefault(rec["_seg"], []).append(rec["_id"])
                del day.records[rec["event_id"]]
                day.by_key.pop((rec.get("session_id") or "", person_id), None)
            for number, doc_ids in by_segment.items():
                day.log.remove(number, doc_ids)
            if victims:
                self._cache.invalidate(name)
            removed += len(victims)
        return removed

    def delete_day(self, day_name: str) -> None:
        """Remove a whole day (retention)."""
        day = self._days.pop(day_name, None)
        if day:
            day.log.close()
        SegmentedLog(self._root / day_name, 1).destroy()
        self._cache.invalidate(day_name)
        if self._names is not None:
            self._names.discard(day_name)

    def close(self) -> None:
        """Release open day files; safe twice."""
        for day in self._days.values():
            day.log.close()
        self._days.clear()
        self._cache.clear()
        self._names = None


def by_capture_time(rows: list[dict]) -> list[dict]:
    """``rows`` (by seq) sorted by ``captured_at``; the sort is stable, so seq breaks ties."""
    try:
        return sorted(rows, key=itemgetter("captured_at"))
    except (KeyError, TypeError):  # a record without a capture time sorts first
        return sorted(rows, key=lambda rec: rec.get("captured_at") or "")


def _public(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if not k.startswith("_")}


def _copy(rec: dict) -> dict:
    """A copy of a cached record that the caller may change (``extra`` copied too)."""
    copy = rec.copy()
    extra = copy.get("extra")
    if isinstance(extra, dict):
        copy["extra"] = extra.copy()
    return copy
