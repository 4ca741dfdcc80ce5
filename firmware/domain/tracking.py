"""Face tracks with stable ids across frames. Pure: no I/O, times passed in (seconds).

Association is greedy on a combined score of IoU and centre distance (normalised by the
face width in pixels), so a face that moves fast between frames (low IoU) still keeps its
id while it stays within ``max_centre_dist`` face widths. A track dies after
``max_missed`` frames without a detection or ``max_age_s`` seconds unseen.

Identity safety: per-track state (liveness, embeddings) is keyed by the track id, so a
face must never inherit another face's id. A detection whose size jumps by more than
``max_scale_change`` gets a new track; and :meth:`Tracker.split` gives a track a fresh id
when appearance says it is now a different person (the decision engine calls it when a new
embedding disagrees with the track's average).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from firmware.domain.types import Detection


@dataclass(slots=True)
class Track:
    """One face followed over time. ``box`` is (x1, y1, x2, y2) in full-frame pixels."""

    id: int
    box: np.ndarray
    first_ts: float
    last_ts: float
    hits: int = 1
    missed: int = 0
    detection: Detection | None = None
    data: dict = field(default_factory=dict)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def centre_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between box centres in units of the larger box width."""
    ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
    cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    scale = max(float(a[2] - a[0]), float(b[2] - b[0]), 1.0)
    return float(np.linalg.norm(ca - cb) / scale)


def _scale_change(a: np.ndarray, b: np.ndarray) -> float:
    wa, wb = max(float(a[2] - a[0]), 1.0), max(float(b[2] - b[0]), 1.0)
    return max(wa, wb) / min(wa, wb)


class Tracker:
    """Keeps tracks alive across frames.

    ``max_missed``: frames a track survives without a detection; ``max_age_s``: seconds
    unseen before it dies regardless; ``min_iou`` / ``max_centre_dist`` (face widths):
    the association gate; ``max_scale_change``: width ratio above which a detection is a
    different face.
    """

    def __init__(self, *, max_missed: int = 10, max_age_s: float = 1.5, min_iou: float = 0.1,
                 max_centre_dist: float = 0.8, max_scale_change: float = 1.8) -> None:
        self.max_missed = max_missed
        self.max_age_s = max_age_s
        self.min_iou = min_iou
        self.max_centre_dist = max_centre_dist
        self.max_scale_change = max_scale_change
        self.tracks: dict[int, Track] = {}
        self._next_id = 1
        self.ended: list[Track] = []

    def _new_track(self, det: Detection, ts: float) -> Track:
        track = Track(self._next_id, np.asarray(det.box, np.float32).copy(), ts, ts, detection=det)
        self._next_id += 1
        self.tracks[track.id] = track
        return track

    def _score(self, track: Track, det: Detection) -> float | None:
        """Association score (higher is better) or None when outside the gate."""
        box = np.asarray(det.box, np.float32)
        if _scale_change(track.box, box) > self.max_scale_change:
            return None
        overlap = iou(track.box, box)
        dist = centre_distance(track.box, box)
        if overlap < self.min_iou and dist > self.max_centre_dist:
            return None
        return overlap + (1.0 - min(dist, 1.0))

    def _associate(self, detections: list[Detection]) -> list[tuple[int, int]]:
        """Greedy best-first pairs of (track id, detection index)."""
        candidates = []
        for track in self.tracks.values():
            for j, det in enumerate(detections):
                score = self._score(track, det)
                if score is not None:
                    candidates.append((score, track.id, j))
        candidates.sort(key=lambda c: -c[0])
        used_tracks: set[int] = set()
        used_dets: set[int] = set()
        pairs = []
        for _, track_id, j in candidates:
            if track_id in used_tracks or j in used_dets:
                continue
            used_tracks.add(track_id)
            used_dets.add(j)
            pairs.append((track_id, j))
        return pairs

    def update(self, detections: list[Detection], ts: float) -> list[tuple[Track, Detection]]:
        """Assign this frame's detections (at monotonic ``ts`` seconds) to tracks.

        Returns (track, detection) for every detection, new tracks included. Tracks that
        died in this call are in :attr:`ended` until the next call.
        """
        self.ended = []
        pairs = self._associate(detections)
        matched = {j for _, j in pairs}
        out: list[tuple[Track, Detection]] = []
        for track_id, j in pairs:
            track = self.tracks[track_id]
            det = detections[j]
            track.box = np.asarray(det.box, np.float32).copy()
            track.last_ts, track.hits, track.missed, track.detection = ts, track.hits + 1, 0, det
            out.append((track, det))
        seen = {t.id for t, _ in out}
        self._age(seen, ts)
        for j, det in enumerate(detections):
            if j not in matched:
                out.append((self._new_track(det, ts), det))
        return out

    def _age(self, seen: set[int], ts: float) -> None:
        for track in list(self.tracks.values()):
            if track.id in seen:
                continue
            track.missed += 1
            track.detection = None
            if track.missed > self.max_missed or ts - track.last_ts > self.max_age_s:
                self.ended.append(self.tracks.pop(track.id))

    def split(self, track_id: int) -> Track | None:
        """Give the face now on ``track_id`` a fresh id and empty state (a swap was seen).

        The old track ends (it is put in :attr:`ended`); returns the new track.
        """
        old = self.tracks.pop(track_id, None)
        if old is None:
            return None
        self.ended.append(old)
        new = Track(self._next_id, old.box.copy(), old.last_ts, old.last_ts, detection=old.detection)
        self._next_id += 1
        self.tracks[new.id] = new
        return new

    def clear(self) -> None:
        """End every track (e.g. the camera was lost)."""
        self.ended = list(self.tracks.values())
        self.tracks.clear()
