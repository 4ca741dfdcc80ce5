"""Head-pose challenge numbers for `rollcall bench liveness`: replays and a cooperative person.

Both work on per-frame measurements taken once per clip (:mod:`firmware.bench.liveness_cache`)
and turned into tracker inputs once (:func:`clip_inputs`), so hundreds of runs cost
milliseconds of model time.

- **Replay** (:func:`replay_pass_rate`): every clip is played as it is, from random start
  offsets (looping at its end like a phone would), at its own frame rate, every face
  followed by IoU with its own freshly drawn challenge. A run passes when any face passes.
- **Cooperative person** (:func:`cooperative_runs`): a SIMULATION assembled from real
  frames. From each clip the bench cuts *excursions* (a run of frames that starts at the
  person's neutral pose, crosses a prompt's threshold in one direction and comes back) and
  *blinks* (the hand-labelled blinks of ``blink_labels.json`` whose frames stay at neutral),
  plus runs of neutral frames. A simulated person watches the tracker's prompt: after a
  reaction time of ``REACTION_S`` of neutral frames it plays a real excursion (or blink)
  that answers that prompt, otherwise it holds still (neutral frames). All frames of one run
  come from ONE clip (one person); a run whose drawn prompts that clip cannot answer is
  counted as unanswerable, not as a pass.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field

import numpy as np

from firmware.config import LivenessConfig
from firmware.domain.challenge import EXIT_FRACTION, NEUTRAL_S, Prompt, make_tracker
from firmware.domain.head_pose import relative_yaw_pitch
from firmware.domain.liveness import LOST_GAP_S, Verdict
from firmware.domain.liveness_measures import EyeOpenness, GateResult, assess_measured
from firmware.inference.detector import iou_one_to_many

from firmware.bench.liveness_cache import ClipMeasures

REACTION_S = 0.4     # a cooperative person starts moving this long after the prompt
TRACK_IOU = 0.3
EXTRA_S = 3.0        # replay runs last the longest possible challenge plus this


@dataclass(frozen=True, slots=True)
class FaceInput:
    """What a tracker gets for one face in one frame."""

    box: np.ndarray
    openness: EyeOpenness
    gate: GateResult


@dataclass
class ClipInputs:
    """A clip's tracker inputs per frame (faces largest first)."""

    name: str
    fps: float
    frames: list[list[FaceInput]]
    blinks: list[tuple[float, float]] = field(default_factory=list)  # labelled, seconds


def clip_inputs(clip: ClipMeasures, config: LivenessConfig, min_face_px: float,
                blinks: list[tuple[float, float]] | None = None) -> ClipInputs:
    """Openness and gate of every face of every frame, computed once."""
    frames = []
    for faces in clip.faces:
        row = []
        for f in faces:
            openness, gate = assess_measured(f.box, f.points, f.lids, f.sharp, config, min_face_px)
            row.append(FaceInput(f.box, openness, gate))
        frames.append(row)
    return ClipInputs(clip.name, clip.fps, frames, list(blinks or []))


def challenge_seconds(config: LivenessConfig) -> float:
    """Longest time a challenge can take (all tries timing out), seconds."""
    per_try = config.challenge_max_steps * config.challenge_step_s + 1.0
    return config.challenge_tries * per_try + NEUTRAL_S


# ---- replay ------------------------------------------------------------------------------

def play_replay(clip: ClipInputs, config: LivenessConfig, offset: int, seed: int) -> tuple[bool, bool]:
    """Play ``clip`` from frame ``offset`` (looping) for the longest challenge; returns
    (any face passed, any face was judged spoof)."""
    n = len(clip.frames)
    total = int((challenge_seconds(config) + EXTRA_S) * clip.fps)
    tracks: list[dict] = []
    made = 0
    passed = spoof = False
    for k in range(total):
        ts = k / clip.fps
        tracks = [t for t in tracks if ts - t["last"] <= LOST_GAP_S]
        used: set[int] = set()
        for face in clip.frames[(offset + k) % n]:
            free = [t for t in tracks if id(t) not in used]
            track = None
            if free:
                ious = iou_one_to_many(face.box, np.stack([t["box"] for t in free]))
                best = int(np.argmax(ious))
                track = free[best] if ious[best] > TRACK_IOU else None
            if track is None:
                track = {"tracker": make_tracker(config, random.Random(seed * 1000 + made)), "box": face.box,
                         "last": ts}
                made += 1
                tracks.append(track)
            used.add(id(track))
            track["box"], track["last"] = face.box, ts
            state = track["tracker"].update(ts, face.openness, face.gate)
            passed |= state.verdict is Verdict.LIVE
            spoof |= state.verdict is Verdict.SPOOF
            track["done"] = state.verdict in (Verdict.LIVE, Verdict.SPOOF)
        if passed or (tracks and all(t.get("done") for t in tracks) and max(map(len, clip.frames)) <= 1):
            break
    return passed, spoof


