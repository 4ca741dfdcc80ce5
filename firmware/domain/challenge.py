"""Head-pose challenge liveness: random prompts a recorded video cannot know in advance.

A blink proves little against a video of the enrolled person played on a phone: the video
blinks too. The ``challenge`` policy therefore asks each track for a random sequence of
2-3 prompts drawn from turn left, turn right, look up, look down and blink, shown one at a
time, each to be done within ``challenge_step_s`` seconds of being shown and in order.

Pose is measured relative to the person's own neutral pose (:mod:`firmware.domain.head_pose`):
the tracker first waits for a steady frontal face (``NEUTRAL_S`` seconds whose yaw and
pitch stay within ``NEUTRAL_SPREAD_DEG``, or the last ``NEUTRAL_S`` once ``SETTLE_MAX_S``
seconds of frontal face went by) and takes its median as neutral. A *move* is an
excursion from neutral: it starts when the yaw (pitch) leaves neutral by
``challenge_yaw_deg`` (``challenge_pitch_deg``), its direction is the axis with the larger
excursion relative to its threshold, and a new move can only start after the head came
back within half the thresholds (hysteresis: jitter of a degree or two never counts).

A try fails on a move in the wrong direction (any move during a blink prompt), a move or
blink that starts less than ``challenge_reaction_s`` after its prompt was shown (too
early: the face moved before it could have seen the prompt) and on a timeout. After a
failed try the person sees "try again" for ``RETRY_PAUSE_S`` and a freshly drawn sequence;
after ``challenge_tries`` failed tries the verdict is ``spoof`` (latched). Blinks during a
head-pose prompt are ignored (people blink all the time). At most one blink prompt per
try, never the same prompt twice in a row, at least one head-pose prompt.

Pure Python + numpy, no clock (timestamps come in), ``rng`` injected.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass
from enum import Enum

import numpy as np

from firmware.config import LivenessConfig
from firmware.domain.head_pose import relative_yaw_pitch
from firmware.domain.liveness import LOST_GAP_S, LivenessState, LivenessTracker, Verdict
from firmware.domain.liveness_measures import EyeOpenness, GateResult

logger = logging.getLogger(__name__)

NEUTRAL_S = 0.4            # seconds of steady frontal pose that define neutral
NEUTRAL_MIN_FRAMES = 3     # and at least this many frames
NEUTRAL_SPREAD_DEG = 8.0   # largest yaw/pitch range (degrees) over that time
SETTLE_MAX_S = 1.5         # after this long with a frontal face, take its recent median anyway
EXIT_FRACTION = 0.7        # back to neutral below this fraction of the move thresholds
RETRY_PAUSE_S = 1.0        # "try again" shown this long between tries
MAX_POSE_DEG = 75.0        # a relative angle beyond this is a mesh failure, not a pose


class Prompt(str, Enum):
    """What the person is asked to do (value = the kiosk's and LED's code)."""

    LEFT = "turn_left"
    RIGHT = "turn_right"
    UP = "look_up"
    DOWN = "look_down"
    BLINK = "blink"


POSE_PROMPTS = (Prompt.LEFT, Prompt.RIGHT, Prompt.UP, Prompt.DOWN)
PROMPT_TEXT = {Prompt.LEFT: "Turn left", Prompt.RIGHT: "Turn right", Prompt.UP: "Look up",
               Prompt.DOWN: "Look down", Prompt.BLINK: "Blink"}


@dataclass(frozen=True, slots=True)
class Move:
    """A head excursion from neutral: its direction and the timestamp (seconds) at which
    it crossed the threshold."""

    direction: Prompt
    onset_ts: float


class MoveDetector:
    """Turns relative (yaw, pitch) samples into :class:`Move` events with hysteresis."""

    def __init__(self, yaw_deg: float, pitch_deg: float) -> None:
        self.yaw_deg, self.pitch_deg = yaw_deg, pitch_deg
        self.away = True  # until the head is seen at neutral, nothing counts as a move

    def update(self, ts: float, yaw: float, pitch: float) -> Move | None:
        """Feed one sample (degrees); returns the move that started on it, if any."""
        sy, sp = yaw / self.yaw_deg, pitch / self.pitch_deg
        if self.away:
            if abs(sy) < EXIT_FRACTION and abs(sp) < EXIT_FRACTION:
                self.away = False
            return None
        if max(abs(sy), abs(sp)) < 1.0:
            return None
        self.away = True
        if abs(sy) >= abs(sp):
            return Move(Prompt.LEFT if sy > 0 else Prompt.RIGHT, ts)
        return Move(Prompt.UP if sp > 0 else Prompt.DOWN, ts)


class _Neutral:
    """The person's neutral pose: the median of the first steady frontal stretch."""

    def __init__(self) -> None:
        self.reference: np.ndarray | None = None
        self.value: tuple[float, float] | None = None
        self._recent: deque[tuple[float, float, float]] = deque()
        self._first_ts: float | None = None

    def angles(self, shape: np.ndarray) -> tuple[float, float]:
        """(yaw, pitch) of ``shape`` relative to the first shape seen (degrees)."""
        if self.reference is None:
            self.reference = shape
        return relative_yaw_pitch(self.reference, shape)

    def settle(self, ts: float, yaw: float, pitch: float) -> bool:
        """Add a frontal sample; True once neutral is known (a steady stretch, or the
        recent median once SETTLE_MAX_S seconds of frontal face went by)."""
        if self._first_ts is None:
            self._first_ts = ts
        self._recent.append((ts, yaw, pitch))
        while ts - self._recent[0][0] > NEUTRAL_S:
            self._recent.popleft()
        arr = np.asarray(self._recent)
        if len(arr) < NEUTRAL_MIN_FRAMES or ts - arr[0, 0] < NEUTRAL_S * 0.75:
            return False
        steady = np.ptp(arr[:, 1]) <= NEUTRAL_SPREAD_DEG and np.ptp(arr[:, 2]) <= NEUTRAL_SPREAD_DEG
        if not steady and ts - self._first_ts < SETTLE_MAX_S:
            return False
        self.value = (float(np.median(arr[:, 1])), float(np.median(arr[:, 2])))
        return True


