"""A replayed real video whose file disappears and comes back: lost once, back once,
no restart; a real webcam index that does not exist is 'lost', not a crash."""

from __future__ import annotations

import logging
import shutil
import threading
import time

import pytest

from firmware.config import CameraConfig
from firmware.hal.camera import Camera

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_file_removed_then_restored(tmp_path, shared_data, caplog):
    original = shared_data / "blink" / "WDA_AlexandriaOcasioCortez_000.mp4"
    clip = tmp_path / "clip.mp4"
    shutil.copy(original, clip)
    cfg = CameraConfig(source=str(clip), replay_realtime=False, replay_loop=True, retry_max_s=0.2)
    cam = Camera(cfg, retry_min_s=0.05)
    stop = threading.Event()
    got = []

    def reader():
        while not stop.is_set():
            frame = cam.slot.get(timeout=0.05)
            if frame is not None:
                got.append(frame.index)

    thread = threading.Thread(target=reader)
    thread.start()
    with caplog.at_level(logging.INFO, logger="firmware.hal.camera"):
        try:
            cam.start()
            assert wait_for(lambda: len(got) > 20)
            clip.unlink()
            assert wait_for(lambda: cam.state == "lost")
            assert "went away" in cam.status()["message"] or "no such video" in cam.status()["message"]
            time.sleep(0.5)  # several retries while the file is gone
            before = len(got)
            shutil.copy(original, clip)
            assert wait_for(lambda: cam.state == "running" and len(got) > before + 20)
        finally:
            cam.close()
            stop.set()
            thread.join()
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("camera lost") for m in messages) == 1
    assert sum(m.startswith("camera back") for m in messages) == 1
    assert cam.losses == 1 and len(cam.waits) >= 2
    assert cam.status()["dropped"] == 0  # as-fast-as-possible replay is lossless


def test_missing_webcam_is_lost_not_a_crash():
    cam = Camera(CameraConfig(source="webcam:63", retry_max_s=0.2), retry_min_s=0.05)
    with cam:
        assert wait_for(lambda: cam.state == "lost", 10)
        assert "webcam 63" in cam.status()["message"]
    assert cam.state == "stopped"
