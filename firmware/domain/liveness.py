"""Blink liveness: a per-track state machine that a still photo can never pass.

Feed one :class:`LivenessTracker` per face track with every frame's timestamp (seconds,
from the camera, never the wall clock), the eyes' openness (or None when the face had no
landmarks) and the quality gate. A blink is open -> closed -> open on the same track,
with the closure lasting ``min_closed_s``..``max_closed_s`` seconds. "Closed" and "open"
are relative to the person's own open-eye baseline (a high percentile of the last few
seconds of openness), so narrow eyes, glasses or a small tilt need no global threshold.
Two guards keep a still photo from ever passing: a closure must also dip ``NOISE_K``
noise spreads below the baseline (a jittery measurement cannot fake one), and a frame
whose face aspect (``EyeOpenness.face_aspect``) jumps is refused (tilting a print away
squashes the eyes like a blink).

Verdicts: ``pending`` (please blink), ``look_at_camera`` (gate failed: too small, turned,
blurred), ``live`` (required blinks seen; latched until :meth:`LivenessTracker.reset`),
``spoof`` (``window_s`` seconds of steady frontal face without the required blinks;
latched too). Policies: ``blink`` (1 blink), ``blink_challenge`` (a random 1..N blinks,
the count is in :attr:`LivenessState.required_blinks` and the prompt), ``off`` (always
live; testing only). The head-pose ``challenge`` policy is
:class:`firmware.domain.challenge.ChallengeTracker`, which uses this tracker (in
``counting`` mode) to see blinks. Pure Python + numpy: no clock, no I/O, a few microseconds per frame.
"""

from __future__ import annotations

import logging
import math
import random
from collections import deque
from dataclasses import dataclass
from enum import Enum

import numpy as np

from firmware.config import LivenessConfig
from firmware.domain.liveness_measures import EyeOpenness, GateResult

logger = logging.getLogger(__name__)

BASELINE_S = 3.0          # seconds of open-eye history behind the baseline
BASELINE_MIN_SAMPLES = 3  # samples needed before a closure can count
BASELINE_MIN_SPAN_S = 0.2  # and the time they must span, seconds
BASELINE_PERCENTILE = 75.0
SMOOTH_TAU_S = 0.03       # time constant of the openness smoothing, seconds
MAX_GAP_S = 0.5           # a gap longer than this between samples aborts a closure
LOST_GAP_S = 2.0          # a gap longer than this means the track was lost: reset
NOISE_K = 4.0             # a closure must also dip this many noise spreads below the baseline
ASPECT_S = 1.5            # seconds of face-aspect history
REOPEN_FRACTION = 0.7     # reopened when back up this fraction of the closure's depth
ASPECT_TOL = 0.12         # a frame whose face aspect is off its median by more is refused


class Verdict(str, Enum):
    """What the tracker says about a track right now."""

    PENDING = "pending"
    LOOK_AT_CAMERA = "look_at_camera"
    LIVE = "live"
    SPOOF = "spoof"


@dataclass(frozen=True, slots=True)
class LivenessState:
    """The tracker's answer for one frame. ``elapsed_s`` counts seconds since the first
    update (or the last reset); ``frontal_s`` only the time the gate passed.
    ``openness_ratio`` is the current openness over the open-eye baseline (None until the
    baseline is known)."""

    verdict: Verdict
    blinks: int
    required_blinks: int
    prompt: str
    elapsed_s: float
    frontal_s: float = 0.0
    openness_ratio: float | None = None
    reason: str = ""
    policy: str = "blink"
    prompt_code: str = ""       # challenge: turn_left | turn_right | look_up | look_down | blink | hold_still | try_again
    steps: tuple[str, ...] = ()  # challenge: this try's prompt codes, in order
    step: int = 0               # challenge: index of the current prompt (== len(steps) when done)
    failures: int = 0           # challenge: failed tries so far
    busy: bool = False          # a challenge is under way: do not restart the track


def _prompt(verdict: Verdict, blinks: int, required: int, reason: str) -> str:
    """Kiosk text for a state."""
    if verdict is Verdict.LIVE:
        return "Thank you"
    if verdict is Verdict.SPOOF:
        return "Liveness check failed: please see the supervisor"
    if verdict is Verdict.LOOK_AT_CAMERA:
        return "Please come closer" if reason == "too_small" else "Please look at the camera"
    if required <= 1:
        return "Please blink"
    return f"Please blink {required} times ({blinks} of {required})"


