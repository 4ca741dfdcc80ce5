"""SIGKILL at random moments while a child process writes events; after every kill all
files load and every event the child reported as written is there exactly once.

The child is forked from the test process (modules already imported, so a restart costs
milliseconds and 200+ kills fit in well under a minute); it is a real separate process
killed with a real SIGKILL. It reports an event id on its pipe only AFTER the store call
returned, exactly like "acknowledged to the user".
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from firmware.store import Store

pytestmark = pytest.mark.integration

KILLS = 200
PEOPLE = 40
ROOM = "crash-room"


def _setup(data_dir: Path) -> None:
    with Store(data_dir, segment_max=16) as store:
        ids = [f"p{i:03d}" for i in range(PEOPLE)]
        for pid in ids:
            store.people.add(pid, pid)
        store.rosters.create("crash", [{"person_id": p} for p in ids], roster_id="crash")
        _new_session(store)


def _new_session(store: Store) -> dict:
    """Start the next session: one a kill left scheduled (sessions in a room cannot
    overlap), else a new one."""
    now = time.time()
    waiting = store.sessions.list(room=ROOM, state="scheduled")
    session = waiting[0] if waiting else store.sessions.create("crash", ROOM, "crash", now - 1,
                                                               now + 3600, now + 1800)
    return store.sessions.set_state(session["id"], "in_progress", "crash-test")


def _child(data_dir: Path, out_fd: int, seed: int) -> None:
    """Write events forever; report each one after its call returned."""
    rng = random.Random(seed)

    def report(*words: object) -> None:
        os.write(out_fd, (" ".join(map(str, words)) + "\n").encode())

    store = Store(data_dir, segment_max=16)
    session = store.sessions.active(ROOM) or _new_session(store)
    while True:
        roll = rng.random()
        if roll < 0.45:
            seen = {r["person_id"] for r in store.attendance.for_session(session["id"])}
            todo = [f"p{i:03d}" for i in range(PEOPLE) if f"p{i:03d}" not in seen]
            if not todo:
                done = store.sessions.set_state(session["id"], "completed", "crash-test")
                report("S", done["event_id"], done["seq"])
                session = _new_session(store)
                report("S", session["event_id"], session["seq"])
                continue
            rec = store.attendance.record(session["id"], rng.choice(todo), score=0.9)
            report("A", rec["event_id"], rec["seq"])
        elif roll < 0.75:
            entry = store.outbox.put("event/custom", {"n": rng.random()})
            report("O", entry["event_id"], entry["seq"])
        elif roll < 0.82:
            rec = store.unknowns.add("spoof", session["id"], None, b"\xff\xd8\xff" + os.urandom(64))
            report("U", rec["event_id"], rec["seq"])
        else:
            ids = [e["event_id"] for e in store.outbox.pending(rng.randint(1, 6))]
            report("K", *ids)  # before acking: these may be gone after a kill
            store.outbox.ack_many(ids)


def _run_once(data_dir: Path, seed: int, delay_s: float) -> list[list[str]]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            _child(data_dir, write_fd, seed)
        finally:
            os._exit(1)
    os.close(write_fd)
    time.sleep(delay_s)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, "child died on its own"
    with os.fdopen(read_fd, "rb") as pipe:
        text = pipe.read().decode()
    return [line.split() for line in text.splitlines()]  # lines are whole: one small write each


def _every_file_parses(data_dir: Path) -> None:
    for path in data_dir.rglob("*.json"):
        json.loads(path.read_bytes())
    assert not list(data_dir.rglob("*.corrupt-*"))


class Ledger:
    """What the children reported, across all runs."""

    def __init__(self) -> None:
        self.kind: dict[str, str] = {}
        self.acking: set[str] = set()
        self.seqs: list[int] = []

    def add(self, lines: list[list[str]]) -> None:
        for words in lines:
            if words[0] == "K":
                self.acking.update(words[1:])
            else:
                assert words[1] not in self.kind, f"event id {words[1]} reported twice"
                self.kind[words[1]] = words[0]
                self.seqs.append(int(words[2]))

    def check(self, store: Store) -> None:
        assert self.seqs == sorted(self.seqs) and len(set(self.seqs)) == len(self.seqs)
        attendance = [r["event_id"] for r in store.attendance.query()]
        assert len(attendance) == len(set(attendance))
        pending = store.outbox.pending(10**9)
        in_outbox = [e["event_id"] for e in pending]
        assert len(in_outbox) == len(set(in_outbox))
        assert [e["seq"] for e in pending] == sorted({e["seq"] for e in pending})
        unknowns = {u["event_id"] for u in store.unknowns.list(state=None)}
        attendance_set, outbox_set = set(attendance), set(in_outbox)
        for event_id, kind in self.kind.items():
            if kind == "A":
                assert event_id in attendance_set, f"attendance {event_id} lost"
            if kind == "U":
                assert event_id in unknowns, f"unknown {event_id} lost"
            if event_id not in self.acking:
                assert event_id in outbox_set, f"{kind} event {event_id} missing from the outbox"


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    data_dir = tmp_path / "data"
    _setup(data_dir)
    rng = random.Random(20261121)
    ledger = Ledger()
    started = time.monotonic()
    recovered = {"journal_steps": 0, "unknowns": 0, "sessions": 0}
    for kill in range(KILLS):
        ledger.add(_run_once(data_dir, seed=kill, delay_s=rng.uniform(0.005, 0.15)))
        _every_file_parses(data_dir)
        with Store(data_dir, segment_max=16, checkpoint_s=0) as store:
            assert store.health()["corrupt_files"] == []
            ledger.check(store)
            for key, value in store.recovered.items():
                recovered[key] += value
            recovered["journal_steps"] += store.replayed
    elapsed = time.monotonic() - started
    kinds = list(ledger.kind.values())
    assert kinds.count("A") > 50 and kinds.count("O") > 50 and kinds.count("U") > 5
    assert elapsed < 120, f"{KILLS} kills took {elapsed:.0f} s"
    print(f"{KILLS} kills in {elapsed:.1f} s; reported {len(kinds)} events "
          f"({kinds.count('A')} attendance); redone after a kill: {recovered}")
    assert recovered["journal_steps"] > 0  # kills did land before steps reached the files
