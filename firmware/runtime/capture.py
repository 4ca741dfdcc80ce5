"""Enrolment at the door: keep N good frames of one person from the live camera.

The console starts a capture for a person (``POST /v1/capture``); while it runs the device
loop hands the LARGEST face of every frame to :meth:`EnrolCapture.offer` instead of the
decision engine (other faces are decided as usual), and the kiosk shows the capture's
prompt ("Look straight at the camera", "Turn your head slightly left"...). A frame is
kept when the face passed the quality gate (size, yaw/pitch, sharpness) and the liveness
check of the configured policy (a blink, unless the policy is ``off``), its eyes are open
(not mid-blink: ``EYES_OPEN`` of the track's recent open-eye baseline), at least
``STEP_S`` seconds after the previous one and not a near-copy of a kept frame; after each
kept frame the prompt moves on. A frame in the pose the prompt asks for (head yaw/pitch
relative to the first, "look straight" frame) is kept at once;
when the person does not get there within ``POSE_WAIT_S`` seconds any good frame will do
(``pose_ok`` says which it was), so a capture never stalls on a stiff neck. The capture ends ``done`` with ``target`` frames,
``timed_out`` after ``timeout_s`` seconds (the frames kept so far stay available) or
``cancelled``. The admin then keeps or discards each frame in the console; kept ones are
stored by the :class:`~firmware.runtime.enrol.Enroller` as ``device`` templates.

Thread model: :meth:`offer` runs on the loop's thread, everything else on control API
threads; one lock guards the state.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Protocol

import numpy as np

from firmware.domain.liveness import Verdict
from firmware.domain.liveness_measures import GateResult
from firmware.runtime.enrol import Face

PROMPTS = ("Look straight at the camera", "Turn your head slightly left", "Turn your head slightly right",
           "Tilt your chin up slightly", "Look straight at the camera again")
# The pose each prompt asks for, as tests on (yaw, pitch) in degrees RELATIVE to the first
# kept ("look straight") frame, whose own test is absolute. Signs follow
# liveness_measures.head_pose: the person's own left turn makes yaw > 0, chin up pitch > 0.
POSES = (lambda yaw, pitch: abs(yaw) < 12 and abs(pitch) < 15,
         lambda yaw, pitch: yaw >= 8,
         lambda yaw, pitch: yaw <= -8,
         lambda yaw, pitch: pitch >= 6,
         lambda yaw, pitch: abs(yaw) < 6 and abs(pitch) < 6)
POSE_WAIT_S = 2.5       # seconds a prompt waits for its pose before any good frame will do
WAIT_PROMPT = "Step in front of the camera"
BLINK_PROMPT = "Look at the camera and blink naturally"
STEP_S = 0.8            # seconds between kept frames (time to follow the next prompt)
NEAR_COPY = 0.999       # cosine above which a frame is a copy of a kept one (frames of one still
                        # visit score 0.99-0.998 with dlib: only true copies are skipped)
EYES_OPEN = 0.85        # a kept frame's eye openness must be at least this x the track's open baseline
BASELINE_FRAMES = 30    # frames of eye openness behind that baseline (75th percentile)
DEFAULT_FRAMES = 5
MAX_FRAMES = 10
DEFAULT_TIMEOUT_S = 60.0


class CaptureState(StrEnum):
    """Where a capture is."""

    CAPTURING = "capturing"
    DONE = "done"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class LivenessLike(Protocol):
    """A per-track liveness state machine, as the decision engine uses (its ``update``
    returns a state whose ``verdict`` is pending | look_at_camera | live | spoof)."""

    def update(self, ts: float, openness: Any, gate: GateResult) -> Any: ...


@dataclass(slots=True)
class CapturedFrame:
    """One kept frame: the face crop (JPEG), its embedding and its quality measures."""

    index: int
    jpeg: bytes
    embedding: np.ndarray
    prompt: str
    face_px: float
    yaw_deg: float
    pitch_deg: float
    sharpness: float
    at: float   # seconds since the capture started
    pose_ok: bool = True   # in the pose its prompt asked for

    def view(self) -> dict:
        return {"index": self.index, "prompt": self.prompt, "face_px": round(self.face_px),
                "yaw_deg": round(self.yaw_deg, 1), "pitch_deg": round(self.pitch_deg, 1),
                "sharpness": round(self.sharpness, 1), "at_s": round(self.at, 2), "pose_ok": self.pose_ok}


class EnrolCapture:
    """One capture for ``person_id``. ``liveness_factory`` makes a per-track liveness
    tracker (None: liveness off); ``clock`` is in seconds (monotonic)."""

    def __init__(self, person_id: str, name: str, *, target: int = DEFAULT_FRAMES,
                 timeout_s: float = DEFAULT_TIMEOUT_S, liveness_factory: Callable[[], LivenessLike] | None,
                 clock: Callable[[], float]) -> None:
        self.person_id, self.name = person_id, name
        self.target = max(1, min(int(target), MAX_FRAMES))
        self.timeout_s = timeout_s
        self._factory = liveness_factory
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self.state = CaptureState.CAPTURING
        self.frames: list[CapturedFrame] = []
        self.prompt = WAIT_PROMPT
        self.message = ""
        self._track: int | None = None
        self._liveness: LivenessLike | None = None
        self._live = liveness_factory is None
        self._last_kept = float("-inf")
        self._step_since: float | None = None   # when the current prompt was first shown (ts)
        self._openness: deque[float] = deque(maxlen=BASELINE_FRAMES)

    @property
    def active(self) -> bool:
        return self.state is CaptureState.CAPTURING

    def _check_timeout(self) -> None:
        if self.active and self._clock() - self._started > self.timeout_s:
            self.state = CaptureState.TIMED_OUT
            self.prompt = ""
            self.message = (f"time is up after {self.timeout_s:.0f} s with {len(self.frames)} of "
                            f"{self.target} frames")

    def no_face(self) -> None:
        """A frame without a usable face (loop thread)."""
        with self._lock:
            self._check_timeout()
            if self.active and not self.frames:
                self.prompt = WAIT_PROMPT

    def offer(self, track_id: int, ts: float, gate: GateResult, openness: Any,
              crop: Callable[[], bytes], embed: Callable[[], np.ndarray]) -> bool:
        """The largest face of a frame (loop thread); True when it was kept. ``crop`` and
        ``embed`` are called only for a frame worth keeping."""
        with self._lock:
            self._check_timeout()
            if not self.active:
                return False
            self._follow(track_id)
            if gate.ok and getattr(openness, "mean", None) is not None:
                self._openness.append(float(openness.mean))
            if not self._is_live(ts, gate, openness):
                return False
            if not gate.ok:
                self.prompt = _gate_prompt(gate.reason)
                return False
            if not self._eyes_open(openness):
                return False
            self.prompt = PROMPTS[len(self.frames) % len(PROMPTS)]
            if self._step_since is None:
                self._step_since = ts
            if ts - self._last_kept < STEP_S:
                return False
            pose_ok = self._pose_ok(gate)
            if not pose_ok and ts - self._step_since < POSE_WAIT_S:
                return False
            return self._keep(ts, gate, crop, embed, pose_ok)

    def _follow(self, track_id: int) -> None:
        """A new face in front of the camera starts liveness over."""
        if track_id != self._track:
            self._track = track_id
            self._liveness = self._factory() if self._factory else None
            self._live = self._liveness is None
            self._openness.clear()

    def _eyes_open(self, openness: Any) -> bool:
        """False while the eyes are closing or closed (a blink) against the recent baseline."""
        mean = getattr(openness, "mean", None)
        if mean is None:
            return True
        if len(self._openness) < 5:
            return False
        return mean >= EYES_OPEN * float(np.percentile(self._openness, 75))

    def _is_live(self, ts: float, gate: GateResult, openness: Any) -> bool:
        if self._live:
            return True
        state = self._liveness.update(ts, openness, gate)
        verdict = getattr(state, "verdict", Verdict.PENDING)
        verdict = str(getattr(verdict, "value", verdict))
        if verdict == Verdict.LIVE.value:
            self._live = True
            return True
        if verdict == Verdict.SPOOF.value:
            self.message = "no blink was seen: look at the camera and blink naturally"
            self._liveness = self._factory()
        self.prompt = BLINK_PROMPT
        return False

    def _pose_ok(self, gate: GateResult) -> bool:
        """Is the face in the pose the current prompt asks for (relative to the first frame)?"""
        base = self.frames[0] if self.frames else None
        yaw = gate.yaw_deg - (base.yaw_deg if base else 0.0)
        pitch = gate.pitch_deg - (base.pitch_deg if base else 0.0)
        return POSES[len(self.frames) % len(POSES)](yaw, pitch)

    def _keep(self, ts: float, gate: GateResult, crop: Callable[[], bytes], embed: Callable[[], np.ndarray],
              pose_ok: bool) -> bool:
        embedding = np.asarray(embed(), np.float32)
        if any(float(f.embedding @ embedding) > NEAR_COPY for f in self.frames):
            return False
        self.frames.append(CapturedFrame(len(self.frames), crop(), embedding, self.prompt, gate.face_px,
                                         gate.yaw_deg, gate.pitch_deg, gate.sharpness,
                                         self._clock() - self._started, pose_ok))
        self._last_kept, self._step_since = ts, None
        if len(self.frames) >= self.target:
            self.state, self.prompt, self.message = CaptureState.DONE, "Thank you", ""
        else:
            self.prompt = PROMPTS[len(self.frames) % len(PROMPTS)]
        return True

    def cancel(self) -> None:
        with self._lock:
            if self.active:
                self.state, self.prompt = CaptureState.CANCELLED, ""

    def status(self) -> dict:
        """What the console polls."""
        with self._lock:
            self._check_timeout()
            return {"person_id": self.person_id, "name": self.name, "state": self.state.value,
                    "prompt": self.prompt, "message": self.message, "target": self.target,
                    "kept": len(self.frames), "elapsed_s": round(self._clock() - self._started, 1),
                    "timeout_s": self.timeout_s, "frames": [f.view() for f in self.frames]}

    def frame(self, index: int) -> CapturedFrame | None:
        with self._lock:
            return self.frames[index] if 0 <= index < len(self.frames) else None

    def faces(self, indices: list[int]) -> list[Face]:
        """The kept frames ``indices`` (unknown indices are ignored) as faces to enrol."""
        with self._lock:
            return [Face(self.frames[i].embedding, self.frames[i].jpeg)
                    for i in sorted(set(indices)) if 0 <= i < len(self.frames)]


def _gate_prompt(reason: str) -> str:
    return {"too_small": "Come a little closer", "turned": "Face the camera",
            "blurred": "Hold still for a moment", "no_face": WAIT_PROMPT}.get(reason, "Face the camera")
