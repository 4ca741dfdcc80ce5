"""Per-frame measures for liveness: eye openness, head pose, sharpness, gate (pure numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware.config import LivenessConfig
from firmware.domain.liveness_measures import (
    CHIN, FOREHEAD, LEFT_CHEEK, NOSE_BASE, NOSE_BRIDGE_TOP, LEFT_EYE_EAR, LEFT_EYE_OUTER, PITCH_NEUTRAL_DEG, RIGHT_CHEEK, RIGHT_EYE_EAR,
    RIGHT_EYE_OUTER, EyeOpenness, assess_face, correct_foreshortening, eye_aspect_ratio, eye_openness, eyelid_openness, face_gray_crop,
    gate_face, head_pose, sharpness,
)


def eye_points(cx: float, cy: float, width: float, height: float) -> np.ndarray:
    """Six EAR points p1..p6 of an eye with the given lid gap (pixels)."""
    w, h = width / 2, height / 2
    return np.array([[cx - w, cy], [cx - w / 3, cy - h], [cx + w / 3, cy - h],
                     [cx + w, cy], [cx + w / 3, cy + h], [cx - w / 3, cy + h]])


def mesh_with_eyes(height: float) -> np.ndarray:
    points = np.zeros((468, 3))
    points[list(RIGHT_EYE_EAR), :2] = eye_points(100, 100, 30, height)
    points[list(LEFT_EYE_EAR), :2] = eye_points(160, 100, 30, height * 0.5)
    return points


def test_eye_aspect_ratio_is_gap_over_width():
    assert eye_aspect_ratio(eye_points(0, 0, 30, 9)) == pytest.approx(0.3)
    assert eye_aspect_ratio(eye_points(0, 0, 30, 0)) == 0.0
    assert eye_aspect_ratio(np.zeros((6, 2))) == 0.0


def test_eye_openness_per_eye_from_the_mesh():
    openness = eye_openness(mesh_with_eyes(9))
    assert openness.right == pytest.approx(0.3) and openness.left == pytest.approx(0.15)
    assert openness.mean == pytest.approx(0.225) and openness.source == "mesh"


def test_eye_openness_is_scale_invariant():
    small, big = mesh_with_eyes(6), mesh_with_eyes(6) * 4.0
    assert eye_openness(small).right == pytest.approx(eye_openness(big).right)


def test_eye_openness_rejects_wrong_shapes():
    with pytest.raises(ValueError):
        eye_openness(np.zeros((68, 2)))


def lids(gap: float, width: float = 40.0) -> np.ndarray:
    """A 16-point eyelid contour: 0..8 lower lid corner to corner, 9..15 upper lid."""
    xs = np.linspace(0, width, 9)
    lower = np.column_stack([xs, np.full(9, gap / 2)])
    upper = np.column_stack([xs[1:8], np.full(7, -gap / 2)])
    return np.vstack([lower, upper])


def test_eyelid_openness_from_refined_contours():
    openness = eyelid_openness(np.stack([lids(12), lids(2)]))
    assert openness.right == pytest.approx(0.3) and openness.left == pytest.approx(0.05)
    assert openness.source == "eyelids"
    with pytest.raises(ValueError):
        eyelid_openness(np.zeros((2, 5, 2)))


def face_3d(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """The handful of mesh points head_pose uses, on a frontal face rotated by yaw
    (about y), pitch (about x) and roll (about z), degrees; x right, y down, z away."""
    points = np.zeros((468, 3))
    neutral = math.radians(PITCH_NEUTRAL_DEG)
    points[RIGHT_EYE_OUTER] = [-45, -20, 5]
    points[LEFT_EYE_OUTER] = [45, -20, 5]
    points[RIGHT_CHEEK] = [-70, 0, 20]
    points[LEFT_CHEEK] = [70, 0, 20]
    points[NOSE_BRIDGE_TOP] = [0, -30, 0]
    points[NOSE_BASE] = [0, 15, 0]  # 45 below the bridge: width/height = 90/45 = 2
    points[FOREHEAD] = [0, -90 * math.cos(neutral), -90 * math.sin(neutral)]
    points[CHIN] = [0, 90 * math.cos(neutral), 90 * math.sin(neutral)]
    a, b, c = (math.radians(v) for v in (yaw, pitch, roll))
    ry = np.array([[math.cos(a), 0, -math.sin(a)], [0, 1, 0], [math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return points @ (rz @ rx @ ry).T + [320, 240, 0]


@pytest.mark.parametrize("yaw", [-40, -20, 0, 15, 30])
def test_head_pose_yaw(yaw):
    got_yaw, got_pitch, got_roll = head_pose(face_3d(yaw=yaw))
    assert got_yaw == pytest.approx(yaw, abs=1.0)
    assert abs(got_pitch) < 2.0 and abs(got_roll) < 1.0


@pytest.mark.parametrize("pitch", [-30, -10, 0, 20])
def test_head_pose_pitch(pitch):
    _, got_pitch, _ = head_pose(face_3d(pitch=pitch))
    assert got_pitch == pytest.approx(pitch, abs=1.5)


@pytest.mark.parametrize("roll", [-30, 0, 25])
def test_head_pose_roll_does_not_leak_into_yaw_or_pitch(roll):
    yaw, pitch, got_roll = head_pose(face_3d(yaw=10, roll=roll))
    assert got_roll == pytest.approx(roll, abs=1.0)
    assert yaw == pytest.approx(10, abs=1.5) and abs(pitch) < 2.0


def test_head_pose_without_depth_gives_roll_only():
    yaw, pitch, roll = head_pose(face_3d(roll=10)[:, :2])
    assert (yaw, pitch) == (0.0, 0.0) and roll == pytest.approx(10, abs=0.5)


def checkerboard(size: int = 96, cell: int = 4) -> np.ndarray:
    y, x = np.indices((size, size))
    return (((x // cell + y // cell) % 2) * 200 + 20).astype(np.float32)


def box_blur(img: np.ndarray, k: int = 5) -> np.ndarray:
    pad = np.pad(img, k // 2, mode="edge")
    return np.mean([pad[i:i + img.shape[0], j:j + img.shape[1]] for i in range(k) for j in range(k)], axis=0)


def test_sharpness_orders_sharp_over_blurred_and_flat_is_zero():
    sharp = checkerboard()
    assert sharpness(sharp) > 10 * sharpness(box_blur(sharp)) > 0
    assert sharpness(np.full((80, 80), 128.0)) == 0.0
    assert sharpness(np.zeros((2, 2))) == 0.0


def test_sharpness_does_not_depend_on_how_close_the_face_is():
    face = checkerboard(96, 8)
    closer = np.kron(face, np.ones((3, 3), np.float32))  # same face, 3x the pixels
    assert sharpness(closer) == pytest.approx(sharpness(face), rel=1e-5)


def test_sharpness_accepts_colour_crops():
    grey = checkerboard()
    assert sharpness(np.dstack([grey] * 3)) == pytest.approx(sharpness(grey))


GATE = dict(min_face_px=64, max_yaw_deg=25, max_pitch_deg=25, min_sharpness=20)


@pytest.mark.parametrize("face_px,pose,sharp,reason", [
    (200, (0, 0, 0), 100, ""),
    (40, (0, 0, 0), 100, "too_small"),
    (200, (30, 0, 0), 100, "turned"),
    (200, (0, -30, 0), 100, "turned"),
    (200, None, 100, "turned"),
    (200, (10, 10, 40), 5, "blurred"),
    (40, (40, 0, 0), 5, "too_small"),
])
def test_gate_reasons(face_px, pose, sharp, reason):
    gate = gate_face(face_px=face_px, pose=pose, sharpness_value=sharp, **GATE)
    assert gate.ok == (reason == "") and gate.reason == reason
    assert gate.face_px == face_px and gate.sharpness == sharp


def test_face_gray_crop_clips_to_the_image():
    image = np.zeros((50, 60, 3), np.uint8)
    image[..., 2] = 100  # red in BGR
    crop = face_gray_crop(image, np.array([-10.0, 40.0, 20.0, 90.0]))
    assert crop.shape == (10, 20) and crop[0, 0] == pytest.approx(29.9, abs=0.1)
    assert face_gray_crop(image, np.array([100.0, 100.0, 120.0, 120.0])).size == 0


def test_assess_face_combines_openness_and_gate():
    points = face_3d()
    points[list(RIGHT_EYE_EAR), :2] = eye_points(270, 220, 30, 9)
    points[list(LEFT_EYE_EAR), :2] = eye_points(370, 220, 30, 9)
    image = np.dstack([np.kron(checkerboard(60, 4), np.ones((8, 8), np.float32)).astype(np.uint8)] * 3)
    box = np.array([220.0, 140.0, 420.0, 340.0])
    openness, gate = assess_face(image, box, points, None, LivenessConfig(), 64)
    # outer eye corners 130 px apart, nose bridge to base 45 px: openness x 130 / 45
    assert isinstance(openness, EyeOpenness) and openness.mean == pytest.approx(0.3 * 130 / 45)
    assert gate.ok, gate
    blurred, gate = assess_face(np.full_like(image, 90), box, points, np.stack([lids(12), lids(12)]),
                                LivenessConfig(), 64)
    assert blurred.source == "eyelids" and gate.reason == "blurred"


def test_foreshortening_correction_cancels_a_tilted_photo():
    """A photo tilted away vertically squashes the eyes AND the face by the same factor."""
    points = face_3d()
    points[list(RIGHT_EYE_EAR), :2] = eye_points(270, 220, 30, 9)
    points[list(LEFT_EYE_EAR), :2] = eye_points(370, 220, 30, 9)
    squashed = points.copy()
    squashed[:, 1] = 240 + (points[:, 1] - 240) * 0.5  # tilted 60 degrees
    flat = correct_foreshortening(eye_openness(points), points)
    tilted = correct_foreshortening(eye_openness(squashed), squashed)
    assert eye_openness(squashed).mean == pytest.approx(eye_openness(points).mean * 0.5)
    assert tilted.mean == pytest.approx(flat.mean)


def test_foreshortening_correction_keeps_a_real_blink():
    points = face_3d()
    points[list(RIGHT_EYE_EAR), :2] = eye_points(270, 220, 30, 9)
    points[list(LEFT_EYE_EAR), :2] = eye_points(370, 220, 30, 9)
    shut = points.copy()
    shut[list(RIGHT_EYE_EAR), :2] = eye_points(270, 220, 30, 1)
    shut[list(LEFT_EYE_EAR), :2] = eye_points(370, 220, 30, 1)
    ratio = correct_foreshortening(eye_openness(shut), shut).mean / correct_foreshortening(
        eye_openness(points), points).mean
    assert ratio == pytest.approx(1 / 9)


def test_foreshortening_correction_ignores_degenerate_points():
    openness = EyeOpenness(0.3, 0.3)
    assert correct_foreshortening(openness, np.zeros((468, 3))) == openness
