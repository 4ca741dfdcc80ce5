"""Camera supervisor with fake sources (unit): lost/back logged once, backoff, no camera."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest

from firmware.config import CameraConfig
from firmware.domain.types import Frame
from firmware.errors import CameraError, NoCameraFound
from firmware.hal.camera import Camera, open_source
from firmware.hal.slot import LatestSlot
from firmware.hal.sources import FileSource, FrameSource, WebcamSource


class FakeSource(FrameSource):
    """Delivers ``frames`` frames then raises CameraError (fake for unit tests only)."""

    def __init__(self, frames: int, fail_on_start: bool = False):
        super().__init__()
        self.frames, self.fail_on_start = frames, fail_on_start
        self.name = "fake"
        self.closed_count = 0

    def start(self):
        if self.fail_on_start:
            raise CameraError("fake: cannot open")

    def read(self):
        if self.frames <= 0:
            raise CameraError("fake: unplugged")
        self.frames -= 1
        time.sleep(0.002)
        return self._frame(np.zeros((48, 64, 3), np.uint8))

    def stop(self):
        self.closed_count += 1


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def drain(slot: LatestSlot, stop):
    while not stop():
        slot.get(timeout=0.01)


def test_lost_then_back_logged_once_each(caplog):
    plan = [FakeSource(5), FakeSource(0, fail_on_start=True), FakeSource(0, fail_on_start=True),
            FakeSource(0, fail_on_start=True), FakeSource(10_000)]
    made = []

    def factory():
        made.append(plan.pop(0) if plan else FakeSource(10_000))
        return made[-1]

    cam = Camera(CameraConfig(retry_max_s=0.04), source_factory=factory, retry_min_s=0.01)
    with caplog.at_level(logging.INFO, logger="firmware.hal.camera"), cam:
        assert wait_for(lambda: len(made) >= 5 and cam.state == "running" and cam.frames > 10)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("camera lost" in m for m in messages) == 1
    assert sum("camera back" in m for m in messages) == 1
    assert cam.losses == 1
    # 1st failure after running: retry soon; then the wait doubles up to retry_max_s
    assert list(cam.waits)[:4] == [0.01, 0.02, 0.04, 0.04]
    assert all(s.closed_count >= 1 for s in made)  # every source released
    assert cam.state == "stopped"


def test_no_camera_is_a_state_not_a_crash(caplog):
    def factory():
        raise NoCameraFound("no camera found: connect one")

    cam = Camera(CameraConfig(retry_max_s=0.02), source_factory=factory, retry_min_s=0.01)
    with caplog.at_level(logging.WARNING), cam:
        assert wait_for(lambda: len(cam.waits) >= 3)
        assert cam.status()["state"] == "no_camera"
        assert "no camera found" in cam.status()["message"]
    assert sum("no camera found" in r.getMessage() for r in caplog.records) == 1


def test_live_source_drops_are_counted_in_the_slot():
    cam = Camera(CameraConfig(), source_factory=lambda: FakeSource(50))
    with cam:
        assert wait_for(lambda: cam.state == "lost")
    assert cam.frames == 50
    assert cam.slot.dropped == 49  # nobody read: each new frame replaced the previous one
    assert cam.status()["dropped"] == 49


def test_close_is_safe_twice():
    cam = Camera(CameraConfig(), source_factory=lambda: FakeSource(10_000))
    cam.start()
    cam.close()
    cam.close()
    assert cam.state == "stopped"


def test_slot_blocking_put_waits_for_the_reader():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1, block=True, timeout=0.01)
    assert not slot.put(2, block=True, timeout=0.01)  # untaken: refused, not dropped
    assert slot.dropped == 0 and slot.get(0.01) == 1
    assert slot.get(0.01) is None
    slot.put(3)
    slot.put(4)
    assert slot.dropped == 1 and slot.get(0) == 4
    slot.close()
    slot.close()
    assert not slot.put(5) and slot.get(0.01) is None


def test_slot_wait_empty():
    slot: LatestSlot[int] = LatestSlot()
    assert slot.wait_empty(0)
    slot.put(1)
    assert not slot.wait_empty(0.01)  # still holds an untaken item
    threading.Timer(0.02, slot.get).start()
    assert slot.wait_empty(2.0)  # the reader took it
    slot.close()
    assert not slot.wait_empty(0)


def test_replay_as_fast_as_possible_reads_only_when_the_slot_has_room():
    """A non-live source is read again only after the loop took the frame in the slot: no
    second decoded full-resolution frame waits in the capture thread."""
    source = FakeSource(10)
    source.live = False
    reads = []
    source_read = source.read
    source.read = lambda: reads.append(1) or source_read()
    cam = Camera(CameraConfig(), source_factory=lambda: source)
    with cam:
        assert wait_for(lambda: cam.frames == 1)
        time.sleep(0.1)  # time enough for a second read, if the thread were to make one
        assert len(reads) == 1
        assert cam.slot.get(1.0).index == 1
        assert wait_for(lambda: cam.frames == 2)
        time.sleep(0.1)
        assert len(reads) == 2 and cam.slot.dropped == 0
        assert cam.slot.get(1.0).index == 2


def test_image_folder_replay_lores_and_loop(tmp_path):
    import cv2
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((200, 400, 3), i * 40, np.uint8))
    with FileSource(tmp_path, realtime=False, loop=False, detect_width=100) as src:
        frames = [src.read() for _ in range(4)]
    assert [f.index for f in frames[:3]] == [1, 2, 3] and frames[3] is None
    assert frames[0].lores.shape == (50, 100, 3) and frames[0].image.shape == (200, 400, 3)
    assert int(frames[2].image[0, 0, 0]) == 80
    with FileSource(tmp_path, realtime=False, loop=True) as src:
        assert [int(src.read().image[0, 0, 0]) for _ in range(5)] == [0, 40, 80, 0, 40]


def test_realtime_replay_paces_with_injected_clock(tmp_path):
    import cv2
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((10, 10, 3), np.uint8))
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(round(s, 6))
        now[0] += s

    with FileSource(tmp_path, realtime=True, loop=True, fps=10, sleep=sleep, clock=lambda: now[0]) as src:
        for _ in range(3):
            src.read()
    assert slept == [0.1, 0.1, 0.1]


def test_missing_replay_file_is_a_camera_error(tmp_path):
    with pytest.raises(CameraError, match="no such video file"):
        FileSource(tmp_path / "nope.mp4").start()


def test_open_source_specs(tmp_path):
    cfg = CameraConfig()
    assert isinstance(open_source("webcam:2", cfg), WebcamSource)
    assert open_source("webcam:2", cfg).device == 2
    src = open_source(str(tmp_path), cfg)
    assert isinstance(src, FileSource) and src.loop and src.realtime


class FakeCapture:
    """cv2.VideoCapture stand-in (unit test only): n frames then read failure."""

    def __init__(self, n):
        self.n = n

    def isOpened(self):
        return True

    def set(self, *a):
        return True

    def read(self):
        time.sleep(0.001)
        if self.n <= 0:
            return False, None
        self.n -= 1
        return True, np.zeros((20, 20, 3), np.uint8)

    def release(self):
        pass


def test_webcam_reader_thread_keeps_latest_and_reports_unplug():
    src = WebcamSource(0, capture_factory=lambda dev: FakeCapture(20), timeout_s=1.0)
    with src:
        assert isinstance(src.read(), Frame)
        with pytest.raises(CameraError, match="read failed"):
            for _ in range(30):
                src.read()


def test_replay_timestamps_are_media_time(tmp_path):
    import cv2
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((10, 10, 3), np.uint8))
    with FileSource(tmp_path, realtime=False, loop=True, fps=20, clock=lambda: 50.0, wall=lambda: 1000.0) as src:
        frames = [src.read() for _ in range(5)]
    assert [round(f.ts - 50.0, 3) for f in frames] == [0.0, 0.05, 0.1, 0.15, 0.2]  # loop keeps counting
    assert [round(f.wall - 1000.0, 3) for f in frames] == [0.0, 0.05, 0.1, 0.15, 0.2]


def test_auto_without_any_camera_says_so_plainly():
    from pathlib import Path

    from firmware.hal.sources import picamera2_present
    if picamera2_present() or any(Path(f"/dev/video{i}").exists() for i in range(4)):
        pytest.skip("this machine has a camera")
    with pytest.raises(NoCameraFound, match="no camera found"):
        open_source("auto", CameraConfig())
    cam = Camera(CameraConfig(source="auto", retry_max_s=0.05), retry_min_s=0.01)
    with cam:
        assert wait_for(lambda: cam.state == "no_camera")
        assert "console and MQTT keep working" in cam.status()["message"]


class FakeRequest:
    def __init__(self, bad=False):
        self.bad, self.released = bad, 0

    def make_array(self, stream):
        if stream == "main":
            return np.zeros((720, 1280, 3), np.uint8)
        if self.bad:
            raise RuntimeError("dma buffer gone")
        return np.zeros((360 * 3 // 2, 640), np.uint8)  # YUV420 planar, 640x360

    def release(self):
        self.released += 1


class FakePicamera2:
    """Stand-in for picamera2.Picamera2 (unit test only): records the lifecycle."""

    def __init__(self, num):
        self.calls, self.requests = [], []
        self.bad_next = False

    def create_video_configuration(self, **kw):
        self.calls.append(("config", kw["main"]["size"], kw["lores"]["size"]))
        return kw

    def configure(self, cfg):
        self.calls.append("configure")

    def start(self):
        self.calls.append("start")

    def capture_request(self):
        self.requests.append(FakeRequest(self.bad_next))
        return self.requests[-1]

    def stop(self):
        self.calls.append("stop")

    def close(self):
        self.calls.append("close")


def test_picamera2_lifecycle_always_releases_requests():
    from firmware.hal.sources import Picamera2Source
    cams = []
    src = Picamera2Source(width=1280, height=720, detect_width=640,
                          camera_factory=lambda n: cams.append(FakePicamera2(n)) or cams[-1])
    with src:
        frame = src.read()
        assert frame.image.shape == (720, 1280, 3) and frame.lores.shape == (360, 640, 3)
        cams[0].bad_next = True
        with pytest.raises(CameraError, match="bad frame"):
            src.read()
        src.close()
    assert cams[0].calls == [("config", (1280, 720), (640, 360)), "configure", "start", "stop", "close"]
    assert [r.released for r in cams[0].requests] == [1, 1]


def test_unexpected_source_exception_is_a_loss_not_a_dead_thread():
    class Buggy(FakeSource):
        def read(self):
            raise ZeroDivisionError("driver bug")

    made = []
    cam = Camera(CameraConfig(retry_max_s=0.02), retry_min_s=0.01,
                 source_factory=lambda: made.append(1) or (Buggy(0) if len(made) < 3 else FakeSource(10_000)))
    with cam:
        assert wait_for(lambda: cam.state == "running" and len(made) >= 3)
    assert cam.losses == 1