class _Baseline:
    """Per-eye open-eye baseline over the last ``BASELINE_S`` seconds of open samples."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float, float]] = deque()

    def clear(self) -> None:
        self._samples.clear()

    def add(self, ts: float, right: float, left: float) -> None:
        self._samples.append((ts, right, left))
        while self._samples and ts - self._samples[0][0] > BASELINE_S:
            self._samples.popleft()

    def value(self) -> tuple[float, float] | None:
        """(right, left) baseline openness, or None while too few samples are known."""
        if len(self._samples) < BASELINE_MIN_SAMPLES:
            return None
        if self._samples[-1][0] - self._samples[0][0] < BASELINE_MIN_SPAN_S:
            return None
        arr = np.asarray(self._samples, dtype=np.float64)[:, 1:]
        right, left = np.percentile(arr, BASELINE_PERCENTILE, axis=0)
        if right <= 0 or left <= 0:
            return None
        return float(right), float(left)

    def spread(self) -> float:
        """Robust relative spread of the mean openness samples: interquartile range / 1.349
        (a standard deviation for gaussian noise) over the median."""
        mean = np.asarray(self._samples, dtype=np.float64)[:, 1:].mean(axis=1)
        q25, median, q75 = np.percentile(mean, (25.0, 50.0, 75.0))
        return float(q75 - q25) / 1.349 / float(median) if median > 0 else 0.0


class _Aspect:
    """Median face aspect over the last ``ASPECT_S`` seconds (every sample, so a lasting
    change of pose is followed within ~ASPECT_S / 2 while a 0.2 s tilt is not)."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float]] = deque()

    def clear(self) -> None:
        self._samples.clear()

    def jumped(self, ts: float, aspect: float) -> bool:
        """Record ``aspect``; True if it is off the recent median by more than ASPECT_TOL."""
        if aspect <= 0:
            return False
        self._samples.append((ts, aspect))
        while ts - self._samples[0][0] > ASPECT_S:
            self._samples.popleft()
        if len(self._samples) < BASELINE_MIN_SAMPLES:
            return False
        median = float(np.median([a for _, a in self._samples]))
        return abs(aspect / median - 1.0) > ASPECT_TOL


class _Eyes(str, Enum):
    UNKNOWN = "unknown"  # not yet seen open (start, after a gap, after a failed gate)
    OPEN = "open"
    CLOSED = "closed"


