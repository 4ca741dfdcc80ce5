"""One decision per face: accepted | already | unknown | spoof | retry | no_session.

Pure logic (numpy only, times passed in as monotonic seconds). Per track the engine keeps
the liveness state machine (made by ``liveness_factory``, e.g. the liveness engineer's
``LivenessTracker``), the last few embeddings, and whether the track is decided. A track
is matched only after it passed liveness; the average of its last
``embeddings_per_track`` embeddings is matched against the current :class:`Scope` (the
active session's roster, or everyone in open-door mode).

Per person: one attendance per session (a second check-in is ``already``), and no new
decision at all within ``cooldown_s`` seconds of the last one (a re-formed track of the
same person stays quiet). Per track: if nothing is decided within ``retry_after_s`` the
track gets ``retry`` and starts over.

Swap safety: every new embedding is compared with the track's average; a low cosine means
another face took over the track, and :meth:`DecisionEngine.observe` reports ``swap`` so
the caller gives the face a fresh track id (liveness never carries over).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable, Iterable, Protocol

import numpy as np


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


@dataclass(frozen=True, slots=True)
class Match:
    """Result of matching one embedding: ``person_id`` None means no one passed the
    threshold and margin; ``score`` is the best cosine similarity and ``closest`` the
    person who scored it (also when they were not accepted)."""

    person_id: str | None
    score: float
    closest: str | None = None


Matcher = Callable[[np.ndarray], Match]


@dataclass(slots=True)
class Scope:
    """Who may be recognised now: ``session_id`` (None in open-door mode or with no
    session), ``matcher`` (None: nobody, so faces get ``no_session``) and the people
    already marked present in this scope."""

    session_id: str | None = None
    matcher: Matcher | None = None
    marked: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Decision:
    """What was decided for one track. ``latency_s``: seconds from the track's first
    detection to this decision. ``embedding``: the averaged, L2-normalised vector.
    ``closest``: for an ``unknown``, the enrolled person it looked most like (``score``)."""

    outcome: Outcome
    track_id: int
    ts: float
    session_id: str | None = None
    person_id: str | None = None
    score: float = 0.0
    embedding: np.ndarray | None = None
    latency_s: float = 0.0
    closest: str | None = None
    liveness_policy: str = ""  # the liveness policy this track was judged under


@dataclass(slots=True)
class TrackState:
    """Per-track view for the overlay and kiosk: ``stage`` is look | blink | checking |
    a decided Outcome value."""

    track_id: int
    first_ts: float
    liveness: LivenessLike | None = None
    verdict: str = "pending"
    prompt: str = ""
    blinks: int = 0
    required_blinks: int = 0
    embeddings: deque = field(default_factory=deque)
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


def mean_embedding(vectors: Iterable[np.ndarray]) -> np.ndarray:
    """L2-normalised mean of L2-normalised vectors."""
    mean = np.mean(np.stack(list(vectors)).astype(np.float32), axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-9)


class DecisionEngine:
    """Decides once per track. ``liveness_factory`` None means liveness is off (testing).

    ``recheck_s``: after the first embeddings, one more embedding is wanted every this many
    seconds (swap check, fresher average); ``swap_cosine``: below this cosine to the track's
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
        """Switch session / roster. Tracks not decided yet are matched in the new scope."""
        self.scope = scope

    def _state(self, track_id: int, ts: float) -> TrackState:
        state = self.tracks.get(track_id)
        if state is None:
            state = TrackState(track_id, ts, embeddings=deque(maxlen=self.embeddings_per_track))
            state.liveness = self.liveness_factory() if self.liveness_factory else None
            state.verdict = "pending" if state.liveness else "live"
            state.liveness_policy = self.liveness_policy if state.liveness else "off"
            self.tracks[track_id] = state
        return state

    def wants_embedding(self, track_id: int, ts: float) -> bool:
        """True when the caller should embed this track's face on this frame."""
        state = self.tracks.get(track_id)
        if self.scope.matcher is None or (state and (state.decided or state.person_id)):
            return False
        if state is None or len(state.embeddings) < self.embeddings_per_track:
            return True
        return ts - state.last_embed_ts >= self.recheck_s

    def is_swap(self, track_id: int, embedding: np.ndarray) -> bool:
        """True when ``embedding`` is not the face this track has been following."""
        state = self.tracks.get(track_id)
        if state is None or not state.embeddings:
            return False
        return float(mean_embedding(state.embeddings) @ embedding) < self.swap_cosine

    def observe(self, track_id: int, ts: float, *, openness: object = None, gate: object = None,
                embedding: np.ndarray | None = None) -> Decision | None:
        """Feed one frame's measurements of a track: ``openness`` and ``gate`` go to the
        liveness state machine (not updated when ``gate`` is None: no landmarks this
        frame). Returns a Decision at most once per track (until ``retry``). Check
        :meth:`is_swap` first when passing an embedding."""
        state = self._state(track_id, ts)
        if state.decided is not None or state.person_id is not None:
            return None
        self._update_liveness(state, ts, openness, gate)
        if embedding is not None:
            state.embeddings.append(np.asarray(embedding, np.float32))
            state.last_embed_ts = ts
        if state.verdict == "spoof":
            return self._decide(state, Outcome.SPOOF, ts)
        if state.verdict == "live":
            decision = self._try_match(state, ts)
            if decision is not None or state.person_id is not None:
                return decision
        if ts - state.first_ts >= self.retry_after_s and not state.liveness_busy:
            return self._retry(state, ts)
        return None

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

    def _try_match(self, state: TrackState, ts: float) -> Decision | None:
        scope = self.scope
        if scope.matcher is None:
            return self._decide(state, Outcome.NO_SESSION, ts)
        if len(state.embeddings) < self.embeddings_per_track:
            return None
        vector = mean_embedding(state.embeddings)
        match = scope.matcher(vector)
        if match.person_id is None:
            decision = self._decide(state, Outcome.UNKNOWN, ts, score=match.score, embedding=vector)
            decision.closest = match.closest
            return decision
        person = match.person_id
        last = self._last_decided.get(person)
        self._last_decided[person] = ts
        if last is not None and ts - last < self.cooldown_s:
            state.person_id = person  # same person again within the cooldown: stay quiet
            return None
        outcome = Outcome.ALREADY if person in scope.marked else Outcome.ACCEPTED
        scope.marked.add(person)
        return self._decide(state, outcome, ts, person=person, score=match.score, embedding=vector)

    def _decide(self, state: TrackState, outcome: Outcome, ts: float, *, person: str | None = None,
                score: float = 0.0, embedding: np.ndarray | None = None) -> Decision:
        if embedding is None and state.embeddings:
            embedding = mean_embedding(state.embeddings)
        state.person_id = person
        state.decided = Decision(outcome, state.track_id, ts, self.scope.session_id, person, float(score),
                                 embedding, ts - state.first_ts, liveness_policy=state.liveness_policy)
        return state.decided

    def _retry(self, state: TrackState, ts: float) -> Decision:
        decision = Decision(Outcome.RETRY, state.track_id, ts, self.scope.session_id,
                            latency_s=ts - state.first_ts)
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
