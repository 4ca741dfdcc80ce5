"""Tracker: stable ids, death after missed frames/seconds, no identity carried across a swap."""

from __future__ import annotations

import numpy as np

from firmware.domain.tracking import Tracker, centre_distance, iou
from firmware.domain.types import Detection


def det(x: float, y: float, w: float = 100.0) -> Detection:
    return Detection(np.array([x, y, x + w, y + w], np.float32), 0.9, np.zeros((6, 2), np.float32))


def ids(pairs) -> list[int]:
    return [t.id for t, _ in pairs]


def test_iou_and_centre_distance():
    a = np.array([0, 0, 10, 10], np.float32)
    assert iou(a, a) == 1.0
    assert iou(a, np.array([20, 20, 30, 30], np.float32)) == 0.0
    assert abs(iou(a, np.array([5, 0, 15, 10], np.float32)) - 50 / 150) < 1e-6
    assert centre_distance(a, np.array([10, 0, 20, 10], np.float32)) == 1.0


def test_ids_are_stable_while_a_face_moves():
    tracker = Tracker()
    first = ids(tracker.update([det(100, 100)], 0.0))
    for i in range(1, 20):
        assert ids(tracker.update([det(100 + 8 * i, 100 + 3 * i)], i / 15)) == first


def test_fast_move_without_overlap_keeps_id_within_centre_gate():
    tracker = Tracker()
    a = ids(tracker.update([det(100, 100)], 0.0))
    # 60 px jump of a 100 px face: IoU 0.25 then centre within 0.8 widths
    assert ids(tracker.update([det(170, 100)], 0.07)) == a


def test_two_faces_keep_their_ids():
    tracker = Tracker()
    first = tracker.update([det(100, 100), det(500, 100)], 0.0)
    left, right = first[0][0].id, first[1][0].id
    assert left != right
    pairs = tracker.update([det(510, 105), det(105, 102)], 0.1)  # order swapped in the list
    by_x = {float(d.box[0]): t.id for t, d in pairs}
    assert by_x[105.0] == left and by_x[510.0] == right


def test_track_dies_after_missed_frames():
    tracker = Tracker(max_missed=3, max_age_s=100)
    a = ids(tracker.update([det(100, 100)], 0.0))[0]
    for i in range(3):
        tracker.update([], 0.1 * (i + 1))
        assert a in tracker.tracks
    tracker.update([], 0.4)
    assert a not in tracker.tracks
    assert [t.id for t in tracker.ended] == [a]
    assert ids(tracker.update([det(100, 100)], 0.5)) != [a]


def test_track_dies_after_seconds_unseen():
    tracker = Tracker(max_missed=1000, max_age_s=1.0)
    a = ids(tracker.update([det(100, 100)], 0.0))[0]
    tracker.update([], 0.5)
    assert a in tracker.tracks
    tracker.update([], 1.2)
    assert a not in tracker.tracks


def test_a_different_sized_face_in_the_same_place_is_a_new_track():
    tracker = Tracker()
    a = ids(tracker.update([det(100, 100, 100)], 0.0))
    b = ids(tracker.update([det(80, 80, 250)], 0.1))
    assert a != b


def test_split_gives_a_fresh_id_and_empty_state():
    tracker = Tracker()
    track = tracker.update([det(100, 100)], 0.0)[0][0]
    track.data["liveness"] = "live"
    new = tracker.split(track.id)
    assert new is not None and new.id != track.id and new.data == {}
    assert [t.id for t in tracker.ended] == [track.id]
    assert ids(tracker.update([det(102, 100)], 0.1)) == [new.id]
    assert tracker.split(9999) is None


def test_clear_ends_everything():
    tracker = Tracker()
    tracker.update([det(100, 100), det(400, 100)], 0.0)
    tracker.clear()
    assert tracker.tracks == {} and len(tracker.ended) == 2
