"""Tracking on the real entry clip (several people walking toward the camera)."""

from __future__ import annotations

from collections import Counter

import pytest

from firmware.config import Config
from firmware.domain.tracking import Tracker
from firmware.hal.sources import FileSource
from firmware.runtime.loop import FrameAnalyser

pytestmark = pytest.mark.integration


def test_people_walking_in_keep_their_track_ids(shared_data, built_models):
    cfg = Config()
    cfg.detection.model = "blazeface_full"  # faces 70-130 px in a 1920 px frame
    analyser = FrameAnalyser(cfg, built_models)
    tracker = Tracker()
    frames_per_id: Counter[int] = Counter()
    with FileSource(shared_data / "entry-walk" / "facenet-pytorch_video.mp4", realtime=False, loop=False) as src:
        while (frame := src.read()) is not None:
            pairs = tracker.update(analyser.detect(frame), frame.ts)
            ids = [t.id for t, _ in pairs]
            assert len(ids) == len(set(ids))  # one face, one id, in every frame
            frames_per_id.update(ids)
    analyser.close()
    (_, first), (_, second) = frames_per_id.most_common(2)
    # the two people who walk up through the whole clip (105 frames) keep one id each
    assert first >= 40 and second >= 40
