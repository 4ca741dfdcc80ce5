"""The blink liveness state machine on synthetic openness sequences (pure, fast)."""

from __future__ import annotations

import random

import pytest

from firmware.config import LivenessConfig
from firmware.domain.liveness import LOST_GAP_S, LivenessTracker, Verdict
from firmware.domain.liveness_measures import EyeOpenness, GateResult

OPEN, SHUT = 0.30, 0.05
OK = GateResult.passed()


def frames(fps: float, seconds: float, start: float = 0.0) -> list[float]:
    """Camera timestamps (seconds) at ``fps`` for ``seconds``."""
    return [start + i / fps for i in range(int(round(seconds * fps)))]


def blink_signal(ts: float, blinks: list[tuple[float, float]], open_value: float = OPEN,
                 closed_value: float = SHUT) -> float:
    """Openness at ``ts`` with eyes shut during each (start, duration) in ``blinks``."""
    shut = any(start <= ts < start + dur for start, dur in blinks)
    return closed_value if shut else open_value


def run(tracker: LivenessTracker, stamps: list[float], signal, gate=lambda ts: OK):
    """Feed ``signal(ts)`` (openness, or None for no landmarks) at ``stamps``; return states."""
    states = []
    for ts in stamps:
        value = signal(ts)
        openness = None if value is None else EyeOpenness(value, value)
        states.append(tracker.update(ts, openness, gate(ts)))
    return states


def verdicts(states) -> set[Verdict]:
    return {s.verdict for s in states}


@pytest.fixture
def config() -> LivenessConfig:
    return LivenessConfig()


@pytest.mark.parametrize("fps", [8, 10, 15, 25, 30])
@pytest.mark.parametrize("duration", [0.15, 0.25, 0.4])
def test_one_blink_passes_at_any_frame_rate(config, fps, duration):
    tracker = LivenessTracker(config)
    states = run(tracker, frames(fps, 4), lambda ts: blink_signal(ts, [(2.0, duration)]))
    live = [s for s in states if s.verdict is Verdict.LIVE]
    assert live, "a clean blink must pass"
    assert 2.0 + duration <= live[0].elapsed_s <= 2.0 + duration + 2.5 / fps
    assert live[0].blinks == 1 and live[0].required_blinks == 1
    assert all(s.verdict is Verdict.PENDING for s in states[: states.index(live[0])])


def test_pass_is_latched_until_reset(config):
    tracker = LivenessTracker(config)
    states = run(tracker, frames(15, 8), lambda ts: blink_signal(ts, [(1.5, 0.2)]))
    first = next(i for i, s in enumerate(states) if s.verdict is Verdict.LIVE)
    assert all(s.verdict is Verdict.LIVE for s in states[first:])
    tracker.reset("new person")
    state = tracker.update(100.0, EyeOpenness(OPEN, OPEN), OK)
    assert state.verdict is Verdict.PENDING and state.blinks == 0 and state.elapsed_s == 0.0


@pytest.mark.parametrize("fps", [8, 15, 30])
def test_steady_open_eyes_end_in_spoof_after_the_window(config, fps):
    tracker = LivenessTracker(config)
    states = run(tracker, frames(fps, config.window_s + 2), lambda ts: OPEN)
    assert Verdict.LIVE not in verdicts(states)
    spoof = next(s for s in states if s.verdict is Verdict.SPOOF)
    assert config.window_s <= spoof.elapsed_s <= config.window_s + 1.5 / fps
    assert states[-1].verdict is Verdict.SPOOF and "failed" in states[-1].prompt.lower()


@pytest.mark.parametrize("fps", [8, 15, 30])
def test_eyes_closed_two_seconds_is_not_a_blink(config, fps):
    tracker = LivenessTracker(config)
    states = run(tracker, frames(fps, 5), lambda ts: blink_signal(ts, [(1.5, 2.0)]))
    assert Verdict.LIVE not in verdicts(states)
    assert states[-1].blinks == 0


