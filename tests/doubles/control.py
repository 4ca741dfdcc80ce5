"""In-memory stand-ins for ``Store`` and ``Device``, for PURE UNIT tests of the control API
and the console only (integration and e2e tests use the real Store and firmware).

They follow docs/interfaces.md closely enough for the routes; they validate little. Like
the real store they audit each change with the actor of ``FakeStore.acting``.
"""

from __future__ import annotations

import hashlib
import itertools
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from firmware.config import PrivacyConfig
from firmware.errors import SessionError


class _NotFound(LookupError):
    pass


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Table:
    def __init__(self, owner: "FakeStore") -> None:
        self.owner = owner
        self.rows: dict[str, dict] = {}

    def get(self, key):
        return dict(self.rows[key]) if key in self.rows else None

    def _need(self, key) -> dict:
        if key not in self.rows:
            raise _NotFound(f"{key} not found")
        return self.rows[key]

    def _audit(self, action, target, details=None, by=None):
        self.owner.audit.log(by or self.owner.actor, action, target, details)


class _People(_Table):
    def add(self, person_id, name, external_id=None, consent=None):
        if not name:
            raise ValueError("name must not be empty")
        recorded = {"basis": consent["basis"], "recorded_by": consent.get("by"),
                    "recorded_at": _iso(time.time())} if consent else None
        self.rows[person_id] = {"id": person_id, "name": name, "external_id": external_id,
                                "source": "local", "consent": recorded}
        self.owner.photo_store[person_id] = []
        self._audit("person.created", person_id, {"name": name})
        return dict(self.rows[person_id])

    def list(self, search=None):
        rows = [dict(r) for r in self.rows.values()]
        return [r for r in rows if not search or search.lower() in r["name"].lower()]

    def update(self, person_id, **fields):
        self._need(person_id).update(fields)
        self._audit("person.updated", person_id)
        return self.get(person_id)

    def delete(self, person_id):
        self._need(person_id)
        del self.rows[person_id]
        self.owner.photo_store.pop(person_id, None)
        self._audit("person.deleted", person_id)

    def photos(self, person_id):
        return [{"id": pid} for pid, _ in self.owner.photo_store.get(person_id, [])]

    def photo_path(self, person_id, photo_id):
        for pid, path in self.owner.photo_store.get(person_id, []):
            if pid == photo_id:
                return path
        raise _NotFound("photo not found")


class _Rosters(_Table):
    def create(self, name, entries, roster_id=None, version=None, source="local"):
        rid = roster_id or f"r{next(self.owner.ids)}"
        self.rows[rid] = {"id": rid, "name": name, "entries": list(entries), "version": version or 1,
                          "source": source}
        self._audit("roster.created", rid, {"members": len(entries)})
        return self.get(rid)

    def list(self):
        return [dict(r) for r in self.rows.values()]

    def update(self, roster_id, **changes):
        row = self._need(roster_id)
        row.update(changes)
        row["version"] += 1
        self._audit("roster.updated", roster_id)
        return self.get(roster_id)

    def delete(self, roster_id):
        self._need(roster_id)
        del self.rows[roster_id]
        self._audit("roster.deleted", roster_id)


class _Sessions(_Table):
    def create(self, roster_id, room, name, scheduled_start, scheduled_end, late_after=None):
        sid = f"s{next(self.owner.ids)}"
        self.rows[sid] = {"id": sid, "roster_id": roster_id, "room": room, "name": name,
                          "scheduled_start": scheduled_start, "scheduled_end": scheduled_end,
                          "late_after": late_after, "state": "scheduled"}
        self._audit("session.created", sid, {"name": name})
        return self.get(sid)

    def list(self, day=None, room=None, state=None):
        return [dict(r) for r in self.rows.values()
                if (not room or r["room"] == room) and (not state or r["state"] == state)]

    def set_state(self, sid, state, by, at=None):
        allowed = {"scheduled": {"in_progress", "cancelled"},
                   "in_progress": {"completed", "cancelled"}}
        row = self._need(sid)
        if state not in allowed.get(row["state"], set()):
            raise SessionError(f"a {row['state']} session cannot become {state}")
        row["state"] = state
        self._audit("session.set_state", sid, {"to": state}, by=by)
        return self.get(sid)

    def active(self, room=None):
        return next((dict(r) for r in self.rows.values() if r["state"] == "in_progress"), None)


