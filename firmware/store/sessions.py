"""Sessions on disk (``sessions/sessions.json``) with the rules of ``domain/sessions.py``.

Sessions of one room never overlap: ``create`` refuses a session whose scheduled window
overlaps another scheduled or running session of the same room, and ``set_state`` refuses
to start a session while another one of its room is in progress (whoever asks: the
console, the control API, an MQTT command or the schedule). A completed session keeps a
snapshot of its roster (``roster_entries``: person id, seat, name, student number), so
later changes to people or rosters never change what it shows.

Every state change is an ``event/session`` outbox event. A change is committed by ONE
atomic write of the session record that also holds the pre-assigned ``event_id``/``seq``
and ``pending_event: true`` (write-ahead). The follow-up steps (absent records when
completing, the summary, the outbox entry) are idempotent and are re-run by ``recover``
at open if a crash cut them short, so each transition is published exactly once.
"""

from __future__ import annotations

import logging
import re

from firmware.domain import sessions as rules
from firmware.errors import SessionError
from firmware.store.context import StoreContext, audited, check_text
from firmware.store.errors import NotFound, StoreValueError
from firmware.store.ids import check_day, new_ulid, parse_time, to_iso
from firmware.store.rosters import Rosters
from firmware.store.tinyfile import DocFile, ensure_dir

logger = logging.getLogger(__name__)

TOPIC = "event/session"
ROOM_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SESSION_POLICIES = ("blink", "blink_challenge", "challenge")  # "off" only from the device's config file


def check_policy(policy: object) -> None:
    """A session's liveness policy: None or one of SESSION_POLICIES."""
    if policy is not None and policy not in SESSION_POLICIES:
        raise StoreValueError(f"liveness_policy {str(policy)[:40]!r}: use one of {', '.join(SESSION_POLICIES)}",
                              "liveness_policy")


