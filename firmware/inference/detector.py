"""BlazeFace face detector (MediaPipe's short- and full-range TFLite models).

Our own anchor generation and decoding, following the published SSD anchor options of
MediaPipe's face detection graphs (numbers, not code):

- ``blazeface_short``: 128x128 input, strides 8, 16, 16, 16, two anchors per cell per
  layer -> 16x16x2 + 3 x 8x8x2 = 896 anchors.
- ``blazeface_full``: 192x192 input, one stride-4 layer, one anchor per cell -> 2304.

Anchors have a fixed size of 1 (in units of the input), so a raw box is
``centre = raw / input_size + anchor_centre`` and ``size = raw / input_size``. Keypoints
decode like centres. Scores go through a sigmoid, overlapping boxes are merged by
weighted (score-blended) non-maximum suppression.

The frame is downscaled so its long side equals the model input and letterboxed into a
square (padding bottom/right); the returned boxes and keypoints are in full-frame pixels.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware.domain.types import Detection
from firmware.errors import ImageError, ModelError
from firmware.inference.runtime import TFLiteModel
from models.registry import model_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnchorSpec:
    """SSD anchor layout of one BlazeFace variant."""

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: tuple[int, ...]


ANCHOR_SPECS: dict[str, AnchorSpec] = {
    "blazeface_short": AnchorSpec(128, (8, 16, 16, 16), (2, 2, 2, 2)),
    "blazeface_full": AnchorSpec(192, (4,), (1,)),
}

NMS_IOU = 0.3  # boxes overlapping more than this are the same face


def model_file(models_dir: str | os.PathLike, model_id: str) -> Path:
    """Path of a built model: the manifest's file name when the registry knows the id,
    else ``<models_dir>/<model_id>.tflite``."""
    try:
        return Path(model_path(model_id, Path(models_dir)))
    except (ImportError, KeyError, ValueError, ModelError, AttributeError, TypeError):
        return Path(models_dir) / f"{model_id}.tflite"


def generate_anchors(spec: AnchorSpec) -> np.ndarray:
    """Anchor centres (A, 2) as fractions 0..1 of the input, in the models' output order."""
    centres: list[np.ndarray] = []
    layer = 0
    while layer < len(spec.strides):
        stride = spec.strides[layer]
        count = 0
        # consecutive layers with the same stride share one grid (MediaPipe's rule)
        while layer < len(spec.strides) and spec.strides[layer] == stride:
            count += spec.anchors_per_layer[layer]
            layer += 1
        cells = int(np.ceil(spec.input_size / stride))
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(grid, count, axis=1).reshape(-1, 2))
    return np.concatenate(centres).astype(np.float32)


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, input_size: int) -> np.ndarray:
    """Raw regressors (A, 16) -> (A, 16): box x1, y1, x2, y2 then 6 keypoints (x, y),
    all as fractions 0..1 of the square input."""
    out = np.empty_like(raw, dtype=np.float32)
    scaled = raw / float(input_size)
    cx = scaled[:, 0] + anchors[:, 0]
    cy = scaled[:, 1] + anchors[:, 1]
    half_w, half_h = scaled[:, 2] / 2, scaled[:, 3] / 2
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = cx - half_w, cy - half_h, cx + half_w, cy + half_h
    kp = scaled[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
    out[:, 4:16] = kp.reshape(-1, 12)
    return out


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (4,) box with (N, 4) boxes (x1, y1, x2, y2)."""
    ix1 = np.maximum(box[0], boxes[:, 0])
    iy1 = np.maximum(box[1], boxes[:, 1])
    ix2 = np.minimum(box[2], boxes[:, 2])
    iy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(decoded: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[tuple[np.ndarray, float]]:
    """Blend overlapping candidates: each face's coordinates are the score-weighted mean of
    the candidates overlapping its best one; its score is the best score."""
    order = np.argsort(-scores)
    decoded, scores = decoded[order], scores[order]
    faces: list[tuple[np.ndarray, float]] = []
    remaining = np.arange(len(scores))
    while remaining.size:
        top = remaining[0]
        overlap = iou_one_to_many(decoded[top, :4], decoded[remaining, :4]) > iou
        members = remaining[overlap]
        weights = scores[members][:, None]
        blended = (decoded[members] * weights).sum(axis=0) / weights.sum()
        faces.append((blended, float(scores[top])))
        remaining = remaining[~overlap]
    return faces


class FaceDetector:
    """BlazeFace on any BGR frame; create once, call :meth:`detect` per frame.

    ``score_threshold`` is the minimum sigmoid score 0..1; ``min_face_px`` the smallest
    box width kept, in full-frame pixels; ``max_faces`` the most faces returned (largest
    score first).
    """

    def __init__(self, models_dir: str | os.PathLike, model_id: str = "blazeface_short", *,
                 score_threshold: float = 0.6, min_face_px: int = 0, max_faces: int = 20,
                 num_threads: int = 2, model: TFLiteModel | None = None) -> None:
        if model_id not in ANCHOR_SPECS:
            raise ModelError(f"unknown detector {model_id!r}: use one of {sorted(ANCHOR_SPECS)}")
        self.model_id = model_id
        self.spec = ANCHOR_SPECS[model_id]
        self.score_threshold = score_threshold
        self.min_face_px = min_face_px
        self.max_faces = max_faces
        self._model = model or TFLiteModel(model_file(models_dir, model_id), num_threads=num_threads)
        self._anchors = generate_anchors(self.spec)
        shapes = self._model.output_shapes
        if shapes[0][-2] != len(self._anchors):
            raise ModelError(f"{model_id}: model has {shapes[0][-2]} anchors, expected {len(self._anchors)}")
        self._box_out = 0 if shapes[0][-1] == 16 else 1
        size = self.spec.input_size
        self._canvas = np.zeros((size, size, 3), np.uint8)
        self._input = np.zeros((1, size, size, 3), np.float32)

    def _prepare(self, image_bgr: np.ndarray) -> float:
        """Letterbox the frame into the input buffer; return the frame-pixels-per-input-pixel scale."""
        if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.size == 0:
            raise ImageError("detector needs a BGR image of shape (height, width, 3)")
        h, w = image_bgr.shape[:2]
        size = self.spec.input_size
        scale = max(h, w) / size
        nw, nh = max(1, round(w / scale)), max(1, round(h / scale))
        self._canvas.fill(0)
        interp = cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR
        self._canvas[:nh, :nw] = cv2.resize(image_bgr, (nw, nh), interpolation=interp)
        # BGR -> RGB and 0..255 -> -1..1, written into the preallocated input
        np.multiply(self._canvas[:, :, ::-1], 1 / 127.5, out=self._input[0], casting="unsafe")
        self._input -= 1.0
        return scale

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in ``image_bgr`` (uint8 BGR), best score first, in full-frame pixels."""
        scale = self._prepare(image_bgr)
        outputs = self._model.run(self._input)
        raw = outputs[self._box_out][0]
        logits = outputs[1 - self._box_out][0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -80.0, 80.0)))
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        decoded = decode_boxes(raw[keep], self._anchors[keep], self.spec.input_size)
        pixels = self.spec.input_size * scale
        detections = []
        for blended, score in weighted_nms(decoded, scores[keep]):
            coords = blended * pixels
            det = Detection(box=coords[:4].copy(), score=score, keypoints=coords[4:].reshape(6, 2).copy())
            if det.width >= self.min_face_px:
                detections.append(det)
        return detections[: self.max_faces]

    def close(self) -> None:
        """Release the interpreter (safe twice)."""
        self._model.close()

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
