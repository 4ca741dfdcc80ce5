"""Shared helpers for the store tests (no tests here): a settable clock, a Store on a
temp dir, real JPEG bytes, and a running session."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from firmware.config import StoreConfig
from firmware.store import Store

T0 = 1_795_000_000.0  # 2026-11-18T08:26:40Z


class Clock:
    """Injected wall clock in UNIX seconds; tests move it by hand."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def jpeg_bytes(seed: int = 0, size: int = 48) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


def unit_vector(seed: int, dim: int = 128) -> np.ndarray:
    vec = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vec / np.linalg.norm(vec)


def running_session(store: Store, clock: Clock, people: int = 3, late_in_s: float = 300.0):
    """People p0..pN-1 on a roster and an in-progress session that started now."""
    ids = [f"p{i}" for i in range(people)]
    for pid in ids:
        store.people.add(pid, f"Person {pid}", consent="consent")
    roster = store.rosters.create("Class", [{"person_id": p, "seat": str(i)} for i, p in enumerate(ids)])
    session = store.sessions.create(roster["id"], "room-1", "Maths", clock.t, clock.t + 3600,
                                    clock.t + late_in_s)
    store.sessions.set_state(session["id"], "in_progress", "teacher")
    return store.sessions.get(session["id"]), ids


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    with Store(tmp_path / "data", clock=clock, config=StoreConfig(outbox_max_events=100),
               checkpoint_s=0) as s:
        yield s
