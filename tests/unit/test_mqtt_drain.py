"""Outbox drain: order, bounded window, ack only on PUBACK, reconnect and refusal rules."""

from __future__ import annotations

from firmware.link.drain import Drain


class FakeOutbox:
    """Same API as firmware.store Outbox (pending/ack/ack_many/depth), in memory."""

    def __init__(self, count: int = 0) -> None:
        self.items: list[dict] = []
        for _ in range(count):
            self.put("event/attendance", {})

    def put(self, topic: str, payload: dict) -> dict:
        seq = len(self.items) + 1000
        entry = {"event_id": f"e{seq}", "seq": seq, "topic": topic,
                 "payload": {**payload, "event_id": f"e{seq}", "seq": seq}, "created_at": "2026-01-01T00:00:00.000Z"}
        self.items.append(entry)
        return entry

    def pending(self, limit: int) -> list[dict]:
        return self.items[:limit]

    def ack(self, event_id: str) -> bool:
        before = len(self.items)
        self.items = [i for i in self.items if i["event_id"] != event_id]
        return len(self.items) < before

    def depth(self) -> int:
        return len(self.items)


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.next_mid = 1

    def __call__(self, entry: dict) -> int:
        mid = self.next_mid
        self.next_mid += 1
        self.sent.append((mid, entry["event_id"]))
        return mid


def test_window_is_bounded_and_oldest_first():
    outbox, pub = FakeOutbox(50), Publisher()
    drain = Drain(outbox, max_inflight=8)
    assert drain.fill(pub, 0.0) == 8
    assert drain.fill(pub, 0.0) == 0  # window full
    assert [e for _, e in pub.sent] == [f"e{1000 + i}" for i in range(8)]


def test_entry_leaves_outbox_only_on_puback():
    outbox, pub = FakeOutbox(3), Publisher()
    drain = Drain(outbox, max_inflight=5)
    drain.fill(pub, 0.0)
    assert outbox.depth() == 3
    drain.on_ack(pub.sent[0][0], True, 0.0)
    assert [i["event_id"] for i in outbox.items] == ["e1001", "e1002"]
    assert drain.on_ack(999, True, 0.0) is False  # not ours (status, result...)


def test_drains_everything_in_order_with_acks_in_between():
    outbox, pub = FakeOutbox(100), Publisher()
    drain = Drain(outbox, max_inflight=7)
    while outbox.depth():
        drain.fill(pub, 0.0)
        drain.on_acks([(mid, True) for mid in list(drain.inflight)[:3]], 0.0)
    ids = [e for _, e in pub.sent]
    assert ids == [f"e{1000 + i}" for i in range(100)]  # each once, in seq order


def test_after_reconnect_waits_for_the_resent_window_before_new_ones():
    outbox, pub = FakeOutbox(30), Publisher()
    drain = Drain(outbox, max_inflight=10, stall_timeout_s=30)
    drain.fill(pub, 0.0)
    drain.on_ack(1, True, 0.0)
    drain.on_connect(1.0)  # paho re-sends mids 2..10 itself
    assert drain.fill(pub, 2.0) == 0
    drain.on_acks([(mid, True) for mid in range(2, 11)], 3.0)
    assert drain.fill(pub, 3.0) == 10
    assert pub.sent[10][1] == "e1010"


def test_stalled_window_is_resent_from_the_outbox_oldest_first():
    outbox, pub = FakeOutbox(5), Publisher()
    drain = Drain(outbox, max_inflight=3, stall_timeout_s=10)
    drain.fill(pub, 0.0)
    drain.on_connect(1.0)
    assert drain.fill(pub, 5.0) == 0
    assert drain.fill(pub, 12.0) == 3
    assert [e for _, e in pub.sent[3:]] == ["e1000", "e1001", "e1002"]
    assert drain.stats.republished == 3
    assert outbox.depth() == 5  # nothing dropped


def test_refused_event_is_kept_and_window_resent_later():
    outbox, pub = FakeOutbox(2), Publisher()
    drain = Drain(outbox, max_inflight=2, stall_timeout_s=30, refused_retry_s=5)
    drain.fill(pub, 0.0)
    drain.on_acks([(1, False), (2, True)], 1.0)
    assert [i["event_id"] for i in outbox.items] == ["e1000"]
    assert drain.stats.refused == 1
    assert drain.fill(pub, 2.0) == 0
    assert drain.fill(pub, 6.5) == 1 and pub.sent[-1][1] == "e1000"


def test_publish_failure_stops_the_fill():
    outbox = FakeOutbox(4)
    drain = Drain(outbox, max_inflight=4)
    assert drain.fill(lambda entry: None, 0.0) == 0
    assert drain.inflight == {}
