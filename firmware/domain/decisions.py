"""One decision per face: accepted | already | unknown | spoof | retry | no_session.

Pure logic (numpy only, times passed in as monotonic seconds). Per track the engine keeps
the liveness state machine (made by ``liveness_factory``, e.g. the liveness engineer's
``LivenessTracker``), the track's recent embedded frames with their quality weights, and
whether the track is decided. A track is matched only after it passed liveness, with the
track-level evidence rule of :mod:`firmware.domain.evidence` against the current
:class:`Scope` (the active session's roster, or everyone in open-door mode): accept once
enough quality-weighted evidence clears the scope's calibrated threshold and margin,
``unknown`` only after enough good-quality frames.

Per person: one attendance per session (a second check-in is ``already``), and no new
decision at all within ``cooldown_s`` seconds of the last one (a re-formed track of the
same person stays quiet). Per track: if nothing is decided within ``retry_after_s`` the
track gets ``retry`` and starts over (quality never got good, or liveness never passed).

Scope changes re-open tracks: when :meth:`DecisionEngine.set_scope` gets a scope with
another ``key`` (a session started or stopped, the roster changed), every track in view
that is not a spoof is decided again against the new scope, from the frames it already
holds, and the per-person cooldown starts afresh.

Swap safety: every new embedding is compared with the track's average; a low cosine means
another face took over the track, and :meth:`DecisionEngine.observe` reports ``swap`` so
the caller gives the face a fresh track id (liveness never carries over).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable, Hashable, Iterable, Protocol

import numpy as np

from firmware.domain.evidence import Candidates, EvidenceRule, Verdict, evaluate


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    ALREADY = "already"
    UNKNOWN = "unknown"
    SPOOF = "spoof"
    RETRY = "retry"
    NO_SESSION = "no_session"


class LivenessLike(Protocol):
    """What the engine needs from a per-track liveness state machine."""

    def update(self, ts: float, openness: object, gate: object) -> object: ...


@dataclass(slots=True)
class Scope:
    """Who may be recognised now: ``session_id`` (None in open-door mode or with no
    session), ``gallery`` (None: nobody, so faces get ``no_session``), the ``rule`` in
    force (threshold, margin, evidence amounts; see :mod:`firmware.runtime.tuning`), the
    people already marked present in this scope, and ``key``: two scopes with the same
    key are the same scope (a periodic refresh), another key re-opens every track."""

    session_id: str | None = None
    gallery: Candidates | None = None
    marked: set[str] = field(default_factory=set)
    rule: EvidenceRule = field(default_factory=lambda: EvidenceRule(threshold=0.955))
    key: Hashable = None


@dataclass(slots=True)
class Decision:
    """What was decided for one track. ``latency_s``: seconds from the track's first
    detection to this decision. ``embedding``: the quality-weighted mean, L2-normalised.
    ``person_id`` is set for accepted/already; for ``unknown`` ``closest`` names the
    nearest enrolled person. ``score`` is the track score (cosine) of that person,
    ``runner_up`` the second-best person's, ``threshold`` the threshold in force;
    ``best_frame`` the embedding of the track's best-quality frame."""

    outcome: Outcome
    track_id: int
    ts: float
    session_id: str | None = None
    person_id: str | None = None
    score: float = 0.0
    embedding: np.ndarray | None = None
    latency_s: float = 0.0
    closest: str | None = None
    runner_up: float | None = None
    threshold: float | None = None
    frames: int = 0
    best_frame: np.ndarray | None = None
    liveness_policy: str = ""  # the liveness policy this track was judged under


@dataclass(slots=True)
class TrackState:
    """Per-track view for the overlay and kiosk: ``stage`` is look | blink | checking |
    a decided Outcome value. ``embeddings``/``qualities``: the track's recent embedded
    frames and their quality weights (0..1); ``scores``: their cosines to the scope's
    people (rebuilt when the scope changes)."""

    track_id: int
    first_ts: float
    liveness: LivenessLike | None = None
    verdict: str = "pending"
    prompt: str = ""
    blinks: int = 0
    required_blinks: int = 0
    embeddings: deque = field(default_factory=deque)
    qualities: deque = field(default_factory=deque)
    scores: deque = field(default_factory=deque)
    last_embed_ts: float = float("-inf")
    decided: Decision | None = None
    person_id: str | None = None
    liveness_policy: str = ""
    liveness_state: object = None  # the liveness machine's last answer (prompt, steps...) for the kiosk
    liveness_busy: bool = False    # a challenge is under way: no retry yet

    @property
    def stage(self) -> str:
        if self.decided is not None:
            return str(self.decided.outcome)
        if self.person_id is not None:
            return "already"
        return {"look_at_camera": "look", "pending": "blink", "live": "checking"}.get(self.verdict, self.verdict)


