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
  counted as unanswerable, not as a pass. More moves are made from the same frames by a
  mirror and a quarter turn about the camera axis (:func:`move_variants`); a transformed
  excursion is offered only if the real motion it was made from was a move by the
  product's own threshold on the axis it was made on (a small sideways wobble that is no
  turn never becomes a "look down" because the pitch threshold is smaller). A person with
  no labelled blink blinks with another clip's eyelid ratios, resampled by time to the
  person's own frame rate.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field

import numpy as np

from firmware.config import LivenessConfig
from firmware.domain.challenge import EXIT_FRACTION, NEUTRAL_S, Prompt, make_tracker
from firmware.domain.head_pose import relative_yaw_pitch, rotation_between
from firmware.domain.liveness import LOST_GAP_S, Verdict
from firmware.domain.liveness_measures import EyeOpenness, GateResult, assess_measured
from firmware.inference.detector import iou_one_to_many

from firmware.bench.liveness_cache import ClipMeasures

REACTION_S = 0.4     # a cooperative person starts moving this long after the prompt
TRACK_IOU = 0.3
EXTRA_S = 3.0        # replay runs last the longest possible challenge plus this
HOLD_FRACTION = 1.6  # a simulated move goes out to this multiple of the threshold, then back
STILL_DEG = 4.0      # "holding still" frames: within this many degrees of the clip's neutral pose
POOL_GAP_S = 4.0     # empty frames between the variants of one person's pooled footage


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

def play_replay(clip: ClipInputs, config: LivenessConfig, offset: int, seed: int,
                loop: bool = True) -> tuple[bool, bool]:
    """Play ``clip`` from frame ``offset`` (looping, unless ``loop`` is False) for the
    longest challenge; returns (any face passed, any face was judged spoof)."""
    n = len(clip.frames)
    total = int((challenge_seconds(config) + EXTRA_S) * clip.fps) if loop else n - offset
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
    """One person's frames cut into neutral frames, excursions and blinks (frame indices)."""

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
    """Main-face (yaw, pitch) per frame relative to the clip's first second's median."""
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


# ---- more moves from the same real frames ------------------------------------------------

_MIRROR = np.diag([-1.0, 1.0, 1.0])
_ROLL = {+1: np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
         -1: np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])}
VARIANTS = {"mirror": _MIRROR, "roll+90": _ROLL[+1], "roll-90": _ROLL[-1],
            "mirror,roll+90": _ROLL[+1] @ _MIRROR, "mirror,roll-90": _ROLL[-1] @ _MIRROR}


def _neutral_shape(clip: ClipInputs) -> np.ndarray | None:
    """The main face's shape at the frame closest to the clip's neutral pose."""
    poses = _poses(clip)
    known = [i for i, p in enumerate(poses) if p is not None]
    if not known:
        return None
    best = min(known, key=lambda i: abs(poses[i][0]) + abs(poses[i][1]))
    return clip.frames[best][0].gate.shape


def _with_shape(face: FaceInput, shape: np.ndarray) -> FaceInput:
    g = face.gate
    gate = GateResult(ok=g.ok, reason=g.reason, face_px=g.face_px, yaw_deg=g.yaw_deg, pitch_deg=g.pitch_deg,
                      sharpness=g.sharpness, roll_deg=g.roll_deg, shape=shape)
    return FaceInput(face.box, face.openness, gate)


def move_variants(clip: ClipInputs) -> list[ClipInputs]:
    """The clip as measured, plus the same frames with each frame's measured head rotation
    (relative to the person's neutral pose) conjugated with a mirror and/or a quarter turn
    about the camera axis: a real turn to the right becomes a turn to the left (mirror) or
    a look up / down (quarter turn). Only the rotation changes; the eyelids, the quality gate
    and the timing are the frame's own. All variants share the person's neutral pose, so
    they can follow each other in one simulated stream."""
    neutral = _neutral_shape(clip)
    if neutral is None:
        return [clip]
    out = [clip]
    for name, c in VARIANTS.items():
        inv = np.linalg.inv(c)
        frames = []
        for faces in clip.frames:
            row = []
            for f in faces:
                if f.gate.shape is None:
                    row.append(f)
                    continue
                turned = c @ rotation_between(neutral, f.gate.shape) @ inv
                row.append(_with_shape(f, neutral @ turned.T))
            frames.append(row)
        out.append(ClipInputs(f"{clip.name}[{name}]", clip.fps, frames, clip.blinks))
    return out


