"""`rollcall up`'s child supervisor: the restart backoff doubles in a crash loop and goes
back to 1 s after a healthy run (issue 13.7: it never reset before)."""

from __future__ import annotations

from firmware.cli.up import HEALTHY_RUN_S, RESTART_MAX_S, _Child


class Proc:
    """A child process double: running until ``die()``."""

    def __init__(self) -> None:
        self.returncode = None

    def poll(self):
        return self.returncode

    def die(self) -> None:
        self.returncode = 1


def test_backoff_doubles_while_crashing_and_resets_after_a_healthy_run():
    procs: list[Proc] = []
    child = _Child("firmware", ["x"], spawn=lambda cmd: procs.append(Proc()) or procs[-1])
    now = 0.0
    child.poll(now)
    delays = []
    for _ in range(7):  # dies right after each start: 1, 2, 4 ... capped
        procs[-1].die()
        child.poll(now)
        delays.append(child.next_start - now)
        now = child.next_start
        child.poll(now)
    assert delays == [1, 2, 4, 8, 16, RESTART_MAX_S, RESTART_MAX_S]
    now += HEALTHY_RUN_S + 1  # then it runs fine for a while and dies once
    procs[-1].die()
    child.poll(now)
    assert child.next_start - now == 1.0