def mean_embedding(vectors: Iterable[np.ndarray], weights: Iterable[float] | None = None) -> np.ndarray:
    """L2-normalised (weighted) mean of L2-normalised vectors."""
    stack = np.stack(list(vectors)).astype(np.float32)
    w = np.ones(len(stack), np.float32) if weights is None else np.asarray(list(weights), np.float32)
    mean = (w[:, None] * stack).sum(axis=0) / max(float(w.sum()), 1e-9)
    return mean / max(float(np.linalg.norm(mean)), 1e-9)


class DecisionEngine:
    """Decides once per track (until the scope changes). ``liveness_factory`` None means
    liveness is off (testing).

    ``embeddings_per_track``: embeddings gathered at once before waiting ``recheck_s``
    seconds between further ones (while liveness is pending); once live, every frame is
    embedded until the track is decided. ``swap_cosine``: below this cosine to the track's
    average a new embedding is another face (the device sets it just under the embedder's
    match threshold, see ``firmware.runtime.tuning.configure_engine``).
    """

    def __init__(self, *, cooldown_s: float = 30.0, retry_after_s: float = 8.0,
                 embeddings_per_track: int = 3, liveness_factory: Callable[[], LivenessLike] | None = None,
                 recheck_s: float = 0.5, swap_cosine: float = 0.35) -> None:
        self.cooldown_s = cooldown_s
        self.retry_after_s = retry_after_s
        self.embeddings_per_track = embeddings_per_track
        self.liveness_factory = liveness_factory
        self.liveness_policy = "blink" if liveness_factory else "off"
        self.recheck_s = recheck_s
        self.swap_cosine = swap_cosine
        self.scope = Scope()
        self.tracks: dict[int, TrackState] = {}
        self._last_decided: dict[str, float] = {}

    def set_scope(self, scope: Scope) -> None:
        """Switch session / roster. With a new ``key`` every track in view (not a spoof) is
        re-opened and decided again against ``scope``; with the same key (a refresh) only
        the gallery and rule are swapped in."""
        reopen = scope.key != self.scope.key or (scope.key is None and scope is not self.scope)
        self.scope = scope
        for state in self.tracks.values():
            state.scores.clear()  # rebuilt against the new gallery at the next frame
            if reopen and not (state.decided is not None and state.decided.outcome == Outcome.SPOOF):
                state.decided, state.person_id = None, None
        if reopen:
            self._last_decided.clear()

    def _state(self, track_id: int, ts: float) -> TrackState:
        state = self.tracks.get(track_id)
        if state is None:
            n = self.scope.rule.max_frames
            state = TrackState(track_id, ts, embeddings=deque(maxlen=n), qualities=deque(maxlen=n),
                               scores=deque(maxlen=n))
            state.liveness = self.liveness_factory() if self.liveness_factory else None
            state.verdict = "pending" if state.liveness else "live"
            state.liveness_policy = self.liveness_policy if state.liveness else "off"
            self.tracks[track_id] = state
        return state

    def wants_embedding(self, track_id: int, ts: float) -> bool:
        """True when the caller should embed this track's face on this frame."""
        state = self.tracks.get(track_id)
        if self.scope.gallery is None or (state and (state.decided or state.person_id)):
            return False
        if state is None or len(state.embeddings) < self.embeddings_per_track or state.verdict == "live":
            return True
        return ts - state.last_embed_ts >= self.recheck_s

    def is_swap(self, track_id: int, embedding: np.ndarray) -> bool:
        """True when ``embedding`` is not the face this track has been following."""
        state = self.tracks.get(track_id)
        if state is None or not state.embeddings:
            return False
        return float(mean_embedding(state.embeddings) @ embedding) < self.swap_cosine

    def observe(self, track_id: int, ts: float, *, openness: object = None, gate: object = None,
                embedding: np.ndarray | None = None, quality: float | None = None) -> Decision | None:
        """Feed one frame's measurements of a track: ``openness`` and ``gate`` go to the
        liveness state machine (not updated when ``gate`` is None: no landmarks this
        frame); ``quality`` (0..1, :func:`firmware.domain.evidence.frame_quality`) weighs
        the embedding (None: 1.0). Returns a Decision at most once per track (until
        ``retry`` or a scope change). Check :meth:`is_swap` first when passing an embedding."""
        state = self._state(track_id, ts)
        if state.decided is not None or state.person_id is not None:
            return None
        self._update_liveness(state, ts, openness, gate)
        if embedding is not None:
            self._add_frame(state, ts, embedding, quality)
        if state.verdict == "spoof":
            return self._decide(state, Outcome.SPOOF, ts)
        if state.verdict == "live":
            decision = self._try_match(state, ts)
            if decision is not None or state.person_id is not None:
                return decision
        if ts - state.first_ts >= self.retry_after_s and not state.liveness_busy:
            return self._retry(state, ts)
        return None

    @staticmethod
    def _add_frame(state: TrackState, ts: float, embedding: np.ndarray, quality: float | None) -> None:
        if len(state.embeddings) == state.embeddings.maxlen and state.scores:
            state.scores.popleft()  # the oldest frame leaves; scores stay aligned with embeddings
        state.embeddings.append(np.asarray(embedding, np.float32))
        state.qualities.append(1.0 if quality is None else min(1.0, max(0.0, float(quality))))
        state.last_embed_ts = ts

    def _update_liveness(self, state: TrackState, ts: float, openness: object, gate: object) -> None:
        if state.liveness is None or gate is None or state.verdict in ("live", "spoof"):
            return
        result = state.liveness.update(ts, openness, gate)
        verdict = getattr(result, "verdict", "pending")
        state.verdict = str(getattr(verdict, "value", verdict))
        state.prompt = str(getattr(result, "prompt", "") or "")
        state.blinks = int(getattr(result, "blinks", 0) or 0)
        state.required_blinks = int(getattr(result, "required_blinks", 0) or 0)
        state.liveness_state = result
        state.liveness_busy = bool(getattr(result, "busy", False))

    def verdict(self, track_id: int) -> Verdict:
        """The evidence rule's current view of a track (wait when unknown track / no scope)."""
        state = self.tracks.get(track_id)
        gallery = self.scope.gallery
        if state is None or gallery is None:
            return Verdict("wait")
        for vector in list(state.embeddings)[len(state.scores):]:
            state.scores.append(np.asarray(gallery.person_scores(vector), np.float64))
        scores = np.stack(state.scores) if state.scores else np.zeros((0, len(gallery.people)))
        return evaluate(self.scope.rule, gallery.people, scores, list(state.qualities))

    def _try_match(self, state: TrackState, ts: float) -> Decision | None:
        scope = self.scope
        if scope.gallery is None:
            return self._decide(state, Outcome.NO_SESSION, ts)
        verdict = self.verdict(state.track_id)
        if verdict.kind == "wait":
            return None
        if verdict.kind == "unknown":
            return self._decide(state, Outcome.UNKNOWN, ts, verdict=verdict)
        person = verdict.person_id
        last = self._last_decided.get(person)
        self._last_decided[person] = ts
        if last is not None and ts - last < self.cooldown_s:
            state.person_id = person  # same person again within the cooldown: stay quiet
            return None
        outcome = Outcome.ALREADY if person in scope.marked else Outcome.ACCEPTED
        scope.marked.add(person)
        return self._decide(state, outcome, ts, verdict=verdict)

    def _decide(self, state: TrackState, outcome: Outcome, ts: float, *, verdict: Verdict | None = None) -> Decision:
        embedding = mean_embedding(state.embeddings, state.qualities) if state.embeddings else None
        best = state.embeddings[int(np.argmax(state.qualities))] if state.embeddings else None
        accepted = outcome in (Outcome.ACCEPTED, Outcome.ALREADY)
        person = verdict.person_id if verdict is not None and accepted else None
        state.person_id = person
        state.decided = Decision(outcome, state.track_id, ts, self.scope.session_id, person,
                                 verdict.score if verdict else 0.0, embedding, ts - state.first_ts,
                                 closest=verdict.person_id if verdict else None,
                                 runner_up=verdict.runner_up if verdict else None,
                                 threshold=self.scope.rule.threshold if verdict else None,
                                 frames=len(state.embeddings), best_frame=best,
                                 liveness_policy=state.liveness_policy)
        return state.decided

    def _retry(self, state: TrackState, ts: float) -> Decision:
        decision = Decision(Outcome.RETRY, state.track_id, ts, self.scope.session_id,
                            latency_s=ts - state.first_ts, frames=len(state.embeddings))
        del self.tracks[state.track_id]
        self._state(state.track_id, ts)  # start over: fresh liveness, no embeddings
        return decision

    def restart_liveness(self) -> None:
        """The liveness policy changed: tracks not decided yet start over under the new one
        (a track must never pass a weaker policy than the one in force when it is decided)."""
        for track_id in [t for t, s in self.tracks.items() if s.decided is None and s.person_id is None]:
            del self.tracks[track_id]

    def end_track(self, track_id: int) -> None:
        """Forget a track that died (or was split after a swap)."""
        self.tracks.pop(track_id, None)

    def forget_person(self, person_id: str) -> None:
        """Drop a person's cooldown (e.g. attendance was corrected by an operator)."""
        self._last_decided.pop(person_id, None)
