"""Track-level evidence: per-frame quality and the accept / unknown rule. Pure numpy.

A door sees a *track* (several frames of one visit), not one photo. Each embedded frame
gets a quality weight ``q`` in 0..1 (:func:`frame_quality`: face width in pixels,
sharpness, head yaw/pitch, detector score, mesh presence score). Per candidate person the
track's score is the quality-weighted mean, over the track's frames, of that frame's best
cosine to the person's templates (:func:`track_scores`): a bad frame counts little, and
each frame may match a different template of the person (pose, glasses).

The rule (:class:`EvidenceRule`, :func:`evaluate`), checked after every embedded frame:

- **accept** the best person once the track holds at least ``accept_weight`` of quality
  weight and the best person's track score is >= ``threshold`` and beats the runner-up by
  ``margin``;
- **unknown** once the track holds ``unknown_frames`` frames of good quality
  (``q >= good_quality``) and still nobody is accepted;
- otherwise **wait** (the caller turns a track that waits too long into ``retry``: its
  quality never got good).

Frames of one visit are strongly correlated, so the threshold is *not* derived from a
per-frame false-accept rate raised to the number of frames: it is calibrated on whole
impostor tracks run through this same sequential rule (the highest score the rule ever
saw on an impostor track, see ``models/calibration.toml`` and
:mod:`firmware.runtime.tuning`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, Sequence

import numpy as np


class Candidates(Protocol):
    """Who can be recognised: ``people`` (ids) and, for one probe embedding, the best
    cosine to each person's templates (:meth:`person_scores`, shape (len(people),)).
    :class:`firmware.domain.matching.Gallery` is one."""

    people: tuple[str, ...]

    def person_scores(self, probe: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class QualitySpec:
    """How a frame's measures map to a 0..1 quality weight. Pixels are face-box widths in
    full-frame pixels, angles degrees, sharpness the variance of the Laplacian of the face
    crop resampled to 96 px (see :func:`firmware.domain.liveness_measures.sharpness`).

    Each factor is 1 at or past its ``full_*`` value and falls linearly to ``floor`` at the
    quality gate's limit (frames below the gate are never embedded at all)."""

    min_face_px: float = 64.0
    full_face_px: float = 112.0
    min_sharpness: float = 20.0
    full_sharpness: float = 80.0
    max_yaw_deg: float = 25.0
    max_pitch_deg: float = 25.0
    full_pose_deg: float = 10.0
    min_detector: float = 0.5
    full_detector: float = 0.85
    min_presence: float = 0.5
    full_presence: float = 0.9
    floor: float = 0.25


def _ramp(value: float, low: float, high: float, floor: float) -> float:
    """floor at ``low`` (or below), 1 at ``high`` (or above), linear between."""
    if high <= low:
        return 1.0 if value >= low else floor
    t = min(1.0, max(0.0, (value - low) / (high - low)))
    return floor + (1.0 - floor) * t


def frame_quality(spec: QualitySpec, *, face_px: float, sharpness: float, yaw_deg: float,
                  pitch_deg: float, detector_score: float = 1.0, presence: float = 1.0) -> float:
    """Quality weight 0..1 of one frame of a face: the product of the size, sharpness,
    pose, detector-score and mesh-presence factors (see :class:`QualitySpec`)."""
    f = spec.floor
    size = _ramp(face_px, spec.min_face_px, spec.full_face_px, f)
    sharp = _ramp(sharpness, spec.min_sharpness, spec.full_sharpness, f)
    turn = max(abs(yaw_deg) - spec.full_pose_deg, 0.0) / max(spec.max_yaw_deg - spec.full_pose_deg, 1e-6)
    tilt = max(abs(pitch_deg) - spec.full_pose_deg, 0.0) / max(spec.max_pitch_deg - spec.full_pose_deg, 1e-6)
    pose = 1.0 - (1.0 - f) * min(1.0, max(turn, tilt))
    det = _ramp(detector_score, spec.min_detector, spec.full_detector, f)
    pres = _ramp(presence, spec.min_presence, spec.full_presence, f)
    return float(size * sharp * pose * det * pres)