class _Attendance:
    def __init__(self, owner: "FakeStore") -> None:
        self.owner = owner
        self.rows: list[dict] = []

    def record(self, session_id, person_id, status, score=None, captured_at=None, extra=None):
        session = self.owner.sessions.get(session_id) or {}
        rec = {"event_id": f"e{next(self.owner.ids)}", "seq": next(self.owner.ids),
               "session_id": session_id, "person_id": person_id, "status": status,
               "score": score, "room": session.get("room"),
               "captured_at": captured_at or _iso(self.owner.clock()), **(extra or {})}
        self.rows.append(rec)
        return dict(rec)

    def for_session(self, session_id):
        return [dict(r) for r in self.rows if r["session_id"] == session_id]

    def query(self, day_from=None, day_to=None, session_id=None, room=None, person_id=None,
              status=None):
        def keep(r):
            day = r["captured_at"][:10]
            return ((not day_from or day >= day_from) and (not day_to or day <= day_to)
                    and (not session_id or r["session_id"] == session_id)
                    and (not room or r["room"] == room)
                    and (not person_id or r["person_id"] == person_id)
                    and (not status or r["status"] == status))
        return [dict(r) for r in self.rows if keep(r)]

    def set_status(self, session_id, person_id, status, by):
        rec = self.record(session_id, person_id, status, extra={"by": by, "manual": True})
        self.owner.audit.log(by, "attendance.set_status", person_id, {"status": status})
        return rec


class _Unknowns(_Table):
    def add(self, kind, session_id, embedding, crop_jpeg, frame_jpeg=None, extra=None):
        uid = f"u{next(self.owner.ids)}"
        path = self.owner.tmp / f"{uid}.jpg"
        path.write_bytes(crop_jpeg)
        self.rows[uid] = {"id": uid, "kind": kind, "session_id": session_id, "state": "open",
                          "at": _iso(self.owner.clock()), "path": str(path)}
        return self.get(uid)

    def list(self, kind=None, session_id=None, state="open"):
        return [dict(r) for r in self.rows.values()
                if (not kind or r["kind"] == kind) and (not state or r["state"] == state)]

    def resolve(self, uid, action, by, person_id=None):
        row = self._need(uid)
        row.update(state="assigned" if action == "assign" else "discarded", by=by,
                   person_id=person_id)
        self._audit(f"unknown.{action}", uid, {"person_id": person_id}, by=by)
        return self.get(uid)

    def crop_path(self, uid):
        return Path(self._need(uid)["path"])


class _Audit:
    def __init__(self, owner: "FakeStore") -> None:
        self.owner = owner
        self.rows: list[dict] = []

    def log(self, actor, action, target=None, details=None):
        entry = {"at": _iso(self.owner.clock()), "actor": actor, "action": action,
                 "target": target, "details": details or {}}
        self.rows.append(entry)
        return dict(entry)

    def list(self, limit=200):
        return [dict(r) for r in reversed(self.rows[-limit:])]


class _Outbox:
    def depth(self) -> int:
        return 0


class FakeStore:
    """Just enough of ``firmware.store.Store`` for route tests (no files except crops)."""

    def __init__(self, clock=time.time) -> None:
        self.clock = clock
        self.ids = itertools.count(1)
        self.tmp = Path(tempfile.mkdtemp(prefix="rollcall-fake-"))
        self.photo_store: dict[str, list[tuple[str, Path]]] = {}
        self.people, self.rosters = _People(self), _Rosters(self)
        self.sessions, self.attendance = _Sessions(self), _Attendance(self)
        self.unknowns, self.audit, self.outbox = _Unknowns(self), _Audit(self), _Outbox()
        self.privacy = PrivacyConfig()
        self.actor = "system"

    @contextmanager
    def acting(self, actor: str):
        previous, self.actor = self.actor, actor
        try:
            yield
        finally:
            self.actor = previous


