"""Enrolment rules: which faces of a person are good enough to keep. Pure, no I/O.

A photo is kept when it shows exactly one large-enough face (:func:`judge_faces`), is not
a file already enrolled (SHA-256), looks like the person's other photos
(:func:`reject_outliers`, cosine to the mean of the rest >= the embedder's same-person
threshold) and does not look like ANOTHER enrolled person (:func:`other_identity`,
cosine >= the accept threshold), unless an admin confirmed that it is a different person.
Decoding photos and running the face pipeline is :class:`firmware.runtime.enrol.Enroller`'s
job; bulk enrolment's CSV rules are :mod:`firmware.domain.bulk`.

Every verdict has a stable ``reason`` code (shown in bulk reports and returned by the
control API) and a human ``message``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from firmware.errors import EnrolmentError

ENROL_DETECTOR = "blazeface_full"  # finds small background faces too, so group photos are rejected
MIN_FACE_PX = 80               # face box width, pixels
Status = Literal["accepted", "rejected", "duplicate"]
# reason codes: ok | already (same file enrolled) | bad_image | no_face | two_faces |
# small_face | different_person | duplicate (looks like another enrolled person)
REASONS = ("ok", "already", "bad_image", "no_face", "two_faces", "small_face", "different_person",
           "duplicate")
SOURCES = ("photo", "device", "unknown", "roster")   # where a template came from


@dataclass(slots=True)
class PhotoResult:
    """Verdict on one photo (``index`` is its position in the input list)."""

    index: int
    sha256: str
    status: Status
    message: str
    embedding: np.ndarray | None = None   # L2-normalised, float32, when accepted
    score: float | None = None            # cosine to the mean of the person's other photos
    face_jpeg: bytes | None = None        # JPEG crop around the face, for the console
    reason: str = "ok"                    # one of REASONS
    other_person: str | None = None       # reason "duplicate": the person it looks like
    other_score: float | None = None      # and the cosine to them

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def reject(self, reason: str, message: str) -> None:
        """Turn this verdict into a rejection (drops the embedding)."""
        self.status, self.reason, self.message, self.embedding = "rejected", reason, message, None


class FaceRejected(EnrolmentError):
    """A photo's faces are not usable; ``reason`` is a code from :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def judge_faces(widths: Sequence[float], min_face_px: int = MIN_FACE_PX) -> None:
    """Raise :class:`FaceRejected` unless there is exactly one face at least
    ``min_face_px`` pixels wide (``widths``: each face box width in pixels)."""
    if not widths:
        raise FaceRejected("no_face", "no face found: use a well-lit, frontal photo of the person")
    if len(widths) > 1:
        raise FaceRejected("two_faces", f"{len(widths)} faces found: use a photo with only this person in it")
    if widths[0] < min_face_px:
        raise FaceRejected("small_face", f"face too small ({widths[0]:.0f} px wide, need {min_face_px}): "
                                         "use a closer or larger photo")


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _consistency_scores(candidates: dict[int, np.ndarray], existing: np.ndarray) -> dict[int, float]:
    """Cosine of each candidate to the mean of every other embedding (existing + candidates)."""
    total = sum(candidates.values()) + (existing.sum(axis=0) if len(existing) else 0.0)
    count = len(existing) + len(candidates)
    return {i: float(_unit((total - e) / (count - 1)) @ e) for i, e in candidates.items()}


def reject_outliers(candidates: dict[int, np.ndarray], existing: np.ndarray,
                    threshold: float) -> dict[int, float]:
    """Drop the worst candidate while any scores below ``threshold`` against the rest.

    ``candidates`` is edited in place (what remains is kept); returns {index: score} of the
    dropped ones. Two new photos that disagree, with nothing enrolled, are both dropped."""
    dropped: dict[int, float] = {}
    while len(candidates) + len(existing) >= 2 and candidates:
        scores = _consistency_scores(candidates, existing)
        worst = min(scores, key=scores.get)
        if scores[worst] >= threshold:
            break
        if len(existing) == 0 and len(candidates) == 2:
            dropped.update(scores)      # two photos that disagree: no way to tell which is right
            candidates.clear()
            break
        dropped[worst] = scores[worst]
        del candidates[worst]
    return dropped


def apply_consistency(results: list[PhotoResult], existing: np.ndarray | None, threshold: float) -> None:
    """Reject accepted results that do not look like the same person as the rest (and the
    person's ``existing`` (N, D) embeddings); set ``score`` on the ones kept."""
    candidates = {r.index: r.embedding for r in results if r.accepted and r.embedding is not None}
    rows = [] if existing is None else [_unit(e) for e in np.asarray(existing, np.float32) if e.size]
    existing = np.array(rows, np.float32) if rows else np.zeros((0, 1), np.float32)
    kept = dict(candidates)
    dropped = reject_outliers(kept, existing, threshold)
    final = _consistency_scores(kept, existing) if len(kept) + len(existing) >= 2 else {}
    for result in results:
        if result.index in dropped:
            score = dropped[result.index]
            result.reject("different_person", f"does not look like the same person as the other photos "
                                              f"(similarity {score:.2f}, need {threshold:.2f})")
            result.score = score
        elif result.index in final:
            result.score = final[result.index]


def other_identity(embedding: np.ndarray, person_ids: Sequence[str], matrix: np.ndarray, person_id: str,
                   threshold: float) -> tuple[str, float] | None:
    """(other person id, cosine) when ``embedding`` scores at least ``threshold`` against
    an enrolled template of someone other than ``person_id``; the best such person."""
    if not len(person_ids) or matrix.size == 0 or matrix.shape[1] != embedding.shape[0]:
        return None
    scores = matrix @ np.asarray(embedding, np.float32)
    best: tuple[str, float] | None = None
    for pid, score in zip(person_ids, scores):
        if pid != person_id and score >= threshold and (best is None or score > best[1]):
            best = (pid, float(score))
    return best


def duplicate_message(name: str, other_id: str, score: float, threshold: float) -> str:
    """The refusal an admin sees for a face that looks like someone already enrolled."""
    return (f"looks like {name} ({other_id}), already enrolled: similarity {score:.3f} >= the accept "
            f"threshold {threshold:.3f}. If this really is a different person, confirm to enrol anyway")
