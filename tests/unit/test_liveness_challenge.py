"""The head-pose challenge state machine, driven with an injected clock (frame timestamps)
and synthetic head poses (pure, fast): cooperative people pass, jitter, early moves, wrong
moves and timeouts fail, and repeated failures end in a latched spoof verdict."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.config import LivenessConfig
from firmware.domain.challenge import ChallengeTracker, MoveDetector, Prompt, make_tracker
from firmware.domain.head_pose import face_shape, relative_yaw_pitch
from firmware.domain.liveness import LivenessTracker, Verdict
from firmware.domain.liveness_measures import EyeOpenness, GateResult

FPS = 15.0
OPEN, SHUT = 0.30, 0.05
_BASE = np.random.default_rng(3).normal(size=(38, 3)) * np.array([1.0, 1.2, 0.5])
TARGET = {Prompt.LEFT: (25.0, 0.0), Prompt.RIGHT: (-25.0, 0.0), Prompt.UP: (0.0, 20.0), Prompt.DOWN: (0.0, -20.0)}


def rotation(yaw: float, pitch: float) -> np.ndarray:
    """Rotation that turns the face by ``yaw`` / ``pitch`` degrees (the tracker's signs)."""
    a, b = math.radians(-yaw), math.radians(-pitch)
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return ry @ rx


def shape(yaw: float, pitch: float) -> np.ndarray:
    q = _BASE @ rotation(yaw, pitch).T
    q = q - q.mean(axis=0)
    return q / math.sqrt(float((q ** 2).sum(axis=1).mean()))


def gate(yaw: float, pitch: float, ok: bool = True, reason: str = "") -> GateResult:
    return GateResult(ok=ok, reason=reason, yaw_deg=yaw, pitch_deg=pitch, shape=shape(yaw, pitch))


class Fixed(random.Random):
    """An rng whose draw is a given prompt sequence (then the same again)."""

    def __init__(self, *steps: Prompt) -> None:
        super().__init__(0)
        self.steps = steps

    def randint(self, a: int, b: int) -> int:
        return len(self.steps)


def fixed_tracker(*steps: Prompt, **cfg) -> ChallengeTracker:
    tracker = ChallengeTracker(LivenessConfig(policy="challenge", **cfg), rng=random.Random(0))
    tracker.draw = lambda: tuple(steps)  # type: ignore[method-assign]
    tracker.reset("fixed")
    return tracker


class Person:
    """A synthetic person: jitter of ``jitter`` degrees, and (if ``cooperative``) after
    ``reaction`` seconds a smooth 0.3 s move to the prompt's pose, a 0.3 s hold, a 0.3 s
    return; a blink prompt gets a 0.15 s blink."""

    def __init__(self, *, cooperative: bool = True, reaction: float = 0.45, jitter: float = 1.5, seed: int = 0):
        self.cooperative, self.reaction, self.jitter = cooperative, reaction, jitter
        self.rng = np.random.default_rng(seed)
        self.plan: tuple[float, Prompt] | None = None
        self.answered: set[tuple[int, int, str]] = set()

    def see(self, ts: float, state) -> None:
        key = (state.failures, state.step, state.prompt_code)
        if self.cooperative and state.prompt_code in {p.value for p in Prompt} and key not in self.answered:
            self.answered.add(key)
            self.plan = (ts + self.reaction, Prompt(state.prompt_code))

    def pose(self, ts: float) -> tuple[float, float, float]:
        """(yaw, pitch, openness) at ``ts``."""
        yaw = pitch = 0.0
        openness = OPEN
        if self.plan is not None:
            t = ts - self.plan[0]
            prompt = self.plan[1]
            if prompt is Prompt.BLINK:
                openness = SHUT if 0 <= t < 0.15 else OPEN
            elif 0 <= t < 0.9:
                k = min(t / 0.3, 1.0) if t < 0.6 else max(0.0, (0.9 - t) / 0.3)
                yaw, pitch = (k * v for v in TARGET[prompt])
        yaw += float(self.rng.normal(0, self.jitter))
        pitch += float(self.rng.normal(0, self.jitter))
        return yaw, pitch, openness


def drive(tracker: ChallengeTracker, person: Person, seconds: float = 20.0, fps: float = FPS):
    """Run until a final verdict (or ``seconds``); returns every state."""
    states = []
    for i in range(int(seconds * fps)):
        ts = i / fps
        yaw, pitch, openness = person.pose(ts)
        state = tracker.update(ts, EyeOpenness(openness, openness), gate(yaw, pitch))
        states.append(state)
        person.see(ts, state)
        if state.verdict in (Verdict.LIVE, Verdict.SPOOF):
            break
    return states


def test_synthetic_rotation_is_recovered():
    ref = shape(0.0, 0.0)
    for yaw, pitch in ((20, 0), (-30, 0), (0, 15), (0, -25), (18, -12)):
        got = relative_yaw_pitch(ref, shape(yaw, pitch))
        assert got == pytest.approx((yaw, pitch), abs=1.0)


def test_pose_ignores_position_scale_and_roll():
    points = np.zeros((468, 3))
    points[:, :] = np.random.default_rng(1).normal(size=(468, 3)) * 50
    moved = points * 1.7 + np.array([300.0, 120.0, 5.0])
    roll = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    a, b, c = face_shape(points), face_shape(moved), face_shape(points @ roll.T)
    assert relative_yaw_pitch(a, b) == pytest.approx((0.0, 0.0), abs=1e-6)
    assert relative_yaw_pitch(a, c) == pytest.approx((0.0, 0.0), abs=1e-6)
    assert face_shape(points[:, :2]) is None


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("fps", [8.0, 15.0, 30.0])
def test_cooperative_person_passes_every_draw(seed, fps):
    tracker = ChallengeTracker(LivenessConfig(policy="challenge"), rng=random.Random(seed))
    states = drive(tracker, Person(seed=seed), fps=fps)
    assert states[-1].verdict is Verdict.LIVE, [s.reason for s in states if s.reason][:3]
    assert states[-1].step == len(states[-1].steps)
    assert states[-1].elapsed_s < 5.0


@pytest.mark.parametrize("jitter", [1.0, 3.0])
def test_jitter_alone_never_passes_and_ends_in_spoof(jitter):
    cfg = LivenessConfig(policy="challenge", challenge_tries=2)
    tracker = ChallengeTracker(cfg, rng=random.Random(5))
    states = drive(tracker, Person(cooperative=False, jitter=jitter, seed=9), seconds=40)
    assert Verdict.LIVE not in {s.verdict for s in states}
    assert states[-1].verdict is Verdict.SPOOF and states[-1].failures == 2
    assert any(s.reason.startswith("timeout") for s in states)


def test_spoof_is_latched():
    tracker = fixed_tracker(Prompt.LEFT, Prompt.UP, challenge_tries=1)
    states = drive(tracker, Person(cooperative=False), seconds=10)
    assert states[-1].verdict is Verdict.SPOOF
    later = tracker.update(states[-1].elapsed_s + 0.1, EyeOpenness(OPEN, OPEN), gate(*TARGET[Prompt.LEFT]))
    assert later.verdict is Verdict.SPOOF


def test_wrong_direction_fails_the_try():
    tracker = fixed_tracker(Prompt.LEFT, Prompt.UP, challenge_tries=2)
    person = Person()
    person.see = lambda ts, state: None  # never follows the prompt...
    states = []
    for i in range(int(6 * FPS)):
        ts = i / FPS
        shown = next((s for s in states if s.prompt_code == "turn_left"), None)
        yaw = -25.0 if shown is not None and ts > shown.elapsed_s + 0.6 else 0.0  # ...turns RIGHT instead
        states.append(tracker.update(ts, EyeOpenness(OPEN, OPEN), gate(yaw, 0.0)))
    assert any(s.reason == "wrong move turn_right for turn_left" for s in states)
    assert any(s.prompt_code == "try_again" for s in states)
    assert Verdict.LIVE not in {s.verdict for s in states}


def test_move_before_the_prompt_could_be_seen_is_too_early():
    cfg = LivenessConfig(policy="challenge", challenge_tries=1)
    tracker = fixed_tracker(Prompt.LEFT, Prompt.RIGHT, challenge_tries=1)
    states = []
    for i in range(int(4 * FPS)):
        ts = i / FPS
        shown_at = next((s.elapsed_s for s in states if s.prompt_code == "turn_left"), None)
        # the "video" turns left exactly when the prompt appears (within the reaction time)
        yaw = 30.0 if shown_at is not None and ts >= shown_at + 1 / FPS else 0.0
        states.append(tracker.update(ts, EyeOpenness(OPEN, OPEN), gate(yaw, 0.0)))
    assert cfg.challenge_reaction_s > 1 / FPS
    assert states[-1].verdict is Verdict.SPOOF and states[-1].reason == "too early"


def test_head_still_turned_when_the_next_prompt_appears_must_come_back_first():
    tracker = fixed_tracker(Prompt.LEFT, Prompt.UP, challenge_tries=1)
    states = []
    for i in range(int(6 * FPS)):
        ts = i / FPS
        shown = next((s.elapsed_s for s in states if s.prompt_code == "turn_left"), None)
        up_shown = any(s.prompt_code == "look_up" for s in states)
        yaw = 25.0 if shown is not None and ts > shown + 0.5 else 0.0
        pitch = 20.0 if up_shown else 0.0  # goes from "left" straight to "up", never back to neutral
        states.append(tracker.update(ts, EyeOpenness(OPEN, OPEN), gate(yaw, pitch)))
    assert any(s.prompt_code == "look_up" for s in states)
    assert states[-1].verdict is Verdict.SPOOF and states[-1].reason == "timeout on look_up"


def test_timeout_then_a_new_sequence_then_spoof():
    tracker = fixed_tracker(Prompt.DOWN, Prompt.LEFT, challenge_tries=3, challenge_step_s=2.0)
    states = drive(tracker, Person(cooperative=False, jitter=0.5), seconds=30)
    codes = [s.prompt_code for s in states]
    assert codes.count("try_again") > 0 and states[-1].failures == 3
    assert states[-1].verdict is Verdict.SPOOF
    shown = next(i for i, s in enumerate(states) if s.prompt_code == "look_down")
    failed = next(i for i, s in enumerate(states) if s.prompt_code == "try_again")
    assert (failed - shown) / FPS == pytest.approx(2.0, abs=2 / FPS)


def test_blink_prompt_needs_a_blink_and_pose_prompts_ignore_blinks():
    tracker = fixed_tracker(Prompt.LEFT, Prompt.BLINK)
    person = Person()
    states = []
    for i in range(int(8 * FPS)):
        ts = i / FPS
        yaw, pitch, openness = person.pose(ts)
        if 0.6 <= ts < 0.75:  # a spontaneous blink while "turn left" is shown: not a failure
            openness = SHUT
        state = tracker.update(ts, EyeOpenness(openness, openness), gate(yaw, pitch))
        person.see(ts, state)
        states.append(state)
        if state.verdict is Verdict.LIVE:
            break
    assert states[-1].verdict is Verdict.LIVE and states[-1].failures == 0


def test_moving_the_head_during_a_blink_prompt_fails():
    tracker = fixed_tracker(Prompt.BLINK, Prompt.UP, challenge_tries=1)
    states = []
    for i in range(int(4 * FPS)):
        ts = i / FPS
        shown_at = next((s.elapsed_s for s in states if s.prompt_code == "blink"), None)
        yaw = 25.0 if shown_at is not None and ts > shown_at + 0.5 else 0.0
        states.append(tracker.update(ts, EyeOpenness(OPEN, OPEN), gate(yaw, 0.0)))
    assert states[-1].verdict is Verdict.SPOOF and states[-1].reason == "wrong move turn_left for blink"


def test_neutral_is_the_persons_own_pose():
    """Someone who stands with the head turned 12 degrees and tilted down 9 (a camera
    above the door) passes: moves are judged from their own neutral pose."""
    tracker = fixed_tracker(Prompt.RIGHT, Prompt.UP)
    person = Person()
    states = []
    for i in range(int(8 * FPS)):
        ts = i / FPS
        yaw, pitch, openness = person.pose(ts)
        state = tracker.update(ts, EyeOpenness(openness, openness), gate(yaw + 12.0, pitch - 9.0))
        person.see(ts, state)
        states.append(state)
        if state.verdict is Verdict.LIVE:
            break
    assert states[-1].verdict is Verdict.LIVE


def test_face_too_small_asks_to_come_closer_and_a_gap_resets():
    tracker = fixed_tracker(Prompt.LEFT, Prompt.UP)
    small = GateResult(ok=False, reason="too_small", shape=shape(0, 0))
    state = tracker.update(0.0, EyeOpenness(OPEN, OPEN), small)
    assert state.verdict is Verdict.LOOK_AT_CAMERA and state.prompt == "Please come closer"
    for i in range(10):
        state = tracker.update(0.1 + i / FPS, EyeOpenness(OPEN, OPEN), gate(0, 0))
    assert state.prompt_code == "turn_left" and state.busy
    state = tracker.update(10.0, EyeOpenness(OPEN, OPEN), gate(0, 0))  # track lost for 9 s
    assert state.prompt_code == "hold_still" and state.elapsed_s == 0.0


def test_move_detector_hysteresis():
    d = MoveDetector(15.0, 10.0)
    assert d.update(0.0, 0.0, 0.0) is None  # arms at neutral
    assert d.update(0.1, 14.9, 0.0) is None
    move = d.update(0.2, 15.1, 0.0)
    assert move is not None and move.direction is Prompt.LEFT and move.onset_ts == 0.2
    for ts, yaw in ((0.3, 16.0), (0.4, 11.0), (0.5, 16.0)):  # still away: no second move
        assert d.update(ts, yaw, 0.0) is None
    assert d.update(0.6, 5.0, 0.0) is None  # back near neutral: re-armed
    assert d.update(0.7, 0.0, -10.5).direction is Prompt.DOWN


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), lo=st.integers(1, 3), extra=st.integers(0, 2))
def test_draws_follow_the_rules(seed, lo, extra):
    cfg = LivenessConfig(policy="challenge", challenge_min_steps=lo, challenge_max_steps=lo + extra)
    steps = ChallengeTracker(cfg, rng=random.Random(seed)).steps
    assert lo <= len(steps) <= lo + extra
    assert sum(p is Prompt.BLINK for p in steps) <= 1
    assert any(p is not Prompt.BLINK for p in steps)
    assert all(a is not b for a, b in zip(steps, steps[1:]))


def test_policies_make_their_trackers_and_old_configs_load():
    assert isinstance(make_tracker(LivenessConfig(policy="challenge")), ChallengeTracker)
    blink = make_tracker(LivenessConfig(policy="blink_challenge", challenge_max_blinks=2), random.Random(1))
    assert isinstance(blink, LivenessTracker) and 1 <= blink.required_blinks <= 2
    with pytest.raises(ValueError):
        LivenessConfig(challenge_min_steps=3, challenge_max_steps=2)