def person_of(clip_name: str) -> str:
    """The source clip of a variant name: ``real.mov[mirror,roll+90]`` -> ``real.mov``."""
    return clip_name.split("[", 1)[0]


def pool_clips(parts: list[ClipInputs]) -> ClipInputs:
    """One person's frames from several variants of the same clip, one after the other
    with a few seconds of empty frames between them (no excursion spans two parts).
    Blinks: the first part's."""
    frames: list[list[FaceInput]] = []
    gap = int(POOL_GAP_S * parts[0].fps)
    for part in parts:
        if frames:
            frames.extend([] for _ in range(gap))
        frames.extend(part.frames)
    first = parts[0]
    return ClipInputs(person_of(first.name), first.fps, frames, first.blinks)


def _threshold(prompt: Prompt, config: LivenessConfig) -> float:
    return config.challenge_yaw_deg if prompt in (Prompt.LEFT, Prompt.RIGHT) else config.challenge_pitch_deg


def _excursion(poses: list, source: list, neutral, i: int, j: int, config: LivenessConfig,
               fps: float) -> tuple[Prompt, list[int]] | None:
    """The move that leaves neutral after frame ``i`` and crosses a threshold at frame ``j``
    in the real motion ``source`` (the measured poses before any mirror or quarter turn):
    its direction as the tracker sees it in ``poses`` (the frames as played) and its frames,
    from the last neutral frame before it out to HOLD_FRACTION x that direction's threshold
    (or the peak), then the way back from the last frame that far out (a person who does not
    hold the turn for seconds). None when the head does not come back within 3 s, or when
    the played move does not cross its own threshold (a real nod too small to be a turn)."""
    axis = 0 if _direction(*source[j], config) in (Prompt.LEFT, Prompt.RIGHT) else 1
    limit = EXIT_FRACTION * (config.challenge_yaw_deg if axis == 0 else config.challenge_pitch_deg)

    def back(x: int) -> bool:  # the moved axis is back near neutral
        return source[x] is not None and abs(source[x][axis]) < limit

    k = j
    while k < len(source) and not back(k) and k - j < 3 * fps:
        k += 1
    if k >= len(source) or not back(k):
        return None
    known = [x for x in range(j, k) if source[x] is not None and poses[x] is not None]
    if not known:
        return None
    peak = max(known, key=lambda x: abs(source[x][axis]))
    direction = _direction(*poses[peak], config)
    if direction is None:
        return None
    lead = max(x for x in range(i, j) if neutral(x))
    far = HOLD_FRACTION * _threshold(direction, config)  # the rotation's size is the same in both
    past = [x for x in known if abs(source[x][axis]) >= far]
    out_end, back_start = (past[0], past[-1]) if past else (peak, peak)
    return direction, list(range(lead, out_end + 1)) + list(range(max(back_start, out_end + 1), k + 1))


def cut_footage(clip: ClipInputs, config: LivenessConfig,
                source: list[tuple[float, float] | None] | None = None) -> Footage:
    """Neutral frames, excursions per direction and labelled blinks of ``clip``. ``source``:
    per frame, the pose of the real motion the frame was made from (default: the clip's own
    poses); moves are found in it, so a transformed frame is a move only if its real motion
    was one."""
    poses = _poses(clip)
    source = poses if source is None else source
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
        while j < len(poses) and source[j] is not None and _direction(*source[j], config) is None:
            j += 1
        if j >= len(poses) or source[j] is None:
            i = j + 1
            continue
        found = _excursion(poses, source, neutral, i, j, config, clip.fps)
        if found is not None:
            moves[found[0]].append(found[1])
        i = found[1][-1] if found else j + 1
    for start_s, end_s in clip.blinks:
        a, b = int(round((start_s - 0.2) * clip.fps)), int(round((end_s + 0.3) * clip.fps))
        span = list(range(max(0, a), min(len(poses), b + 1)))
        if span and all(clip.frames[x] and poses[x] is not None and _direction(*poses[x], config) is None
                        for x in span):
            moves[Prompt.BLINK].append(span)
    still = [i for i in range(len(poses)) if neutral(i) and max(map(abs, poses[i])) < STILL_DEG]
    return Footage(clip, still, {k: v for k, v in moves.items() if v})