@dataclass(frozen=True, slots=True)
class EvidenceRule:
    """The track rule (see module doc). ``threshold`` and ``margin`` are cosines (track
    scores); ``accept_weight`` is summed quality (2.0 = two perfect frames);
    ``unknown_frames`` counts frames with ``q >= good_quality``; at most ``max_frames``
    most recent frames are kept per track."""

    threshold: float
    margin: float = 0.02
    accept_weight: float = 1.5
    unknown_frames: int = 3
    good_quality: float = 0.5
    max_frames: int = 12


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rule says now: ``kind`` accept | unknown | wait; ``person_id`` the best
    candidate (also for unknown: the closest person), ``score`` its track score,
    ``runner_up`` the second-best track score (None with one candidate)."""

    kind: Literal["accept", "unknown", "wait"]
    person_id: str | None = None
    score: float = 0.0
    runner_up: float | None = None
    weight: float = 0.0
    good_frames: int = 0


def track_scores(frame_scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Quality-weighted mean per candidate: ``frame_scores`` (F, P) cosines, ``weights``
    (F,) qualities -> (P,). Zero total weight gives zeros."""
    weights = np.asarray(weights, np.float64)
    total = float(weights.sum())
    if total <= 0 or frame_scores.size == 0:
        return np.zeros(frame_scores.shape[1] if frame_scores.ndim == 2 else 0, np.float64)
    return (weights @ np.asarray(frame_scores, np.float64)) / total


def _top2(scores: np.ndarray) -> tuple[int, float | None]:
    if len(scores) == 1:
        return 0, None
    top = np.argpartition(-scores, 1)[:2]
    best, second = (top if scores[top[0]] >= scores[top[1]] else top[::-1])
    return int(best), float(scores[second])


def evaluate(rule: EvidenceRule, people: Sequence[str], frame_scores: np.ndarray,
             weights: Sequence[float]) -> Verdict:
    """Apply the rule to a track's frames so far (``frame_scores`` (F, P) cosines to the
    ``people``, ``weights`` (F,) frame qualities)."""
    w = np.asarray(weights, np.float64)
    weight, good = float(w.sum()), int(np.count_nonzero(w >= rule.good_quality))
    if len(people) == 0 or len(w) == 0:
        return Verdict("unknown" if good >= rule.unknown_frames else "wait", weight=weight, good_frames=good)
    scores = track_scores(frame_scores, w)
    best, runner = _top2(scores)
    score = float(scores[best])
    base = dict(person_id=people[best], score=score, runner_up=runner, weight=weight, good_frames=good)
    margin_ok = runner is None or score - runner >= rule.margin
    if weight >= rule.accept_weight and score >= rule.threshold and margin_ok:
        return Verdict("accept", **base)
    if good >= rule.unknown_frames:
        return Verdict("unknown", **base)
    return Verdict("wait", **base)


def sequential_peaks(frame_scores: np.ndarray, weights: np.ndarray, rule: EvidenceRule) -> np.ndarray:
    """For calibration and benches: per candidate (P,), the highest track score the rule
    looks at while the track is open (from ``accept_weight`` reached until the frame that
    makes it ``unknown``, inclusive). A candidate is falsely accepted at threshold ``t``
    only if its peak is >= ``t`` (ignoring the margin, so the estimate is conservative).
    Tracks that never reach ``accept_weight`` give -1 everywhere."""
    w = np.asarray(weights, np.float64)[: rule.max_frames]
    s = np.asarray(frame_scores, np.float64)[: len(w)]
    cum_w = np.cumsum(w)
    running = np.cumsum(w[:, None] * s, axis=0) / np.maximum(cum_w, 1e-12)[:, None]
    good = np.cumsum(w >= rule.good_quality)
    open_steps = cum_w >= rule.accept_weight
    closed_after = np.flatnonzero(good >= rule.unknown_frames)
    if len(closed_after):
        open_steps[closed_after[0] + 1:] = False
    if not open_steps.any():
        return np.full(s.shape[1], -1.0)
    return running[open_steps].max(axis=0)


#: Learning at the door: how far above the threshold (cosine) and how many margins above
#: the runner-up an accept must be before its best frame may become a template.
LEARN_EXTRA = 0.01
LEARN_MARGINS = 2.0


def learnable(score: float, runner_up: float | None, rule: EvidenceRule) -> bool:
    """True when an accept is confident enough to learn from: the track score clears the
    threshold by ``LEARN_EXTRA`` and the runner-up by ``LEARN_MARGINS`` margins (a live
    accept is the caller's part: spoofs never reach an accept)."""
    gap = score - runner_up if runner_up is not None else float("inf")
    return score >= rule.threshold + LEARN_EXTRA and gap >= LEARN_MARGINS * max(rule.margin, 0.01)
