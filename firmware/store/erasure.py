"""Erasure of one person's face data, everywhere on the device, and the record of it.

``Store.erase(person_id, by, full=False)`` (the steps live here) removes the person's embeddings and enrolment photos
(local or from synced rosters), every unknown/spoof crop and frame assigned to them or
whose embedding matches theirs, the crash-recovery copies of those embeddings in the
outbox and journal, and every pre-migration backup archive that holds any of it. The
person's name stays (attendance records keep it) unless ``full``: then the person, their
roster places and their attendance records go too. Each erasure is logged in
``privacy/erasures.json`` (ids and counts, never face data), audited, and published as
``event/erasure`` through the outbox (QoS 1). A repeated ``request_id`` (the centre
re-sending) returns the first result and changes nothing.
"""

from __future__ import annotations

import logging
import re
import tarfile
from pathlib import Path

from firmware.store.context import StoreContext, check_text
from firmware.store.errors import StoreValueError
from firmware.store.ids import new_ulid, to_iso
from firmware.store.people import People, check_person_id
from firmware.store.rosters import Rosters
from firmware.store.tinyfile import DocFile, ensure_dir
from firmware.store.unknowns import Unknowns

logger = logging.getLogger(__name__)

TOPIC = "event/erasure"
MATCH_THRESHOLD = 0.6  # cosine: an unknown face this close to the person is theirs
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
REASONS = ("request", "consent_withdrawn", "central", "retention_review")


class Erasures:
    """``store.erasures``: erase one person; list what was erased."""

    def __init__(self, ctx: StoreContext, people: People, rosters: Rosters, unknowns: Unknowns,
                 attendance) -> None:
        self._ctx = ctx
        self._people, self._rosters, self._unknowns = people, rosters, unknowns
        self._attendance = attendance
        self._file = DocFile(ensure_dir(ctx.data_dir / "privacy") / "erasures.json", ctx.clock,
                             ctx.on_corrupt)
        self._records = [r for r in self._file.all()]
        rosters.erased_at = self.erased_at

    def erased_at(self, person_id: str) -> str | None:
        """When this person's face data was last erased (None: never)."""
        times = [r["at"] for r in self._records if r["person_id"] == person_id]
        return max(times) if times else None

    def list(self, person_id: str | None = None) -> list[dict]:
        """Erasure records, newest first."""
        rows = [_public(r) for r in self._records if person_id in (None, r["person_id"])]
        return sorted(rows, key=lambda r: r["at"], reverse=True)

    def find(self, request_id: str) -> dict | None:
        for rec in self._records:
            if rec.get("request_id") == request_id:
                return _public(rec)
        return None

    def check(self, person_id: str, by: str, reason: str, request_id: str | None) -> dict | None:
        """Validate an erasure request; the earlier result when ``request_id`` was done."""
        check_person_id(person_id)
        check_text(by, "by", 80)
        if reason not in REASONS:
            raise StoreValueError(f"reason {reason!r}: use one of {', '.join(REASONS)}", "reason")
        if request_id is None:
            return None
        if not isinstance(request_id, str) or not REQUEST_ID_RE.match(request_id):
            raise StoreValueError("request_id: 1-64 letters, digits, . _ : -", "request_id")
        done = self.find(request_id)
        return {**done, "repeat": True} if done is not None else None

    def erase_data(self, person_id: str, full: bool, threshold: float) -> tuple[dict, set[str]]:
        """Every step but backups: (counts, ids of the kept faces that were erased)."""
        vectors = self._people.vectors_of(person_id)
        known = self._people.get(person_id) is not None
        local = known and (self._people.get(person_id) or {}).get("source") == "local"
        counts = {"embeddings": 0, "photos": 0, "crops": 0, "frames": 0, "unknown_records": 0,
                  "attendance": 0, "backups": 0, "person": 0}
        if local:
            counts.update(self._people.erase_biometrics(person_id))
        counts["embeddings"] += self._rosters.erase_person(person_id, full)
        found, ids = self._unknowns.erase_matching(person_id, vectors, threshold, full)
        counts.update(crops=found["crops"], frames=found["frames"],
                      unknown_records=found["records"])
        self._ctx.outbox.scrub_journal(ids)
        if full:
            counts["attendance"] = self._attendance.erase_person(person_id)
            if local:
                self._people.delete(person_id)
                counts["person"] = 1
        return counts, ids

    @staticmethod
    def drop_backups(data_dir: Path, person_id: str, unknown_ids: set[str]) -> int:
        """Delete backup archives holding any of this person's face data (file I/O only:
        needs no Store lock)."""
        dropped = 0
        for archive in sorted((data_dir / "backups").glob("*.tar.gz")):
            if _archive_holds(archive, person_id, unknown_ids):
                archive.unlink(missing_ok=True)
                logger.warning("erasure: deleted backup %s (it held face data of %s)", archive.name,
                               person_id)
                dropped += 1
        return dropped

    def record(self, person_id: str, by: str, full: bool, reason: str,
                request_id: str | None, counts: dict) -> dict:
        now = self._ctx.clock()
        rec = {"id": new_ulid(now), "person_id": person_id, "at": to_iso(now), "by": by,
               "full": bool(full), "reason": reason, "request_id": request_id, "counts": counts}
        rec["_id"] = self._file.insert(rec)
        self._records.append(rec)
        self._ctx.audit.log(by, "person.erased", person_id,
                            {"full": full, "reason": reason, "request_id": request_id, "counts": counts})
        self._ctx.outbox.put(TOPIC, {"person_id": person_id, "request_id": request_id, "full": full,
                                     "reason": reason, "by": by, "at": rec["at"], "counts": counts})
        logger.info("erased face data of %s (%s, full=%s): %s", person_id, reason, full, counts)
        return _public(rec)

    def close(self) -> None:
        """Release files; safe twice."""
        self._file.close()


FACE_DIRS = ("people/", "rosters/synced/", "unknowns/", "outbox/", "journal/")  # may hold face data


def _archive_holds(archive: Path, person_id: str, unknown_ids: set[str]) -> bool:
    """Does a backup hold this person's photos/templates or one of these kept faces?"""
    needles = [f'"{person_id}"'.encode(), *(i.encode() for i in unknown_ids)]
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name.startswith(f"people/{person_id}/") or any(i in name for i in unknown_ids):
                    return True
                if not member.isfile() or not name.startswith(FACE_DIRS) or not name.endswith(
                        (".json", ".jsonl")) or name == "people/people.json":
                    continue
                handle = tar.extractfile(member)
                data = handle.read() if handle else b""
                if any(n in data for n in needles):
                    return True
    except (OSError, tarfile.TarError) as exc:
        logger.error("erasure: cannot read backup %s (%s); deleting it to be safe", archive.name, exc)
        return True
    return False


def _public(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if not k.startswith("_")}