@dataclass(frozen=True, slots=True)
class DonorBlink:
    """A labelled blink of one clip: eyelid openness over that clip's open level, one value
    per frame of the clip, at ``fps`` frames per second."""

    fps: float
    ratios: tuple[float, ...]

    def at(self, fps: float) -> list[float]:
        """The blink as a camera running at ``fps`` sees it: same duration in seconds, each
        frame showing the donor frame nearest to its time (a 25 fps blink played frame by
        frame at 15 fps would last 1.7 times as long as the real one)."""
        duration = len(self.ratios) / self.fps
        n = max(1, int(round(duration * fps)))
        return [self.ratios[min(len(self.ratios) - 1, int(round(k / fps * self.fps)))] for k in range(n)]


def blink_ratios(footage: list[Footage]) -> list[DonorBlink]:
    """Every labelled blink as eyelid openness over the clip's median open level, per frame."""
    out = []
    for f in footage:
        level = float(np.median([f.clip.frames[i][0].openness.mean for i in f.neutral]))
        for span in f.moves.get(Prompt.BLINK, []):
            out.append(DonorBlink(f.clip.fps, tuple(f.clip.frames[i][0].openness.mean / level for i in span)))
    return out


def _with_blink(frames: list[FaceInput], ratios: list[float]) -> list[FaceInput]:
    """A person's neutral frames whose eyelid openness follows a donor blink's ratios (one
    per frame, already at the person's frame rate)."""
    out = []
    for face, r in zip(frames, ratios):
        o = face.openness
        out.append(FaceInput(face.box, EyeOpenness(o.right * r, o.left * r, o.source, o.face_aspect), face.gate))
    return out


class Holder:
    """A person holding still: the frames of the clip's longest stretch of still frames,
    played forwards and backwards from a random start, continuing where it left off (so
    consecutive still frames are consecutive real frames)."""

    def __init__(self, footage: Footage, rng: random.Random) -> None:
        runs, run = [], [footage.neutral[0]]
        for a, b in zip(footage.neutral, footage.neutral[1:]):
            if b == a + 1:
                run.append(b)
            else:
                runs.append(run)
                run = [b]
        runs.append(run)
        self.run = max(runs, key=len)
        self.i, self.step = rng.randrange(len(self.run)), 1

    def take(self, n: int) -> list[int]:
        """The next ``n`` frame indices."""
        out = []
        for _ in range(max(1, n)):
            out.append(self.run[self.i])
            if len(self.run) > 1:
                if not 0 <= self.i + self.step < len(self.run):
                    self.step = -self.step
                self.i += self.step
        return out


def _answer(footage: Footage, prompt: Prompt, donors: list[DonorBlink], rng: random.Random,
            holder: Holder, reaction_s: float = REACTION_S) -> list[FaceInput]:
    """Frames answering ``prompt``: a reaction time holding still, then the person's own real
    move (or blink); a person with no labelled blink blinks with a donor's eyelid ratios."""
    frames, fps = footage.clip.frames, footage.clip.fps
    reaction = holder.take(int(round(reaction_s * fps)))
    if prompt in footage.moves:
        return [frames[i][0] for i in reaction] + [frames[i][0] for i in rng.choice(footage.moves[prompt])
                                                   if frames[i]]
    ratios = rng.choice(donors).at(fps)
    return [frames[i][0] for i in reaction] + _with_blink([frames[i][0] for i in holder.take(len(ratios))], ratios)


def can_answer(footage: Footage, prompt: Prompt, donors: list[DonorBlink]) -> bool:
    return prompt in footage.moves or (prompt is Prompt.BLINK and bool(donors))


