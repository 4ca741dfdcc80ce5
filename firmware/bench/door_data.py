"""Camera-like frames from still photos, embedded with the device's own analyser, cached.

For `rollcall bench door` and the calibration script. Every photo of an LFW-style folder
(``images/<Name>/<Name>_NNNN.jpg``) gives frame 0 = the photo itself (used to *enrol*) and
``VARIANTS`` camera-like frames (used as the frames of a *track*), each made with a fixed
seed per photo from these distortions, chosen to resemble a door camera's frames of a
person standing still:

- a shift of up to 6 % of the image and a scale of 0.8-1.15 (the person moves a little),
- a Gaussian blur of sigma 0-1.4 px (focus, motion),
- brightness x0.7-1.3 and gamma 0.8-1.25 (exposure),
- Gaussian sensor noise of sigma 0-6 grey levels,
- JPEG re-encoding at quality 55-90.

Each frame goes through the device path: BlazeFace -> Face Mesh -> quality gate ->
mesh alignment -> embedder (:class:`firmware.runtime.loop.FrameAnalyser`). Per frame the
cache keeps the embedder's two raw outputs, for the aligned chip as it is and mirrored
left-right (:meth:`firmware.inference.embedder.Embedder.raw_views`), the quality weight
(:func:`firmware.domain.evidence.frame_quality`) and whether the gate passed; the
embeddings are made from them with or without test-time flip averaging
(:func:`load_photoset`'s ``flip``), so both are measured on the very same frames, chips
and trials. Cache: ``var/cache/door/<embedder>-<data hash>.npz``.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from firmware.config import Config
from firmware.errors import ConfigError
from firmware.domain.evidence import frame_quality
from firmware.domain.types import Frame
from firmware.inference.align import align_face
from firmware.runtime.loop import FrameAnalyser
from firmware.runtime.tuning import quality_spec

logger = logging.getLogger(__name__)

VARIANTS = 4
CACHE_DIR = Path("var/cache/door")


@dataclass
class PhotoSet:
    """Per photo: identity name, path; per (photo, frame): embedding (D,), quality, ok.
    ``embeddings`` (n_photos, 1 + VARIANTS, D), L2-normalised (zeros: no face); frame 0 is
    the photo as it is. ``flip``: whether they are flip-averaged."""

    names: list[str]
    paths: list[str]
    embeddings: np.ndarray
    quality: np.ndarray
    ok: np.ndarray
    flip: bool = False

    def by_identity(self) -> dict[str, list[int]]:
        """{name: photo indices in file order}."""
        out: dict[str, list[int]] = {}
        for i, name in enumerate(self.names):
            out.setdefault(name, []).append(i)
        return out


def list_photos(data: Path) -> list[tuple[str, str]]:
    """(identity, path) for every ``images/<Name>/*.jpg`` (or ``<Name>/*.jpg`` when there
    is no ``images`` folder) in name and file order; ConfigError when there are none."""
    folder = Path(data) / "images" if (Path(data) / "images").is_dir() else Path(data)
    photos = [(d.name, str(p)) for d in sorted(folder.iterdir()) if d.is_dir() for p in sorted(d.glob("*.jpg"))] \
        if folder.is_dir() else []
    if not photos:
        raise ConfigError(f"{data}: no photos (expected images/<Name>/<Name>_NNNN.jpg)")
    return photos


def camera_like(image: np.ndarray, seed: int) -> np.ndarray:
    """One camera-like frame of a photo (see module doc); deterministic per ``seed``."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    scale = rng.uniform(0.8, 1.15)
    dx, dy = rng.uniform(-0.06, 0.06, 2) * (w, h)
    m = np.array([[scale, 0, (1 - scale) * w / 2 + dx], [0, scale, (1 - scale) * h / 2 + dy]], np.float32)
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    sigma = rng.uniform(0.0, 1.4)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    f = out.astype(np.float32) / 255.0
    f = np.power(np.clip(f * rng.uniform(0.7, 1.3), 0, 1), rng.uniform(0.8, 1.25)) * 255.0
    f += rng.normal(0.0, rng.uniform(0.0, 6.0), f.shape)
    out = np.clip(f, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 91))])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR) if ok else out


def _central(dets: list, shape: tuple) -> object | None:
    """The detection nearest the image centre (LFW photos are centred on their person)."""
    if not dets:
        return None
    cx, cy = shape[1] / 2, shape[0] / 2
    return min(dets, key=lambda d: (d.box[0] + d.box[2] - 2 * cx) ** 2 + (d.box[1] + d.box[3] - 2 * cy) ** 2)


class FrameEmbedder:
    """The device's analyser on single images: raw embedder outputs (as is, mirrored),
    quality and gate of the central face."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.analyser = FrameAnalyser(config, config.paths.models_dir)
        self.spec = quality_spec(config)
        self.dim = self.analyser.embedder.dim

    def frame(self, image: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """((2, dim) raw outputs for the chip and its mirror, or zeros; quality 0..1 (0
        when no face); gate passed)."""
        frame = Frame(image, 0.0, 0.0, 0, image)
        det = _central(self.analyser.detect(frame), image.shape)
        if det is None:
            return np.zeros((2, self.dim), np.float32), 0.0, False
        measured = self.analyser.measure(frame, det)
        if measured is None:
            return np.zeros((2, self.dim), np.float32), 0.0, False
        landmarks, _, gate = measured
        q = frame_quality(self.spec, face_px=gate.face_px, sharpness=gate.sharpness, yaw_deg=gate.yaw_deg,
                          pitch_deg=gate.pitch_deg, detector_score=det.score, presence=landmarks.presence)
        embedder = self.analyser.embedder
        chip = align_face(image, landmarks, embedder.alignment)
        return np.stack(embedder.raw_views(chip)), q, bool(gate.ok)

    def close(self) -> None:
        self.analyser.close()


def cache_path(data: Path, embedder: str, cache_dir: Path = CACHE_DIR) -> Path:
    """Cache file for this folder (its listing and sizes) and embedder."""
    digest = hashlib.sha1()
    for name, path in list_photos(data):  # names and sizes, not where the folder is
        digest.update(f"{name}/{Path(path).name}:{Path(path).stat().st_size}\n".encode())
    digest.update(f"v{VARIANTS}-views2".encode())  # views2: raw outputs as is and mirrored
    return Path(cache_dir) / f"{embedder}-{digest.hexdigest()[:12]}.npz"


def views_to_embeddings(raw: np.ndarray, flip: bool) -> np.ndarray:
    """L2-normalised embeddings from raw outputs ``(..., 2, D)`` (as is, mirrored): the
    first view alone, or (``flip``) the sum of both, as the embedder itself does. All-zero
    rows (no face) stay zero."""
    vec = (raw[..., 0, :] + raw[..., 1, :]) if flip else raw[..., 0, :].copy()
    norm = np.linalg.norm(vec, axis=-1, keepdims=True)
    return np.divide(vec, norm, out=np.zeros_like(vec), where=norm > 0).astype(np.float32)


def default_flip(config: Config) -> bool:
    """Whether the device flip-averages with this embedder (the manifest's ``flip_average``)."""
    from firmware.inference.embedder import manifest_entry

    return bool(manifest_entry(config.recognition.embedder).get("flip_average", False))


def load_photoset(data: Path, config: Config, cache_dir: Path = CACHE_DIR, flip: bool | None = None) -> PhotoSet:
    """Embed every photo and its camera-like frames (or load them from the cache), with
    (``flip``) or without test-time flip averaging; None = as the device does."""
    flip = default_flip(config) if flip is None else flip
    path = cache_path(data, config.recognition.embedder, cache_dir)
    photos = list_photos(data)
    names, paths = [n for n, _ in photos], [p for _, p in photos]
    if path.is_file():
        z = np.load(path)
        return PhotoSet(names, paths, views_to_embeddings(z["raw"], flip), z["quality"], z["ok"], flip)
    embedder = FrameEmbedder(config)
    n = len(photos)
    raw = np.zeros((n, 1 + VARIANTS, 2, embedder.dim), np.float32)
    quality = np.zeros((n, 1 + VARIANTS), np.float32)
    ok = np.zeros((n, 1 + VARIANTS), bool)
    started = time.monotonic()
    try:
        for i, (_, photo) in enumerate(photos):
            image = cv2.imread(photo, cv2.IMREAD_COLOR)
            if image is None:
                logger.warning("%s: not a readable image, skipped", photo)
                continue
            seed = zlib.crc32(Path(photo).name.encode())
            frames = [image] + [camera_like(image, seed * 16 + v) for v in range(VARIANTS)]
            for v, img in enumerate(frames):
                raw[i, v], quality[i, v], ok[i, v] = embedder.frame(img)
            if i % 250 == 0:
                logger.info("embedded %d / %d photos (%.0f s)", i, n, time.monotonic() - started)
    finally:
        embedder.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, raw=raw, quality=quality, ok=ok)
    path.chmod(0o600)
    return PhotoSet(names, paths, views_to_embeddings(raw, flip), quality, ok, flip)
