"""Track-level evidence (firmware/domain/evidence.py): quality weights, the accept /
unknown / wait rule, sequential peaks used by the calibration."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.domain.evidence import (EvidenceRule, QualitySpec, evaluate, frame_quality, learnable,
                                      sequential_peaks, track_scores)

SPEC = QualitySpec()
RULE = EvidenceRule(threshold=0.9, margin=0.02, accept_weight=1.5, unknown_frames=3, good_quality=0.5)
PEOPLE = ("alice", "bob")


def q(**kw) -> float:
    values = dict(face_px=150, sharpness=200, yaw_deg=0, pitch_deg=0, detector_score=0.95, presence=0.99)
    values.update(kw)
    return frame_quality(SPEC, **values)


def test_quality_is_one_for_a_large_sharp_frontal_face_and_falls_with_each_factor():
    assert q() == pytest.approx(1.0)
    assert q(face_px=64) == pytest.approx(SPEC.floor)           # at the gate's minimum size
    assert q(face_px=88) == pytest.approx(SPEC.floor + (1 - SPEC.floor) * 0.5)
    assert q(sharpness=20) == pytest.approx(SPEC.floor)
    assert q(yaw_deg=10) == pytest.approx(1.0) and q(yaw_deg=-25) == pytest.approx(SPEC.floor)
    assert q(pitch_deg=17.5) == pytest.approx(SPEC.floor + (1 - SPEC.floor) * 0.5)
    assert q(detector_score=0.5) == pytest.approx(SPEC.floor) and q(presence=0.5) == pytest.approx(SPEC.floor)
    assert q(face_px=64, sharpness=20) == pytest.approx(SPEC.floor ** 2)
    assert 0.0 <= q(face_px=10, sharpness=0, yaw_deg=90) <= SPEC.floor ** 3


def test_track_score_is_the_quality_weighted_mean_per_candidate():
    scores = np.array([[0.95, 0.5], [0.75, 0.6]])
    assert track_scores(scores, [1.0, 0.0]) == pytest.approx([0.95, 0.5])
    assert track_scores(scores, [1.0, 1.0]) == pytest.approx([0.85, 0.55])
    assert track_scores(scores, [0.0, 0.0]) == pytest.approx([0.0, 0.0])


def test_accept_needs_enough_weight_threshold_and_margin():
    one = np.array([[0.97, 0.3]])
    assert evaluate(RULE, PEOPLE, one, [1.0]).kind == "wait"          # weight 1.0 < 1.5
    two = np.array([[0.97, 0.3], [0.95, 0.3]])
    verdict = evaluate(RULE, PEOPLE, two, [1.0, 1.0])
    assert (verdict.kind, verdict.person_id) == ("accept", "alice")
    assert verdict.score == pytest.approx(0.96) and verdict.runner_up == pytest.approx(0.3)
    close = np.array([[0.95, 0.94], [0.95, 0.94]])
    assert evaluate(RULE, PEOPLE, close, [1.0, 1.0]).kind == "wait"    # margin 0.01 < 0.02


def test_a_bad_frame_counts_little():
    scores = np.array([[0.95, 0.3], [0.95, 0.3], [0.40, 0.3]])
    assert evaluate(RULE, PEOPLE, scores, [1.0, 1.0, 0.05]).kind == "accept"
    assert evaluate(RULE, PEOPLE, scores, [1.0, 1.0, 1.0]).kind == "unknown"


def test_unknown_only_after_enough_good_frames_else_wait():
    low = np.full((6, 2), 0.3)
    assert evaluate(RULE, PEOPLE, low, [0.3] * 6).kind == "wait"        # never good quality: retry later
    verdict = evaluate(RULE, PEOPLE, low[:3], [0.9, 0.9, 0.9])
    assert verdict.kind == "unknown" and verdict.person_id in PEOPLE   # closest person reported
    assert evaluate(RULE, PEOPLE, low[:2], [0.9, 0.9]).kind == "wait"
    assert evaluate(RULE, (), np.zeros((3, 0)), [0.9, 0.9, 0.9]).kind == "unknown"


def test_sequential_peaks_cover_exactly_the_steps_the_rule_looks_at():
    # step 0: weight 1 (closed); step 1: open, mean 0.8; step 2: open and closing (3 good), mean 0.7;
    # step 3: after unknown, never looked at even though the mean would rise.
    scores = np.array([[0.99], [0.61], [0.5], [1.0]])
    peaks = sequential_peaks(scores, np.ones(4), RULE)
    assert peaks == pytest.approx([0.8])
    assert sequential_peaks(scores[:1], np.ones(1), RULE) == pytest.approx([-1.0])


def test_learnable_needs_a_clear_score_and_margin():
    assert learnable(0.93, 0.5, RULE)
    assert not learnable(0.905, 0.5, RULE)       # within LEARN_EXTRA of the threshold
    assert not learnable(0.95, 0.92, RULE)       # runner-up too close
    assert learnable(0.95, None, RULE)
