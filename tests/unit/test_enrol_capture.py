"""Enrolment capture rules (pure: fake gates, openness and liveness; no camera, no models)."""

from __future__ import annotations

import numpy as np

from firmware.domain.liveness import Verdict
from firmware.domain.liveness_measures import EyeOpenness, GateResult
from firmware.runtime.capture import BLINK_PROMPT, POSE_WAIT_S, PROMPTS, STEP_S, WAIT_PROMPT, EnrolCapture

OPEN = EyeOpenness(0.3, 0.3)
CLOSED = EyeOpenness(0.05, 0.05)
GOOD = GateResult(ok=True, face_px=180.0, yaw_deg=4.0, pitch_deg=-2.0, sharpness=120.0)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeLiveness:
    """Live once it saw ``blinks_needed`` closed frames; spoof after ``spoof_after`` frames."""

    def __init__(self, blinks_needed: int = 1, spoof_after: int = 10_000) -> None:
        self.blinks, self.needed, self.frames, self.spoof_after = 0, blinks_needed, 0, spoof_after

    def update(self, ts, openness, gate):
        self.frames += 1
        self.blinks += openness is CLOSED

        class State:
            verdict = (Verdict.LIVE if self.blinks >= self.needed else
                       Verdict.SPOOF if self.frames >= self.spoof_after else Verdict.PENDING)
        return State()


def embedding(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=16).astype(np.float32)
    return v / np.linalg.norm(v)


def feed(capture: EnrolCapture, clock: Clock, frames: int, *, dt: float = 0.1, track: int = 1,
         openness=OPEN, gate=GOOD, seed0: int = 0) -> int:
    kept = 0
    for i in range(frames):
        clock.t += dt
        kept += capture.offer(track, clock.t, gate, openness, crop=lambda: b"\xff\xd8jpeg",
                              embed=lambda i=i: embedding(seed0 + i))
    return kept


def test_keeps_the_target_number_of_spaced_frames_after_a_blink_then_is_done():
    clock = Clock()
    cap = EnrolCapture("p1", "Ann", target=3, liveness_factory=FakeLiveness, clock=clock)
    assert feed(cap, clock, 8) == 0 and cap.prompt == BLINK_PROMPT     # no blink yet: nothing kept
    feed(cap, clock, 1, openness=CLOSED)                                  # the blink
    assert feed(cap, clock, 80) == 3
    status = cap.status()
    assert status["state"] == "done" and status["kept"] == 3 and len(status["frames"]) == 3
    times = [f["at_s"] for f in status["frames"]]
    assert all(b - a >= STEP_S - 1e-6 for a, b in zip(times, times[1:]))
    assert [f["prompt"] for f in status["frames"]] == list(PROMPTS[:3])
    assert status["frames"][0]["face_px"] == 180 and status["frames"][0]["yaw_deg"] == 4.0
    assert feed(cap, clock, 20) == 0                                       # done: no more frames


def test_bad_gate_closed_eyes_and_near_copies_are_not_kept():
    clock = Clock()
    cap = EnrolCapture("p1", "Ann", target=2, liveness_factory=None, clock=clock)
    assert feed(cap, clock, 10, gate=GateResult.failed("turned")) == 0
    assert cap.prompt == "Face the camera"
    feed(cap, clock, 10)                       # open-eye baseline; keeps one frame
    assert len(cap.frames) == 1
    clock.t += 5
    assert feed(cap, clock, 3, openness=EyeOpenness(0.1, 0.1)) == 0      # mid-blink
    same = cap.frames[0].embedding

    clock.t += 1
    assert not cap.offer(1, clock.t, GOOD, OPEN, crop=lambda: b"x", embed=lambda: same)   # a copy
    assert len(cap.frames) == 1


def test_a_new_face_must_show_liveness_again_and_a_spoof_verdict_says_so():
    clock = Clock()
    cap = EnrolCapture("p1", "Ann", target=5, liveness_factory=lambda: FakeLiveness(spoof_after=5), clock=clock)
    feed(cap, clock, 1, openness=CLOSED)
    assert feed(cap, clock, 15) >= 1
    kept = len(cap.frames)
    assert feed(cap, clock, 4, track=2) == 0          # someone else stepped in: liveness again
    feed(cap, clock, 4, track=2)
    assert "no blink" in cap.message and len(cap.frames) == kept


def test_timeout_keeps_what_it_has_and_cancel_stops_it():
    clock = Clock()
    cap = EnrolCapture("p1", "Ann", target=5, timeout_s=10, liveness_factory=None, clock=clock)
    cap.no_face()
    assert cap.prompt == WAIT_PROMPT
    feed(cap, clock, 15)
    kept = len(cap.frames)
    assert 1 <= kept < 5
    clock.t += 20
    assert cap.status()["state"] == "timed_out" and "time is up" in cap.status()["message"]
    assert feed(cap, clock, 20) == 0 and len(cap.faces([0, 0, 1, 99, -1])) == min(kept, 2)
    other = EnrolCapture("p2", "Bob", liveness_factory=None, clock=clock)
    other.cancel()
    assert other.status()["state"] == "cancelled" and not other.active
    assert other.frame(0) is None


def test_each_prompt_waits_for_its_pose_then_takes_any_good_frame():
    clock = Clock()
    cap = EnrolCapture("p1", "Ann", target=3, liveness_factory=None, clock=clock)
    feed(cap, clock, 10)                                           # straight: kept as asked
    assert len(cap.frames) == 1 and cap.frames[0].pose_ok
    left = GateResult(ok=True, face_px=180.0, yaw_deg=12.0, pitch_deg=0.0, sharpness=100.0)
    feed(cap, clock, 12, gate=left, seed0=100)                     # "turn slightly left": yaw > 0
    assert len(cap.frames) == 2 and cap.frames[1].pose_ok and cap.frames[1].prompt == PROMPTS[1]
    start = clock.t
    feed(cap, clock, 60, gate=left, seed0=200)                     # "turn right" never happens
    assert len(cap.frames) == 3 and not cap.frames[2].pose_ok
    assert cap.frames[2].at - cap.frames[1].at >= POSE_WAIT_S - 0.1 and clock.t > start
    assert cap.status()["frames"][2]["pose_ok"] is False