class Sessions:
    """``store.sessions``."""

    def __init__(self, ctx: StoreContext, rosters: Rosters) -> None:
        self._ctx = ctx
        self._rosters = rosters
        root = ensure_dir(ctx.data_dir / "sessions")
        self._file = DocFile(root / "sessions.json", ctx.clock, ctx.on_corrupt)
        self._all = {r["id"]: r for r in self._file.all()}
        self.attendance = None  # set by Store (completion writes absent records)
        rosters.in_use = self._roster_in_use

    @audited("session.created", target="roster_id")
    def create(self, roster_id: str, room: str, name: str, scheduled_start: object,
               scheduled_end: object, late_after: object = None, liveness_policy: str | None = None) -> dict:
        """A new ``scheduled`` session (``day``: local date of the start); times are ISO-8601
        (UTC if naive) or UNIX seconds. ``liveness_policy`` (one of SESSION_POLICIES, None:
        the device's configured policy) is what faces must pass during this session."""
        self._rosters.require(roster_id)
        check_policy(liveness_policy)
        if not isinstance(room, str) or not ROOM_RE.match(room):
            raise StoreValueError(f"room {room!r}: use 1-64 letters, digits, '.', '_' or '-'", "room")
        start = parse_time(scheduled_start, "scheduled_start")
        end = parse_time(scheduled_end, "scheduled_end")
        late = parse_time(late_after, "late_after") if late_after is not None else None
        rules.check_times(start, end, late)
        self._check_free(room, start, end)
        now = self._ctx.clock()
        rec = {"id": new_ulid(now), "roster_id": roster_id, "room": room,
               "name": check_text(name, "name", 120), "day": self._ctx.day_of(start),
               "scheduled_start": to_iso(start), "scheduled_end": to_iso(end),
               "late_after": to_iso(late) if late is not None else None,
               "start_ts": start, "end_ts": end, "late_after_ts": late,
               "state": rules.SCHEDULED, "created_at": to_iso(now), "history": [],
               "liveness_policy": liveness_policy,
               "event_id": None, "seq": None, "pending_event": False}
        self._ctx.audit_note(rec["id"], name=rec["name"], room=room)
        rec["_id"] = self._file.insert(rec)
        self._all[rec["id"]] = rec
        return _public(rec)

    def _check_free(self, room: str, start: float, end: float) -> None:
        """Refuse a window [start, end) (UNIX s) overlapping an open session of ``room``."""
        for other in self._all.values():
            if other["room"] == room and other["state"] not in rules.FINAL_STATES \
                    and other["start_ts"] < end and start < other["end_ts"]:
                raise SessionError(f"room {room} already has session {other['name']!r} "
                                   f"({other['scheduled_start']} - {other['scheduled_end']}, "
                                   f"{other['state']}) at that time: sessions in one room "
                                   "cannot overlap")

    def _check_room_idle(self, rec: dict) -> None:
        """Refuse to start ``rec`` while another session of its room is in progress."""
        for other in self._all.values():
            if other["room"] == rec["room"] and other["state"] == rules.IN_PROGRESS \
                    and other["id"] != rec["id"]:
                raise SessionError(f"session {other['name']!r} is already running in room "
                                   f"{rec['room']}: stop it before starting {rec['name']!r}")

    def seats(self, session: dict) -> dict[str, str | None]:
        """person id -> seat for ``session`` (its roster snapshot once completed)."""
        entries = session.get("roster_entries")
        if entries is None:
            entries = (self._rosters.get(session["roster_id"]) or {}).get("entries", [])
        return {e["person_id"]: e.get("seat") for e in entries}

    def _roster_snapshot(self, roster_id: str) -> list[dict]:
        """The roster's entries with each person's name and student number, as now."""
        out = []
        for entry in (self._rosters.get(roster_id) or {}).get("entries", []):
            person = self._rosters.person(entry["person_id"]) or {}
            out.append({"person_id": entry["person_id"], "seat": entry.get("seat"),
                        "name": person.get("name"), "external_id": person.get("external_id")})
        return out

    def get(self, session_id: str) -> dict | None:
        rec = self._all.get(session_id) if isinstance(session_id, str) else None
        return _public(rec) if rec else None

    def require(self, session_id: str) -> dict:
        session = self.get(session_id)
        if session is None:
            raise NotFound(f"session {session_id!r} does not exist", "session_id")
        return session

    def list(self, day: str | None = None, room: str | None = None,
             state: str | None = None, roster_id: str | None = None) -> list[dict]:
        """Sessions matching the filters, by scheduled start."""
        if day is not None:
            check_day(day)
        if state is not None:
            rules.check_state(state)
        rows = [r for r in self._all.values() if (day is None or r["day"] == day)
                and (room is None or r["room"] == room) and (state is None or r["state"] == state)
                and (roster_id is None or r["roster_id"] == roster_id)]
        return [_public(r) for r in sorted(rows, key=lambda r: (r["start_ts"], r["id"]))]

    def active(self, room: str | None = None) -> dict | None:
        """The in-progress session (of ``room``) started most recently, or None."""
        running = [r for r in self._all.values() if r["state"] == rules.IN_PROGRESS
                   and (room is None or r["room"] == room)]
        if not running:
            return None
        return _public(max(running, key=lambda r: (r["history"][-1]["ts"], r["id"])))

    @audited("session.set_policy", target="session_id", actor="by")
    def set_policy(self, session_id: str, liveness_policy: str | None, by: str = "system") -> dict:
        """Set (None: clear) the session's liveness policy; audited as ``by``."""
        rec = self._all.get(session_id)
        if rec is None:
            self.require(session_id)
        check_policy(liveness_policy)
        if rec["state"] in rules.FINAL_STATES:
            raise StoreValueError(f"session {session_id} is {rec['state']}: its policy can no longer change",
                                  "liveness_policy")
        self._ctx.audit_note(**{"from": rec.get("liveness_policy"), "to": liveness_policy})
        self._write(rec, {"liveness_policy": liveness_policy})
        return _public(rec)

    @audited("session.set_state", target="session_id", actor="by")
    def set_state(self, session_id: str, state: str, by: str = "system", at: object = None) -> dict:
        """Move a session to ``state``; returns the session (``summary`` when completed)."""
        rec = self._all.get(session_id)
        if rec is None:
            self.require(session_id)
        rules.check_transition(rec["state"], state)
        if state == rules.IN_PROGRESS:
            self._check_room_idle(rec)
        by = check_text(by, "by", 80)
        at_ts = parse_time(at if at is not None else self._ctx.clock(), "at")
        now = self._ctx.clock()
        fields = {"state": state, "event_id": new_ulid(now), "seq": self._ctx.seq.next(),
                  "pending_event": True,
                  "history": rec["history"] + [{"state": state, "at": to_iso(at_ts), "ts": at_ts,
                                                "by": by}]}
        if state == rules.COMPLETED:
            fields["roster_entries"] = self._roster_snapshot(rec["roster_id"])
            fields["roster_ids"] = [e["person_id"] for e in fields["roster_entries"]]
        self._ctx.audit_note(**{"from": rec["state"], "to": state})
        self._write(rec, fields)  # commit point
        self._finish(rec)
        return _public(rec)

    def _write(self, rec: dict, fields: dict) -> None:
        self._file.update(rec["_id"], fields)
        rec.update(fields)

    def _finish(self, rec: dict) -> None:
        """Idempotent follow-up of a committed transition (absentees, summary, outbox)."""
        if rec["state"] == rules.COMPLETED and "summary" not in rec:
            self.attendance.finalise_absent(_public(rec), rec["roster_ids"])
            summary = rules.summarise(rec["roster_ids"], self.attendance.for_session(rec["id"]))
            self._write(rec, {"summary": {"session_id": rec["id"], **summary}})
        if not self._ctx.outbox.contains(rec["event_id"]):
            last = rec["history"][-1]
            payload = {"session_id": rec["id"], "state": rec["state"], "name": rec["name"],
                       "room": rec["room"], "roster_id": rec["roster_id"], "day": rec["day"],
                       "at": last["at"], "by": last["by"], "summary": rec.get("summary")}
            self._ctx.outbox.put_event(TOPIC, payload, rec["event_id"], rec["seq"])
        self._write(rec, {"pending_event": False})

    def recover(self) -> int:
        """Finish transitions a crash cut short; returns how many."""
        cut = [r for r in self._all.values() if r.get("pending_event")]
        for rec in cut:
            logger.warning("finishing session %s -> %s after a crash", rec["id"], rec["state"])
            self._finish(rec)
        return len(cut)

    def _roster_in_use(self, roster_id: str) -> bool:
        return any(r["roster_id"] == roster_id and r["state"] not in rules.FINAL_STATES
                   for r in self._all.values())

    def max_seq(self) -> int:
        return max((r["seq"] or 0 for r in self._all.values()), default=0)

    def delete_before(self, day: str) -> int:
        """Delete completed/cancelled sessions scheduled before ``day`` (retention)."""
        old = [r for r in self._all.values() if r["day"] < day and r["state"] in rules.FINAL_STATES]
        self._file.remove([r["_id"] for r in old])
        for rec in old:
            del self._all[rec["id"]]
        return len(old)

    def close(self) -> None:
        """Release files; safe twice."""
        self._file.close()


def _public(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if not k.startswith("_")}
