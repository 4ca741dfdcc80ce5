"""Real models on real photos: detection, mesh, alignment, embeddings, matching."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware.domain.matching import Gallery
from firmware.inference.detector import FaceDetector
from firmware.inference.embedder import default_margin, default_threshold
from firmware.inference.mesh import (LEFT_EYE_INNER, LEFT_EYE_OUTER, RIGHT_EYE_INNER,
                                     RIGHT_EYE_OUTER, FaceMesh)
from firmware.inference.pipeline import FacePipeline

pytestmark = pytest.mark.integration
EMBEDDER = "dlib_resnet_int8"
LFW_THRESHOLD = 0.913


def _need(models: Path, *files: str) -> None:
    missing = [f for f in files if not (models / f).is_file()]
    if missing:
        pytest.skip(f"models {missing} not built in {models}: run `rollcall models build --out {models}`")


@pytest.fixture(scope="module")
def pipeline(built_models):
    _need(built_models, "blazeface_short.tflite", "face_mesh.tflite", f"{EMBEDDER}.tflite")
    with FacePipeline(built_models, embedder_id=EMBEDDER, min_face_px=20, max_faces=10) as p:
        yield p


@pytest.fixture(scope="module")
def lfw10(shared_data) -> dict[str, list[Path]]:
    root = shared_data / "faces-small" / "lfw10"
    return {d.name: sorted(d.glob("*.jpg")) for d in sorted(root.iterdir()) if d.is_dir()}


def _centre_face(faces, image):
    centre = np.array(image.shape[1::-1]) / 2
    return min(faces, key=lambda f: np.linalg.norm((f.detection.box[:2] + f.detection.box[2:]) / 2 - centre))


def test_one_face_per_lfw10_photo(pipeline, lfw10):
    """Every photo has a detected face on its centre; bystanders are rare and small."""
    counts = []
    for paths in lfw10.values():
        for path in paths:
            image = cv2.imread(str(path))
            faces = pipeline.analyse(image, with_embeddings=False)
            assert faces, f"no face in {path.name}"
            x1, y1, x2, y2 = _centre_face(faces, image).detection.box
            assert x1 < image.shape[1] / 2 < x2 and y1 < image.shape[0] / 2 < y2, path.name
            counts.append(len(faces))
    assert len(counts) == 100
    assert counts.count(1) >= 90, f"exactly one face in only {counts.count(1)} of 100 photos"


def test_several_faces_in_group_photos(built_models, shared_data):
    _need(built_models, "blazeface_full.tflite")
    test_dir = shared_data / "faces-small" / "knn_examples" / "test"
    with FaceDetector(built_models, "blazeface_short") as short, FaceDetector(built_models, "blazeface_full") as full:
        assert len(short.detect(cv2.imread(str(test_dir / "kit_with_rose.jpg")))) == 2
        assert len(full.detect(cv2.imread(str(test_dir / "obama_and_biden.jpg")))) == 2
        assert len(full.detect(cv2.imread(str(test_dir / "alex_lacamoire1.jpg")))) == 1


def test_mesh_eye_corners_sit_on_the_detected_eyes(pipeline, lfw10):
    """The mesh's eye corners bracket BlazeFace's eye keypoints (independent models)."""
    image = cv2.imread(str(lfw10["Tony_Blair"][0]))
    face = _centre_face(pipeline.analyse(image, with_embeddings=False), image)
    pts, kp = face.landmarks.points, face.detection.keypoints
    assert face.landmarks.presence > 0.9 and pts.shape == (468, 3)
    width = face.detection.width
    right_eye = (pts[RIGHT_EYE_OUTER, :2] + pts[RIGHT_EYE_INNER, :2]) / 2
    left_eye = (pts[LEFT_EYE_OUTER, :2] + pts[LEFT_EYE_INNER, :2]) / 2
    assert np.linalg.norm(right_eye - kp[0]) < 0.08 * width
    assert np.linalg.norm(left_eye - kp[1]) < 0.08 * width
    assert pts[RIGHT_EYE_OUTER, 0] < pts[RIGHT_EYE_INNER, 0] < pts[LEFT_EYE_INNER, 0] < pts[LEFT_EYE_OUTER, 0]


def test_mesh_presence_rejects_a_face_like_background_box(built_models, shared_data, pipeline):
    """BlazeFace fires on a window of the White House at 0.6-0.7; the mesh says no face."""
    image = cv2.imread(str(shared_data / "faces-small" / "knn_examples" / "test" / "obama1.jpg"))
    raw = pipeline.detector.detect(image)
    faces = pipeline.analyse(image, with_embeddings=False)
    assert len(faces) == 1 and len(raw) >= 1
    presences = [FaceMesh.landmarks(pipeline.mesh, image, d).presence for d in raw]
    assert max(presences) > 0.9


def test_same_people_match_and_different_people_do_not(pipeline, lfw10):
    """Enrol 3 photos of each of 10 people, identify the other 7 of each at the manifest threshold."""
    vectors: dict[str, list[np.ndarray]] = {}
    for name, paths in lfw10.items():
        for path in paths:
            image = cv2.imread(str(path))
            vectors.setdefault(name, []).append(_centre_face(pipeline.analyse(image), image).embedding)
    ids = [n for n in vectors for _ in range(3)]
    gallery = Gallery(ids, np.stack([v for n in vectors for v in vectors[n][:3]]))
    # 0.913: the cosine threshold LFW's 10-fold protocol picks for dlib_resnet_int8 with flip averaging (bench)
    results = [(n, gallery.match(v, threshold=LFW_THRESHOLD, margin=0.0)) for n in vectors for v in vectors[n][3:]]
    wrong = [(n, r.person_id) for n, r in results if r.accepted and r.person_id != n]
    right = sum(r.person_id == n for n, r in results)
    assert not wrong, f"misidentified: {wrong}"
    assert right >= 0.85 * len(results), f"only {right} of {len(results)} recognised"
    same = vectors["Tony_Blair"][0] @ vectors["Tony_Blair"][1]
    other = vectors["Tony_Blair"][0] @ vectors["Vladimir_Putin"][0]
    assert same > other + 0.05
    strict = [(n, gallery.match(v, threshold=default_threshold(EMBEDDER), margin=default_margin(EMBEDDER)))
              for n in vectors for v in vectors[n][3:]]
    assert not [(n, r.person_id) for n, r in strict if r.accepted and r.person_id != n]
    assert pipeline.stats.summary()["embed"]["count"] >= 100
