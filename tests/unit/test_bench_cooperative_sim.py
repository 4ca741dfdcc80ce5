"""The cooperative-person simulation of `rollcall bench liveness` (pure, on synthetic head
poses): moves made from real frames by a mirror or a quarter turn are offered only when
the real motion was a move on its own axis, and a donor blink keeps its duration in
seconds at the person's frame rate."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.bench import liveness_challenge as sim
from firmware.config import LivenessConfig
from firmware.domain.challenge import Prompt
from firmware.domain.liveness_measures import EyeOpenness, GateResult
from tests.unit.test_liveness_challenge import shape

FPS = 15.0
CONFIG = LivenessConfig(policy="challenge")  # yaw 15 degrees, pitch 10 degrees
OPEN = 0.30


def _ramp(peak: tuple[float, float], seconds: float) -> list[tuple[float, float]]:
    """Out to ``peak`` (yaw, pitch) and back, smoothly, over ``seconds``."""
    n = int(round(seconds * FPS))
    return [(peak[0] * np.sin(np.pi * k / n), peak[1] * np.sin(np.pi * k / n)) for k in range(n + 1)]


def synthetic_clip(events: list[tuple[float, float]], blink_at: int | None = None) -> sim.ClipInputs:
    """2 s still, then each (yaw, pitch) excursion over 0.8 s followed by 1.5 s still. A
    0.15 s blink (labelled) ``blink_at`` frames in, if given. Half a degree of jitter."""
    rng = np.random.default_rng(5)
    poses = [(0.0, 0.0)] * int(2 * FPS)
    for peak in events:
        poses += _ramp(peak, 0.8) + [(0.0, 0.0)] * int(1.5 * FPS)
    frames = []
    for i, (yaw, pitch) in enumerate(poses):
        yaw, pitch = yaw + rng.normal(0, 0.5), pitch + rng.normal(0, 0.5)
        lid = 0.05 if blink_at is not None and blink_at <= i < blink_at + 2 else OPEN
        gate = GateResult(ok=abs(yaw) < 30, reason="" if abs(yaw) < 30 else "turned", yaw_deg=yaw,
                          pitch_deg=pitch, shape=shape(yaw, pitch))
        frames.append([sim.FaceInput(np.array([0.0, 0.0, 100.0, 100.0]), EyeOpenness(lid, lid, "eyelids"), gate)])
    blinks = [(blink_at / FPS, (blink_at + 1) / FPS)] if blink_at is not None else []
    return sim.ClipInputs("synthetic.mp4", FPS, frames, blinks)


def _source_peak(footage: sim.Footage, clip: sim.ClipInputs, span: list[int]) -> tuple[float, float]:
    """Largest |yaw| and |pitch| of the REAL motion behind a pooled span."""
    real = sim._poses(clip)
    period = len(clip.frames) + int(sim.POOL_GAP_S * clip.fps)
    local = [real[i % period] for i in span if i % period < len(clip.frames)]
    return max(abs(p[0]) for p in local if p), max(abs(p[1]) for p in local if p)


def test_a_small_sideways_wobble_never_becomes_a_look_down():
    wobble = (12.0, 0.0)  # no turn: under the 15 degree yaw threshold
    clip = synthetic_clip([wobble])
    # A quarter turn makes it a 12 degree pitch move, over the 10 degree pitch threshold ...
    variant = next(v for v in sim.move_variants(clip) if v.name.endswith("[roll+90]"))
    assert max(abs(p[1]) for p in sim._poses(variant) if p) > CONFIG.challenge_pitch_deg
    # ... which the simulation must not offer as a cooperative person's look up / down.
    footage = sim.cooperative_footage([clip], CONFIG)[0]
    assert footage.moves == {}


def test_a_real_turn_becomes_every_head_move_and_a_small_nod_no_turn():
    clip = synthetic_clip([(30.0, 0.0), (0.0, -12.0)])  # a real turn to the left, a real 12 degree nod
    footage = sim.cooperative_footage([clip], CONFIG)[0]
    assert set(footage.moves) == {Prompt.LEFT, Prompt.RIGHT, Prompt.UP, Prompt.DOWN}
    for prompt in (Prompt.LEFT, Prompt.RIGHT):
        for span in footage.moves[prompt]:  # the turn and its mirror; the nod (12 < 15) is no turn
            yaw, _ = _source_peak(footage, clip, span)
            assert yaw >= CONFIG.challenge_yaw_deg
    ups_downs = footage.moves[Prompt.UP] + footage.moves[Prompt.DOWN]
    from_turn = [s for s in ups_downs if _source_peak(footage, clip, s)[0] >= CONFIG.challenge_yaw_deg]
    from_nod = [s for s in ups_downs if _source_peak(footage, clip, s)[1] >= CONFIG.challenge_pitch_deg]
    assert len(from_turn) == 4 and len(from_nod) == 2  # 4 quarter turns of the turn; the nod and its mirror
    played = sim._poses(sim.pool_clips(sim.move_variants(clip)))
    for prompt in (Prompt.UP, Prompt.DOWN):
        for span in footage.moves[prompt]:
            pitch = max(abs(played[i][1]) for i in span if played[i])
            assert pitch >= CONFIG.challenge_pitch_deg  # as the tracker will see it


@pytest.mark.parametrize("fps", [8.0, 15.0, 25.0, 30.0])
def test_a_donor_blink_keeps_its_duration_at_the_persons_frame_rate(fps):
    ratios = (1.0, 1.0, 0.9, 0.2, 0.1, 0.1, 0.2, 0.6, 0.9, 1.0)  # 0.4 s at 25 fps, closed ~0.16 s
    donor = sim.DonorBlink(25.0, ratios)
    played = donor.at(fps)
    assert len(played) / fps == pytest.approx(len(ratios) / 25.0, abs=0.5 / fps)
    closed = sum(r < 0.5 for r in played) / fps
    assert closed == pytest.approx(4 / 25.0, abs=1.0 / fps)
    assert set(played) <= set(ratios)  # real samples, none invented
    if fps == 25.0:
        assert played == list(ratios)


def test_cooperative_people_built_from_a_clean_synthetic_clip_pass():
    clip = synthetic_clip([(30.0, 0.0), (-30.0, 0.0)], blink_at=20)
    out = sim.cooperative_runs([clip], CONFIG, runs=30, seed=3)
    assert out["cooperative_runs"] == 30 and out["cooperative_unanswerable_draws"] == 0
    assert out["cooperative_pass_rate"] == 1.0, out["cooperative_failures"]
    assert out["cooperative_median_s"] < 4.0
    slow = sim.cooperative_runs([clip], CONFIG, runs=30, seed=3, reaction_s=1.2)
    assert slow["cooperative_reaction_s"] == 1.2
    assert slow["cooperative_median_s"] > out["cooperative_median_s"]  # a slower reader takes longer
