"""Enrolment rules: which uploaded photos of a person are good enough to keep.

:func:`check_and_embed` is pure apart from running the face pipeline it is given: it
decodes each photo, insists on exactly one large-enough face, embeds it, ignores exact
duplicates (SHA-256) and rejects photos that do not show the same person as the rest.
Storing the accepted embeddings is the caller's job (``rollcall enroll`` or the console
through the firmware's control API).
"""

from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

import cv2
import numpy as np

from firmware.errors import EnrolmentError, ImageError

logger = logging.getLogger(__name__)

ENROL_DETECTOR = "blazeface_full"  # finds small background faces too, so group photos are rejected
MIN_FACE_PX = 80               # face box width, pixels
MAX_PIXELS = 20_000_000        # 20 megapixels
Status = Literal["accepted", "rejected", "duplicate"]


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

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


class _Pipeline(Protocol):
    def analyse(self, image_bgr: np.ndarray, with_embeddings: bool = True) -> list: ...


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a PNG or JPEG header without decoding; None if unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    return None


def decode_photo(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """BGR uint8 image from JPEG/PNG/... bytes; :class:`ImageError` says what is wrong."""
    if not data:
        raise ImageError("empty file: upload a JPEG or PNG photo")
    size = image_size(data)
    if size and size[0] * size[1] > max_pixels:
        raise ImageError(f"photo is {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.0f} MP); "
                         f"the limit is {max_pixels / 1e6:.0f} MP: resize it")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError("not an image or a corrupt file: upload a JPEG or PNG photo")
    h, w = image.shape[:2]
    if h * w > max_pixels:
        raise ImageError(f"photo is {w}x{h}; the limit is {max_pixels / 1e6:.0f} MP: resize it")
    if min(h, w) < MIN_FACE_PX:
        raise ImageError(f"photo is only {w}x{h} pixels: the face must be at least {MIN_FACE_PX} px wide")
    return image


def _face_jpeg(image: np.ndarray, box: np.ndarray) -> bytes:
    """JPEG of the face box grown by 30 % on each side (clipped to the image)."""
    x1, y1, x2, y2 = box
    pad = 0.3 * (x2 - x1)
    h, w = image.shape[:2]
    crop = image[int(max(0, y1 - pad)):int(min(h, y2 + pad)), int(max(0, x1 - pad)):int(min(w, x2 + pad))]
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return buf.tobytes() if ok else b""


def embed_one_face(data: bytes, pipeline: _Pipeline, min_face_px: int = MIN_FACE_PX) -> tuple[np.ndarray, bytes]:
    """(embedding, face JPEG) of the single face in a photo; raises ImageError/EnrolmentError."""
    image = decode_photo(data)
    faces = pipeline.analyse(image, with_embeddings=True)
    if not faces:
        raise EnrolmentError("no face found: use a well-lit, frontal photo of the person")
    if len(faces) > 1:
        raise EnrolmentError(f"{len(faces)} faces found: use a photo with only this person in it")
    face = faces[0]
    width = face.detection.width
    if width < min_face_px:
        raise EnrolmentError(f"face too small ({width:.0f} px wide, need {min_face_px}): "
                             "use a closer or larger photo")
    return np.asarray(face.embedding, np.float32), _face_jpeg(image, face.detection.box)


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


def check_and_embed(images: Sequence[bytes], existing_embeddings: np.ndarray | None,
                    existing_sha256s: Sequence[str], pipeline: _Pipeline, *,
                    same_person_threshold: float, min_face_px: int = MIN_FACE_PX) -> list[PhotoResult]:
    """Verdict per photo, in input order. ``existing_embeddings`` (N, D) are the person's
    already-enrolled embeddings; ``same_person_threshold`` is the cosine a photo must reach
    against the mean of the person's other photos."""
    seen = set(existing_sha256s)
    results: list[PhotoResult] = []
    candidates: dict[int, np.ndarray] = {}
    for index, data in enumerate(images):
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            results.append(PhotoResult(index, digest, "duplicate", "same file as a photo already enrolled: ignored"))
            continue
        seen.add(digest)
        try:
            embedding, jpeg = embed_one_face(data, pipeline, min_face_px)
        except (ImageError, EnrolmentError) as exc:
            results.append(PhotoResult(index, digest, "rejected", str(exc)))
            continue
        candidates[index] = embedding
        results.append(PhotoResult(index, digest, "accepted", "ok", embedding=embedding, face_jpeg=jpeg))
    _apply_consistency(results, candidates, existing_embeddings, same_person_threshold)
    return results


def _apply_consistency(results: list[PhotoResult], candidates: dict[int, np.ndarray],
                       existing: np.ndarray | None, threshold: float) -> None:
    rows = [] if existing is None else [_unit(e) for e in np.asarray(existing, np.float32) if e.size]
    existing = np.array(rows, np.float32) if rows else np.zeros((0, 1), np.float32)
    kept = dict(candidates)
    dropped = reject_outliers(kept, existing, threshold)
    final = _consistency_scores(kept, existing) if len(kept) + len(existing) >= 2 else {}
    for result in results:
        if result.index in dropped:
            score = dropped[result.index]
            result.status, result.embedding = "rejected", None
            result.message = (f"does not look like the same person as the other photos "
                              f"(similarity {score:.2f}, need {threshold:.2f})")
            result.score = score
        elif result.index in final:
            result.score = final[result.index]
