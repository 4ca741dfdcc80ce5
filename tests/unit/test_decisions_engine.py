"""DecisionEngine: liveness first, track-level evidence, one decision, cooldown, sessions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from firmware.domain.decisions import DecisionEngine, Outcome, Scope, mean_embedding
from firmware.domain.evidence import EvidenceRule
from firmware.domain.matching import Gallery


@dataclass
class State:
    verdict: str
    blinks: int = 0
    required_blinks: int = 1
    prompt: str = "blink please"


class ScriptedLiveness:
    """Fake liveness (unit tests only): live once openness dipped below 0.2, spoof after
    ``window_s`` seconds without a blink."""

    def __init__(self, window_s: float = 6.0):
        self.window_s = window_s
        self.start: float | None = None
        self.blinked = False

    def update(self, ts, openness, gate):
        assert gate == "ok"
        self.start = ts if self.start is None else self.start
        self.blinked |= openness < 0.2
        if self.blinked:
            return State("live", 1)
        return State("spoof" if ts - self.start > self.window_s else "pending")


def unit(index: int, dim: int = 8) -> np.ndarray:
    """Orthogonal unit vectors: different people have cosine 0."""
    v = np.zeros(dim, np.float32)
    v[index] = 1.0
    return v


ALICE, BOB = unit(1), unit(2)


GALLERY = Gallery(["alice", "bob"], np.stack([ALICE, BOB]), dtype=np.float32)
RULE = EvidenceRule(threshold=0.8, margin=0.02, accept_weight=1.5, unknown_frames=3)


def scope(session_id="s1", marked=None, gallery=GALLERY) -> Scope:
    return Scope(session_id, gallery, set(marked or ()), RULE, key=(session_id, gallery is None))


def engine(**kw) -> DecisionEngine:
    kw.setdefault("liveness_factory", ScriptedLiveness)
    eng = DecisionEngine(cooldown_s=30, retry_after_s=8, embeddings_per_track=3, **kw)
    eng.set_scope(scope())
    return eng


def feed(eng, track, t0, emb, openness=(1.0, 1.0, 0.1, 1.0, 1.0, 1.0), dt=0.1):
    """Frames of one track; returns the decisions made."""
    out = []
    for i, o in enumerate(openness):
        ts = t0 + i * dt
        e = emb if eng.wants_embedding(track, ts) else None
        d = eng.observe(track, ts, openness=o, gate=None if o is None else "ok", embedding=e)
        if d:
            out.append(d)
    return out


def test_live_known_face_is_accepted_once_with_latency():
    eng = engine()
    [d] = feed(eng, 1, 0.0, ALICE)
    assert d.outcome is Outcome.ACCEPTED and d.person_id == "alice" and d.session_id == "s1"
    assert d.latency_s == pytest.approx(0.2)  # third frame: blink seen, evidence enough
    assert np.allclose(d.embedding, ALICE, atol=1e-6)
    assert feed(eng, 1, 1.0, ALICE) == []
    assert eng.tracks[1].stage == "accepted"


def test_no_match_before_liveness_passes():
    eng = engine()
    assert feed(eng, 1, 0.0, ALICE, openness=(1.0,) * 10) == []
    assert eng.tracks[1].stage == "blink"
    assert len(eng.tracks[1].embeddings) == 4  # 3 at once, then one per recheck_s (0.7 s); up to 12 kept


def test_still_face_becomes_spoof_not_attendance():
    eng = engine(liveness_factory=lambda: ScriptedLiveness(window_s=2.0))
    decisions = feed(eng, 1, 0.0, ALICE, openness=(1.0,) * 40)
    assert [d.outcome for d in decisions] == [Outcome.SPOOF]
    assert decisions[0].person_id is None
    assert decisions[0].embedding is not None  # for the spoof record


def test_unknown_face():
    eng = engine()
    [d] = feed(eng, 1, 0.0, unit(3))
    assert d.outcome is Outcome.UNKNOWN and d.person_id is None and d.embedding is not None


def test_second_check_in_after_cooldown_is_already_within_cooldown_silent():
    eng = engine()
    assert feed(eng, 1, 0.0, ALICE)[0].outcome is Outcome.ACCEPTED
    eng.end_track(1)
    assert feed(eng, 2, 5.0, ALICE) == []  # within 30 s cooldown: quiet
    assert eng.tracks[2].stage == "already"
    eng.end_track(2)
    [d] = feed(eng, 3, 100.0, ALICE)
    assert d.outcome is Outcome.ALREADY


def test_cooldown_is_per_person():
    eng = engine()
    assert feed(eng, 1, 0.0, ALICE)[0].outcome is Outcome.ACCEPTED
    assert feed(eng, 2, 1.0, BOB)[0].outcome is Outcome.ACCEPTED


def test_marked_people_from_the_store_are_already():
    eng = engine()
    eng.set_scope(scope(marked={"alice"}))
    assert feed(eng, 1, 0.0, ALICE)[0].outcome is Outcome.ALREADY


def test_no_session_means_no_matching():
    eng = engine()
    eng.set_scope(scope(None, gallery=None))
    assert not eng.wants_embedding(1, 0.0)
    [d] = feed(eng, 1, 0.0, ALICE)
    assert d.outcome is Outcome.NO_SESSION and d.person_id is None


def test_open_door_scope_has_no_session_but_matches():
    eng = engine()
    eng.set_scope(scope(None))
    [d] = feed(eng, 1, 0.0, BOB)
    assert d.outcome is Outcome.ACCEPTED and d.session_id is None


def test_retry_when_undecided_then_start_over():
    eng = engine(liveness_factory=lambda: ScriptedLiveness(window_s=100))
    decisions = feed(eng, 1, 0.0, ALICE, openness=(1.0,) * 90)
    assert [d.outcome for d in decisions] == [Outcome.RETRY]
    assert decisions[0].latency_s == pytest.approx(8.0)
    assert eng.tracks[1].first_ts == pytest.approx(8.0)  # the track started over at the retry
    assert eng.tracks[1].verdict == "pending"


def test_liveness_off_decides_on_embeddings_alone():
    eng = engine(liveness_factory=None)
    [d] = feed(eng, 1, 0.0, BOB, openness=(None, None, None))
    assert d.outcome is Outcome.ACCEPTED and d.person_id == "bob"


def test_swap_detected_and_new_track_does_not_inherit_liveness():
    eng = engine()
    feed(eng, 1, 0.0, ALICE, openness=(1.0, 1.0))  # alice, not yet blinked
    assert not eng.is_swap(1, ALICE)
    assert eng.is_swap(1, BOB)
    eng.end_track(1)
    assert feed(eng, 2, 0.3, BOB, openness=(1.0,) * 5) == []
    assert eng.tracks[2].verdict == "pending"


def test_embeddings_are_rechecked_periodically_not_every_frame():
    eng = engine(liveness_factory=lambda: ScriptedLiveness(window_s=100))
    feed(eng, 1, 0.0, ALICE, openness=(1.0,) * 3)
    assert not eng.wants_embedding(1, 0.3)
    assert eng.wants_embedding(1, 0.21 + eng.recheck_s)


def test_mean_embedding_is_unit_length():
    v = mean_embedding([ALICE, BOB])
    assert abs(np.linalg.norm(v) - 1.0) < 1e-6


def test_real_liveness_tracker_enum_verdicts_are_understood():
    from firmware.config import LivenessConfig
    from firmware.domain.liveness import LivenessTracker
    from firmware.domain.liveness_measures import EyeOpenness, GateResult

    eng = engine(liveness_factory=lambda: LivenessTracker(LivenessConfig(window_s=1.0)))
    decisions = []
    for i in range(40):  # a still face: eyes steady open, gate passing
        ts = i / 15
        e = ALICE if eng.wants_embedding(1, ts) else None
        d = eng.observe(1, ts, openness=EyeOpenness(0.3, 0.3), gate=GateResult.passed(), embedding=e)
        decisions += [d] if d else []
    assert [d.outcome for d in decisions] == [Outcome.SPOOF]
    assert eng.tracks[1].verdict == "spoof"


@dataclass
class BusyState:
    verdict: str = "pending"
    busy: bool = True


class BusyLiveness:
    """Fake liveness (unit tests only) that is always in the middle of a challenge."""

    def update(self, ts, openness, gate):
        return BusyState()


def test_a_challenge_under_way_is_not_retried_and_a_policy_change_restarts_undecided_tracks():
    eng = engine(liveness_factory=BusyLiveness)
    for i in range(200):  # 20 s, far past retry_after_s
        assert eng.observe(1, i * 0.1, openness=0.3, gate="ok") is None
    assert eng.tracks[1].liveness_busy and eng.tracks[1].first_ts == 0.0
    eng.liveness_factory = ScriptedLiveness
    eng.restart_liveness()
    assert 1 not in eng.tracks
    eng.observe(1, 30.0, openness=0.3, gate="ok")
    assert isinstance(eng.tracks[1].liveness, ScriptedLiveness) and eng.tracks[1].first_ts == 30.0


def test_decisions_carry_the_policy_of_their_track():
    eng = engine()
    eng.liveness_policy = "challenge"
    [decision] = feed(eng, 4, 0.0, ALICE)
    assert decision.outcome is Outcome.ACCEPTED and decision.liveness_policy == "challenge"