class _Phase(str, Enum):
    SETTLE = "settle"
    STEP = "step"
    PAUSE = "pause"
    DONE = "done"


class ChallengeTracker:
    """Head-pose challenge liveness of ONE face track (same interface as
    :class:`~firmware.domain.liveness.LivenessTracker`: :meth:`update` per frame,
    :meth:`reset` on loss). ``rng`` draws the prompts (default: the OS's random source)."""

    def __init__(self, config: LivenessConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.SystemRandom()
        self._blinker = LivenessTracker(config, rng=self._rng, counting=True)
        self.reset("start")

    @property
    def steps(self) -> tuple[Prompt, ...]:
        """The current try's prompts, in order."""
        return self._steps

    @property
    def required_blinks(self) -> int:
        """Blink prompts in the current try (for callers that show a blink count)."""
        return sum(p is Prompt.BLINK for p in self._steps)

    def draw(self) -> tuple[Prompt, ...]:
        """A random prompt sequence: challenge_min_steps..challenge_max_steps prompts, no
        prompt twice in a row, at most one blink, at least one head-pose prompt."""
        cfg = self.config
        n = self._rng.randint(cfg.challenge_min_steps, cfg.challenge_max_steps)
        blink_at = self._rng.randrange(n) if n > 1 and self._rng.random() < 0.5 else None
        seq: list[Prompt] = []
        for i in range(n):
            if i == blink_at:
                seq.append(Prompt.BLINK)
                continue
            options = [p for p in POSE_PROMPTS if not seq or p is not seq[-1]]
            seq.append(self._rng.choice(options))
        return tuple(seq)

    def reset(self, reason: str = "") -> None:
        """Forget the track: neutral pose, blinks, tries; draw a new sequence."""
        logger.debug("challenge reset: %s", reason)
        self._blinker.reset(reason)
        self._neutral = _Neutral()
        self._moves = MoveDetector(self.config.challenge_yaw_deg, self.config.challenge_pitch_deg)
        self._steps = self.draw()
        self._step = 0
        self._phase = _Phase.SETTLE
        self._shown_at = 0.0
        self._blinks_seen = 0
        self._failures = 0
        self._verdict = Verdict.PENDING
        self._reason = ""
        self._start: float | None = None
        self._last_ts: float | None = None
        self._track_id: object = None
        self._pose: tuple[float, float] | None = None

    def update(self, ts: float, openness: EyeOpenness | None, gate: GateResult, *,
               track_id: object = None) -> LivenessState:
        """Feed one frame: ``ts`` seconds (camera time), eye openness (None without
        landmarks), the quality gate (whose ``shape`` carries the pose)."""
        self._check_continuity(ts, track_id)
        if self._start is None:
            self._start = ts
        self._last_ts = ts
        if self._phase is _Phase.DONE:
            return self._state(ts)
        self._blinker.update(ts, openness, gate)
        pose = self._relative_pose(gate)
        if self._phase is _Phase.SETTLE:
            self._settle(ts, gate, pose)
        elif self._phase is _Phase.PAUSE:
            self._pause(ts, pose)
        else:
            self._judge(ts, pose)
        return self._state(ts, gate)

    def _check_continuity(self, ts: float, track_id: object) -> None:
        if track_id is not None and self._track_id is not None and track_id != self._track_id:
            self.reset("track changed")
        elif self._last_ts is not None and (ts < self._last_ts or ts - self._last_ts > LOST_GAP_S):
            self.reset("track lost or time went backwards")
        if track_id is not None:
            self._track_id = track_id

    def _relative_pose(self, gate: GateResult) -> tuple[float, float] | None:
        """(yaw, pitch) from neutral (degrees; from the first shape before neutral is
        known), or None when this frame has no usable pose."""
        usable = gate.ok or gate.reason == "turned"
        if not usable or gate.shape is None:
            self._pose = None
            return None
        yaw, pitch = self._neutral.angles(gate.shape)
        if self._neutral.value is not None:
            yaw, pitch = yaw - self._neutral.value[0], pitch - self._neutral.value[1]
        if abs(yaw) > MAX_POSE_DEG or abs(pitch) > MAX_POSE_DEG:
            self._pose = None
            return None
        self._pose = (yaw, pitch)
        return self._pose

    def _settle(self, ts: float, gate: GateResult, pose: tuple[float, float] | None) -> None:
        if pose is None or not gate.ok:
            return
        if self._neutral.settle(ts, *pose):
            self._moves.update(ts, 0.0, 0.0)  # the head is at neutral now
            self._start_step(ts, 0)

    def _start_step(self, ts: float, index: int) -> None:
        self._phase, self._step, self._shown_at = _Phase.STEP, index, ts
        self._blinks_seen = self._blinker.blinks
        logger.debug("challenge prompt %d/%d: %s", index + 1, len(self._steps), self._steps[index].value)

    def _pause(self, ts: float, pose: tuple[float, float] | None) -> None:
        if pose is not None:
            self._moves.update(ts, *pose)  # follow the head; nothing is judged
        if ts - self._shown_at >= RETRY_PAUSE_S:
            self._steps = self.draw()
            self._start_step(ts, 0)

    def _judge(self, ts: float, pose: tuple[float, float] | None) -> None:
        wanted = self._steps[self._step]
        early = self._shown_at + self.config.challenge_reaction_s
        move = self._moves.update(ts, *pose) if pose is not None else None
        blinked = self._blinker.blinks > self._blinks_seen
        self._blinks_seen = self._blinker.blinks
        if move is not None and (wanted is Prompt.BLINK or move.direction is not wanted):
            self._fail(ts, f"wrong move {move.direction.value} for {wanted.value}")
        elif move is not None:
            self._fail(ts, "too early") if move.onset_ts < early else self._pass_step(ts)
        elif wanted is Prompt.BLINK and blinked:
            start = self._blinker.last_blink_start
            self._fail(ts, "blink too early") if start is not None and start < early else self._pass_step(ts)
        elif ts - self._shown_at > self.config.challenge_step_s:
            self._fail(ts, f"timeout on {wanted.value}")

    def _pass_step(self, ts: float) -> None:
        if self._step + 1 < len(self._steps):
            self._start_step(ts, self._step + 1)
            return
        self._phase, self._verdict = _Phase.DONE, Verdict.LIVE
        logger.debug("challenge passed: %s", ",".join(p.value for p in self._steps))

    def _fail(self, ts: float, reason: str) -> None:
        self._failures += 1
        self._reason = reason
        logger.debug("challenge try %d failed: %s", self._failures, reason)
        if self._failures >= self.config.challenge_tries:
            self._phase, self._verdict = _Phase.DONE, Verdict.SPOOF
            return
        self._phase, self._shown_at = _Phase.PAUSE, ts

    def _prompt(self, gate: GateResult | None) -> tuple[Verdict, str, str]:
        """(verdict, prompt code, kiosk text) for the current phase."""
        if self._verdict is Verdict.LIVE:
            return Verdict.LIVE, "", "Thank you"
        if self._verdict is Verdict.SPOOF:
            return Verdict.SPOOF, "", "Liveness check failed: please see the supervisor"
        if self._phase is _Phase.PAUSE:
            return Verdict.PENDING, "try_again", "Try again"
        if self._phase is _Phase.SETTLE:
            if gate is not None and not gate.ok:
                text = "Please come closer" if gate.reason == "too_small" else "Please look at the camera"
                return Verdict.LOOK_AT_CAMERA, "look", text
            return Verdict.PENDING, "hold_still", "Look at the camera and hold still"
        wanted = self._steps[self._step]
        return Verdict.PENDING, wanted.value, PROMPT_TEXT[wanted]

    def _state(self, ts: float, gate: GateResult | None = None) -> LivenessState:
        verdict, code, text = self._prompt(gate)
        elapsed = ts - self._start if self._start is not None else 0.0
        done = len(self._steps) if self._verdict is Verdict.LIVE else self._step
        return LivenessState(
            verdict=verdict, blinks=self._blinker.blinks, required_blinks=self.required_blinks, prompt=text,
            elapsed_s=elapsed, reason=self._reason if verdict is not Verdict.LOOK_AT_CAMERA else gate.reason,
            policy="challenge", prompt_code=code, steps=tuple(p.value for p in self._steps), step=done,
            failures=self._failures, busy=self._phase in (_Phase.STEP, _Phase.PAUSE))

    @property
    def pose(self) -> tuple[float, float] | None:
        """The last frame's (yaw, pitch) relative to neutral in degrees (None if unknown)."""
        return self._pose


def make_tracker(config: LivenessConfig, rng: random.Random | None = None) -> LivenessTracker | ChallengeTracker:
    """The per-track liveness state machine for ``config.policy``."""
    if config.policy == "challenge":
        return ChallengeTracker(config, rng)
    return LivenessTracker(config, rng)
