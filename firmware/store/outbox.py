"""The outbox: events waiting for the broker's PUBACK, durable across crashes.

Entries live in segment files (``outbox/seg-*.json``, at most ``segment_max`` each) in
``seq`` order. ``put`` and ``ack`` are journal steps (``journal.py``: one fdatasync'd
line each); the segment files are rewritten by the checkpointer. ``ack`` removes the
entry and a segment file is deleted once it is empty, so the outbox never grows with
acknowledged history. The bound is ``outbox_max_events``: at
>= 80 % the state is ``warning`` (logged once); when full, new non-essential events
(unknown, spoof, custom) are REFUSED with ``OutboxFull`` (the caller sees and counts it),
while essential ones (``event/attendance``, ``event/session``) are always kept — losing
a check-in is worse than a file a bit over its bound. Nothing is ever dropped silently.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Callable

from firmware.config import StoreConfig
from firmware.store.errors import OutboxFull, StoreValueError
from firmware.store.ids import SeqCounter, new_ulid, to_iso
from firmware.store.segments import SegmentedLog
from firmware.store.tinyfile import CorruptHook, dumps

logger = logging.getLogger(__name__)

ESSENTIAL_TOPICS = frozenset({"event/attendance", "event/session"})
TOPIC_RE = re.compile(r"^[a-z0-9_-]+(/[a-z0-9_-]+)*$")
WARN_FRACTION = 0.8


class Outbox:
    """Durable FIFO of ``{"event_id", "seq", "topic", "payload", "created_at"}`` entries."""

    def __init__(self, directory: Path, seq: SeqCounter, config: StoreConfig,
                 commit: Callable[[list], None], clock: Callable[[], float] = time.time,
                 segment_max: int = 256, on_corrupt: CorruptHook | None = None,
                 clock_synced: Callable[[], bool] = lambda: True) -> None:
        self._clock_synced = clock_synced
        self._log = SegmentedLog(directory, segment_max, clock, on_corrupt, deferred=True)
        self._commit = commit
        self._seq = seq
        self._config = config
        self._clock = clock
        self._index: dict[str, tuple[int, int, float]] = {}  # event_id -> (segment, seq, created)
        self._state = "ok"
        self._age_exceeded = False
        self.max_seq = 0
        self._load()

    def _load(self) -> None:
        for number in self._log.numbers():
            records = sorted(self._log.read(number), key=lambda r: r.get("seq", 0))
            for rec in records:
                self._index[rec["event_id"]] = (number, rec["seq"], rec.get("created", 0.0))
                self.max_seq = max(self.max_seq, rec["seq"])
        self._update_state()

    def put(self, topic_suffix: str, payload: dict) -> dict:
        """Queue an event; adds ``event_id`` and ``seq`` to a copy of ``payload``.

        Raises ``OutboxFull`` for a non-essential topic when the outbox is full.
        """
        return self.put_event(topic_suffix, payload)

    def put_event(self, topic: str, payload: dict, event_id: str | None = None,
                  seq: int | None = None, journal: dict | None = None) -> dict:
        """Like ``put``; the caller may pre-assign ``event_id``/``seq`` and attach a
        ``journal`` dict (kept on disk for crash recovery, never published)."""
        entry = self.make_entry(topic, payload, event_id, seq, journal)
        self._commit([("outbox.put", entry)])
        return _public(entry)

    def make_entry(self, topic: str, payload: dict, event_id: str | None = None,
                   seq: int | None = None, journal: dict | None = None) -> dict:
        """Validate and build an entry without writing it (for a multi-part commit)."""
        self._check(topic, payload)
        if topic not in ESSENTIAL_TOPICS and self.depth() >= self._config.outbox_max_events:
            raise OutboxFull(f"outbox full ({self.depth()} events waiting for the broker): "
                             f"{topic} refused; fix the MQTT link or raise outbox_max_events")
        now = self._clock()
        event_id = event_id or new_ulid(now)
        seq = seq if seq is not None else self._seq.next()
        entry = {"event_id": event_id, "seq": seq, "topic": topic,
                 "payload": {"clock_synced": bool(self._clock_synced()), **payload,
                             "event_id": event_id, "seq": seq},
                 "created": now, "created_at": to_iso(now)}
        if journal is not None:
            entry["journal"] = journal
        return entry

    def apply_put(self, entry: dict) -> None:
        """Journal applier (idempotent): add a committed entry."""
        if entry["event_id"] in self._index:
            return
        number, _ = self._log.append(entry)
        self._index[entry["event_id"]] = (number, entry["seq"], entry["created"])
        self.max_seq = max(self.max_seq, entry["seq"])
        self._update_state()

    def apply_ack(self, event_ids: list[str]) -> None:
        """Journal applier (idempotent): forget acknowledged entries."""
        by_segment: dict[int, set[str]] = {}
        for event_id in event_ids:
            if event_id in self._index:
                by_segment.setdefault(self._index[event_id][0], set()).add(event_id)
        for number, ids in by_segment.items():
            doc_ids = [r["_id"] for r in self._log.read(number) if r["event_id"] in ids]
            self._log.remove(number, doc_ids)
            for event_id in ids:
                del self._index[event_id]
        self._update_state()

    def _check(self, topic: str, payload: dict) -> None:
        if not isinstance(topic, str) or len(topic) > 64 or not TOPIC_RE.match(topic):
            raise StoreValueError(f"topic_suffix {topic!r} is not like 'event/attendance'",
                                  "topic_suffix")
        if not isinstance(payload, dict):
            raise StoreValueError("payload must be a dict", "payload")
        try:
            dumps(payload)
        except (TypeError, ValueError) as exc:
            raise StoreValueError(f"payload is not JSON-safe: {exc}", "payload") from None

    def pending(self, limit: int = 100) -> list[dict]:
        """Up to ``limit`` unacknowledged entries, oldest (lowest seq) first."""
        out: list[dict] = []
        for number in self._log.numbers():
            if len(out) >= limit:
                break
            records = sorted(self._log.read(number), key=lambda r: r["seq"])
            out.extend(_public(r) for r in records if r["event_id"] in self._index)
        return out[:max(0, int(limit))]

    def tail_entries(self, minimum: int = 64) -> list[dict]:
        """Raw newest entries (with ``journal``), at least ``minimum`` or the whole
        newest segment(s): the only ones a crash can have left half-done."""
        out: list[dict] = []
        for number in reversed(self._log.numbers()):
            out[:0] = sorted(self._log.read(number), key=lambda r: r["seq"])
            if len(out) >= minimum:
                break
        return out

    def scrub_journal(self, event_ids: set[str]) -> int:
        """Drop the crash-recovery ``journal`` copy (it may hold an embedding) from pending
        entries; returns how many were changed (erasure)."""
        changed = 0
        for number in self._log.numbers():
            for rec in self._log.read(number):
                if rec["event_id"] in event_ids and rec.get("journal"):
                    self._log.update(number, rec["_id"], {"journal": None})
                    changed += 1
        return changed

    def contains(self, event_id: str) -> bool:
        return event_id in self._index

    def ack(self, event_id: str) -> bool:
        """Forget an acknowledged entry; False (logged at debug) if it is not pending."""
        if event_id not in self._index:
            logger.debug("ack for %s which is not pending (already acked?)", event_id)
            return False
        self._commit([("outbox.ack", [event_id])])
        return True

    def ack_many(self, event_ids: list[str]) -> int:
        """Acknowledge several entries in one journal step; returns how many were pending."""
        known = [e for e in dict.fromkeys(event_ids) if e in self._index]
        if known:
            self._commit([("outbox.ack", known)])
        return len(known)

    @property
    def log(self) -> SegmentedLog:
        """The segment files (for the checkpointer)."""
        return self._log

    def depth(self) -> int:
        """Number of events waiting for a PUBACK."""
        return len(self._index)

    def oldest_age_s(self) -> float | None:
        """Age in seconds of the oldest waiting event, None when empty."""
        if not self._index:
            return None
        return max(0.0, self._clock() - next(iter(self._index.values()))[2])

    def capacity_fraction(self) -> float:
        """depth / outbox_max_events (can exceed 1.0 with essential events)."""
        return self.depth() / self._config.outbox_max_events

    def state(self) -> str:
        """``ok`` | ``warning`` (>= 80 %) | ``full`` (non-essential events refused)."""
        return self._state

    def health(self) -> dict:
        """Numbers for telemetry and the console."""
        return {"depth": self.depth(), "capacity_fraction": round(self.capacity_fraction(), 4),
                "state": self._state, "oldest_age_s": self.oldest_age_s(),
                "age_exceeded": self._age_exceeded, "segments": len(self._log.numbers())}

    def _update_state(self) -> None:
        fraction = self.capacity_fraction()
        state = "full" if fraction >= 1.0 else "warning" if fraction >= WARN_FRACTION else "ok"
        if state != self._state:
            log = logger.info if state == "ok" else logger.warning
            log("outbox %s -> %s: %d events waiting (%.0f %% of %d)", self._state, state,
                self.depth(), 100 * fraction, self._config.outbox_max_events)
            self._state = state
        age = self.oldest_age_s()
        exceeded = age is not None and age > self._config.outbox_max_age_days * 86400
        if exceeded != self._age_exceeded:
            if exceeded:
                logger.warning("outbox: oldest event waits for %.1f days (> %d): is the broker "
                               "reachable?", age / 86400, self._config.outbox_max_age_days)
            self._age_exceeded = exceeded

    def close(self) -> None:
        """Release open files; safe twice."""
        self._log.close()


def _public(entry: dict) -> dict:
    return {k: entry[k] for k in ("event_id", "seq", "topic", "payload", "created_at")}
