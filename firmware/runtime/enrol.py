"""The one enrolment path: :class:`Enroller` checks, embeds and stores faces of a person.

Used by the control API (console uploads, unknown faces assigned to a person, frames kept
from the door's camera) through :class:`~firmware.runtime.device.Device`, and by
``rollcall enroll`` (single person or ``--csv``). Photos are admitted by
:mod:`firmware.inference.images` (the one set of image limits), faces judged by the pure
rules of :mod:`firmware.domain.enrolment`, and the accepted embeddings stored with a JPEG
of the face and a ``source`` tag (photo | device | unknown).

The enroller owns its face pipeline (its own interpreters: the device loop's are used by
the loop's thread), created at the first photo and kept until :meth:`Enroller.close`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from firmware.config import Config
from firmware.domain.enrolment import (ENROL_DETECTOR, MIN_FACE_PX, FaceRejected, PhotoResult,
                                       apply_consistency, duplicate_message, judge_faces, other_identity)
from firmware.domain.types import FaceObservation
from firmware.errors import ImageError
from firmware.inference import images
from firmware.inference.embedder import same_person_threshold
from firmware.inference.pipeline import FacePipeline
from firmware.runtime.tuning import match_threshold

logger = logging.getLogger(__name__)


class FaceAnalyser(Protocol):
    """What the enroller needs from a face pipeline."""

    def analyse(self, image_bgr: np.ndarray, with_embeddings: bool = True) -> list[FaceObservation]: ...


class PeopleStore(Protocol):
    """The part of ``store.people`` the enroller uses."""

    def get(self, person_id: str) -> dict | None: ...

    def add(self, person_id: str, name: str, external_id: str | None = None) -> dict: ...

    def embeddings(self, model_id: str, person_ids: list[str] | None = None) -> tuple[list[str], np.ndarray]: ...

    def photos(self, person_id: str) -> list[dict]: ...

    def add_embedding(self, person_id: str, vector: object, model_id: str, photo_sha256: str | None = None,
                      photo_jpeg: bytes | None = None, source: str = "photo") -> dict: ...


class StoreLike(Protocol):
    people: PeopleStore


@dataclass(slots=True)
class Face:
    """A face already embedded elsewhere (a frame kept from the door's camera)."""

    embedding: np.ndarray   # L2-normalised float32
    jpeg: bytes             # crop of the face


def embed_one_face(data: bytes, pipeline: FaceAnalyser, min_face_px: int = MIN_FACE_PX) -> tuple[np.ndarray, bytes]:
    """(embedding, face JPEG) of the single face in a photo; raises ImageError/FaceRejected."""
    image = images.decode(data)
    faces = pipeline.analyse(image, with_embeddings=True)
    judge_faces([f.detection.width for f in faces], min_face_px)
    face = faces[0]
    return np.asarray(face.embedding, np.float32), images.face_jpeg(image, face.detection.box)


def check_and_embed(photos: Sequence[bytes], existing_embeddings: np.ndarray | None,
                    existing_sha256s: Sequence[str], pipeline: FaceAnalyser, *,
                    same_person_threshold: float, min_face_px: int = MIN_FACE_PX) -> list[PhotoResult]:
    """Verdict per photo, in input order. ``existing_embeddings`` (N, D) are the person's
    already-enrolled embeddings; ``same_person_threshold`` is the cosine a photo must reach
    against the mean of the person's other photos. Stores nothing."""
    seen = set(existing_sha256s)
    results: list[PhotoResult] = []
    for index, data in enumerate(photos):
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            results.append(PhotoResult(index, digest, "duplicate", "same file as a photo already enrolled: ignored",
                                       reason="already"))
            continue
        seen.add(digest)
        try:
            embedding, jpeg = embed_one_face(data, pipeline, min_face_px)
        except ImageError as exc:
            results.append(PhotoResult(index, digest, "rejected", str(exc), reason="bad_image"))
            continue
        except FaceRejected as exc:
            results.append(PhotoResult(index, digest, "rejected", str(exc), reason=exc.reason))
            continue
        results.append(PhotoResult(index, digest, "accepted", "ok", embedding=embedding, face_jpeg=jpeg))
    apply_consistency(results, existing_embeddings, same_person_threshold)
    return results


class Enroller:
    """Checks and stores faces of people in ``store`` with ``config``'s embedder.

    ``pipeline`` may be given (tests, a CLI run that built one); otherwise one is built
    from ``models_dir`` (default ``config.paths.models_dir``) at first use.
    """

    def __init__(self, config: Config, store: StoreLike, *, models_dir: str | os.PathLike | None = None,
                 model_id: str | None = None, pipeline: FaceAnalyser | None = None) -> None:
        self.config = config
        self.store = store
        self._models_dir = models_dir
        self._model_id = model_id
        self._pipeline = pipeline
        self._owned: FacePipeline | None = None

    @property
    def model_id(self) -> str:
        """The embedder enrolled with (the config's unless given)."""
        return self._model_id or self.config.recognition.embedder

    @property
    def pipeline(self) -> FaceAnalyser:
        """The enrolment face pipeline (BlazeFace full range, so group photos are seen)."""
        if self._pipeline is None:
            models_dir = self._models_dir or self.config.paths.models_dir
            self._owned = FacePipeline(models_dir, detector_id=ENROL_DETECTOR, embedder_id=self.model_id,
                                       min_face_px=24, score_threshold=self.config.detection.score_threshold,
                                       max_faces=10)
            self._pipeline = self._owned
        return self._pipeline

    @property
    def accept_threshold(self) -> float:
        """The cosine the door accepts at: a face this close to another person is a duplicate."""
        return match_threshold(self.config)

    def _existing(self, person_id: str) -> tuple[np.ndarray | None, list[str]]:
        if self.store.people.get(person_id) is None:
            return None, []
        _, matrix = self.store.people.embeddings(self.model_id, [person_id])
        shas = [p["photo_sha256"] for p in self.store.people.photos(person_id) if p.get("photo_sha256")]
        return (matrix if len(matrix) else None), shas

    def check(self, person_id: str, photos: Sequence[bytes], *, confirm_duplicate: bool = False,
              min_face_px: int = MIN_FACE_PX) -> list[PhotoResult]:
        """Verdict per photo for ``person_id`` (who may not exist yet); stores nothing.
        ``min_face_px``: the smallest face width accepted, pixels."""
        existing, shas = self._existing(person_id)
        results = check_and_embed(photos, existing, shas, self.pipeline, min_face_px=min_face_px,
                                  same_person_threshold=same_person_threshold(self.model_id))
        self._flag_duplicates(results, person_id, confirm_duplicate)
        return results

    def check_faces(self, person_id: str, faces: Sequence[Face], *,
                    confirm_duplicate: bool = False) -> list[PhotoResult]:
        """Verdict per already-embedded face (same rules as photos, minus the detector's)."""
        existing, shas = self._existing(person_id)
        seen, results = set(shas), []
        for index, face in enumerate(faces):
            digest = hashlib.sha256(face.jpeg).hexdigest()
            if digest in seen:
                results.append(PhotoResult(index, digest, "duplicate", "already enrolled: ignored", reason="already"))
                continue
            seen.add(digest)
            results.append(PhotoResult(index, digest, "accepted", "ok",
                                       embedding=np.asarray(face.embedding, np.float32), face_jpeg=face.jpeg))
        apply_consistency(results, existing, same_person_threshold(self.model_id))
        self._flag_duplicates(results, person_id, confirm_duplicate)
        return results

    def _flag_duplicates(self, results: list[PhotoResult], person_id: str, confirmed: bool) -> None:
        """Refuse faces that look like another enrolled person (unless ``confirmed``)."""
        ids, matrix = self.store.people.embeddings(self.model_id)
        threshold = self.accept_threshold
        for result in results:
            if not result.accepted:
                continue
            other = other_identity(result.embedding, ids, matrix, person_id, threshold)
            if other is None:
                continue
            result.other_person, result.other_score = other
            if confirmed:
                result.message = f"ok (confirmed: not {other[0]}, similarity {other[1]:.3f})"
                continue
            name = (self.store.people.get(other[0]) or {}).get("name", other[0])
            result.reject("duplicate", duplicate_message(name, other[0], other[1], threshold))

    def save(self, person_id: str, results: Sequence[PhotoResult], source: str = "photo") -> list[dict]:
        """Store the accepted results; per result the view :func:`result_view` gives."""
        out = []
        for result in results:
            meta = {}
            if result.accepted:
                meta = self.store.people.add_embedding(person_id, result.embedding, self.model_id,
                                                       photo_sha256=result.sha256, photo_jpeg=result.face_jpeg,
                                                       source=source)
            out.append(result_view(result, meta.get("photo_id")))
        accepted = sum(r.accepted for r in results)
        logger.info("enrolled %d of %d %s faces for %s", accepted, len(results), source, person_id)
        return out

    def enrol_photos(self, person_id: str, photos: Sequence[bytes], *, source: str = "photo",
                     confirm_duplicate: bool = False) -> list[dict]:
        """Check and store photos of an existing person; per photo :func:`result_view`.
        Crops from the door's own camera (``source="device"``) may show a face as small as
        the door recognises (``detection.min_face_px``); uploaded photos need ``MIN_FACE_PX``."""
        self.store.people.get(person_id) or self._missing(person_id)
        smallest = min(MIN_FACE_PX, self.config.detection.min_face_px) if source == "device" else MIN_FACE_PX
        results = self.check(person_id, photos, confirm_duplicate=confirm_duplicate, min_face_px=smallest)
        return self.save(person_id, results, source)

    def enrol_faces(self, person_id: str, faces: Sequence[Face], *, source: str = "device",
                    confirm_duplicate: bool = False) -> list[dict]:
        """Check and store already-embedded faces of an existing person."""
        self.store.people.get(person_id) or self._missing(person_id)
        return self.save(person_id, self.check_faces(person_id, faces, confirm_duplicate=confirm_duplicate),
                         source)

    @staticmethod
    def _missing(person_id: str) -> None:
        raise FaceRejected("no_person", f"person {person_id!r} does not exist: add them first")

    def close(self) -> None:
        """Release the pipeline's interpreters if this enroller built them (safe twice)."""
        if self._owned is not None:
            self._owned.close()
            self._owned = None
            self._pipeline = None


def result_view(result: PhotoResult, photo_id: str | None = None) -> dict:
    """The JSON the control API returns per photo."""
    return {"ok": result.accepted, "status": result.status, "reason": result.reason, "message": result.message,
            "photo_id": photo_id, "score": result.score, "other_person": result.other_person,
            "other_score": None if result.other_score is None else round(result.other_score, 4)}


def failed_views(count: int, reason: str, message: str) -> list[dict]:
    """``count`` identical failures (the person or the models are missing)."""
    return [{"ok": False, "status": "rejected", "reason": reason, "message": message, "photo_id": None,
             "score": None, "other_person": None, "other_score": None} for _ in range(count)]
