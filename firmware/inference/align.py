"""Face alignment: a 5-point similarity transform to a template, then one ``warpAffine``.

dlib-style chips (the dlib ResNet embedder): dlib's 5-point template (numbers from
``get_face_chip_details`` in dlib's ``interpolation.h``: outer and inner corner of the
subject's left eye, outer and inner corner of the right eye, bottom of the nose, on the
unit square) padded by 0.25 on each side and scaled to 150x150 pixels.

Our landmark source is MediaPipe's mesh, not dlib's 5-point predictor. The mesh vertices
used for dlib's five points (249, 382, 7, 155, 2) were chosen on 116 LFW images as the
vertices nearest, in template space, to dlib's own predictor; with them our chips differ
from ``dlib.get_face_chip`` by ~3.4 chip pixels (mean corner displacement, 150 px chip).
Without a mesh, BlazeFace's two eye centres and mouth centre are used against their mean
positions in the same template frame (measured the same way; ~5 px).

FaceNet chips (160x160) use the same template and transform, with the size and padding
the manifest gives (0.2 by default).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from firmware.domain.types import Detection, Landmarks
from firmware.errors import ImageError

logger = logging.getLogger(__name__)

#: dlib's 5-point template on the unit square (before padding).
DLIB_TEMPLATE5 = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])
#: Mesh vertices standing in for dlib's five points (same order as the template).
MESH_FOR_DLIB5 = (249, 382, 7, 155, 2)
#: BlazeFace keypoints used without a mesh: right eye, left eye, mouth centre.
KEYPOINTS_USED = (0, 1, 3)
#: Their mean positions in dlib's unit template frame (measured on 116 LFW images).
KEYPOINT_TEMPLATE = np.array([[0.2190, 0.2161], [0.7766, 0.2251], [0.4902, 0.8328]])


@dataclass(frozen=True)
class AlignmentSpec:
    """How to cut the chip an embedder expects: ``size`` pixels square, template padded by
    ``padding`` (fraction of the template's unit square on each side)."""

    name: str
    size: int
    padding: float

    def chip_points(self, unit_points: np.ndarray) -> np.ndarray:
        """Template points (unit square) -> chip pixel coordinates (pixel centres at
        integers; the -0.5 matches dlib's ``extract_image_chip``: mean abs pixel difference
        to ``dlib.get_face_chip`` 2.5 grey levels with it, 3.8 without)."""
        unit = np.asarray(unit_points, np.float64)
        return (unit + self.padding) / (1 + 2 * self.padding) * self.size - 0.5


ALIGNMENTS: dict[str, AlignmentSpec] = {
    "dlib_5pt_150": AlignmentSpec("dlib_5pt_150", 150, 0.25),
    "facenet_160": AlignmentSpec("facenet_160", 160, 0.2),
}


def spec_for(model_id: str, alignment: str | None = None, size: int | None = None,
             padding: float | None = None) -> AlignmentSpec:
    """The alignment for an embedder: the manifest's ``alignment`` name (with its
    ``align_size`` / ``align_padding`` when given), else guessed from the model id
    (``facenet...`` -> FaceNet 160, anything else -> dlib 150)."""
    if alignment in ("dlib_5pt", *ALIGNMENTS) and size and padding is not None:
        return AlignmentSpec(alignment, int(size), float(padding))
    if alignment:
        if alignment not in ALIGNMENTS:
            raise ImageError(f"unknown alignment {alignment!r}: use one of {sorted(ALIGNMENTS)} or dlib_5pt")
        return ALIGNMENTS[alignment]
    if model_id.startswith("facenet"):
        return ALIGNMENTS["facenet_160"]
    return ALIGNMENTS["dlib_5pt_150"]


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection)
    mapping ``src`` (N, 2) onto ``dst`` (N, 2); returns the 2x3 matrix. Umeyama (1991)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError("umeyama needs two (N, 2) point sets with N >= 2")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s ** 2).sum() / len(src)
    if var_s <= 1e-12:
        raise ValueError("umeyama: source points are all the same")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / var_s
    shift = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, shift[:, None]])


def source_points(face: Landmarks | Detection) -> tuple[np.ndarray, np.ndarray]:
    """(frame points, matching unit-template points) for a mesh or a bare detection."""
    if isinstance(face, Landmarks):
        return face.points[list(MESH_FOR_DLIB5), :2], DLIB_TEMPLATE5
    if isinstance(face, Detection):
        return np.asarray(face.keypoints)[list(KEYPOINTS_USED)], KEYPOINT_TEMPLATE
    raise TypeError(f"align_face needs Landmarks or Detection, not {type(face).__name__}")


def alignment_matrix(face: Landmarks | Detection, spec: AlignmentSpec) -> np.ndarray:
    """2x3 affine mapping frame pixels to chip pixels for ``face``."""
    frame_pts, unit_pts = source_points(face)
    return umeyama(frame_pts, spec.chip_points(unit_pts))


def align_face(image_bgr: np.ndarray, face: Landmarks | Detection, spec: AlignmentSpec,
               out: np.ndarray | None = None) -> np.ndarray:
    """Aligned RGB uint8 chip (``spec.size`` square) for the embedder.

    ``out`` may be a preallocated (size, size, 3) uint8 buffer to write into.
    Large faces are first shrunk with area averaging so the bilinear warp does not alias.
    """
    if image_bgr is None or image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ImageError("alignment needs a BGR image of shape (height, width, 3)")
    matrix = alignment_matrix(face, spec)
    shrink = float(np.hypot(matrix[0, 0], matrix[1, 0]))  # chip pixels per frame pixel
    size = spec.size
    image = image_bgr
    if shrink < 0.5:
        image, matrix = _shrunk_region(image_bgr, matrix, size, 2.0 * shrink)
    chip = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    if out is None:
        return cv2.cvtColor(chip, cv2.COLOR_BGR2RGB)
    cv2.cvtColor(chip, cv2.COLOR_BGR2RGB, dst=out)
    return out


def _shrunk_region(image_bgr: np.ndarray, matrix: np.ndarray, size: int,
                   factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Cut the frame region the chip covers, area-shrink it by ``factor`` (< 1), and return
    it with the frame->chip matrix rewritten for the shrunk region."""
    corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
    inverse = cv2.invertAffineTransform(matrix)
    frame_pts = corners @ inverse[:, :2].T + inverse[:, 2]
    h, w = image_bgr.shape[:2]
    x0, y0 = np.clip(np.floor(frame_pts.min(axis=0)).astype(int) - 1, 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(frame_pts.max(axis=0)).astype(int) + 2, [x0 + 1, y0 + 1], [w, h])
    region = image_bgr[y0:y1, x0:x1]
    shrunk = cv2.resize(region, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    # frame p -> region (p - origin) -> shrunk (p - origin) * factor
    to_region = np.array([[1 / factor, 0, x0], [0, 1 / factor, y0], [0, 0, 1]])
    return shrunk, matrix @ to_region
