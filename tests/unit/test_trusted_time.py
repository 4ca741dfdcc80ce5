"""Trusted time: the clock never records a time earlier than one it already wrote (across
restarts), says whether it is synchronised, and the schedule waits for it. Injected wall
clock, monotonic clock and sync source; the real sources are asked too."""

from __future__ import annotations

import json
import logging

from firmware.config import Config
from firmware.domain.decisions import DecisionEngine
from firmware.hal.timesync import (AdjtimexSource, ChainSource, FixedSource, MarkerFileSource,
                                   TimedatectlSource, default_source)
from firmware.runtime.clock import TrustedClock
from firmware.runtime.sessions import SessionKeeper
from firmware.store import Store
from tests.unit.test_store_support import Clock, T0


class Flip:
    """A sync source whose answer the test sets."""

    name = "test"

    def __init__(self, value: bool | None) -> None:
        self.value, self.asked = value, 0

    def synchronised(self) -> bool | None:
        self.asked += 1
        return self.value


def test_time_never_goes_back_and_the_bound_survives_a_crash(tmp_path, caplog):
    wall, mono = Clock(T0), Clock(0.0)
    path = tmp_path / "clock.json"
    clock = TrustedClock(path, Flip(True), wall=wall, monotonic=mono, reserve_s=60)
    assert clock.now() == T0
    assert json.loads(path.read_text())["reserved_until"] == T0 + 60  # reserved before use
    wall.advance(30)
    assert clock.now() == T0 + 30
    wall.t = T0 - 3600  # the clock jumps back an hour
    with caplog.at_level(logging.WARNING):
        assert clock.now() == T0 + 30 and clock.now() == T0 + 30
    assert clock.clamped == 2 and clock.state()["behind_s"] == 3630.0
    assert sum("behind the newest recorded time" in r.message for r in caplog.records) == 1
    # power cut (no close): a fresh process with the clock back at 1970 resumes above every time used
    wall.t = 0.0
    again = TrustedClock(path, Flip(False), wall=wall, monotonic=mono, reserve_s=60)
    assert again.now() == T0 + 60 >= T0 + 30
    assert again.state()["synced"] is False and again.state()["clamped"] == 1


def test_clean_close_saves_the_exact_bound_and_reset_is_explicit(tmp_path):
    wall, mono = Clock(T0), Clock(0.0)
    path = tmp_path / "clock.json"
    clock = TrustedClock(path, Flip(True), wall=wall, monotonic=mono)
    clock.now()
    clock.close()
    assert json.loads(path.read_text())["reserved_until"] == T0
    wall.t = T0 + 5
    reopened = TrustedClock(path, Flip(True), wall=wall, monotonic=mono)
    assert reopened.now() == T0 + 5 and reopened.clamped == 0  # a quick restart is no alarm
    wall.t = T0 - 100
    assert reopened.now() == T0 + 5
    assert reopened.reset_floor() == T0 + 5  # an admin's decision, logged
    assert reopened.now() == T0 - 100


def test_sync_state_is_cached_and_rechecked(tmp_path):
    source, mono = Flip(False), Clock(0.0)
    clock = TrustedClock(tmp_path / "c.json", source, wall=Clock(T0), monotonic=mono, recheck_s=30)
    assert clock.synced() is False and source.asked == 1
    source.value = True
    assert clock.refresh() is False and source.asked == 1  # not due yet
    mono.advance(30)
    assert clock.refresh() is True and clock.state()["source"] == "test"
    source.value = None  # cannot tell: not trusted
    assert clock.refresh(force=True) is False


def test_damaged_bound_file_is_reported_not_fatal(tmp_path, caplog):
    path = tmp_path / "clock.json"
    path.write_text("{not json")
    with caplog.at_level(logging.ERROR):
        clock = TrustedClock(path, Flip(True), wall=Clock(T0), monotonic=Clock(0.0))
    assert clock.now() == T0 and "unreadable" in caplog.text


def test_sources(tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))  # as under systemd
    quiet = ("sh", "-c", 'test -z "$NOTIFY_SOCKET" && echo yes || echo no')
    assert TimedatectlSource(quiet).synchronised() is True  # it must not talk to our sd_notify
    assert TimedatectlSource(("echo", "yes")).synchronised() is True
    assert TimedatectlSource(("echo", "no")).synchronised() is False
    assert TimedatectlSource(("false",)).synchronised() is None
    assert TimedatectlSource(("/nonexistent/timedatectl",)).synchronised() is None
    assert AdjtimexSource().synchronised() in (True, False)  # the real kernel answers
    marker = tmp_path / "synchronized"
    assert MarkerFileSource(marker).synchronised() is None
    marker.touch()
    assert MarkerFileSource(marker).synchronised() is True
    chain = ChainSource([TimedatectlSource(("false",)), FixedSource(None), MarkerFileSource(marker)])
    assert chain.synchronised() is True and chain.name == "timesyncd-marker"
    assert ChainSource([FixedSource(None)]).synchronised() is None
    assert default_source("assume_synced").synchronised() is True
    assert default_source().synchronised() in (True, False, None)


def test_schedule_waits_for_a_synchronised_clock(tmp_path):
    wall, synced = Clock(T0), {"value": False}
    config = Config()
    with Store(tmp_path / "d", clock=wall, checkpoint_s=0) as store:
        store.people.add("ann", "Ann", consent="consent")
        roster = store.rosters.create("R", [{"person_id": "ann", "seat": None}])
        session = store.sessions.create(roster["id"], config.device.room, "Maths", T0 - 60, T0 + 3600)
        keeper = SessionKeeper(config, store, DecisionEngine(), wall=wall,
                               synced=lambda: synced["value"])
        assert keeper.schedule() == [] and store.sessions.get(session["id"])["state"] == "scheduled"
        assert "clock not synchronised" in keeper.status()["message"]
        assert keeper.command("start", session["id"], "teacher")["state"] == "in_progress"  # by hand: fine
        synced["value"] = True
        wall.t = T0 + 3601
        assert keeper.schedule() == [(session["id"], "completed")]
        assert "clock" not in keeper.status()["message"]


def test_schedule_runs_unsynced_when_configured(tmp_path):
    wall = Clock(T0)
    config = Config()
    config.privacy.schedule_needs_synced_clock = False
    with Store(tmp_path / "d", clock=wall, checkpoint_s=0) as store:
        store.people.add("ann", "Ann")
        roster = store.rosters.create("R", [{"person_id": "ann", "seat": None}])
        session = store.sessions.create(roster["id"], config.device.room, "Maths", T0 - 60, T0 + 3600)
        keeper = SessionKeeper(config, store, DecisionEngine(), wall=wall, synced=lambda: False)
        assert keeper.schedule() == [(session["id"], "in_progress")]
