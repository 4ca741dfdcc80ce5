"""Scope changes re-open tracks (issue 11, item 10).

A person already in front of the camera when a session starts must be marked: their track
was decided ``no_session`` before the start and used to stay so for as long as they stood
there. Real store in a temporary folder, the real SessionKeeper and DecisionEngine;
embeddings are synthetic unit vectors (no model needed for this rule).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from firmware.config import Config
from firmware.domain.decisions import DecisionEngine, Outcome
from firmware.domain.liveness_measures import GateResult
from firmware.runtime.sessions import SessionKeeper
from firmware.store import Store


def unit(index: int, dim: int = 128) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[index] = 1.0
    return v


@pytest.fixture
def keeper(tmp_path):
    cfg = Config()
    cfg.liveness.policy = "off"
    store = Store(tmp_path / "data")
    store.people.add("alice", "Alice", consent="consent")
    store.people.add_embedding("alice", unit(1), cfg.recognition.embedder)
    store.people.add("bob", "Bob", consent="consent")
    store.people.add_embedding("bob", unit(2), cfg.recognition.embedder)
    roster = store.rosters.create("Class", [{"person_id": "alice"}, {"person_id": "bob"}])
    now = time.time()
    session = store.sessions.create(roster["id"], cfg.device.room, "Lecture", now + 3600, now + 7200)
    engine = DecisionEngine(cooldown_s=30, retry_after_s=8, embeddings_per_track=3)
    sessions = SessionKeeper(cfg, store, engine)
    sessions.refresh()
    yield sessions, session["id"]
    store.close()


def feed(engine: DecisionEngine, track: int, t0: float, frames: int, vector: np.ndarray) -> list:
    out = []
    for i in range(frames):
        ts = t0 + i * 0.1
        emb = vector if engine.wants_embedding(track, ts) else None
        d = engine.observe(track, ts, openness=None, gate=GateResult(ok=True, face_px=150, sharpness=200), embedding=emb)
        if d is not None:
            out.append(d)
    return out


def test_person_in_view_when_the_session_starts_is_marked(keeper):
    sessions, session_id = keeper
    engine = sessions.engine
    before = feed(engine, 1, 0.0, 5, unit(1))
    assert [d.outcome for d in before] == [Outcome.NO_SESSION]
    sessions.command("start", session_id, "console")
    after = feed(engine, 1, 0.5, 6, unit(1))
    assert [(d.outcome, d.person_id, d.session_id) for d in after] == [(Outcome.ACCEPTED, "alice", session_id)]


def test_session_stop_reopens_a_marked_track_as_no_session(keeper):
    sessions, session_id = keeper
    engine = sessions.engine
    sessions.command("start", session_id, "console")
    assert [d.outcome for d in feed(engine, 1, 0.0, 6, unit(1))] == [Outcome.ACCEPTED]
    sessions.command("stop", session_id, "console")
    assert [d.outcome for d in feed(engine, 1, 1.0, 3, unit(1))] == [Outcome.NO_SESSION]


def test_periodic_refresh_with_the_same_scope_decides_nothing_twice(keeper):
    sessions, session_id = keeper
    engine = sessions.engine
    sessions.command("start", session_id, "console")
    assert [d.outcome for d in feed(engine, 1, 0.0, 6, unit(1))] == [Outcome.ACCEPTED]
    sessions.refresh()  # the 30 s refresh: same session, same roster
    assert feed(engine, 1, 1.0, 6, unit(1)) == []
