"""Which session is running, who may be recognised, and the session schedule.

:class:`SessionKeeper` turns the store's sessions and rosters into the decision engine's
:class:`~firmware.domain.decisions.Scope`: the active session's roster (this device's
room), everyone enrolled in open-door mode (``decisions.open_door``), or nobody. It starts
scheduled sessions at their start time and completes them at their end (checked every
``SCHEDULE_S`` seconds from the loop's housekeeping), and runs start/stop/cancel commands
from the console, the button or MQTT. The gallery of enrolled embeddings is rebuilt when
marked stale and at most every ``REFRESH_S`` seconds otherwise.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from enum import StrEnum
from typing import Any, Callable

import numpy as np

from firmware.config import Config
from firmware.domain.decisions import DecisionEngine, Scope
from firmware.domain.matching import Gallery
from firmware.errors import CommandError, RollcallError
from firmware.runtime.tuning import evidence_rule, set_liveness_policy
from firmware.store import Store

logger = logging.getLogger(__name__)

SCHEDULE_S = 5.0
REFRESH_S = 30.0
ACTIONS = {"start": "in_progress", "stop": "completed", "cancel": "cancelled"}


class DeviceMode(StrEnum):
    """Who the device recognises now (``status()["mode"]``)."""

    SESSION = "session"        # the running session's roster
    OPEN_DOOR = "open_door"    # everyone enrolled (decisions.open_door)
    NO_SESSION = "no_session"  # nobody: faces get "no session"
    ERROR = "error"            # the roster could not be loaded


class SessionKeeper:
    """Session state for one device (room ``config.device.room``)."""

    def __init__(self, config: Config, store: Store, engine: DecisionEngine, *, lock: threading.RLock | None = None,
                 wall: Callable[[], float] = time.time, clock: Callable[[], float] = time.monotonic,
                 synced: Callable[[], bool] = lambda: True) -> None:
        self.config = config
        self.store = store
        self.engine = engine
        self.lock = lock or threading.RLock()
        self.wall, self.clock, self.synced = wall, clock, synced
        self.schedule_held = False  # True while the unsynchronised clock holds the schedule
        self.session: dict | None = None
        self.roster: dict | None = None
        self.gallery: Gallery | None = None
        self._stale = True
        self._last_refresh = float("-inf")
        self._last_schedule = float("-inf")
        self._error = ""
        self._refused: set[str] = set()  # scheduled starts refused (logged once each)
        self.policy = config.liveness.policy  # the liveness policy in force (the session's or the config's)
        self.rng: random.Random | None = None  # draws challenges (None: the OS's random source)

    @property
    def roster_version(self) -> int | None:
        return self.roster.get("version") if self.roster else None

    def invalidate(self) -> None:
        """Rebuild scope and gallery at the next tick (people, rosters or sessions changed)."""
        self._stale = True

    def tick(self) -> None:
        """From the loop's housekeeping: run the schedule, refresh the scope when due."""
        now = self.clock()
        if now - self._last_schedule >= SCHEDULE_S:
            self._last_schedule = now
            self.schedule()
        if self._stale or now - self._last_refresh >= REFRESH_S:
            self.refresh()

    def schedule(self) -> list[tuple[str, str]]:
        """Start due sessions of this room and complete finished ones; returns (id, state).

        A start the store refuses (another session of the room is still running) is
        logged once and retried at the next check; it never stops the other changes.
        Nothing happens while the clock is not synchronised (``privacy.schedule_needs_synced_clock``):
        a wrong time would start or end the wrong session. Start/stop by hand still works.
        """
        if self.config.privacy.schedule_needs_synced_clock and not self.synced():
            if not self.schedule_held:
                logger.warning("clock not synchronised: sessions are not started or ended by schedule")
            self.schedule_held = True
            return []
        self.schedule_held = False
        now, room, done = self.wall(), self.config.device.room, []
        with self.lock:
            try:
                due = [(s["id"], "completed") for s in self.store.sessions.list(room=room, state="in_progress")
                       if s["end_ts"] <= now]
                due += [(s["id"], "in_progress") for s in self.store.sessions.list(room=room, state="scheduled")
                        if s["start_ts"] <= now < s["end_ts"]]
            except (RollcallError, OSError, ValueError) as exc:
                logger.error("session schedule failed: %s", exc)
                due = []
            for session_id, state in due:
                if self._apply_schedule(session_id, state, now):
                    done.append((session_id, state))
        if done:
            self.invalidate()
        return done

    def _apply_schedule(self, session_id: str, state: str, now: float) -> bool:
        try:
            self.store.sessions.set_state(session_id, state, "schedule", now)
        except (RollcallError, OSError, ValueError) as exc:
            if session_id not in self._refused:
                logger.error("session %s not %s by schedule: %s", session_id, state, exc)
                self._refused.add(session_id)
            return False
        self._refused.discard(session_id)
        logger.info("session %s %s by schedule", session_id, state)
        return True

    def command(self, action: str, session_id: str, by: str, liveness_policy: str | None = None) -> dict:
        """start | stop | cancel a session (console, button, MQTT); returns the session.
        ``liveness_policy`` (start only): set the session's liveness policy first."""
        if action not in ACTIONS:
            raise CommandError(f"action {action!r}: use start, stop or cancel")
        if liveness_policy is not None and action != "start":
            raise CommandError("liveness_policy can only be given when a session starts")
        with self.lock:
            if liveness_policy is not None:
                self.store.sessions.set_policy(session_id, liveness_policy, by)
            result = self.store.sessions.set_state(session_id, ACTIONS[action], by, self.wall())
            logger.info("session %s %s by %s", session_id, ACTIONS[action], by)
            self.invalidate()
            self.refresh()
        return result

    def toggle(self, by: str = "button") -> dict | None:
        """The session button: stop the running session, else start the next scheduled one."""
        with self.lock:
            active = self.store.sessions.active(self.config.device.room)
            if active is not None:
                return self.command("stop", active["id"], by)
            waiting = self.store.sessions.list(room=self.config.device.room, state="scheduled")
            if not waiting:
                logger.info("session button: no scheduled session to start")
                return None
            return self.command("start", waiting[0]["id"], by)

    def refresh(self) -> None:
        """Rebuild gallery and scope from the store."""
        with self.lock:
            try:
                self._refresh()
                self._error = ""
            except (RollcallError, OSError, ValueError, KeyError) as exc:
                if str(exc) != self._error:
                    logger.error("cannot load the roster: %s", exc)
                self._error = str(exc)
        self._stale = False
        self._last_refresh = self.clock()

    def _refresh(self) -> None:

        ids, matrix = self.store.people.embeddings(self.config.recognition.embedder)
        self.gallery = Gallery(ids, matrix, dtype=np.float32)
        self.session = self.store.sessions.active(self.config.device.room)
        self.roster = self.store.rosters.get(self.session["roster_id"]) if self.session else None
        if self.session is not None:
            allowed = [e["person_id"] for e in (self.roster or {}).get("entries", [])]
            marked = {r["person_id"] for r in self.store.attendance.for_session(self.session["id"])
                      if r.get("status") != "absent"}
            self.engine.set_scope(self._scope(self.session["id"], self.gallery.scope(allowed), marked))
            self.policy = set_liveness_policy(self.engine, self.config, self.session.get("liveness_policy"),
                                              self.rng)
            return
        self.policy = set_liveness_policy(self.engine, self.config, None, self.rng)
        if self.config.decisions.open_door:
            marked = self.engine.scope.marked if self.engine.scope.session_id is None else set()
            self.engine.set_scope(self._scope(None, self.gallery, marked))
        else:
            self.engine.set_scope(Scope(None, None, key=("no_session",)))

    def _scope(self, session_id: str | None, gallery: Any, marked: set[str]) -> Scope:
        """A scope whose ``key`` changes only when the session or the set of people in
        scope changes (so the periodic refresh does not re-open decided tracks)."""
        key = (session_id, frozenset(gallery.people))
        return Scope(session_id, gallery, marked, evidence_rule(self.config, gallery), key)

    def seat_of(self, person_id: str | None) -> str | None:
        for entry in (self.roster or {}).get("entries", []):
            if entry.get("person_id") == person_id:
                return entry.get("seat")
        return None

    def status(self) -> dict:
        """{"session": summary or None, "mode": session | open_door | no_session, "message"}."""
        if self._error:
            return {"session": None, "mode": DeviceMode.ERROR, "message": f"roster not loaded: {self._error}"}
        held = ("clock not synchronised: scheduled sessions do not start or end by themselves "
                "(start them by hand, or fix NTP)") if self.schedule_held else ""
        if self.session is not None:
            s = self.session
            summary = {k: s.get(k) for k in ("id", "name", "room", "state", "scheduled_start", "scheduled_end")}
            return {"session": summary, "mode": DeviceMode.SESSION, "message": held}
        if self.config.decisions.open_door:
            return {"session": None, "mode": DeviceMode.OPEN_DOOR, "message": held}
        return {"session": None, "mode": DeviceMode.NO_SESSION,
                "message": held or "no session is running: start one in the console (or enable open-door mode)"}
