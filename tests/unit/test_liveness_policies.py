"""Policies (blink / challenge / off), gating and still-face noise of the liveness tracker."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.config import LivenessConfig
from firmware.domain.liveness import LivenessTracker, Verdict
from firmware.domain.liveness_measures import EyeOpenness, GateResult
from tests.unit.test_liveness_tracker import OK, OPEN, blink_signal, frames, run


def blinks_at(*starts: float, duration: float = 0.2):
    return lambda ts: blink_signal(ts, [(s, duration) for s in starts])


def challenge(max_blinks: int = 3, **kw) -> LivenessConfig:
    return LivenessConfig(policy="blink_challenge", challenge_max_blinks=max_blinks, **kw)


# --- challenge ---------------------------------------------------------------------------

def test_challenge_draws_every_count_from_one_to_max():
    seen = {LivenessTracker(challenge(3), rng=random.Random(seed)).required_blinks for seed in range(60)}
    assert seen == {1, 2, 3}


def test_challenge_is_reproducible_with_a_seed_and_redrawn_on_reset():
    a = LivenessTracker(challenge(5), rng=random.Random(42))
    b = LivenessTracker(challenge(5), rng=random.Random(42))
    assert a.required_blinks == b.required_blinks
    draws = set()
    for _ in range(40):
        a.reset("next person")
        draws.add(a.required_blinks)
    assert len(draws) > 1


@pytest.mark.parametrize("required", [1, 2, 3])
@pytest.mark.parametrize("fps", [8, 15, 30])
def test_challenge_needs_exactly_the_required_blinks(required, fps):
    seed = next(s for s in range(1000) if random.Random(s).randint(1, 3) == required)
    tracker = LivenessTracker(challenge(3), rng=random.Random(seed))
    starts = [1.0 + 1.2 * i for i in range(required)]
    states = run(tracker, frames(fps, 5.5), blinks_at(*starts))
    live = [s for s in states if s.verdict is Verdict.LIVE]
    assert live and live[0].blinks == required
    before = [s for s in states if s.elapsed_s < starts[-1]]
    assert all(s.verdict is Verdict.PENDING for s in before)
    assert f"{required} times" in before[-1].prompt or required == 1


def test_challenge_prompt_announces_count_and_progress():
    tracker = LivenessTracker(challenge(3), rng=_Fixed(3))
    states = run(tracker, frames(15, 2.5), blinks_at(1.0))
    assert states[0].required_blinks == 3
    assert states[0].prompt == "Please blink 3 times (0 of 3)"
    assert states[-1].prompt == "Please blink 3 times (1 of 3)"


def test_challenge_not_met_within_the_window_is_spoof():
    tracker = LivenessTracker(challenge(3, window_s=4.0), rng=_Fixed(3))
    states = run(tracker, frames(15, 6), blinks_at(1.0, 2.5))
    assert Verdict.LIVE not in {s.verdict for s in states}
    assert states[-1].verdict is Verdict.SPOOF and states[-1].blinks == 2


# --- off ---------------------------------------------------------------------------------

def test_off_policy_is_live_at_once_and_warns_loudly(caplog):
    with caplog.at_level(logging.WARNING, logger="firmware.domain.liveness"):
        tracker = LivenessTracker(LivenessConfig(policy="off"))
    assert any("OFF" in r.getMessage() for r in caplog.records)
    state = tracker.update(0.0, None, GateResult.failed("turned"))
    assert state.verdict is Verdict.LIVE and state.required_blinks == 0


def test_blink_policy_construction_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="firmware.domain.liveness"):
        LivenessTracker(LivenessConfig())
    assert not caplog.records


# --- gating ------------------------------------------------------------------------------

@pytest.mark.parametrize("reason,prompt", [("turned", "look at the camera"), ("blurred", "look at the camera"),
                                           ("too_small", "closer"), ("no_face", "look at the camera")])
def test_failed_gate_asks_to_look(reason, prompt):
    tracker = LivenessTracker(LivenessConfig())
    state = tracker.update(0.0, EyeOpenness(OPEN, OPEN), GateResult.failed(reason))
    assert state.verdict is Verdict.LOOK_AT_CAMERA and state.reason == reason
    assert prompt in state.prompt.lower()


def test_looking_away_never_times_out_into_spoof():
    tracker = LivenessTracker(LivenessConfig())
    states = run(tracker, frames(15, 20), lambda ts: OPEN, gate=lambda ts: GateResult.failed("turned"))
    assert {s.verdict for s in states} == {Verdict.LOOK_AT_CAMERA}
    assert states[-1].frontal_s == 0.0


def test_blink_while_turned_away_does_not_count():
    tracker = LivenessTracker(LivenessConfig())
    turned = lambda ts: GateResult.failed("turned") if 1.9 <= ts < 2.4 else OK  # noqa: E731
    states = run(tracker, frames(30, 4), blinks_at(2.0), gate=turned)
    assert states[-1].blinks == 0 and states[-1].verdict is Verdict.PENDING


def test_turning_away_mid_closure_aborts_it():
    tracker = LivenessTracker(LivenessConfig())
    turned = lambda ts: GateResult.failed("turned") if 2.1 <= ts < 2.2 else OK  # noqa: E731
    states = run(tracker, frames(30, 4), blinks_at(2.0, duration=0.3), gate=turned)
    assert states[-1].blinks == 0


def test_spoof_window_counts_only_frontal_time():
    tracker = LivenessTracker(LivenessConfig(window_s=3.0))
    away = lambda ts: GateResult.failed("turned") if 1.0 <= ts < 4.0 else OK  # noqa: E731
    states = run(tracker, frames(15, 6.5), lambda ts: OPEN, gate=away)
    spoof = next(s for s in states if s.verdict is Verdict.SPOOF)
    assert spoof.elapsed_s >= 6.0 - 0.1 and spoof.frontal_s >= 3.0


# --- a still face never passes -----------------------------------------------------------

@pytest.mark.parametrize("fps", [8, 15, 30])
@pytest.mark.parametrize("noise", [0.02, 0.05, 0.08])
def test_noisy_still_face_never_passes(fps, noise):
    rng = np.random.default_rng(int(fps * 100 + noise * 1000))
    cfg = LivenessConfig(window_s=30.0)
    tracker = LivenessTracker(cfg)
    for ts in frames(fps, 30):
        r, l = OPEN * (1 + rng.normal(0, noise, size=2))
        state = tracker.update(ts, EyeOpenness(float(r), float(l)), OK)
        assert state.verdict is not Verdict.LIVE
    assert state.blinks == 0


@settings(max_examples=150, deadline=None)
@given(level=st.floats(0.05, 0.5), amplitude=st.floats(0.0, 0.2), fps=st.sampled_from([8, 10, 15, 25, 30]),
       seconds=st.floats(1.0, 12.0), seed=st.integers(0, 2**32 - 1), policy=st.sampled_from(["blink", "blink_challenge"]))
def test_property_constant_openness_plus_noise_never_live(level, amplitude, fps, seconds, seed, policy):
    """Openness constant +- up to 20 % uniform noise per eye and frame never yields live."""
    rng = np.random.default_rng(seed)
    tracker = LivenessTracker(LivenessConfig(policy=policy, window_s=60.0), rng=random.Random(seed))
    for ts in frames(fps, seconds):
        r, l = level * (1 + rng.uniform(-amplitude, amplitude, size=2))
        assert tracker.update(ts, EyeOpenness(float(r), float(l)), OK).verdict is not Verdict.LIVE


@settings(max_examples=80, deadline=None)
@given(fps=st.sampled_from([8, 12, 15, 24, 30]), start=st.floats(0.8, 3.0), duration=st.floats(0.1, 0.5),
       jitter=st.floats(0.0, 0.3))
def test_property_a_clean_blink_passes_with_jittered_timestamps(fps, start, duration, jitter):
    """Real cameras deliver frames with jitter: +-30 % of a frame interval is fine (the
    closure lasts long enough that at least one frame sees it)."""
    duration = max(duration, 1.7 / fps)
    rng = np.random.default_rng(int(fps * 1000 + start * 100))
    stamps = sorted(t + rng.uniform(-jitter, jitter) / fps for t in frames(fps, start + 2.0))
    tracker = LivenessTracker(LivenessConfig())
    states = run(tracker, stamps, blinks_at(start, duration=duration))
    assert states[-1].verdict is Verdict.LIVE


class _Fixed(random.Random):
    def __init__(self, value: int) -> None:
        super().__init__(0)
        self.value = value

    def randint(self, a: int, b: int) -> int:
        return self.value
