"""Link details the central side relies on at fleet scale: which PUBACKs count as delivered,
and the per-connection sequence number shared by a birth and its will."""

from __future__ import annotations

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from firmware.link import payloads
from firmware.link.mqtt import delivered
from firmware.link.state import ConnectionSeq


def test_no_matching_subscribers_is_not_delivered():
    assert delivered(ReasonCode(PacketTypes.PUBACK, "Success"))
    assert not delivered(ReasonCode(PacketTypes.PUBACK, "No matching subscribers"))
    assert not delivered(ReasonCode(PacketTypes.PUBACK, "Not authorized"))


def test_connection_seq_increases_across_restarts_and_clock_jumps(tmp_path):
    clock = [1_000.0]
    seq = ConnectionSeq(tmp_path / "seq", wall=lambda: clock[0])
    first = seq.next()
    assert first == 1_000_000 and seq.next() == 1_000_001  # two connects in one millisecond
    clock[0] = 10.0  # rebooted without an RTC: the clock is in 1970
    again = ConnectionSeq(tmp_path / "seq", wall=lambda: clock[0])
    assert again.next() == 1_000_002
    (tmp_path / "seq").unlink()  # data directory wiped, clock right again
    clock[0] = 2_000.0
    assert ConnectionSeq(tmp_path / "seq", wall=lambda: clock[0]).next() == 2_000_000
    (tmp_path / "seq").write_text("garbage")
    assert ConnectionSeq(tmp_path / "seq", wall=lambda: clock[0]).next() == 2_000_000


def test_birth_and_will_carry_the_same_conn_seq():
    birth = payloads.birth({}, "d1", "m1", 7, conn_seq=42, room="hall")
    will = payloads.will("d1", conn_seq=42)
    assert birth["conn_seq"] == will["conn_seq"] == 42 and birth["room"] == "hall"
    assert "conn_seq" not in payloads.will("d1")  # old callers: no number, no field


def test_open_door_event_carries_the_device_room():
    entry = {"event_id": "E1", "seq": 1, "topic": "event/attendance", "created_at": "2026-11-30T08:00:00.000Z",
             "payload": {"session_id": None, "room": None, "person_id": "p1"}}
    assert payloads.event_message(entry, "d1", "m1", room="hall-1")["room"] == "hall-1"
    entry["payload"]["room"] = "exam-2"  # a session's room is kept
    assert payloads.event_message(entry, "d1", "m1", room="hall-1")["room"] == "exam-2"
