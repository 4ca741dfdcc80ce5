"""MediaPipe Face Mesh (468 points) on a rotated square crop around a BlazeFace detection.

The crop follows MediaPipe's detection-to-ROI rule (numbers, not code): centred on the
detection box, side 1.5 x the box's longer side, rotated so that the line from the right
eye keypoint to the left eye keypoint is horizontal. The model sees that crop resized to
192x192 RGB scaled to 0..1 (checked empirically: with -1..1 input the points drift off the
eyes); its 468 (x, y, z) outputs are in crop pixels and are mapped back to full-frame
pixels with the inverse of the crop transform. ``z`` is scaled like x and y (relative
depth, frame pixels, smaller = nearer the camera).
"""

from __future__ import annotations

import logging
import math
import os

import cv2
import numpy as np

from firmware.domain.types import Detection, Landmarks
from firmware.errors import ImageError
from firmware.inference.detector import model_file
from firmware.inference.runtime import TFLiteModel

logger = logging.getLogger(__name__)

ROI_SCALE = 1.5        # crop side / detection box side
NUM_POINTS = 468

# Handy indices into the 468-point mesh (person's right = image left on a frontal face).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_OUTER, LEFT_EYE_INNER = 263, 362
NOSE_TIP, NOSE_BOTTOM = 1, 2


def square_roi(cx: float, cy: float, side: float, theta: float, size: int) -> np.ndarray:
    """2x3 affine mapping the pixels (0..size) of a square crop to frame pixels: the crop is
    centred on (cx, cy), ``side`` frame pixels wide, rotated by ``theta`` radians."""
    k = side / size
    cos, sin = math.cos(theta) * k, math.sin(theta) * k
    # frame = centre + (c - size/2) * k * u + (r - size/2) * k * v, u = (cos, sin), v = (-sin, cos)
    tx = cx - (size / 2) * (cos - sin)
    ty = cy - (size / 2) * (sin + cos)
    return np.array([[cos, -sin, tx], [sin, cos, ty]], dtype=np.float64)


def roi_transform(detection: Detection, size: int) -> np.ndarray:
    """2x3 affine mapping crop pixels (0..size) to frame pixels for ``detection``."""
    x1, y1, x2, y2 = (float(v) for v in detection.box)
    (rx, ry), (lx, ly) = detection.keypoints[0], detection.keypoints[1]
    theta = math.atan2(float(ly - ry), float(lx - rx))
    side = max(x2 - x1, y2 - y1) * ROI_SCALE
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return square_roi(cx, cy, side, theta, size)


class CropModel:
    """A TFLite model fed square RGB crops scaled to 0..1: loaded once, with its crop and
    input buffers allocated once (nothing per frame). ``points_len`` is the length of the
    output that holds the points, used to find which output index that is."""

    def __init__(self, models_dir: str | os.PathLike, model_id: str, points_len: int, *,
                 num_threads: int = 2, model: TFLiteModel | None = None) -> None:
        self._model = model or TFLiteModel(model_file(models_dir, model_id), num_threads=num_threads)
        self.size = int(self._model.input_shape[1])
        self._crop = np.zeros((self.size, self.size, 3), np.uint8)
        self._input = np.zeros((1, self.size, self.size, 3), np.float32)
        self._points_out = 0 if self._model.output_shapes[0][-1] == points_len else 1

    def _run_crop(self, crop_bgr: np.ndarray) -> list[np.ndarray]:
        """Run the model on a BGR crop of ``size`` x ``size`` pixels."""
        np.multiply(crop_bgr[:, :, ::-1], 1 / 255.0, out=self._input[0], casting="unsafe")
        return self._model.run(self._input)

    def close(self) -> None:
        """Release the interpreter (safe twice)."""
        self._model.close()

    def __enter__(self) -> CropModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FaceMesh(CropModel):
    """468-point face landmarks; create once, call :meth:`landmarks` per face."""

    def __init__(self, models_dir: str | os.PathLike, model_id: str = "face_mesh", *,
                 num_threads: int = 2, model: TFLiteModel | None = None) -> None:
        super().__init__(models_dir, model_id, NUM_POINTS * 3, num_threads=num_threads, model=model)

    def crop(self, image_bgr: np.ndarray, detection: Detection) -> np.ndarray:
        """Fill the crop buffer for ``detection``; return the crop->frame affine (2x3)."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
            raise ImageError("face mesh needs a BGR image of shape (height, width, 3)")
        to_frame = roi_transform(detection, self.size)
        to_crop = cv2.invertAffineTransform(to_frame)
        cv2.warpAffine(image_bgr, to_crop, (self.size, self.size), dst=self._crop,
                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return to_frame

    def landmarks(self, image_bgr: np.ndarray, detection: Detection) -> Landmarks:
        """Mesh points of the face found by ``detection``, in full-frame pixels."""
        to_frame = self.crop(image_bgr, detection)
        outputs = self._run_crop(self._crop)
        raw = outputs[self._points_out].reshape(NUM_POINTS, 3)
        logit = float(outputs[1 - self._points_out].reshape(-1)[0])
        presence = 1.0 / (1.0 + math.exp(-max(-80.0, min(80.0, logit))))
        points = np.empty((NUM_POINTS, 3), np.float32)
        points[:, :2] = raw[:, :2] @ to_frame[:, :2].T + to_frame[:, 2]
        points[:, 2] = raw[:, 2] * math.hypot(to_frame[0, 0], to_frame[1, 0])
        return Landmarks(points=points, presence=presence)