def test_closure_just_over_max_closed_s_is_rejected_and_just_under_counts(config):
    over, under = LivenessTracker(config), LivenessTracker(config)
    over_states = run(over, frames(30, 4), lambda ts: blink_signal(ts, [(1.5, config.max_closed_s + 0.1)]))
    under_states = run(under, frames(30, 4), lambda ts: blink_signal(ts, [(1.5, config.max_closed_s - 0.1)]))
    assert over_states[-1].blinks == 0
    assert under_states[-1].blinks == 1


def test_single_glitch_frame_at_30fps_is_too_short(config):
    tracker = LivenessTracker(config)
    one_frame = 1 / 30 - 1e-6
    states = run(tracker, frames(30, 4), lambda ts: blink_signal(ts, [(2.0, one_frame)]))
    assert states[-1].blinks == 0


def test_single_closed_frame_at_8fps_is_a_blink(config):
    """At 8 fps a real blink may be seen in one frame only: it lasts ~1 frame interval."""
    tracker = LivenessTracker(config)
    states = run(tracker, frames(8, 4), lambda ts: blink_signal(ts, [(2.0, 0.1)]))
    assert states[-1].verdict is Verdict.LIVE


@pytest.mark.parametrize("squint", [0.70, 0.75, 0.80])
def test_half_closed_squint_is_not_a_blink(config, squint):
    tracker = LivenessTracker(config)
    states = run(tracker, frames(30, 5), lambda ts: blink_signal(ts, [(1.0, 0.3), (2.5, 1.0)],
                                                                  closed_value=OPEN * squint))
    assert states[-1].blinks == 0


def test_wink_with_one_eye_is_not_a_blink(config):
    tracker = LivenessTracker(config)
    for ts in frames(30, 4):
        right = SHUT if 2.0 <= ts < 2.2 else OPEN
        state = tracker.update(ts, EyeOpenness(right, OPEN), OK)
    assert state.blinks == 0


def test_narrow_eyes_use_their_own_baseline(config):
    """Someone whose open eyes read 0.12 (below any global threshold) can still pass."""
    tracker = LivenessTracker(config)
    states = run(tracker, frames(15, 4), lambda ts: blink_signal(ts, [(2.0, 0.2)], 0.12, 0.03))
    assert states[-1].verdict is Verdict.LIVE


def test_slow_drift_of_openness_is_not_a_blink(config):
    """Stepping closer or away changes the measure slowly: the baseline follows it."""
    tracker = LivenessTracker(config)
    states = run(tracker, frames(15, 8), lambda ts: OPEN * (1.0 - 0.08 * ts))
    assert states[-1].blinks == 0


def test_missing_landmarks_during_a_closure_abort_it(config):
    tracker = LivenessTracker(config)

    def signal(ts):
        if 2.0 <= ts < 2.1:
            return SHUT
        if 2.1 <= ts < 2.7:
            return None  # face seen, no landmarks for 0.6 s
        return OPEN

    states = run(tracker, frames(30, 4), signal)
    assert states[-1].blinks == 0


def test_short_landmark_dropouts_while_open_do_not_hurt(config):
    tracker = LivenessTracker(config)

    def signal(ts):
        if int(ts * 30) % 4 == 0:
            return None  # every 4th frame without landmarks
        return blink_signal(ts, [(2.0, 0.2)])

    states = run(tracker, frames(30, 4), signal)
    assert states[-1].verdict is Verdict.LIVE


def test_dropped_frames_across_a_blink_still_count(config):
    """Frames missing altogether (camera dropped them): timestamps jump by 0.2 s."""
    tracker = LivenessTracker(config)
    stamps = [t for t in frames(30, 4) if not (1.9 < t < 2.1)]
    states = run(tracker, stamps, lambda ts: blink_signal(ts, [(2.1, 0.15)]))
    assert states[-1].verdict is Verdict.LIVE