def replay_pass_rate(clips: list[ClipInputs], config: LivenessConfig, offsets: int, seed: int) -> dict:
    """Each clip from ``offsets`` random start frames, each against a fresh challenge."""
    rng = random.Random(seed)
    rows, total, passes = [], 0, 0
    for clip in clips:
        if not clip.frames:
            continue
        wins = spoofs = 0
        for i in range(offsets):
            ok, bad = play_replay(clip, config, rng.randrange(len(clip.frames)), rng.randrange(2**31))
            wins += ok
            spoofs += bad
        rows.append({"clip": clip.name, "runs": offsets, "passes": wins, "spoof_verdicts": spoofs})
        total, passes = total + offsets, passes + wins
    return {"replay_pass_rate": passes / total if total else None, "replay_runs": total, "replay_clips": rows}


# ---- cooperative person ------------------------------------------------------------------

@dataclass
class Footage:
    """One clip's main face cut into neutral frames, excursions and blinks (frame indices)."""

    clip: ClipInputs
    neutral: list[int]
    moves: dict[Prompt, list[list[int]]]


def _direction(yaw: float, pitch: float, config: LivenessConfig) -> Prompt | None:
    sy, sp = yaw / config.challenge_yaw_deg, pitch / config.challenge_pitch_deg
    if max(abs(sy), abs(sp)) < 1.0:
        return None
    if abs(sy) >= abs(sp):
        return Prompt.LEFT if sy > 0 else Prompt.RIGHT
    return Prompt.UP if sp > 0 else Prompt.DOWN


def _poses(clip: ClipInputs) -> list[tuple[float, float] | None]:
    """Main-face (yaw, pitch) per frame relative to the clip's first steady second's median."""
    first = next((f[0].gate.shape for f in clip.frames if f and f[0].gate.shape is not None), None)
    raw: list[tuple[float, float] | None] = []
    for faces in clip.frames:
        shape = faces[0].gate.shape if faces else None
        raw.append(None if shape is None or first is None else relative_yaw_pitch(first, shape))
    known = [p for p in raw[: max(3, int(clip.fps))] if p is not None]
    if not known:
        return raw
    y0, p0 = float(np.median([p[0] for p in known])), float(np.median([p[1] for p in known]))
    return [None if p is None else (p[0] - y0, p[1] - p0) for p in raw]


def cut_footage(clip: ClipInputs, config: LivenessConfig) -> Footage:
    """Neutral frames, excursions per direction and labelled blinks of ``clip``."""
    poses = _poses(clip)
    ey, ep = EXIT_FRACTION * config.challenge_yaw_deg, EXIT_FRACTION * config.challenge_pitch_deg

    def neutral(i: int) -> bool:
        p = poses[i]
        return p is not None and abs(p[0]) < ey and abs(p[1]) < ep and clip.frames[i][0].gate.ok

    moves: dict[Prompt, list[list[int]]] = {p: [] for p in Prompt}
    i = 0
    while i < len(poses):
        if not neutral(i):
            i += 1
            continue
        j = i + 1
        while j < len(poses) and poses[j] is not None and _direction(*poses[j], config) is None:
            j += 1
        if j >= len(poses) or poses[j] is None:
            i = j + 1
            continue
        k = j  # the way back to neutral (frames without a face may be on it)
        while k < len(poses) and not neutral(k) and k - j < 3 * clip.fps:
            k += 1
        lead = max(i, j - int(0.5 * clip.fps))
        moves[_direction(*poses[j], config)].append(list(range(lead, min(k, len(poses) - 1) + 1)))
        i = k + 1
    for start_s, end_s in clip.blinks:
        a, b = int(round((start_s - 0.2) * clip.fps)), int(round((end_s + 0.3) * clip.fps))
        span = list(range(max(0, a), min(len(poses), b + 1)))
        if span and all(clip.frames[x] and poses[x] is not None and _direction(*poses[x], config) is None
                        for x in span):
            moves[Prompt.BLINK].append(span)
    still = [i for i in range(len(poses)) if neutral(i)]
    return Footage(clip, still, {k: v for k, v in moves.items() if v})


