"""Per-frame face measurements of a clip, computed once and cached on disk.

The liveness bench replays each clip many times (200 random start offsets, two frame
rates, several policies). The models only need to run once per frame: this module runs
the detector, Face Mesh and eyelid model over every frame of a clip and keeps, per face,
the detection box, the 468 mesh points, the eyelid contours and the face crop's sharpness.
Everything the liveness trackers consume (openness, gate, pose) is then recomputed from
these arrays in microseconds. The cache lives under ``var/cache/liveness/`` (never
committed), keyed by the clip's path, size, modification time and the detector id.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware.domain.liveness_measures import face_gray_crop, sharpness

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
# Camera orientations the cooperative simulation also measures a clip in: a camera turned
# 90 degrees sees a real left/right head turn as an up/down move of the nose in its image.
TRANSFORMS = {"": None, "rot90cw": cv2.ROTATE_90_CLOCKWISE, "rot90ccw": cv2.ROTATE_90_COUNTERCLOCKWISE}
MIN_PRESENCE = 0.5  # Face Mesh face-presence score below which a detection is dropped


@dataclass(frozen=True, slots=True)
class FaceMeasure:
    """One face in one frame: ``box`` (x1, y1, x2, y2 pixels), ``points`` (468, 3) mesh,
    ``lids`` (2, 16, 2) eyelid contours, ``sharp`` variance of the Laplacian of the crop."""

    box: np.ndarray
    points: np.ndarray
    lids: np.ndarray
    sharp: float


@dataclass(frozen=True, slots=True)
class ClipMeasures:
    """Every frame's faces (largest first) and timestamps (seconds) of one clip."""

    name: str
    fps: float
    timestamps: list[float]
    faces: list[list[FaceMeasure]]

    @property
    def duration_s(self) -> float:
        """Seconds from the first frame to one frame past the last."""
        return (len(self.timestamps) / self.fps) if self.fps else 0.0


def _key(path: Path, detector_id: str, transform: str = "") -> str:
    st = path.stat()
    raw = f"{CACHE_VERSION}|{path.resolve()}|{st.st_size}|{int(st.st_mtime)}|{detector_id}|{transform}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _save(target: Path, clip: ClipMeasures) -> None:
    rows = [(i, j) for i, faces in enumerate(clip.faces) for j in range(len(faces))]
    flat = [clip.faces[i][j] for i, j in rows]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp, fps=np.float64(clip.fps), timestamps=np.asarray(clip.timestamps, np.float64),
        rows=np.asarray(rows, np.int32).reshape(-1, 2),
        boxes=np.asarray([f.box for f in flat], np.float32).reshape(-1, 4),
        points=np.asarray([f.points for f in flat], np.float32).reshape(-1, 468, 3),
        lids=np.asarray([f.lids for f in flat], np.float32).reshape(-1, 2, 16, 2),
        sharp=np.asarray([f.sharp for f in flat], np.float64))
    tmp.replace(target)


def _load(target: Path, name: str) -> ClipMeasures:
    with np.load(target) as z:
        stamps = [float(t) for t in z["timestamps"]]
        faces: list[list[FaceMeasure]] = [[] for _ in stamps]
        for k, (i, _) in enumerate(z["rows"]):
            faces[int(i)].append(FaceMeasure(z["boxes"][k], z["points"][k], z["lids"][k], float(z["sharp"][k])))
        return ClipMeasures(name, float(z["fps"]), stamps, faces)


def measure_frames(pipe, frames: list[np.ndarray], stamps: list[float], fps: float, name: str) -> ClipMeasures:
    """Run detector + mesh + eyelids (``pipe``: the bench's Pipeline) over every frame."""
    faces: list[list[FaceMeasure]] = []
    for frame in frames:
        found = []
        for det in sorted(pipe.detector.detect(frame), key=lambda d: -d.width):
            landmarks = pipe.mesh.landmarks(frame, det)
            if landmarks.presence < MIN_PRESENCE:
                continue
            lids = pipe.eyelids.eyelids(frame, landmarks.points)
            found.append(FaceMeasure(np.asarray(det.box, np.float32), landmarks.points, lids,
                                     sharpness(face_gray_crop(frame, det.box))))
        faces.append(found)
    return ClipMeasures(name, fps, list(stamps), faces)


def clip_measures(pipe, path: Path, read_video, cache_dir: Path | None, transform: str = "") -> ClipMeasures:
    """The measurements of the clip at ``path`` (its frames rotated by ``transform``, a key
    of TRANSFORMS), from ``cache_dir`` when there (else measured with ``pipe`` and stored
    there). ``read_video(path)`` -> (frames, stamps, fps)."""
    name = path.name + (f"[{transform}]" if transform else "")
    key = _key(path, pipe.detector_id, transform)
    target = cache_dir / f"{path.stem}-{key}.npz" if cache_dir else None
    if target is not None and target.is_file():
        try:
            return _load(target, name)
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("cache %s unreadable (%s); measuring again", target, exc)
    frames, stamps, fps = read_video(path)
    if TRANSFORMS[transform] is not None:
        frames = [cv2.rotate(f, TRANSFORMS[transform]) for f in frames]
    clip = measure_frames(pipe, frames, stamps, fps, name)
    if target is not None:
        _save(target, clip)
    return clip