class FakeDevice:
    """A DeviceAPI whose answers are canned; ``enrol_photos`` accepts any JPEG once."""

    def __init__(self, store: FakeStore, jpeg: bytes | None = None) -> None:
        self.store = store
        self.jpeg = jpeg
        self.calls: list[tuple] = []
        self.seen: set[str] = set()

    def status(self) -> dict:
        return {"camera": "ok", "broker": "disconnected", "models": "ok", "roster_version": 1,
                "session": None, "fps": 12.5, "outbox_depth": 0, "disk_free_mb": 1000,
                "cpu_temp_c": 48.0, "liveness_policy": "blink", "uptime_s": 5, "warnings": [],
                "notices": self.store.notices.active() if hasattr(self.store, "notices") else []}

    def latest_jpeg(self, annotated: bool = True) -> bytes | None:
        return self.jpeg

    def kiosk_state(self) -> dict:
        return {"state": "idle", "name": None, "person_id": None, "seat": None,
                "prompt": "Look at the camera", "required_blinks": 1, "at": None}

    def remove_template(self, person_id: str, embedding_id: str) -> dict:
        self.calls.append(("remove_template", person_id, embedding_id))
        return self.store.people.remove_embedding(person_id, embedding_id)

    def enrol_photos(self, person_id: str, images: list[bytes], *, source: str = "photo",
                     confirm_duplicate: bool = False) -> list[dict]:
        self.calls.append(("enrol", person_id, len(images)))
        self.enrol_options = {"source": source, "confirm_duplicate": confirm_duplicate}
        out = []
        for data in images:
            digest = hashlib.sha256(data).hexdigest()
            if not data.startswith(b"\xff\xd8"):
                out.append({"ok": False, "reason": "bad_image", "message": "not a JPEG image",
                            "photo_id": None})
            elif digest in self.seen:
                out.append({"ok": False, "reason": "already", "message": "duplicate of a photo already enrolled",
                            "photo_id": None})
            else:
                self.seen.add(digest)
                out.append({"ok": True, "reason": "ok", "message": "accepted",
                             "photo_id": self._keep(person_id, digest, data)})
        return out

    def _keep(self, person_id: str, digest: str, data: bytes) -> str:
        if isinstance(self.store, FakeStore):
            path = self.store.tmp / f"{digest[:12]}.jpg"
            path.write_bytes(data)
            self.store.photo_store.setdefault(person_id, []).append((digest[:12], path))
            self.store.audit.log(self.store.actor, "person.photo_added", person_id)
            return digest[:12]
        import numpy as np  # a real Store: a deterministic fake embedding

        vector = np.random.default_rng(int(digest[:8], 16)).standard_normal(8).astype("float32")
        meta = self.store.people.add_embedding(person_id, vector / np.linalg.norm(vector),
                                               "fake_model", photo_sha256=digest, photo_jpeg=data)
        return meta["photo_id"]

    # capture mode: a canned capture whose frames are ``self.jpeg``
    capture: dict | None = None

    def capture_start(self, person_id: str, frames: int = 5, timeout_s: float = 60.0) -> dict:
        self.calls.append(("capture_start", person_id, frames, timeout_s))
        self.capture = {"person_id": person_id, "name": person_id, "state": "capturing", "prompt": "Look straight",
                        "message": "", "target": frames, "kept": 0, "elapsed_s": 0.0, "timeout_s": timeout_s,
                        "frames": []}
        return dict(self.capture)

    def capture_fill(self, count: int) -> None:
        """Pretend the loop kept ``count`` frames and finished."""
        self.capture.update(state="done", kept=count, frames=[{"index": i, "prompt": "Look straight"}
                                                              for i in range(count)])

    def capture_status(self) -> dict | None:
        return dict(self.capture) if self.capture else None

    def capture_cancel(self) -> dict | None:
        if self.capture and self.capture["state"] == "capturing":
            self.capture["state"] = "cancelled"
        return self.capture_status()

    def capture_frame_jpeg(self, index: int) -> bytes | None:
        return self.jpeg if self.capture and 0 <= index < self.capture["kept"] else None

    def capture_keep(self, keep: list[int], *, confirm_duplicate: bool = False) -> list[dict]:
        self.calls.append(("capture_keep", sorted(set(keep)), confirm_duplicate))
        kept = self.capture["kept"]
        self.capture = None
        return [{"ok": True, "status": "accepted", "reason": "ok", "message": "ok", "photo_id": f"f{i}"}
                for i in sorted(set(keep)) if 0 <= i < kept]

    def reload_config(self) -> dict:
        self.calls.append(("reload",))
        return {"ok": True, "message": "reloaded"}

    def restart(self) -> dict:
        self.calls.append(("restart",))
        return {"ok": True, "message": "restarting"}

    def test_indicators(self) -> dict:
        self.calls.append(("indicators",))
        return {"ok": True, "message": "blinked green, amber, red, buzzer"}

    def test_broker(self, mqtt: dict) -> dict:
        self.calls.append(("broker", mqtt))
        return {"ok": False, "message": f"cannot connect to {mqtt.get('host') or '(no host)'}"}

    def erase(self, person_id: str, by: str, full: bool = False, reason: str = "request",
              request_id: str | None = None) -> dict:
        """A real Store erases for real; the fake one forgets the person's photos."""
        self.calls.append(("erase", person_id, by, full, reason))
        if not isinstance(self.store, FakeStore):
            if reason == "consent_withdrawn":
                return self.store.withdraw_consent(person_id, by)
            return self.store.erase(person_id, by, full=full, reason=reason, request_id=request_id)
        photos = self.store.photo_store.pop(person_id, [])
        if full:
            self.store.people.rows.pop(person_id, None)
        return {"id": "E1", "person_id": person_id, "by": by, "full": full, "reason": reason,
                "counts": {"embeddings": len(photos), "photos": len(photos), "crops": 0}}

    def clock_state(self) -> dict:
        return {"synced": True, "source": "fake", "lower_bound": None, "behind_s": 0.0, "clamped": 0}

    def session_command(self, action: str, session_id: str, by: str, liveness_policy: str | None = None) -> dict:
        self.calls.append(("session", action, session_id, by))
        if liveness_policy is not None:
            self.store.sessions.set_policy(session_id, liveness_policy, by)
        state = {"start": "in_progress", "stop": "completed", "cancel": "cancelled"}[action]
        return self.store.sessions.set_state(session_id, state, by, time.time())