def cooperative_run(footage: Footage, config: LivenessConfig, seed: int,
                    donors: list[DonorBlink] | None = None,
                    reaction_s: float = REACTION_S) -> tuple[float | None, str]:
    """One simulated cooperative person: (seconds from the first frame to ``live`` or
    None, the reason of the last failed try)."""
    rng = random.Random(seed)
    donors = donors or []
    holder = Holder(footage, rng)
    tracker = make_tracker(config, random.Random(seed))
    queue: list[FaceInput] = []
    answered: set[tuple[int, int, str]] = set()
    state = None
    limit = int((challenge_seconds(config) + EXTRA_S) * footage.clip.fps)
    for k in range(limit):
        ts = k / footage.clip.fps
        if not queue:
            code = state.prompt_code if state is not None else ""
            key = (state.failures, state.step, code) if state is not None else None
            if code in {p.value for p in Prompt} and can_answer(footage, Prompt(code), donors) \
                    and key not in answered:
                answered.add(key)
                queue = _answer(footage, Prompt(code), donors, rng, holder, reaction_s)
            else:
                queue = [footage.clip.frames[i][0] for i in holder.take(1)]
        face = queue.pop(0)
        state = tracker.update(ts, face.openness, face.gate)
        if state.verdict is Verdict.LIVE:
            return ts, ""
        if state.verdict is Verdict.SPOOF:
            return None, state.reason
    return None, "no verdict"


def cooperative_footage(clips: list[ClipInputs], config: LivenessConfig) -> list[Footage]:
    """One Footage per source clip (all its camera variants pooled; moves are found in the
    clip's real motion, see :func:`cut_footage`)."""
    by_person: dict[str, tuple[ClipInputs, list[ClipInputs]]] = {}
    for clip in clips:
        by_person[person_of(clip.name)] = (clip, move_variants(clip))
    out = []
    for clip, parts in by_person.values():
        pooled = pool_clips(parts)
        real = _poses(clip)
        gap = [None] * int(POOL_GAP_S * clip.fps)
        source = real + [p for _ in parts[1:] for p in gap + real]
        footage = cut_footage(pooled, config, source)
        if footage.neutral:
            out.append(footage)
    return out


def cooperative_runs(clips: list[ClipInputs], config: LivenessConfig, runs: int, seed: int,
                     reaction_s: float = REACTION_S) -> dict:
    """``runs`` simulated cooperative people: each draws a challenge and is played by a
    person (one source clip and its move variants) whose footage answers every kind of
    prompt (so a second try can be answered too), else at least every prompt of the draw;
    each starts a move or blink ``reaction_s`` seconds after its prompt appeared."""
    footage = cooperative_footage(clips, config)
    donors = blink_ratios(footage)
    rng = random.Random(seed)
    times: list[float] = []
    reasons: dict[str, int] = {}
    unanswerable = 0
    for _ in range(runs):
        run_seed = rng.randrange(2**31)
        steps = make_tracker(config, random.Random(run_seed)).steps
        complete = [f for f in footage if all(can_answer(f, p, donors) for p in Prompt)]
        able = complete or [f for f in footage if all(can_answer(f, p, donors) for p in steps)]
        if not able:
            unanswerable += 1
            continue
        t, why = cooperative_run(rng.choice(able), config, run_seed, donors, reaction_s)
        if t is None:
            key = why.split(" for ")[0]
            reasons[key] = reasons.get(key, 0) + 1
        else:
            times.append(t)
    judged = len(times) + sum(reasons.values())
    return {"cooperative_pass_rate": len(times) / judged if judged else None,
            "cooperative_median_s": statistics.median(times) if times else None,
            "cooperative_p95_s": float(np.percentile(times, 95)) if times else None,
            "cooperative_runs": judged, "cooperative_unanswerable_draws": unanswerable,
            "cooperative_reaction_s": reaction_s,
            "cooperative_failures": reasons,
            "cooperative_footage": {f.clip.name: {p.value: len(v) for p, v in f.moves.items()} for f in footage}}
