"""Unknown and spoof faces: JPEG crops on disk plus a per-day index.

Layout: ``unknowns/<YYYY-MM-DD>/seg-*.json`` (index) and
``unknowns/<YYYY-MM-DD>/crops/<id>.jpg`` (+ ``<id>-frame.jpg``); the day is the UTC day of
the id's ULID time, so an id alone finds its files. ``add`` writes the crop, then the
outbox entry (``event/unknown``, the index record kept as its journal), then the index;
``reconcile`` restores an index record a crash cut short. The embedding stays on the
device (it is not in the published payload). ``list`` reads each day's index once
(``daycache.py``) and filters without holding the Store lock.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
from ulid import ULID

from firmware.store.atomic import atomic_write_bytes
from firmware.store.context import StoreContext, audited, check_extra, check_text, locks_itself
from firmware.store.daycache import DayCache
from firmware.store.errors import NotFound, OutboxFull, StoreValueError
from firmware.store.ids import DAY_RE, day_of, is_ulid, new_ulid, to_iso
from firmware.store.people import People
from firmware.store.segments import SegmentedLog
from firmware.store.tinyfile import DIR_MODE, FILE_MODE
from firmware.store.vectors import check_jpeg, decode_b64, encode_b64, to_vector

logger = logging.getLogger(__name__)

TOPIC = "event/unknown"
KINDS = ("unknown", "spoof")
ACTIONS = ("assign", "discard")
# Cosine at which a face counts as one already kept (no new record) when the caller does not
# say: callers that know the embedder pass its same-person threshold, since a fixed cosine
# means very different things per embedder (dlib scores two strangers 0.8-0.9).
DEDUPE_SIMILARITY = 0.6
DEDUPE_WINDOW_S = 600.0   # seconds


class Unknowns:
    """``store.unknowns``."""

    def __init__(self, ctx: StoreContext, people: People, sessions) -> None:
        self._ctx = ctx
        self._root = ctx.data_dir / "unknowns"
        self._people = people
        self._sessions = sessions
        self._recent: collections.deque = collections.deque(maxlen=256)
        self._cache = DayCache(ctx.lock)
        people.on_delete.append(self._forget_person)

    def _log(self, day: str) -> SegmentedLog:
        return SegmentedLog(self._root / day, self._ctx.segment_max, self._ctx.clock,
                            self._ctx.on_corrupt)

    def add(self, kind: str, session_id: str | None, embedding: object, crop_jpeg: bytes,
            frame_jpeg: bytes | None = None, extra: dict | None = None,
            same_face_cosine: float | None = None) -> dict | None:
        """Keep an unknown/spoof face; None when the same face (cosine >= ``same_face_cosine``,
        default :data:`DEDUPE_SIMILARITY`) was kept in the same session within the window.

        Raises ``OutboxFull`` (nothing written) when the outbox is full.
        """
        if kind not in KINDS:
            raise StoreValueError(f"kind {kind!r}: use 'unknown' or 'spoof'", "kind")
        if session_id is not None:
            self._sessions.require(session_id)
        vec = to_vector(embedding, "embedding") if embedding is not None else None
        crop = check_jpeg(crop_jpeg, "crop_jpeg")
        frame = check_jpeg(frame_jpeg, "frame_jpeg") if frame_jpeg is not None else None
        extra = check_extra(extra)
        now = self._ctx.clock()
        same = DEDUPE_SIMILARITY if same_face_cosine is None else float(same_face_cosine)
        if vec is not None and self._is_repeat(kind, session_id, vec, now, same):
            logger.debug("%s face de-duplicated in session %s", kind, session_id)
            return None
        outbox = self._ctx.outbox
        if outbox.capacity_fraction() >= 1.0:
            raise OutboxFull(f"outbox full: {kind} face not kept (fix the MQTT link)")
        rec = self._record(kind, session_id, vec, crop, frame is not None, extra, now)
        self._write_images(rec, crop, frame)
        outbox.put_event(TOPIC, _payload(rec), rec["id"], rec["seq"], journal=rec)
        self._log(rec["day"]).append(rec)
        self._cache.invalidate(rec["day"])
        self._recent.append((now, kind, session_id, vec))
        return _public(rec)

    def _is_repeat(self, kind: str, session_id: str | None, vec: np.ndarray, now: float, same: float) -> bool:
        for ts, k, sid, other in self._recent:
            if k == kind and sid == session_id and other is not None and now - ts <= DEDUPE_WINDOW_S \
                    and other.shape == vec.shape and float(other @ vec) >= same:
                return True
        return False

    def _record(self, kind, session_id, vec, crop, has_frame, extra, now) -> dict:
        event_id = new_ulid(now)
        session = self._sessions.get(session_id) if session_id else None
        return {"id": event_id, "event_id": event_id, "seq": self._ctx.seq.next(), "kind": kind,
                "session_id": session_id, "room": session["room"] if session else None,
                "day": day_of(ULID.from_str(event_id).timestamp), "created_at": to_iso(now),
                "state": "open", "crop_sha256": hashlib.sha256(crop).hexdigest(),
                "has_frame": has_frame, "model_id": extra.get("model_id"),
                "embedding_b64": encode_b64(vec) if vec is not None else None, "extra": extra,
                "clock_synced": bool(self._ctx.clock_synced())}

    def _write_images(self, rec: dict, crop: bytes, frame: bytes | None) -> None:
        atomic_write_bytes(self.crop_path(rec["id"]), crop, FILE_MODE, DIR_MODE)
        if frame is not None:
            atomic_write_bytes(self._frame_path(rec["id"]), frame, FILE_MODE, DIR_MODE)

    def _find(self, unknown_id: str) -> tuple[SegmentedLog, int, dict]:
        if not is_ulid(unknown_id):
            raise NotFound(f"unknown face {unknown_id!r} does not exist", "id")
        log = self._log(_day_of_id(unknown_id))
        for number, rec in log.iter_records():
            if rec["id"] == unknown_id:
                return log, number, rec
        raise NotFound(f"unknown face {unknown_id!r} does not exist", "id")

    def get(self, unknown_id: str) -> dict | None:
        try:
            return _public(self._find(unknown_id)[2])
        except NotFound:
            return None

    @locks_itself
    def list(self, kind: str | None = None, session_id: str | None = None,
             state: str | None = "open") -> list[dict]:
        """Records matching the filters (``state`` None = any), oldest first."""
        with self._ctx.lock:
            days = self.days()
        out = [rec for recs in self._cache.read(days, lambda day: None, self._load_day)
               for rec in recs
               if (kind is None or rec["kind"] == kind) and (state is None or rec["state"] == state)
               and (session_id is None or rec["session_id"] == session_id)]
        out.sort(key=lambda r: r["seq"])
        return [{**rec, "extra": dict(rec.get("extra") or {})} for rec in out]

    def _load_day(self, day: str) -> list[dict]:
        """One day's index (public fields), read without the lock: files are always current."""
        try:
            return [_public(rec) for _, rec in self._log(day).iter_records()]
        except FileNotFoundError:  # deleted by retention meanwhile
            return []

    @audited("unknown.{action}", target="unknown_id", actor="by")
    def resolve(self, unknown_id: str, action: str, by: str, person_id: str | None = None) -> dict:
        """``assign`` (to ``person_id``; the embedding + crop enrol them) or ``discard``."""
        if action not in ACTIONS:
            raise StoreValueError(f"action {action!r}: use 'assign' or 'discard'", "action")
        by = check_text(by, "by", 80)
        log, number, rec = self._find(unknown_id)
        if rec["state"] != "open":
            raise StoreValueError(f"unknown face {unknown_id} is already {rec['state']}", "id")
        if action == "assign":
            self._people.require(person_id)
        self._ctx.audit_note(person_id=person_id)
        if action == "assign" and rec.get("embedding_b64") and rec.get("model_id"):
            self._people.add_embedding(person_id, decode_b64(rec["embedding_b64"]), rec["model_id"],
                                       rec["crop_sha256"], self.crop_path(unknown_id).read_bytes(),
                                       source="device")
        fields = {"state": "assigned" if action == "assign" else "discarded",
                  "person_id": person_id, "resolved_by": by,
                  "resolved_at": to_iso(self._ctx.clock())}
        log.update(number, rec["_id"], fields)
        self._cache.invalidate(rec["day"])
        if action == "discard":
            self.crop_path(unknown_id).unlink(missing_ok=True)
            self._frame_path(unknown_id).unlink(missing_ok=True)
        return _public({**rec, **fields})

    def _forget_person(self, person_id: str) -> None:
        """A person was deleted: erase the crops, frames and embeddings assigned to them."""
        for day in self.days():
            log = self._log(day)
            for number, rec in list(log.iter_records()):
                if rec.get("person_id") == person_id and rec.get("state") == "assigned":
                    log.update(number, rec["_id"], {"embedding_b64": None, "erased": True})
                    self.crop_path(rec["id"]).unlink(missing_ok=True)
                    self._frame_path(rec["id"]).unlink(missing_ok=True)
            self._cache.invalidate(day)

    def crop_path(self, unknown_id: str) -> Path:
        """Path of the JPEG crop of an unknown face (validated id)."""
        if not is_ulid(unknown_id):
            raise StoreValueError(f"id {unknown_id!r} is not an unknown-face id", "id")
        return self._root / _day_of_id(unknown_id) / "crops" / f"{unknown_id}.jpg"

    def _frame_path(self, unknown_id: str) -> Path:
        return self.crop_path(unknown_id).with_name(f"{unknown_id}-frame.jpg")

    def days(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(p.name for p in self._root.iterdir() if DAY_RE.match(p.name))

    def reconcile(self, entries: list[dict]) -> int:
        """Restore index records that only reached the outbox journal; returns count."""
        fixed = 0
        for entry in entries:
            rec = entry.get("journal")
            if entry["topic"] != TOPIC or not rec or self.get(rec["id"]) is not None:
                continue
            logger.warning("recovered unknown face %s from the outbox journal", rec["id"])
            self._log(rec["day"]).append(rec)
            self._cache.invalidate(rec["day"])
            fixed += 1
        return fixed

    def erase_matching(self, person_id: str, vectors: list[np.ndarray], threshold: float,
                       forget_person: bool) -> tuple[dict, set[str]]:
        """Erase every kept face assigned to ``person_id`` or whose embedding matches one of
        ``vectors`` (cosine >= ``threshold``): crop and frame deleted, embedding dropped, the
        record kept as ``erased``. Returns (``{"crops", "frames", "records"}``, their ids)."""
        counts, ids = {"crops": 0, "frames": 0, "records": 0}, set()
        for day in self.days():
            log = self._log(day)
            for number, rec in list(log.iter_records()):
                if rec["state"] == "erased" or not self._is_theirs(rec, person_id, vectors, threshold):
                    continue
                counts["crops"] += _unlink(self.crop_path(rec["id"]))
                counts["frames"] += _unlink(self._frame_path(rec["id"]))
                fields = {"state": "erased", "embedding_b64": None, "crop_sha256": None,
                          "erased_at": to_iso(self._ctx.clock())}
                if forget_person:
                    fields["person_id"] = None
                log.update(number, rec["_id"], fields)
                counts["records"] += 1
                ids.add(rec["id"])
            self._cache.invalidate(day)
        self._recent = collections.deque(
            (item for item in self._recent if not _matches(item[3], vectors, threshold)), maxlen=256)
        return counts, ids

    @staticmethod
    def _is_theirs(rec: dict, person_id: str, vectors: list[np.ndarray], threshold: float) -> bool:
        if rec.get("person_id") == person_id:
            return True
        b64 = rec.get("embedding_b64")
        return bool(b64) and _matches(decode_b64(b64), vectors, threshold)

    def held(self) -> dict:
        """What is kept: ``{"records", "crops", "oldest_day"}`` (for the privacy page)."""
        days = self.days()
        crops = sum(len(list((self._root / d / "crops").glob("*.jpg")))
                    for d in days if (self._root / d / "crops").is_dir())
        records = sum(1 for d in days for _ in self._log(d).iter_records())
        return {"records": records, "crops": crops, "oldest_day": days[0] if days else None}

    def delete_day(self, day: str) -> None:
        shutil.rmtree(self._root / day, ignore_errors=True)
        self._cache.invalidate(day)


def _unlink(path: Path) -> int:
    try:
        path.unlink()
        return 1
    except FileNotFoundError:
        return 0


def _matches(vec: np.ndarray | None, vectors: list[np.ndarray], threshold: float) -> bool:
    if vec is None:
        return False
    return any(v.shape == vec.shape and float(np.dot(v, vec)) >= threshold for v in vectors)


def _day_of_id(unknown_id: str) -> str:
    return day_of(ULID.from_str(unknown_id).timestamp)


def _payload(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in ("embedding_b64", "id")} | {"unknown_id": rec["id"]}


def _public(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if not k.startswith("_") and k != "embedding_b64"}
