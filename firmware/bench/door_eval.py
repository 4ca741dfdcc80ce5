"""Track-level open-set identification on still photos (for `rollcall bench door`).

Data: a :class:`~firmware.bench.door_data.PhotoSet` (per photo the photo's own embedding,
used to enrol, and camera-like frames, used as a track's frames).

Splits: identities are split by ``sha1(name)[0] % 2``. Split A (0) is used only to fit the
calibration (impostor tracks of A against people of A) and as *distractors* that fill the
1,000-identity galleries (people enrolled, never probed). Split B (1) gives every genuine
and impostor track that is evaluated. No evaluated track is of a person whose photos were
used to fit the calibration.

Tracks: a person's photos after their enrolment photos, ``photos_per_track`` at a time
(each photo contributing its camera-like frames, in order), at most
``MAX_TRACKS_PER_PERSON`` per person. A genuine trial is a track of someone in the
gallery; an impostor trial a track of someone not in it. ``rotations`` galleries of 100
are drawn from B's enrollable people (each with its own impostor set: everyone else of B);
the 1,000 gallery of rotation r is the same 100 plus 900 people of A.

Every trial runs through the device's sequential evidence rule
(:mod:`firmware.domain.evidence`): at each frame the quality-weighted mean score per
candidate; it may accept once ``accept_weight`` is reached and until the frame that closes
it as unknown.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from firmware.bench.door_data import PhotoSet
from firmware.domain.calibration import Calibration, fit_curve
from firmware.domain.evidence import EvidenceRule, sequential_peaks
from firmware.errors import ConfigError

MAX_TRACKS_PER_PERSON = 5
#: LFW files some people under two names; a match between the two is correct, not a false
#: accept, so such pairs are never counted as impostor trials (found by inspecting the
#: bench's false accepts: the same man, Korean name order both ways).
KNOWN_ALIASES = frozenset({frozenset({"Dai_Chul_Chyung", "Chyung_Dai-chul"})})
SPLIT_CALIBRATION, SPLIT_EVALUATION = 0, 1


def split_of(name: str) -> int:
    """0 = calibration split (A), 1 = evaluation split (B)."""
    return hashlib.sha1(name.encode()).digest()[0] % 2


@dataclass
class Frames:
    """Flat views of a PhotoSet: row ``photo * V1 + variant``."""

    emb: np.ndarray
    quality: np.ndarray
    per_photo: int

    @classmethod
    def of(cls, ps: PhotoSet) -> Frames:
        n, v1, d = ps.embeddings.shape
        q = np.where(ps.ok, ps.quality, 0.0).reshape(-1)
        return cls(ps.embeddings.reshape(n * v1, d), q, v1)

    def track_rows(self, photos: list[int]) -> np.ndarray:
        """Camera-like frames (variants >= 1) of ``photos`` whose gate passed."""
        rows = [p * self.per_photo + v for p in photos for v in range(1, self.per_photo)]
        return np.asarray([r for r in rows if self.quality[r] > 0], np.intp)

    def photo_row(self, photo: int) -> int | None:
        """The photo's own frame (variant 0) when a face was found in it."""
        row = photo * self.per_photo
        return row if np.any(self.emb[row]) else None


@dataclass
class Person:
    name: str
    templates: list[int]             # frame rows used as enrolment templates
    tracks: list[np.ndarray] = field(default_factory=list)   # frame rows per track


def people(ps: PhotoSet, frames: Frames, split: int, enrol: int, photos_per_track: int,
           need_tracks: bool) -> list[Person]:
    """People of ``split`` enrolled from their first ``enrol`` usable photos, with their
    later photos as tracks (skipped when ``need_tracks`` and they have none)."""
    out = []
    for name, photos in sorted(ps.by_identity().items()):
        if split_of(name) != split:
            continue
        usable = [p for p in photos if frames.photo_row(p) is not None]
        templates = [frames.photo_row(p) for p in usable[:enrol]]
        rest = usable[3:] if need_tracks else []  # same tracks for 1- and 3-photo enrolment
        tracks = []
        for i in range(0, len(rest), photos_per_track):
            rows = frames.track_rows(rest[i:i + photos_per_track])
            if len(rows):
                tracks.append(rows)
        tracks = tracks[:MAX_TRACKS_PER_PERSON]
        if not templates or (need_tracks and not tracks):
            continue
        out.append(Person(name, templates, tracks))
    return out


def impostor_tracks(ps: PhotoSet, frames: Frames, split: int, photos_per_track: int) -> dict[str, list[np.ndarray]]:
    """{name: tracks} of every person of ``split`` (all their photos, chunked)."""
    out: dict[str, list[np.ndarray]] = {}
    for name, photos in sorted(ps.by_identity().items()):
        if split_of(name) != split:
            continue
        tracks = [frames.track_rows(photos[i:i + photos_per_track]) for i in range(0, len(photos), photos_per_track)]
        tracks = [t for t in tracks if len(t)][:MAX_TRACKS_PER_PERSON]
        if tracks:
            out[name] = tracks
    return out