class LivenessTracker:
    """Blink liveness of ONE face track. Create one per track and call :meth:`update` for
    every frame of that track; call :meth:`reset` when the track is lost or swapped
    (a gap of more than ``LOST_GAP_S`` seconds, time going backwards or a changed
    ``track_id`` reset it too). ``rng`` draws the challenge count (default: the OS's
    random source). ``counting`` True: never decide, only count blinks (the head-pose
    challenge reads :attr:`blinks` and :attr:`last_blink_start`)."""

    def __init__(self, config: LivenessConfig, rng: random.Random | None = None, *, counting: bool = False) -> None:
        self.config = config
        self.counting = counting
        self._rng = rng if rng is not None else random.SystemRandom()
        self._baseline = _Baseline()
        self._aspect = _Aspect()
        if config.policy == "off":
            logger.warning("LIVENESS IS OFF (policy 'off'): every face counts as live; "
                           "a printed photo will be marked present. Testing only.")
        self.reset("start")

    @property
    def required_blinks(self) -> int:
        """Blinks this track must show (0 with policy off)."""
        return self._required

    @property
    def blinks(self) -> int:
        """Blinks counted since the last reset."""
        return self._blinks

    @property
    def last_blink_start(self) -> float | None:
        """Timestamp (seconds) at which the last counted blink's closure began."""
        return self._last_blink_start

    def _draw_required(self) -> int:
        if self.config.policy == "off":
            return 0
        if self.config.policy == "blink_challenge":
            return self._rng.randint(1, self.config.challenge_max_blinks)
        return 1

    def reset(self, reason: str = "") -> None:
        """Forget everything about the track (blinks, baseline, timers, verdict) and draw a
        new challenge count."""
        logger.debug("liveness reset: %s", reason)
        self._required = self._draw_required()
        self._baseline.clear()
        self._aspect.clear()
        self._limit = self.config.closed_ratio
        self._verdict = Verdict.PENDING
        self._blinks = 0
        self._last_blink_start: float | None = None
        self._start: float | None = None
        self._last_ts: float | None = None
        self._last_ok_ts: float | None = None
        self._last_sample_ts: float | None = None
        self._smooth: tuple[float, float] | None = None
        self._ratio: float | None = None
        self._eyes = _Eyes.UNKNOWN
        self._closed_since = 0.0
        self._raw_first: float | None = None
        self._raw_last: float | None = None
        self._frame_dt: float | None = None  # smoothed seconds between openness samples
        self._frontal_s = 0.0
        self._early: list[tuple[float, tuple[float, float], float]] = []  # samples before the baseline
        self._pre_close = 1.0  # ratio just before the current closure
        self._replaying = False
        self._closed_min = 1.0  # lowest ratio during the current closure
        self._track_id: object = None

    def update(self, ts: float, openness: EyeOpenness | None, gate: GateResult, *,
               track_id: object = None) -> LivenessState:
        """Feed one frame: ``ts`` in seconds (camera timestamps), the eyes' openness (None
        when the face had no landmarks this frame) and the quality gate."""
        self._check_continuity(ts, track_id)
        if self._start is None:
            self._start = ts
        self._last_ts = ts
        if self._verdict in (Verdict.LIVE, Verdict.SPOOF):
            return self._state(ts, self._verdict)
        if self.config.policy == "off" and not self.counting:
            self._verdict = Verdict.LIVE
            return self._state(ts, self._verdict)
        if not gate.ok:
            self._abort()
            self._last_ok_ts = None
            return self._state(ts, Verdict.LOOK_AT_CAMERA, gate.reason)
        self._add_frontal_time(ts)
        if openness is not None:
            self._observe(ts, openness)
        elif (self._eyes is _Eyes.CLOSED and self._last_sample_ts is not None
              and ts - self._last_sample_ts > MAX_GAP_S):
            self._abort()
        return self._state(ts, self._decide())

    def _check_continuity(self, ts: float, track_id: object) -> None:
        """Reset when the track changed, time ran backwards or the track was lost."""
        if track_id is not None and self._track_id is not None and track_id != self._track_id:
            self.reset("track changed")
        elif self._last_ts is not None and ts < self._last_ts:
            self.reset("timestamps went backwards")
        elif self._last_ts is not None and ts - self._last_ts > LOST_GAP_S:
            self.reset("track lost for %.1f s" % (ts - self._last_ts))
        if track_id is not None:
            self._track_id = track_id

    def _add_frontal_time(self, ts: float) -> None:
        if self._last_ok_ts is not None:
            self._frontal_s += min(ts - self._last_ok_ts, MAX_GAP_S)
        self._last_ok_ts = ts

    def _decide(self) -> Verdict:
        if self.counting:
            return self._verdict
        if self._blinks >= self._required:
            self._verdict = Verdict.LIVE
            logger.debug("liveness passed: %d blink(s)", self._blinks)
        elif self._frontal_s >= self.config.window_s:
            self._verdict = Verdict.SPOOF
            logger.debug("liveness failed: %d of %d blinks in %.1f s", self._blinks,
                         self._required, self._frontal_s)
        return self._verdict

    def _abort(self) -> None:
        """A closure in progress can no longer be judged (gap, turned away)."""
        self._eyes = _Eyes.UNKNOWN
        self._smooth = None
        self._last_sample_ts = None

    def _smoothed(self, ts: float, openness: EyeOpenness) -> tuple[float, float]:
        """Exponential smoothing with time constant SMOOTH_TAU_S (frame-rate independent)."""
        raw = (float(openness.right), float(openness.left))
        if self._smooth is None or self._last_sample_ts is None:
            return raw
        alpha = 1.0 - math.exp(-max(ts - self._last_sample_ts, 0.0) / SMOOTH_TAU_S)
        return tuple(s + alpha * (r - s) for s, r in zip(self._smooth, raw))  # type: ignore[return-value]

    def _observe(self, ts: float, openness: EyeOpenness) -> None:
        """Advance the open/closed machine with one openness sample."""
        if self._last_sample_ts is not None and ts - self._last_sample_ts > MAX_GAP_S:
            self._abort()
        if self._last_sample_ts is not None:
            dt = ts - self._last_sample_ts
            self._frame_dt = dt if self._frame_dt is None else self._frame_dt + 0.3 * (dt - self._frame_dt)
        if self._aspect.jumped(ts, openness.face_aspect):
            self._abort()  # the face plane tilted suddenly: the eyes cannot be judged
            return
        raw = (float(openness.right), float(openness.left))
        self._smooth = self._smoothed(ts, openness)
        base = self._baseline.value()
        if base is None:
            self._ratio = None
            self._baseline.add(ts, *self._smooth)
            self._early.append((ts, self._smooth, raw))
            if self._baseline.value() is not None:
                self._replay_early()
        else:
            self._judge(ts, self._smooth, raw, base)
        self._last_sample_ts = ts

    def _judge(self, ts: float, smooth: tuple[float, float], raw: tuple[float, float],
               base: tuple[float, float]) -> None:
        """One step of the open/closed machine against the baseline ``base``."""
        if self._eyes is not _Eyes.CLOSED:
            self._limit = min(self.config.closed_ratio, 1.0 - NOISE_K * self._baseline.spread())
        raw_ratio = (raw[0] / base[0] + raw[1] / base[1]) / 2.0
        self._step(ts, smooth[0] / base[0], smooth[1] / base[1], raw_ratio)

    def _replay_early(self) -> None:
        """The baseline just became known: judge the samples that built it, so a blink in
        the first fraction of a second (before anyone could say what "open" is for this
        person) still counts. They are not added to the baseline a second time."""
        base = self._baseline.value()
        early, self._early = self._early, []
        keep = self._smooth
        self._replaying = True
        for ts, smooth, raw in early:
            self._smooth = smooth
            self._judge(ts, smooth, raw, base)
        self._smooth = keep
        self._replaying = False

    def _add_level(self, ts: float) -> None:
        """An open (or unjudged) sample feeds the baseline, except while replaying the
        samples that already built it."""
        if not self._replaying:
            self._baseline.add(ts, *self._smooth)

    def _reopened(self, ratio: float) -> bool:
        """Eyes open again: above ``reopen_ratio`` x baseline, or back up most of the way
        (REOPEN_FRACTION) from the closure's lowest point to the level just before it (a
        baseline still settling high must not swallow a real blink)."""
        if ratio > self.config.reopen_ratio:
            return True
        depth = self._pre_close - self._closed_min
        return depth > 0 and ratio >= self._closed_min + REOPEN_FRACTION * depth and ratio > self._limit

    def _step(self, ts: float, right: float, left: float, raw_ratio: float) -> None:
        """One transition given each eye's smoothed openness over its baseline (hysteresis)
        and the unsmoothed mean ratio (closure duration)."""
        cfg = self.config
        ratio = (right + left) / 2.0
        previous, self._ratio = self._ratio, ratio
        closed = ratio < self._limit and max(right, left) < cfg.reopen_ratio
        if self._eyes is _Eyes.CLOSED:
            self._track_raw_closure(ts, raw_ratio)
            self._closed_min = min(self._closed_min, ratio)
            if ts - self._closed_since > cfg.max_closed_s + MAX_GAP_S:
                # far too long for a blink: stop waiting, let the baseline follow the eyes
                self._eyes = _Eyes.UNKNOWN
                self._add_level(ts)
            elif self._reopened(ratio):
                self._count_closure()
                self._eyes = _Eyes.OPEN
                self._add_level(ts)
            return
        if closed:
            if self._eyes is _Eyes.OPEN:
                self._eyes = _Eyes.CLOSED
                self._closed_since = ts
                self._pre_close = previous if previous is not None else 1.0
                self._closed_min = ratio
                self._raw_first = self._raw_last = None
                self._track_raw_closure(ts, raw_ratio)
            else:
                self._add_level(ts)  # not in an episode: just a level
            return
        if ratio > cfg.reopen_ratio:
            self._eyes = _Eyes.OPEN
        self._add_level(ts)

    def _track_raw_closure(self, ts: float, raw_ratio: float) -> None:
        """Remember the first and last frame whose unsmoothed openness was closed."""
        if raw_ratio < self._limit:
            if self._raw_first is None:
                self._raw_first = ts
            self._raw_last = ts

    def _count_closure(self) -> None:
        """The eyes reopened: count the closure if its length is a blink's. The length is
        the span of unsmoothed closed frames plus one frame interval (one closed frame at
        8 fps = 0.125 s; a one-frame glitch at 30 fps = 0.033 s). That estimate is off by
        up to half a frame either way when frames arrive with jitter, so the longest
        blink is checked against the span plus half an interval (a 0.5 s blink at 8 fps
        with jittered frames measured 0.61 s with a whole one)."""
        if self._raw_first is None or self._raw_last is None:
            return
        span, frame = self._raw_last - self._raw_first, min(self._frame_dt or 0.0, MAX_GAP_S)
        duration = span + frame
        if self.config.min_closed_s <= duration and span + frame / 2 <= self.config.max_closed_s:
            self._blinks += 1
            self._last_blink_start = self._raw_first
            logger.debug("blink %d: closed %.3f s", self._blinks, duration)
        else:
            logger.debug("closure of %.3f s is not a blink", duration)

    def _state(self, ts: float, verdict: Verdict, reason: str = "") -> LivenessState:
        elapsed = ts - self._start if self._start is not None else 0.0
        return LivenessState(verdict=verdict, blinks=self._blinks, required_blinks=self._required,
                             prompt=_prompt(verdict, self._blinks, self._required, reason),
                             elapsed_s=elapsed, frontal_s=self._frontal_s,
                             openness_ratio=self._ratio, reason=reason)
