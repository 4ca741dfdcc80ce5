"""Alignment and detector maths: pure numpy, no models."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware.domain.types import Detection, Landmarks
from firmware.inference.align import (ALIGNMENTS, DLIB_TEMPLATE5, MESH_FOR_DLIB5, align_face,
                                      alignment_matrix, spec_for, umeyama)
from firmware.inference.detector import (ANCHOR_SPECS, decode_boxes, generate_anchors,
                                         iou_one_to_many, weighted_nms)
from firmware.inference.mesh import roi_transform
from firmware.errors import ImageError


def similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx],
                     [scale * math.sin(a), scale * math.cos(a), ty]])


@pytest.mark.parametrize("scale,angle,tx,ty", [(1.0, 0.0, 0.0, 0.0), (2.5, 30.0, 10.0, -4.0),
                                               (0.3, -170.0, 300.0, 12.5), (7.0, 90.0, -50.0, 80.0)])
def test_umeyama_recovers_a_known_similarity(scale, angle, tx, ty):
    rng = np.random.default_rng(1)
    src = rng.uniform(-50, 50, size=(7, 2))
    truth = similarity(scale, angle, tx, ty)
    dst = src @ truth[:, :2].T + truth[:, 2]
    np.testing.assert_allclose(umeyama(src, dst), truth, atol=1e-9)


def test_umeyama_is_least_squares_under_noise_and_never_reflects():
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 100, size=(50, 2))
    truth = similarity(1.7, 12.0, 5.0, 6.0)
    dst = src @ truth[:, :2].T + truth[:, 2] + rng.normal(0, 0.5, size=src.shape)
    np.testing.assert_allclose(umeyama(src, dst), truth, atol=0.25)  # translation absorbs the noise most
    mirrored = src * [-1, 1]
    assert np.linalg.det(umeyama(src, mirrored)[:, :2]) > 0


def test_umeyama_rejects_degenerate_input():
    with pytest.raises(ValueError):
        umeyama(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError):
        umeyama(np.zeros((5, 2)), np.zeros((4, 2)))


def _mesh_with_five_points(points: np.ndarray) -> Landmarks:
    mesh = np.zeros((468, 3), np.float32)
    mesh[list(MESH_FOR_DLIB5), :2] = points
    return Landmarks(points=mesh, presence=1.0)


def test_mesh_points_land_on_the_dlib_template():
    spec = ALIGNMENTS["dlib_5pt_150"]
    chip_pts = spec.chip_points(DLIB_TEMPLATE5)
    to_frame = similarity(3.0, 20.0, 400.0, 100.0)
    frame_pts = chip_pts @ to_frame[:, :2].T + to_frame[:, 2]
    matrix = alignment_matrix(_mesh_with_five_points(frame_pts), spec)
    np.testing.assert_allclose(frame_pts @ matrix[:, :2].T + matrix[:, 2], chip_pts, atol=1e-6)


def test_align_face_cuts_the_right_region():
    spec = ALIGNMENTS["dlib_5pt_150"]
    image = np.zeros((600, 800, 3), np.uint8)
    image[:, 400:] = (0, 0, 255)   # right half red in BGR
    chip_pts = spec.chip_points(DLIB_TEMPLATE5)
    frame_pts = chip_pts + [400 - 75, 200]  # chip centre on the red/black border
    chip = align_face(image, _mesh_with_five_points(frame_pts), spec)
    assert chip.shape == (150, 150, 3) and chip.dtype == np.uint8
    assert chip[:, :70, 0].max() == 0 and chip[:, 80:, 0].min() == 255  # RGB: red channel first


def test_align_face_shrinks_large_faces_to_the_same_chip():
    spec = ALIGNMENTS["dlib_5pt_150"]
    rng = np.random.default_rng(3)
    small = rng.integers(0, 255, (300, 300, 3), np.uint8)
    big = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)
    pts = spec.chip_points(DLIB_TEMPLATE5) + 75
    a = align_face(small, _mesh_with_five_points(pts), spec).astype(float)
    b = align_face(big, _mesh_with_five_points(pts * 4 + 1.5), spec).astype(float)
    assert np.abs(a - b)[10:-10, 10:-10].mean() < 20


def test_spec_by_manifest_name_or_model_id():
    assert spec_for("dlib_resnet_int8").size == 150
    assert spec_for("facenet_int8").size == 160
    assert spec_for("anything", "facenet_160").size == 160
    manifest = spec_for("facenet_int8", "dlib_5pt", 160, 0.2)
    assert (manifest.size, manifest.padding) == (160, 0.2)
    with pytest.raises(ImageError):
        spec_for("x", "no_such_alignment")


def test_align_face_rejects_bad_images():
    det = Detection(box=np.array([0, 0, 10, 10.0]), score=1.0, keypoints=np.zeros((6, 2)))
    with pytest.raises(ImageError):
        align_face(np.zeros((10, 10), np.uint8), det, ALIGNMENTS["dlib_5pt_150"])


def test_anchor_counts_match_blazeface_models():
    assert len(generate_anchors(ANCHOR_SPECS["blazeface_short"])) == 896
    assert len(generate_anchors(ANCHOR_SPECS["blazeface_full"])) == 2304
    anchors = generate_anchors(ANCHOR_SPECS["blazeface_short"])
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[512], [0.5 / 8, 0.5 / 8])  # first of the 8x8 grid
    assert (anchors[512:518] == anchors[512]).all()                 # 6 anchors share the cell


def test_decode_box_and_keypoints_relative_to_anchor():
    anchors = np.array([[0.5, 0.25]], np.float32)
    raw = np.zeros((1, 16), np.float32)
    raw[0, :4] = [12.8, 0.0, 25.6, 12.8]       # shift x by 0.1, size 0.2 x 0.1 (input 128)
    raw[0, 4:6] = [-12.8, 12.8]
    out = decode_boxes(raw, anchors, 128)
    np.testing.assert_allclose(out[0, :4], [0.5, 0.2, 0.7, 0.3], atol=1e-6)
    np.testing.assert_allclose(out[0, 4:6], [0.4, 0.35], atol=1e-6)


def test_weighted_nms_blends_overlaps_and_keeps_separate_faces():
    boxes = np.zeros((3, 16), np.float32)
    boxes[0, :4] = [0, 0, 10, 10]
    boxes[1, :4] = [1, 1, 11, 11]
    boxes[2, :4] = [50, 50, 60, 60]
    faces = weighted_nms(boxes, np.array([0.9, 0.3, 0.8]))
    assert len(faces) == 2
    blended, score = faces[0]
    assert score == pytest.approx(0.9)
    np.testing.assert_allclose(blended[:2], [0.25, 0.25], atol=1e-6)  # (0*0.9 + 1*0.3) / 1.2
    assert iou_one_to_many(np.array([0, 0, 10, 10.0]), np.array([[0, 0, 10, 10.0]]))[0] == pytest.approx(1.0)


def test_mesh_roi_is_rotated_with_the_eye_line_and_1_5x_the_box():
    kp = np.zeros((6, 2))
    kp[0], kp[1] = [100, 100], [200, 200]          # eye line at 45 degrees
    det = Detection(box=np.array([100, 100, 300, 300.0]), score=1.0, keypoints=kp)
    m = roi_transform(det, 192)
    centre = m @ [96, 96, 1]
    np.testing.assert_allclose(centre, [200, 200], atol=1e-9)
    side = np.linalg.norm(m @ [192, 0, 1] - m @ [0, 0, 1])
    assert side == pytest.approx(300.0)
    direction = m[:, 0] / np.linalg.norm(m[:, 0])
    np.testing.assert_allclose(direction, [math.sqrt(0.5), math.sqrt(0.5)], atol=1e-9)