class ScoreTable:
    """Per frame row, the best cosine to each person of a fixed list (max over templates)."""

    def __init__(self, frames: Frames, persons: list[Person], rows: np.ndarray, *, fuse: "ScoreTable | None" = None):
        self.names = [p.name for p in persons]
        self.col = {n: i for i, n in enumerate(self.names)}
        self.row = {int(r): i for i, r in enumerate(rows)}
        tpl_rows = np.concatenate([p.templates for p in persons])
        owner = np.repeat(np.arange(len(persons)), [len(p.templates) for p in persons])
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        templates = frames.emb[tpl_rows]
        out = np.empty((len(rows), len(persons)), np.float32)
        for s in range(0, len(rows), 2048):
            block = frames.emb[rows[s:s + 2048]] @ templates.T
            out[s:s + 2048] = np.maximum.reduceat(block, starts, axis=1)
        self.scores = out
        self.templates_per_person = len(tpl_rows) / max(1, len(persons))

    def get(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        idx = np.fromiter((self.row[int(r)] for r in rows), np.intp, len(rows))
        return self.scores[np.ix_(idx, cols)]


def zfuse(a: ScoreTable, b: ScoreTable, a_stats: tuple[float, float], b_stats: tuple[float, float]) -> ScoreTable:
    """Score fusion: the mean of the two tables' scores, each z-normalised by its impostor
    (mean, std); the result is rescaled to table ``a``'s impostor mean and std so
    thresholds stay on a cosine-like scale."""
    fused = ScoreTable.__new__(ScoreTable)
    fused.__dict__.update(a.__dict__)
    za = (a.scores - a_stats[0]) / a_stats[1]
    zb = (b.scores - b_stats[0]) / b_stats[1]
    fused.scores = ((za + zb) / math.sqrt(2.0) * a_stats[1] + a_stats[0]).astype(np.float32)
    return fused


@dataclass
class Steps:
    """Per step (frame) of one trial: may the rule accept here (``open``), best column,
    best score, margin over the runner-up ok; ``close`` = index of the unknown step or -1."""

    open: np.ndarray
    best: np.ndarray
    score: np.ndarray
    margin_ok: np.ndarray
    close: int


def steps(scores: np.ndarray, weights: np.ndarray, rule: EvidenceRule) -> Steps:
    """Run the sequential rule's bookkeeping over a track's (F, G) scores."""
    w = np.asarray(weights, np.float64)[: rule.max_frames]
    s = np.asarray(scores, np.float64)[: len(w)]
    cum = np.cumsum(w)
    running = np.cumsum(w[:, None] * s, axis=0) / np.maximum(cum, 1e-12)[:, None]
    good = np.cumsum(w >= rule.good_quality)
    closing = np.flatnonzero(good >= rule.unknown_frames)
    close = int(closing[0]) if len(closing) else -1
    is_open = cum >= rule.accept_weight
    if close >= 0:
        is_open[close + 1:] = False
    if running.shape[1] >= 2:
        top2 = -np.partition(-running, 1, axis=1)[:, :2]
        margin_ok = top2[:, 0] - top2[:, 1] >= rule.margin
    else:
        margin_ok = np.ones(len(w), bool)
    best = running.argmax(axis=1)
    return Steps(is_open, best, running[np.arange(len(w)), best], margin_ok, close)


def impostor_stat(st: Steps) -> float:
    """The highest score at which the rule would accept someone on this impostor track."""
    ok = st.open & st.margin_ok
    return float(st.score[ok].max()) if ok.any() else -1.0


def genuine_intervals(st: Steps, true_col: int) -> list[tuple[float, float]]:
    """Thresholds ``t`` in ``(lo, hi]`` at which the rule accepts the right person."""
    out, prefix = [], -math.inf
    for k in np.flatnonzero(st.open & st.margin_ok):
        if st.score[k] > prefix:
            if st.best[k] == true_col:
                out.append((prefix, float(st.score[k])))
            prefix = float(st.score[k])
    return out


def frames_to_decision(st: Steps, threshold: float) -> int | None:
    """Frames the rule needs to decide (accept or unknown) at ``threshold``; None = retry."""
    hits = np.flatnonzero(st.open & st.margin_ok & (st.score >= threshold))
    if len(hits):
        return int(hits[0]) + 1
    return st.close + 1 if st.close >= 0 else None


@dataclass
class Trials:
    """Outcome material of one configuration (gallery size, enrolment photos)."""

    genuine: list[list[tuple[float, float]]] = field(default_factory=list)
    genuine_steps: list[Steps] = field(default_factory=list)
    impostor: list[float] = field(default_factory=list)
    people: int = 0
    templates_per_person: float = 1.0

    def far(self, t: float) -> float:
        imp = np.asarray(self.impostor)
        return float(np.mean(imp >= t)) if len(imp) else float("nan")

    def frr(self, t: float) -> float:
        ok = sum(any(lo < t <= hi for lo, hi in iv) for iv in self.genuine)
        return 1.0 - ok / max(1, len(self.genuine))

    def threshold_at(self, far: float) -> float:
        """Lowest threshold whose measured FAR is <= ``far`` (resolution 1 / impostors)."""
        imp = np.sort(np.asarray(self.impostor))[::-1]
        if not len(imp):
            return float("inf")
        allowed = int(math.floor(far * len(imp) + 1e-9))
        return float(imp[allowed] + 1e-6) if allowed < len(imp) else float(imp[-1])

    def det(self, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
        if not self.impostor:
            return np.zeros(0), np.zeros(0)
        ts = np.unique(np.quantile(np.asarray(self.impostor), np.linspace(0.5, 1.0, points)))
        ts = np.r_[ts, ts[-1] + 1e-6]
        return np.asarray([self.far(t) for t in ts]), np.asarray([self.frr(t) for t in ts])

    def median_frames(self, threshold: float) -> float | None:
        counts = [c for c in (frames_to_decision(s, threshold) for s in self.genuine_steps) if c is not None]
        return float(np.median(counts)) if counts else None


def run_trials(table: ScoreTable, frames: Frames, gallery: list[str], genuine: dict[str, list[np.ndarray]],
               impostors: dict[str, list[np.ndarray]], rule: EvidenceRule, trials: Trials) -> None:
    """Add one gallery's genuine and impostor trials to ``trials``."""
    cols = np.asarray([table.col[n] for n in gallery], np.intp)
    where = {n: i for i, n in enumerate(gallery)}
    for name, tracks in genuine.items():
        for rows in tracks:
            st = steps(table.get(rows, cols), frames.quality[rows], rule)
            trials.genuine.append(genuine_intervals(st, where[name]))
            trials.genuine_steps.append(st)
    members = set(gallery)
    for name, tracks in impostors.items():
        if name in members or any(m in members for m in _aliases(name)):
            continue
        for rows in tracks:
            trials.impostor.append(impostor_stat(steps(table.get(rows, cols), frames.quality[rows], rule)))


def _aliases(name: str) -> list[str]:
    return [n for pair in KNOWN_ALIASES if name in pair for n in pair if n != name]


def baseline_mean_embedding(frames: Frames, persons: dict[str, Person], gallery: list[str],
                            genuine: dict[str, list[np.ndarray]], impostors: dict[str, list[np.ndarray]],
                            first: int = 3) -> Trials:
    """Today's rule for comparison: the mean of a track's first ``first`` embeddings, one
    cosine per person (best template), margin ignored."""
    tpl = [(n, r) for n in gallery for r in persons[n].templates]
    owner = np.asarray([gallery.index(n) for n, _ in tpl])
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    t_emb = frames.emb[[r for _, r in tpl]]

    def best(rows: np.ndarray) -> np.ndarray:
        m = frames.emb[rows[:first]].mean(axis=0)
        return np.maximum.reduceat(t_emb @ (m / max(np.linalg.norm(m), 1e-9)), starts)

    out = Trials(people=len(gallery))
    for name, tracks in genuine.items():
        for rows in tracks:
            s = best(rows)
            i = int(s.argmax())
            out.genuine.append([(-math.inf, float(s[i]))] if gallery[i] == name else [])
    members = set(gallery)
    for name, tracks in impostors.items():
        if name not in members and not any(m in members for m in _aliases(name)):
            out.impostor.extend(float(best(rows).max()) for rows in tracks)
    return out


def pair_peaks(table: ScoreTable, frames: Frames, impostors: dict[str, list[np.ndarray]],
               enrolled: list[str], rule: EvidenceRule) -> np.ndarray:
    """Calibration material: per (impostor track, enrolled person of another identity) the
    highest running score the rule looks at while the track is open."""
    cols = np.asarray([table.col[n] for n in enrolled], np.intp)
    out = []
    for name, tracks in impostors.items():
        keep = np.asarray([n != name and n not in _aliases(name) for n in enrolled])
        for rows in tracks:
            peaks = sequential_peaks(table.get(rows, cols), frames.quality[rows], rule)
            out.append(peaks[keep])
    return np.concatenate(out) if out else np.zeros(0)


def calibrate(ps: PhotoSet, frames: Frames, rule: EvidenceRule, photos_per_track: int) -> Calibration:
    """Fit the per-pair survival curves (1 and 3 templates) on split A only."""
    impostors = impostor_tracks(ps, frames, SPLIT_CALIBRATION, photos_per_track)
    rows = np.unique(np.concatenate([t for ts in impostors.values() for t in ts]))
    curves = []
    for enrol in (1, 3):
        enrolled = [p for p in people(ps, frames, SPLIT_CALIBRATION, enrol, photos_per_track, need_tracks=False)
                    if len(p.templates) == enrol]
        table = ScoreTable(frames, enrolled, rows)
        peaks = pair_peaks(table, frames, impostors, [p.name for p in enrolled], rule) if enrolled else np.zeros(0)
        try:
            curves.append(fit_curve(peaks, enrol))
        except ValueError as exc:
            raise ConfigError(f"cannot calibrate on split A of this data ({exc}): use a folder with more people, "
                              f"e.g. ../shared/data/lfw-dev") from None
    return Calibration("", tuple(curves))