def test_lost_track_resets_blinks(config):
    two = config.model_copy(update={"policy": "blink_challenge", "challenge_max_blinks": 2})
    tracker = LivenessTracker(two, rng=_Max())
    states = run(tracker, frames(15, 3), lambda ts: blink_signal(ts, [(1.5, 0.2)]))
    assert states[-1].blinks == 1
    later = 3.0 + LOST_GAP_S + 0.5
    states = run(tracker, frames(15, 3, start=later), lambda ts: blink_signal(ts, [(later + 1.5, 0.2)]))
    assert states[-1].blinks == 1, "blinks before the track was lost must not add up"
    assert states[-1].verdict is Verdict.PENDING


def test_track_swap_resets(config):
    two = config.model_copy(update={"policy": "blink_challenge", "challenge_max_blinks": 2})
    tracker = LivenessTracker(two, rng=_Max())
    for track_id, start in ((1, 0.0), (2, 3.0)):
        for ts in frames(15, 3, start=start):
            value = blink_signal(ts, [(start + 1.5, 0.2)])
            state = tracker.update(ts, EyeOpenness(value, value), OK, track_id=track_id)
    assert state.blinks == 1 and state.verdict is Verdict.PENDING


def test_closure_started_before_a_reset_does_not_complete_after_it(config):
    tracker = LivenessTracker(config)
    run(tracker, frames(30, 2.0), lambda ts: blink_signal(ts, [(1.9, 0.3)]))
    tracker.reset("swap")
    states = run(tracker, frames(30, 1.0, start=2.0), lambda ts: blink_signal(ts, [(1.9, 0.3)]))
    assert states[-1].blinks == 0


def test_timestamps_going_backwards_reset(config):
    tracker = LivenessTracker(config)
    run(tracker, frames(15, 3), lambda ts: blink_signal(ts, [(1.5, 0.2)]))
    state = tracker.update(0.5, EyeOpenness(OPEN, OPEN), OK)
    assert state.verdict is Verdict.PENDING and state.blinks == 0


class _Max(random.Random):
    """Challenge draw that always asks for the maximum."""

    def randint(self, a: int, b: int) -> int:
        return b


def test_eyes_relaxing_for_good_do_not_block_the_tracker(config):
    """Wide eyes at first, then a lasting lower level: after a too-long 'closure' the
    baseline follows the new level and a later blink still counts."""
    tracker = LivenessTracker(config)
    states = run(tracker, frames(15, 8), lambda ts: blink_signal(ts, [(5.0, 0.2)], 0.36 if ts < 1.5 else 0.2,
                                                                  0.04))
    assert states[-1].verdict is Verdict.LIVE and states[-1].blinks == 1


def test_sudden_change_of_face_aspect_is_not_a_blink(config):
    """A photo tilted away for 0.2 s: the eyes AND the face squash; the frame is refused."""
    tracker = LivenessTracker(config)
    for ts in frames(15, 5):
        tilted = 2.0 <= ts < 2.2
        value, aspect = (OPEN * 0.5, 0.25) if tilted else (OPEN, 0.5)
        state = tracker.update(ts, EyeOpenness(value, value, face_aspect=aspect), OK)
    assert state.blinks == 0


def test_a_blink_with_a_steady_face_aspect_counts(config):
    tracker = LivenessTracker(config)
    for ts in frames(15, 4):
        value = blink_signal(ts, [(2.0, 0.2)])
        state = tracker.update(ts, EyeOpenness(value, value, face_aspect=0.5), OK)
    assert state.verdict is Verdict.LIVE


def test_noisy_measurements_need_a_deeper_closure(config):
    """With openness jumping +-12 % frame to frame (a poor face), a 40 % dip is not
    enough, but a real closure to 10 % of the open level still is."""
    def run_with(dip: float) -> int:
        tracker = LivenessTracker(config)
        for i, ts in enumerate(frames(15, 5)):
            value = OPEN * (1.12 if i % 2 else 0.88)
            if 3.0 <= ts < 3.2:
                value = OPEN * dip
            state = tracker.update(ts, EyeOpenness(value, value), OK)
        return state.blinks

    assert run_with(0.6) == 0
    assert run_with(0.1) == 1
