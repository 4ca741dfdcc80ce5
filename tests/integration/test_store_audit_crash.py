"""Every change the store makes is audited in the same journal step as the change itself:
after a SIGKILL at any moment there is no audit entry without its change (a "phantom")
and no change without its audit entry.

A forked child creates, renames and deletes people and rosters as a named user until it
is killed with a real SIGKILL; the parent reopens the store and compares the people and
rosters on disk with the audit log.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from firmware.store import Store

pytestmark = pytest.mark.integration

KILLS = 25


def _child(data_dir: Path, seed: int, ready_fd: int) -> None:
    rng = random.Random(seed)
    store = Store(data_dir, segment_max=8, checkpoint_s=0.05)
    os.write(ready_fd, b"open\n")  # the parent's random kill delay starts now
    n = seed * 10_000
    with store.acting("crash.admin"):
        while True:
            n += 1
            people = [p["id"] for p in store.people.list()]
            roll = rng.random()
            if roll < 0.5 or not people:
                store.people.add(f"p{n}", f"Person {n}")
            elif roll < 0.7:
                store.people.update(rng.choice(people), name=f"Renamed {n}")
            elif roll < 0.85:
                store.people.delete(rng.choice(people))
            else:
                store.rosters.create(f"R{n}", [{"person_id": p} for p in people[:3]], roster_id=f"r{n}")


def _expected_people(audit: list[dict]) -> set[str]:
    alive: set[str] = set()
    for rec in reversed(audit):  # oldest first
        if rec["action"] == "person.created":
            alive.add(rec["target"])
        elif rec["action"] == "person.deleted":
            alive.discard(rec["target"])
    return alive


def test_no_phantom_and_no_unaudited_change_after_sigkills(tmp_path):
    data = tmp_path / "d"
    rng = random.Random(7)
    for kill in range(KILLS):
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child never returns
            try:
                os.close(ready_r)
                _child(data, kill + 1, ready_w)
            finally:
                os._exit(1)
        os.close(ready_w)
        assert os.read(ready_r, 16) == b"open\n"
        os.close(ready_r)
        time.sleep(rng.uniform(0.02, 0.3))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with Store(data) as store:
            audit = store.audit.list(limit=100_000)
            people = {p["id"] for p in store.people.list()}
            rosters = {r["id"] for r in store.rosters.list()}
        assert people == _expected_people(audit), f"after kill {kill + 1}"
        created = {a["target"] for a in audit if a["action"] == "roster.created"}
        assert rosters == created, f"after kill {kill + 1}"
        assert {a["actor"] for a in audit} <= {"crash.admin"}
    assert len(audit) > KILLS  # the children got real work done between kills
