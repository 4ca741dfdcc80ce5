"""Per-frame measures that feed the blink liveness tracker. Pure numpy, no I/O.

- :func:`eye_openness` — per-eye eye-aspect-ratio (EAR) from the 468-point Face Mesh.
  The plain mesh model barely follows the eyelids (on a close-up blink its EAR drops by
  only ~6 %), so on the device prefer :func:`eyelid_openness`, which uses the refined
  eyelid contours of MediaPipe's iris model (0.30 open -> 0.04 closed on the same clip).
- :func:`head_pose` — yaw, pitch and roll in degrees from mesh points (uses the mesh's
  ``z``, which the firmware's FaceMesh scales like x and y).
- :func:`sharpness` — variance of the Laplacian of a grey face crop, resampled to a fixed
  width so the number does not depend on how close the person stands.
- :func:`gate_face` — size / pose / blur gate; a failed gate asks the person to look.

Coordinates are frame pixels (x right, y down); angles are degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from firmware.domain.head_pose import face_shape

# Face Mesh indices (facts from MediaPipe's mesh topology). Person's right eye is on the
# image left of a frontal face. Order per eye: p1 corner, p2, p3 upper lid, p4 corner,
# p5, p6 lower lid, so the pairs (p2, p6) and (p3, p5) face each other.
RIGHT_EYE_EAR = (33, 160, 158, 133, 153, 144)
LEFT_EYE_EAR = (362, 385, 387, 263, 373, 380)
RIGHT_CHEEK, LEFT_CHEEK = 234, 454
FOREHEAD, CHIN = 10, 152
NOSE_BRIDGE_TOP, NOSE_BASE = 168, 2  # rigid vertical span (does not move when talking)
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263

# Refined eyelid contour (first 16 of the iris model's 71 eye points): 0..8 lower lid from
# one corner to the other, 9..15 upper lid between them. Facing pairs for the lid gap:
EYELID_PAIRS = ((3, 11), (4, 12), (5, 13))
EYELID_CORNERS = (0, 8)
EYELID_POINTS = 16

SHARPNESS_WIDTH = 96  # pixels: crops are resampled to this width before the Laplacian
PITCH_NEUTRAL_DEG = 8.0  # mesh forehead->chin reads ~8 degrees on frontal faces


@dataclass(frozen=True, slots=True)
class EyeOpenness:
    """Openness of each eye (dimensionless: lid gap / eye width; ~0.3 open, <0.15 closed
    for eyelid contours). ``source`` says which measure made it ("mesh" or "eyelids");
    values from different sources are not comparable, ratios to a baseline are."""

    right: float
    left: float
    source: str = "mesh"
    face_aspect: float = 0.0  # nose-length / eye-corner distance in the image; 0 = unknown

    @property
    def mean(self) -> float:
        """Mean openness of the two eyes."""
        return (self.right + self.left) / 2.0


@dataclass(frozen=True, slots=True)
class GateResult:
    """Quality gate of one face in one frame. ``reason`` is "" when ``ok``, else one of
    ``no_face``, ``too_small``, ``turned``, ``blurred``. Angles in degrees, size in pixels.
    The head pose is exposed for other consumers: ``yaw_deg`` / ``pitch_deg`` / ``roll_deg``
    (absolute, from :func:`head_pose`) and ``shape``, the face's rigid mesh points
    (:func:`firmware.domain.head_pose.face_shape`, None without a 3D mesh) from which the
    challenge measures yaw/pitch relative to the person's own neutral pose."""

    ok: bool
    reason: str = ""
    face_px: float = 0.0
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    sharpness: float = 0.0
    roll_deg: float = 0.0
    shape: np.ndarray | None = field(default=None, compare=False, repr=False)

    @classmethod
    def passed(cls) -> GateResult:
        """A gate that passed (for callers with no measures, e.g. tests)."""
        return cls(ok=True)

    @classmethod
    def failed(cls, reason: str) -> GateResult:
        """A gate that failed for ``reason``."""
        return cls(ok=False, reason=reason)


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """EAR of six (x, y) points ordered p1..p6: (|p2-p6| + |p3-p5|) / (2 |p1-p4|)."""
    eye = np.asarray(eye, dtype=np.float64)[:, :2]
    vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    width = np.linalg.norm(eye[0] - eye[3])
    return float(vertical / (2.0 * width)) if width > 1e-6 else 0.0


