"""Enrolment rules with a fake face pipeline (pure: no models)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from firmware.domain.types import Detection, FaceObservation
from firmware.domain.enrolment import MIN_FACE_PX
from firmware.inference.images import decode as decode_photo
from firmware.inference.images import image_size
from firmware.runtime.enrol import check_and_embed
from firmware.errors import ImageError

THRESHOLD = 0.8


def photo(shade: int, size: tuple[int, int] = (200, 160), ext: str = ".png") -> bytes:
    image = np.full((size[1], size[0], 3), shade, np.uint8)
    return cv2.imencode(ext, image)[1].tobytes()


def person(seed: int, noise: float = 0.0, salt: int = 0) -> np.ndarray:
    base = np.random.default_rng(seed).normal(size=64)
    v = base + noise * np.random.default_rng(1000 + salt).normal(size=64)
    return (v / np.linalg.norm(v)).astype(np.float32)


class FakePipeline:
    """Faces keyed by the photo's grey level: {shade: [(face width px, embedding), ...]}."""

    def __init__(self, faces: dict[int, list[tuple[float, np.ndarray]]]) -> None:
        self.faces = faces

    def analyse(self, image_bgr, with_embeddings=True):
        out = []
        for width, emb in self.faces.get(int(image_bgr[0, 0, 0]), []):
            det = Detection(box=np.array([10, 10, 10 + width, 10 + width], float), score=0.9,
                            keypoints=np.zeros((6, 2)))
            out.append(FaceObservation(detection=det, ts=0.0, embedding=emb))
        return out


def run(photos, faces, existing=None, shas=()):
    return check_and_embed(photos, existing, list(shas), FakePipeline(faces), same_person_threshold=THRESHOLD)


def test_good_photos_of_one_person_are_accepted_with_scores():
    faces = {10: [(120, person(1, 0.2, 1))], 20: [(120, person(1, 0.2, 2))], 30: [(120, person(1, 0.2, 3))]}
    results = run([photo(10), photo(20), photo(30)], faces)
    assert [r.status for r in results] == ["accepted"] * 3
    assert all(r.score > THRESHOLD and r.embedding is not None for r in results)
    assert all(r.face_jpeg.startswith(b"\xff\xd8") for r in results)
    assert [r.index for r in results] == [0, 1, 2]


def test_non_image_and_corrupt_files_are_rejected_with_a_message():
    corrupt = photo(10, ext=".jpg")[:60]
    results = run([b"hello, not an image", b"", corrupt], {})
    assert [r.status for r in results] == ["rejected"] * 3
    assert "not an image" in results[0].message
    assert "empty" in results[1].message
    assert "JPEG or PNG" in results[2].message


def test_no_face_and_several_faces_are_rejected():
    faces = {20: [(120, person(1)), (100, person(2))]}
    results = run([photo(10), photo(20)], faces)
    assert results[0].status == "rejected" and "no face" in results[0].message
    assert results[1].status == "rejected" and "2 faces" in results[1].message


def test_small_faces_and_tiny_images_are_rejected():
    results = run([photo(10), photo(20, size=(60, 60))], {10: [(MIN_FACE_PX - 1, person(1))]})
    assert "too small" in results[0].message and "79 px" in results[0].message
    assert results[1].status == "rejected" and "60x60" in results[1].message


def test_huge_images_are_rejected_from_the_header_before_decoding():
    header = bytearray(photo(10))
    header[16:24] = (6000).to_bytes(4, "big") + (4000).to_bytes(4, "big")   # claims 24 MP
    results = run([bytes(header)], {})
    assert results[0].status == "rejected" and "24 MP" in results[0].message
    assert image_size(photo(10, size=(123, 45), ext=".jpg")) == (123, 45)
    assert image_size(photo(10, size=(123, 45))) == (123, 45)
    with pytest.raises(ImageError):
        decode_photo(bytes(header))


def test_exact_duplicates_are_ignored_within_the_batch_and_against_enrolled_photos():
    import hashlib
    first = photo(10)
    faces = {10: [(120, person(1))], 20: [(120, person(1, 0.1))]}
    results = run([first, photo(20), first], faces)
    assert [r.status for r in results] == ["accepted", "accepted", "duplicate"]
    assert "already enrolled" in results[2].message
    results = run([first], faces, existing=np.stack([person(1)]), shas=[hashlib.sha256(first).hexdigest()])
    assert results[0].status == "duplicate"


def test_a_different_person_among_several_photos_is_rejected_with_its_score():
    faces = {10: [(120, person(1, 0.2, 1))], 20: [(120, person(1, 0.2, 2))], 30: [(120, person(7))],
             40: [(120, person(1, 0.2, 4))]}
    results = run([photo(10), photo(20), photo(30), photo(40)], faces)
    assert [r.status for r in results] == ["accepted", "accepted", "rejected", "accepted"]
    assert "same person" in results[2].message and results[2].score < THRESHOLD
    assert f"{results[2].score:.2f}" in results[2].message
    assert results[2].embedding is None


def test_a_new_photo_of_someone_else_is_rejected_against_existing_embeddings():
    existing = np.stack([person(1, 0.2, 1), person(1, 0.2, 2)])
    results = run([photo(10), photo(20)], {10: [(120, person(2))], 20: [(120, person(1, 0.2, 3))]},
                  existing=existing)
    assert [r.status for r in results] == ["rejected", "accepted"]


def test_two_photos_that_disagree_with_nothing_enrolled_are_both_rejected():
    results = run([photo(10), photo(20)], {10: [(120, person(1))], 20: [(120, person(2))]})
    assert [r.status for r in results] == ["rejected", "rejected"]


def test_a_single_first_photo_is_accepted_without_a_cross_check():
    results = run([photo(10)], {10: [(120, person(1))]})
    assert results[0].accepted and results[0].score is None
