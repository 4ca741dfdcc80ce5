"""The device loop: frames from the camera slot -> faces -> tracks -> decisions.

:class:`FrameAnalyser` wraps the inference parts (created once): BlazeFace on the lores
frame, Face Mesh + eyelids + quality gate on the main frame, and the embedder when the
decision engine asks for an embedding. :class:`DeviceLoop` runs on the main thread; every
frame it updates the tracker and the :class:`~firmware.domain.decisions.DecisionEngine`
and hands each decision to the device (store, indicators, MQTT). It pings the systemd
watchdog only while healthy, and once a second lets the device run its housekeeping
(session schedule, roster refresh, telemetry).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from firmware.config import Config
from firmware.domain.decisions import Decision, DecisionEngine
from firmware.domain.evidence import frame_quality
from firmware.domain.liveness_measures import assess_face
from firmware.domain.tracking import Tracker
from firmware.domain.types import Detection, Frame
from firmware.hal.camera import IDLE_STATES, Camera, CameraState
from firmware.hal.systemd import Notifier
from firmware.inference import images
from firmware.inference.align import align_face
from firmware.inference.detector import model_file
from firmware.inference.eyelids import EyelidModel
from firmware.inference.pipeline import FacePipeline
from firmware.runtime.capture import EnrolCapture
from firmware.runtime.tuning import quality_spec

logger = logging.getLogger(__name__)

STALL_S = 10.0  # seconds without a frame while the camera says "running" = unhealthy


@dataclass(slots=True)
class Overlay:
    """What the live view draws for one face: box (frame pixels), track id, stage, label."""

    box: np.ndarray
    track_id: int
    stage: str
    label: str = ""
    prompt: str = ""


class FrameAnalyser:
    """The device loop's view of the one face pipeline
    (:class:`~firmware.inference.pipeline.FacePipeline`: detector, mesh, embedder, loaded
    once from ``models_dir``) plus what liveness needs: the eyelid model and the quality gate.

    Detection runs on ``frame.lores`` (``camera.detect_width`` pixels wide); boxes are
    scaled back to full-frame pixels. ``min_face_px`` is in full-frame pixels.
    """

    def __init__(self, config: Config, models_dir: str | os.PathLike, *, num_threads: int = 2) -> None:
        self._assess, self._align = assess_face, align_face

        det = config.detection
        self.config = config
        self.min_face_px = det.min_face_px
        self.pipeline = FacePipeline(models_dir, detector_id=det.model, embedder_id=config.recognition.embedder,
                                     min_face_px=0, score_threshold=det.score_threshold, max_faces=det.max_faces,
                                     num_threads=num_threads)
        self.detector, self.mesh = self.pipeline.detector, self.pipeline.mesh
        self.embedder = self.pipeline.embedder   # loaded now: a missing model fails at start
        self.eyelids = None
        if Path(model_file(models_dir, "iris_landmark")).is_file():
            self.eyelids = EyelidModel(models_dir, num_threads=num_threads)
        self.min_presence = self.pipeline.min_presence
        self.quality_spec = quality_spec(config)

    def detect(self, frame: Frame) -> list[Detection]:
        """Faces in the frame, boxes and keypoints in full-frame pixels."""
        small = frame.lores if frame.lores is not None else frame.image
        scale = frame.image.shape[1] / small.shape[1]
        out = []
        for d in self.detector.detect(small):
            if scale != 1.0:
                d = Detection(d.box * scale, d.score, d.keypoints * scale)
            if d.width >= self.min_face_px:
                out.append(d)
        return out

    def measure(self, frame: Frame, det: Detection) -> tuple[Any, Any, Any] | None:
        """(landmarks, eye openness, quality gate) of one face; None if the mesh sees no face."""
        landmarks = self.mesh.landmarks(frame.image, det)
        if landmarks.presence < self.min_presence:
            return None
        lids = self.eyelids.eyelids(frame.image, landmarks.points) if self.eyelids else None
        openness, gate = self._assess(frame.image, det.box, landmarks.points, lids, self.config.liveness,
                                     self.min_face_px)
        return landmarks, openness, gate

    def quality(self, det: Detection, landmarks: Any, gate: Any) -> float:
        """Quality weight 0..1 of this face in this frame (size, sharpness, pose, detector
        and mesh scores; :func:`firmware.domain.evidence.frame_quality`)."""
        return frame_quality(self.quality_spec, face_px=gate.face_px, sharpness=gate.sharpness,
                             yaw_deg=gate.yaw_deg, pitch_deg=gate.pitch_deg, detector_score=det.score,
                             presence=landmarks.presence)

    def embed(self, frame: Frame, landmarks: Any) -> np.ndarray:
        """L2-normalised embedding of the aligned face."""
        return self.embedder.embed(self._align(frame.image, landmarks, self.embedder.alignment))

    def close(self) -> None:
        """Release every interpreter (safe twice)."""
        self.pipeline.close()
        if self.eyelids is not None:
            self.eyelids.close()


class Sink(Protocol):
    """What the loop reports to (the Device)."""

    def on_decision(self, decision: Decision, frame: Frame, box: np.ndarray) -> None: ...

    def on_frame_start(self, frame: Frame) -> None:
        """The loop took ``frame`` (let go of any older frame: only one is kept)."""

    def on_frame(self, frame: Frame, overlays: list[Overlay]) -> None:
        """The loop finished ``frame``; ``overlays``: what the live view draws on it."""

    def housekeeping(self) -> None: ...


class LoopStats:
    """Frame rate and decision latency (bounded history)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.frames = 0
        self.decisions = 0
        self.errors = 0
        self.outcomes: Counter[str] = Counter()
        self.fps = 0.0
        self.latencies_s: deque[float] = deque(maxlen=512)
        self.process_ms: deque[float] = deque(maxlen=512)
        self.last_frame_at: float | None = None
        self._window: deque[float] = deque(maxlen=60)

    def frame(self, started: float) -> None:
        now = self.clock()
        self.frames += 1
        self.last_frame_at = now
        self.process_ms.append((now - started) * 1000.0)
        self._window.append(now)
        if len(self._window) > 1:
            self.fps = (len(self._window) - 1) / max(self._window[-1] - self._window[0], 1e-6)

    def current_fps(self) -> float:
        """Frames per second over the last ~60 frames; 0 when none came for 2 s."""
        if self.last_frame_at is None or self.clock() - self.last_frame_at > 2.0:
            return 0.0
        return self.fps

    def summary(self) -> dict:
        lat = sorted(self.latencies_s)
        return {"frames": self.frames, "fps": round(self.current_fps(), 2), "decisions": self.decisions,
                "errors": self.errors,
                "decision_latency_ms_median": round(1000 * lat[len(lat) // 2], 1) if lat else None,
                "process_ms_median": round(float(np.median(self.process_ms)), 1) if self.process_ms else None}


class DeviceLoop:
    """Runs until ``stop`` is set, the replay ends, or ``max_frames`` frames were processed.

    ``analyser`` None = models missing: frames still feed the live view, nobody is
    recognised. ``notifier`` is a :class:`~firmware.hal.systemd.Notifier`. ``capture``
    returns the running enrolment capture, if any: it gets the largest face of each frame
    instead of the decision engine.
    """

    def __init__(self, *, camera: Camera, engine: DecisionEngine, sink: Sink, analyser: FrameAnalyser | None,
                 tracker: Tracker | None = None, notifier: Notifier | None = None, max_frames: int | None = None,
                 housekeeping_s: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 capture: Callable[[], EnrolCapture | None] | None = None) -> None:
        self.camera = camera
        self.capture = capture
        self.engine = engine
        self.sink = sink
        self.analyser = analyser
        self.tracker = tracker or Tracker()
        self.notifier = notifier
        self.max_frames = max_frames
        self.housekeeping_s = housekeeping_s
        self.clock = clock
        self.stats = LoopStats(clock)
        self._last_housekeeping = float("-inf")
        self._failing = False
        self._started_at: float | None = None  # grace period for the first frame

    def healthy(self) -> bool:
        """Frames flowing, or idle for a reason the status already explains."""
        state = self.camera.state
        if state in IDLE_STATES:
            return True
        last = self.stats.last_frame_at if self.stats.last_frame_at is not None else self._started_at
        return last is not None and self.clock() - last < STALL_S

    def run(self, stop: threading.Event) -> str:
        """The loop; returns why it ended: ``stopped`` | ``max_frames`` | ``replay_ended``."""
        self._started_at = self.clock()
        if self.notifier is not None:
            self.notifier.ready("running")
        while not stop.is_set():
            frame = self.camera.slot.get(timeout=0.25)
            if frame is not None:
                self._process_safely(frame)
            if self.notifier is not None:
                self.notifier.tick(self.healthy())
            self._housekeeping()
            if self.max_frames is not None and self.stats.frames >= self.max_frames:
                return "max_frames"
            if frame is None and self.camera.state == CameraState.ENDED:
                return "replay_ended"
        return "stopped"

    def _process_safely(self, frame: Frame) -> None:
        """One bad frame must not stop the device: log the first failure (with its
        traceback) and the recovery once; frames that fail do not count as processed,
        so a loop that fails on every frame stops pinging the watchdog."""
        try:
            self.process(frame)
        except Exception:  # logged once per failing streak, counted always
            self.stats.errors += 1
            if not self._failing:
                logger.exception("frame %d could not be processed; skipping failing frames", frame.index)
            self._failing = True
            return
        if self._failing:
            logger.warning("frames are processed again (%d failed)", self.stats.errors)
            self._failing = False

    def _housekeeping(self) -> None:
        now = self.clock()
        if now - self._last_housekeeping < self.housekeeping_s:
            return
        self._last_housekeeping = now
        try:
            self.sink.housekeeping()
        except Exception:  # housekeeping must never stop the loop; logged with its traceback
            logger.exception("housekeeping failed")

    def process(self, frame: Frame) -> list[Decision]:
        """One frame: detect, track, measure, decide. Returns the decisions made."""
        started = self.clock()
        self.sink.on_frame_start(frame)
        decisions: list[Decision] = []
        overlays: list[Overlay] = []
        detections = self.analyser.detect(frame) if self.analyser is not None else []
        pairs = self.tracker.update(detections, frame.ts)
        for track in self.tracker.ended:
            self.engine.end_track(track.id)
        capture = self.capture() if self.capture is not None else None
        enrolling = self._enrolled_face(capture, frame, pairs)
        for track, det in pairs:
            if track.id == enrolling:
                overlays.append(Overlay(det.box, track.id, "enrol", "", capture.prompt))
                continue
            decision, track_id = self._face(frame, track.id, det)
            if decision is not None:
                decisions.append(decision)
                self.stats.decisions += 1
                self.stats.outcomes[decision.outcome.value] += 1
                self.stats.latencies_s.append(decision.latency_s)
                self.sink.on_decision(decision, frame, det.box)
            overlays.append(self._overlay(track_id, det))
        self.sink.on_frame(frame, overlays)
        self.stats.frame(started)
        return decisions

    def _enrolled_face(self, capture: EnrolCapture | None, frame: Frame, pairs: list) -> int | None:
        """Offer the largest face to a running capture; its track id (None: no capture)."""
        if capture is None or not capture.active or self.analyser is None:
            return None
        if not pairs:
            capture.no_face()
            return None
        track, det = max(pairs, key=lambda pair: pair[1].width)
        measured = self.analyser.measure(frame, det)
        if measured is None:
            capture.no_face()
            return track.id
        landmarks, openness, gate = measured
        capture.offer(track.id, frame.ts, gate, openness, crop=lambda: images.face_jpeg(frame.image, det.box),
                      embed=lambda: self.analyser.embed(frame, landmarks))
        return track.id

    def _face(self, frame: Frame, track_id: int, det: Detection) -> tuple[Decision | None, int]:
        measured = self.analyser.measure(frame, det)
        if measured is None:
            return None, track_id
        landmarks, openness, gate = measured
        embedding, quality = None, None
        if gate.ok and self.engine.wants_embedding(track_id, frame.ts):
            embedding = self.analyser.embed(frame, landmarks)
            quality = self.analyser.quality(det, landmarks, gate)
            if self.engine.is_swap(track_id, embedding):
                logger.info("track %d: a different face took its place; new track", track_id)
                self.engine.end_track(track_id)
                track_id = self.tracker.split(track_id).id
        decision = self.engine.observe(track_id, frame.ts, openness=openness, gate=gate, embedding=embedding,
                                       quality=quality)
        return decision, track_id

    def _overlay(self, track_id: int, det: Detection) -> Overlay:
        state = self.engine.tracks.get(track_id)
        if state is None:
            return Overlay(det.box, track_id, "detected")
        return Overlay(det.box, track_id, state.stage, state.person_id or "", state.prompt)