def eye_openness(points: np.ndarray) -> EyeOpenness:
    """Per-eye EAR from Face Mesh points (468, 2 or 3) in frame pixels."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[0] < 468:
        raise ValueError(f"eye_openness needs (468, 2|3) mesh points, got {points.shape}")
    return EyeOpenness(right=eye_aspect_ratio(points[list(RIGHT_EYE_EAR)]),
                       left=eye_aspect_ratio(points[list(LEFT_EYE_EAR)]), source="mesh")


def _lid_gap(contour: np.ndarray) -> float:
    """Mean gap between facing upper/lower lid points over the corner-to-corner width."""
    width = np.linalg.norm(contour[EYELID_CORNERS[0]] - contour[EYELID_CORNERS[1]])
    if width <= 1e-6:
        return 0.0
    gaps = [np.linalg.norm(contour[a] - contour[b]) for a, b in EYELID_PAIRS]
    return float(np.mean(gaps) / width)


def eyelid_openness(eyelids: np.ndarray) -> EyeOpenness:
    """Per-eye openness from refined eyelid contours, shape (2, >=16, 2|3): the person's
    right eye first, then the left, each in the iris model's contour order."""
    eyelids = np.asarray(eyelids, dtype=np.float64)
    if eyelids.ndim != 3 or eyelids.shape[0] != 2 or eyelids.shape[1] < EYELID_POINTS:
        raise ValueError(f"eyelid_openness needs (2, 16, 2) contours, got {eyelids.shape}")
    return EyeOpenness(right=_lid_gap(eyelids[0, :, :2]), left=_lid_gap(eyelids[1, :, :2]),
                       source="eyelids")


def correct_foreshortening(openness: EyeOpenness, points: np.ndarray) -> EyeOpenness:
    """Openness made independent of how the face plane is tilted to the camera.

    A lid gap over eye width shrinks when a face (or a photo of one) is tilted or bent
    away vertically, exactly like a blink would look. Multiplying by the face's own
    width-over-height (outer eye corners distance / nose-bridge-to-nose-base distance, both
    in the image) cancels that: foreshortening changes both by the same factor, a blink
    changes only the lid gap. Per-person proportions cancel in the tracker's baseline ratio.
    The face's height/width is kept in ``face_aspect`` so the tracker can also refuse
    frames in which it jumps (a quick tilt is not a blink).
    """
    p = np.asarray(points, dtype=np.float64)
    height = float(np.linalg.norm(p[NOSE_BASE, :2] - p[NOSE_BRIDGE_TOP, :2]))
    width = float(np.linalg.norm(p[LEFT_EYE_OUTER, :2] - p[RIGHT_EYE_OUTER, :2]))
    if height <= 1e-6 or width <= 1e-6:
        return openness
    k = width / height
    return EyeOpenness(right=openness.right * k, left=openness.left * k, source=openness.source,
                       face_aspect=height / width)