def _neutral_run(footage: Footage, seconds: float, rng: random.Random) -> list[int]:
    """``seconds`` of neutral frames: a random stretch of consecutive neutral frames,
    played forwards then backwards if it is short."""
    n = max(1, int(round(seconds * footage.clip.fps)))
    runs, run = [], [footage.neutral[0]]
    for a, b in zip(footage.neutral, footage.neutral[1:]):
        if b == a + 1:
            run.append(b)
        else:
            runs.append(run)
            run = [b]
    runs.append(run)
    run = max(runs, key=len) if rng.random() < 0.5 else rng.choice(runs)
    if len(run) < 2:
        run = max(runs, key=len)
    out, forward, i = [], True, rng.randrange(len(run))
    while len(out) < n:
        out.append(run[i])
        if len(run) == 1:
            continue
        if (forward and i + 1 >= len(run)) or (not forward and i == 0):
            forward = not forward
        i += 1 if forward else -1
    return out


def cooperative_run(footage: Footage, config: LivenessConfig, seed: int) -> float | None:
    """One simulated cooperative person; seconds from the first frame to ``live`` (None: failed)."""
    rng = random.Random(seed)
    tracker = make_tracker(config, random.Random(seed))
    queue: list[int] = []
    answered: set[tuple[int, int, str]] = set()
    state = None
    limit = int((challenge_seconds(config) + EXTRA_S) * footage.clip.fps)
    for k in range(limit):
        ts = k / footage.clip.fps
        if not queue:
            key = (state.failures, state.step, state.prompt_code) if state is not None else None
            known = {p.value for p in footage.moves}  # prompts this person's footage can answer
            if state is not None and state.prompt_code in known and key not in answered:
                answered.add(key)
                queue = (_neutral_run(footage, REACTION_S, rng)
                         + list(rng.choice(footage.moves[Prompt(state.prompt_code)])))
            else:
                queue = _neutral_run(footage, 1.0 / footage.clip.fps, rng)
        faces = footage.clip.frames[queue.pop(0)]
        if not faces:
            continue  # the camera lost the face on this frame (as in the clip)
        face = faces[0]
        state = tracker.update(ts, face.openness, face.gate)
        if state.verdict is Verdict.LIVE:
            return ts
        if state.verdict is Verdict.SPOOF:
            return None
    return None


def person_of(clip_name: str) -> str:
    """The source clip of a (possibly rotated) clip name: ``real.mov[rot90cw]`` -> ``real.mov``."""
    return clip_name.split("[", 1)[0]


def pool_footage(parts: list[Footage]) -> Footage:
    """One person's footage from several camera orientations of the same clip (the
    challenge's relative yaw/pitch and the eyelid ratio do not change with camera roll)."""
    frames: list[list[FaceInput]] = []
    neutral: list[int] = []
    moves: dict[Prompt, list[list[int]]] = {}
    for part in parts:
        base = len(frames)
        frames.extend(part.clip.frames)
        neutral.extend(base + i for i in part.neutral)
        for prompt, spans in part.moves.items():
            moves.setdefault(prompt, []).extend([base + i for i in span] for span in spans)
    first = parts[0].clip
    return Footage(ClipInputs(person_of(first.name), first.fps, frames, first.blinks), neutral, moves)


def cooperative_runs(clips: list[ClipInputs], config: LivenessConfig, runs: int, seed: int) -> dict:
    """``runs`` simulated cooperative people: each draws a challenge and is played by a
    person (one source clip, every camera orientation of it) whose footage answers every
    prompt of that draw."""
    by_person: dict[str, list[Footage]] = {}
    for clip in clips:
        part = cut_footage(clip, config)
        if part.neutral:
            by_person.setdefault(person_of(clip.name), []).append(part)
    footage = [pool_footage(parts) for parts in by_person.values()]
    rng = random.Random(seed)
    times: list[float] = []
    fails = unanswerable = 0
    for _ in range(runs):
        run_seed = rng.randrange(2**31)
        steps = make_tracker(config, random.Random(run_seed)).steps
        able = [f for f in footage if all(p in f.moves for p in steps)]
        if not able:
            unanswerable += 1
            continue
        t = cooperative_run(rng.choice(able), config, run_seed)
        if t is None:
            fails += 1
        else:
            times.append(t)
    judged = len(times) + fails
    return {"cooperative_pass_rate": len(times) / judged if judged else None,
            "cooperative_median_s": statistics.median(times) if times else None,
            "cooperative_p95_s": float(np.percentile(times, 95)) if times else None,
            "cooperative_runs": judged, "cooperative_unanswerable_draws": unanswerable,
            "cooperative_footage": {f.clip.name: {p.value: len(v) for p, v in f.moves.items()} for f in footage}}
