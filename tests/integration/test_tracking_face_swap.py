"""A different person takes the exact place of the tracked one (real LFW faces, real models,
real liveness): the new face gets a new track and starts liveness from zero."""

from __future__ import annotations

import random

import cv2
import numpy as np
import pytest

from firmware.runtime.tuning import configure_engine
from firmware.config import Config
from firmware.domain.decisions import DecisionEngine, Scope
from firmware.domain.matching import Gallery
from firmware.domain.types import Frame
from firmware.hal.slot import LatestSlot
from firmware.hal.sources import downscale
from firmware.runtime.loop import DeviceLoop, FrameAnalyser

pytestmark = pytest.mark.integration

FPS = 10.0


class Sink:
    def __init__(self):
        self.ids_per_frame: list[list[int]] = []

    def on_decision(self, decision, frame, box):
        pass

    def on_frame_start(self, frame):
        pass

    def on_frame(self, frame, overlays):
        self.ids_per_frame.append([o.track_id for o in overlays])

    def housekeeping(self):
        pass


class Camera:
    slot = LatestSlot()
    state = "running"


def face(shared_data, person: str) -> np.ndarray:
    path = sorted((shared_data / "faces-small" / "lfw10" / person).glob("*.jpg"))[0]
    return cv2.resize(cv2.imread(str(path)), (500, 500), interpolation=cv2.INTER_CUBIC)


def test_swapped_face_gets_new_track_and_fresh_liveness(shared_data, built_models):
    cfg = Config()
    analyser = FrameAnalyser(cfg, built_models)
    engine = DecisionEngine()
    configure_engine(engine, cfg, random.Random(1))  # the device's own wiring (swap threshold)
    engine.set_scope(Scope("s1", Gallery([], np.zeros((0, 128)), dim=128), key="s1"))  # nobody enrolled: keep embedding
    sink = Sink()
    loop = DeviceLoop(camera=Camera(), engine=engine, sink=sink, analyser=analyser)
    a, b = face(shared_data, "Colin_Powell"), face(shared_data, "Ariel_Sharon")
    for i in range(40):
        image = a if i < 20 else b
        loop.process(Frame(image, i / FPS, 1000 + i / FPS, i, downscale(image, cfg.camera.detect_width)))
    analyser.close()
    first = {tid for ids in sink.ids_per_frame[:20] for tid in ids}
    last = {tid for ids in sink.ids_per_frame[30:] for tid in ids}
    assert len(first) == 1 and len(last) == 1 and first != last
    [state] = engine.tracks.values()
    assert state.first_ts >= 2.0  # B's liveness started when B appeared, not with A
    assert state.verdict in ("pending", "look_at_camera")