def head_pose(points: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from mesh points (468, 3), ~0 for a frontal face.

    Roll is the tilt of the outer-eye-corner line; yaw and pitch are the depth slopes of
    the cheek-to-cheek and forehead-to-chin vectors after removing roll. Signs: yaw > 0
    when the image-right cheek is further away, pitch > 0 when the chin is further away
    than usual (head tilted up). Needs the z column; with only x, y it returns yaw = pitch = 0.
    """
    p = np.asarray(points, dtype=np.float64)
    eye_vec = p[LEFT_EYE_OUTER, :2] - p[RIGHT_EYE_OUTER, :2]
    roll = math.atan2(eye_vec[1], eye_vec[0])
    if p.shape[1] < 3:
        return 0.0, 0.0, math.degrees(roll)
    cos, sin = math.cos(-roll), math.sin(-roll)

    def derolled(vec: np.ndarray) -> tuple[float, float, float]:
        return (cos * vec[0] - sin * vec[1], sin * vec[0] + cos * vec[1], vec[2])

    cx, _, cz = derolled(p[LEFT_CHEEK] - p[RIGHT_CHEEK])
    _, fy, fz = derolled(p[CHIN] - p[FOREHEAD])
    yaw = math.degrees(math.atan2(cz, cx))
    pitch = math.degrees(math.atan2(fz, fy)) - PITCH_NEUTRAL_DEG
    return yaw, pitch, math.degrees(roll)


def _downsample(gray: np.ndarray, width: int) -> np.ndarray:
    """Block-average ``gray`` by an integer factor so it is about ``width`` pixels wide."""
    factor = max(1, int(gray.shape[1] // width))
    if factor == 1:
        return gray
    h, w = (gray.shape[0] // factor) * factor, (gray.shape[1] // factor) * factor
    return gray[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def sharpness(gray_crop: np.ndarray, width: int = SHARPNESS_WIDTH) -> float:
    """Variance of the 4-neighbour Laplacian of a grey face crop (0..255 intensities),
    after block-averaging the crop down to about ``width`` pixels. Higher = sharper;
    a crop smaller than 3x3 gives 0."""
    g = np.asarray(gray_crop, dtype=np.float32)
    if g.ndim == 3:
        g = g.mean(axis=2)
    g = _downsample(g, width)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = (g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]) - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def gate_face(*, face_px: float, pose: tuple[float, float, float] | None, sharpness_value: float,
              min_face_px: float, max_yaw_deg: float, max_pitch_deg: float,
              min_sharpness: float, shape: np.ndarray | None = None) -> GateResult:
    """Gate one face: large enough (box width in pixels), roughly frontal (degrees), sharp
    enough (variance of Laplacian). The first failing check names the reason. ``shape``
    (rigid mesh points) is passed through for the head-pose challenge."""
    yaw, pitch, roll = (pose[0], pose[1], pose[2] if len(pose) > 2 else 0.0) if pose is not None else (0.0, 0.0, 0.0)
    values = dict(face_px=float(face_px), yaw_deg=float(yaw), pitch_deg=float(pitch),
                  sharpness=float(sharpness_value), roll_deg=float(roll), shape=shape)
    if face_px < min_face_px:
        return GateResult(ok=False, reason="too_small", **values)
    if pose is None or abs(yaw) > max_yaw_deg or abs(pitch) > max_pitch_deg:
        return GateResult(ok=False, reason="turned", **values)
    if sharpness_value < min_sharpness:
        return GateResult(ok=False, reason="blurred", **values)
    return GateResult(ok=True, **values)


def face_gray_crop(image_bgr: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Grey (float32, 0..255) crop of ``box`` (x1, y1, x2, y2 frame pixels, clipped to the
    image) from a BGR or grey image; empty when the box is outside the image."""
    h, w = image_bgr.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    crop = image_bgr[y1:max(y1, y2), x1:max(x1, x2)]
    if crop.ndim == 3:
        # ITU-R BT.601 luma from B, G, R
        return crop[..., 0] * np.float32(0.114) + crop[..., 1] * np.float32(0.587) + crop[..., 2] * np.float32(0.299)
    return crop.astype(np.float32)


def assess_face(image_bgr: np.ndarray, box: np.ndarray, points: np.ndarray, eyelids: np.ndarray | None,
                config, min_face_px: float) -> tuple[EyeOpenness, GateResult]:
    """Everything the liveness tracker needs about one face in one frame.

    Openness is corrected for vertical foreshortening (:func:`correct_foreshortening`) so
    that tilting or flexing a printed photo does not look like a blink. ``box`` is the
    detection box (frame pixels), ``points`` the (468, 3) mesh, ``eyelids``
    the (2, 16, 2) refined contours (None: fall back to the mesh EAR), ``config`` a
    LivenessConfig, ``min_face_px`` the smallest face width in pixels.
    """
    return assess_measured(box, points, eyelids, sharpness(face_gray_crop(image_bgr, box)), config, min_face_px)


def assess_measured(box: np.ndarray, points: np.ndarray, eyelids: np.ndarray | None, sharpness_value: float,
                    config, min_face_px: float) -> tuple[EyeOpenness, GateResult]:
    """:func:`assess_face` from measurements already taken (the bench's per-frame cache):
    ``sharpness_value`` is :func:`sharpness` of the face crop."""
    openness = eyelid_openness(eyelids) if eyelids is not None else eye_openness(points)
    openness = correct_foreshortening(openness, points)
    gate = gate_face(face_px=float(box[2] - box[0]), pose=head_pose(points),
                     sharpness_value=sharpness_value,
                     min_face_px=min_face_px, max_yaw_deg=config.max_yaw_deg,
                     max_pitch_deg=config.max_pitch_deg, min_sharpness=config.min_sharpness,
                     shape=face_shape(points))
    return openness, gate
