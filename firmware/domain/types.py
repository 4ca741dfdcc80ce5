"""Value types shared along the frame path. Pure data: no I/O, no model code.

Coordinates are always in FULL-FRAME pixels (x right, y down), times in seconds.
``ts`` is a monotonic clock (for durations); ``wall`` is UNIX time (for records).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(slots=True)
class Frame:
    """One captured frame. ``image`` is BGR uint8 HxWx3 (OpenCV order)."""

    image: np.ndarray
    ts: float
    wall: float
    index: int
    lores: np.ndarray | None = None  # smaller BGR copy for detection, if the source has one
    source: str = ""


@dataclass(slots=True)
class Detection:
    """A detected face: box (x1, y1, x2, y2), detector score 0..1, and BlazeFace's
    six keypoints (right eye, left eye, nose tip, mouth, right ear, left ear) as (6, 2)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])


@dataclass(slots=True)
class Landmarks:
    """Face Mesh output: (468, 3) points (x, y in frame pixels, z relative depth) and the
    model's face-presence score 0..1."""

    points: np.ndarray
    presence: float


@dataclass(slots=True)
class FaceObservation:
    """Everything measured about one face in one frame (filled in stage by stage)."""

    detection: Detection
    ts: float
    landmarks: Landmarks | None = None
    track_id: int | None = None
    embedding: np.ndarray | None = None  # L2-normalised float32
    chip: np.ndarray | None = None       # aligned RGB crop given to the embedder
    extras: dict = field(default_factory=dict)
