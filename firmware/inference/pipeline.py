"""The recognition pipeline: detect -> mesh -> align -> embed, with per-stage timings.

All models are loaded once in the constructor. :meth:`FacePipeline.analyse` runs per frame
and allocates no interpreters and logs nothing; its stage times (milliseconds) go into a
fixed-size ring buffer in :class:`StageStats` that telemetry or the bench reads.

A detection whose mesh face-presence score is below ``min_presence`` is dropped: BlazeFace
sometimes fires on face-like background (a window, a poster) and the mesh says "no face".
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np

from firmware.domain.types import Detection, FaceObservation
from firmware.inference.align import align_face
from firmware.inference.detector import FaceDetector
from firmware.inference.embedder import Embedder
from firmware.inference.mesh import FaceMesh

logger = logging.getLogger(__name__)

STAGES = ("detect", "landmarks", "align", "embed")


class StageStats:
    """Rolling per-stage latencies in milliseconds (last ``window`` samples per stage)."""

    def __init__(self, window: int = 512) -> None:
        self.window = window
        self._ms = {stage: np.zeros(window, np.float64) for stage in STAGES}
        self._count = dict.fromkeys(STAGES, 0)

    def add(self, stage: str, ms: float) -> None:
        """Record one sample of ``stage`` taking ``ms`` milliseconds."""
        self._ms[stage][self._count[stage] % self.window] = ms
        self._count[stage] += 1

    def samples(self, stage: str) -> np.ndarray:
        """The stored samples of ``stage`` (ms), oldest order not guaranteed."""
        return self._ms[stage][: min(self._count[stage], self.window)]

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {"count", "median_ms", "p95_ms"}} over the stored samples."""
        out: dict[str, dict[str, float]] = {}
        for stage in STAGES:
            values = self.samples(stage)
            if values.size:
                out[stage] = {"count": float(self._count[stage]),
                              "median_ms": float(np.median(values)),
                              "p95_ms": float(np.percentile(values, 95))}
        return out

    def reset(self) -> None:
        """Forget every sample."""
        self._count = dict.fromkeys(STAGES, 0)


class FacePipeline:
    """Detector + mesh + embedder created once; :meth:`analyse` per frame.

    ``min_face_px`` is the smallest face box width in frame pixels that is analysed;
    ``num_threads`` the CPU threads per interpreter.
    """

    def __init__(self, models_dir: str | os.PathLike, *, detector_id: str = "blazeface_short",
                 embedder_id: str = "dlib_resnet_int8", min_face_px: int = 64,
                 score_threshold: float = 0.6, max_faces: int = 5, min_presence: float = 0.5,
                 num_threads: int = 2, detector: FaceDetector | None = None,
                 mesh: FaceMesh | None = None, embedder: Embedder | None = None) -> None:
        self.detector = detector or FaceDetector(models_dir, detector_id, score_threshold=score_threshold,
                                                 min_face_px=min_face_px, max_faces=max_faces,
                                                 num_threads=num_threads)
        self.mesh = mesh or FaceMesh(models_dir, num_threads=num_threads)
        self._models_dir = models_dir
        self._embedder = embedder
        self._embedder_id = embedder_id
        self._num_threads = num_threads
        self.min_presence = min_presence
        self.stats = StageStats()
        logger.info("face pipeline ready: %s + face_mesh + %s", self.detector.model_id, embedder_id)

    @classmethod
    def from_config(cls, config: Any, models_dir: str | os.PathLike | None = None) -> FacePipeline:
        """Build from a :class:`firmware.config.Config` (detection + recognition sections)."""
        det, rec = config.detection, config.recognition
        return cls(models_dir or config.paths.models_dir, detector_id=det.model, embedder_id=rec.embedder,
                   min_face_px=det.min_face_px, score_threshold=det.score_threshold, max_faces=det.max_faces)

    @property
    def embedder(self) -> Embedder:
        """The embedder (loaded at first use, so detection-only tools need no embedder file)."""
        if self._embedder is None:
            self._embedder = Embedder(self._models_dir, self._embedder_id, num_threads=self._num_threads)
        return self._embedder

    def _timed(self, stage: str, start: float) -> float:
        now = time.perf_counter()
        self.stats.add(stage, (now - start) * 1000.0)
        return now

    def observe(self, image_bgr: np.ndarray, detection: Detection, ts: float = 0.0,
                with_embedding: bool = True) -> FaceObservation | None:
        """Landmarks (+ chip and embedding) for one detection; None if the mesh sees no face."""
        start = time.perf_counter()
        landmarks = self.mesh.landmarks(image_bgr, detection)
        start = self._timed("landmarks", start)
        if landmarks.presence < self.min_presence:
            return None
        obs = FaceObservation(detection=detection, ts=ts, landmarks=landmarks)
        if with_embedding:
            embedder = self.embedder
            obs.chip = align_face(image_bgr, landmarks, embedder.alignment)
            start = self._timed("align", start)
            obs.embedding = embedder.embed(obs.chip)
            self._timed("embed", start)
        return obs

    def analyse(self, image_bgr: np.ndarray, with_embeddings: bool = True, ts: float = 0.0) -> list[FaceObservation]:
        """Every face in ``image_bgr`` (BGR uint8), best detector score first."""
        start = time.perf_counter()
        detections = self.detector.detect(image_bgr)
        self._timed("detect", start)
        observations = []
        for detection in detections:
            obs = self.observe(image_bgr, detection, ts, with_embeddings)
            if obs is not None:
                observations.append(obs)
        return observations

    def close(self) -> None:
        """Release every interpreter (safe twice)."""
        self.detector.close()
        self.mesh.close()
        if self._embedder is not None:
            self._embedder.close()

    def __enter__(self) -> FacePipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
