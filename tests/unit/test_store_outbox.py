"""store.outbox: order, ack, pruning, bound/warning/full, seq across restarts."""

import logging

import pytest

from firmware.config import StoreConfig
from firmware.store import OutboxFull, Store, StoreValueError
from tests.unit.test_store_support import clock, running_session  # noqa: F401


@pytest.fixture
def small(tmp_path, clock):
    with Store(tmp_path / "d", clock=clock, config=StoreConfig(outbox_max_events=100),
               segment_max=8, checkpoint_s=0) as s:
        yield s


def test_pending_oldest_first_and_ack_prunes_segments(small, clock):
    ids = [small.outbox.put("event/custom", {"n": i})["event_id"] for i in range(20)]
    pending = small.outbox.pending(5)
    assert [p["payload"]["n"] for p in pending] == [0, 1, 2, 3, 4]
    assert pending[0]["payload"]["event_id"] == ids[0] and pending[0]["seq"] < pending[1]["seq"]
    outbox_dir = small.data_dir / "outbox"
    assert list(outbox_dir.glob("seg-*.json")) == []  # journaled; files come at checkpoint
    assert small.checkpoint() == 3
    assert len(list(outbox_dir.glob("seg-*.json"))) == 3
    assert small.outbox.ack(ids[0]) is True and small.outbox.ack(ids[0]) is False
    assert small.outbox.ack_many(ids[1:8]) == 7
    small.checkpoint()
    assert len(list(outbox_dir.glob("seg-*.json"))) == 2  # empty segment deleted
    assert small.outbox.depth() == 12
    assert small.outbox.pending(1)[0]["payload"]["n"] == 8
    assert small.outbox.ack_many(ids) == 12 and small.outbox.depth() == 0
    small.checkpoint()
    assert list(outbox_dir.glob("seg-*.json")) == []
    assert small.outbox.oldest_age_s() is None


def test_oldest_age_uses_the_clock(small, clock):
    small.outbox.put("event/custom", {})
    clock.advance(42.5)
    small.outbox.put("event/custom", {})
    assert small.outbox.oldest_age_s() == pytest.approx(42.5)


@pytest.mark.parametrize("topic", ["", "/event", "event//x", "Event/X", "a" * 65, 7])
def test_bad_topic_or_payload(small, topic):
    with pytest.raises(StoreValueError):
        small.outbox.put(topic, {})
    with pytest.raises(StoreValueError):
        small.outbox.put("event/custom", {"x": float("nan")})
    with pytest.raises(StoreValueError):
        small.outbox.put("event/custom", ["not", "a", "dict"])
    assert small.outbox.depth() == 0


def test_warning_then_full_refuses_non_attendance_but_keeps_attendance(small, clock, caplog):
    session, ids = running_session(small, clock, people=3)  # 1 session event queued
    with caplog.at_level(logging.WARNING, logger="firmware.store.outbox"):
        for i in range(78):
            small.outbox.put("event/custom", {"i": i})
        assert small.outbox.state() == "ok" and small.outbox.capacity_fraction() == 0.79
        small.outbox.put("event/custom", {})
        assert small.outbox.state() == "warning"
        for i in range(19):
            small.outbox.put("event/custom", {"i": i})
    assert small.outbox.depth() == 99
    assert sum("-> warning" in r.message for r in caplog.records) == 1  # logged once
    small.outbox.put("event/custom", {"last": True})
    assert small.outbox.state() == "full"
    with pytest.raises(OutboxFull, match="refused"):
        small.outbox.put("event/unknown", {})
    rec = small.attendance.record(session["id"], "p0")  # attendance is never refused
    assert small.outbox.depth() == 101 and small.outbox.capacity_fraction() > 1.0
    assert any(e["event_id"] == rec["event_id"] for e in small.outbox.pending(200))
    assert small.health()["outbox"]["state"] == "full"


def test_age_warning_is_logged_once(tmp_path, clock, caplog):
    with Store(tmp_path / "d", clock=clock, config=StoreConfig(outbox_max_age_days=1)) as s:
        s.outbox.put("event/custom", {})
        clock.advance(2 * 86400)
        with caplog.at_level(logging.WARNING, logger="firmware.store.outbox"):
            s.outbox.put("event/custom", {})
            s.outbox.put("event/custom", {})
        assert sum("days" in r.message for r in caplog.records) == 1
        assert s.outbox.health()["age_exceeded"] is True


def test_seq_never_repeats_across_restarts(tmp_path, clock):
    seen = []
    for _ in range(3):
        with Store(tmp_path / "d", clock=clock) as s:
            seen += [s.outbox.put("event/custom", {})["seq"] for _ in range(5)]
            s.outbox.ack_many([e["event_id"] for e in s.outbox.pending(100)])
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    (tmp_path / "d" / "counters.json").unlink()  # lost counter file: jump far ahead, loudly
    with Store(tmp_path / "d", clock=clock) as s:
        assert s.outbox.put("event/custom", {})["seq"] > max(seen)
