"""Frame sources: picamera2, a V4L2/USB webcam through OpenCV, and file replay.

Every source has one lifecycle: ``start()`` -> ``read()`` ... -> ``stop()`` -> ``close()``
(``close`` is safe twice; the source is a context manager). ``read()`` returns a
:class:`~firmware.domain.types.Frame` (BGR main image + a downscaled BGR ``lores`` copy
``detect_width`` pixels wide for detection), None at the end of a non-looping replay,
and raises :class:`~firmware.errors.CameraError` when the camera stops delivering.
``live`` is True for sources that produce frames in real time (never wait for the loop).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from firmware.domain.types import Frame
from firmware.errors import CameraError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def downscale(image: np.ndarray, width: int) -> np.ndarray:
    """A copy of ``image`` resized to ``width`` pixels wide (same aspect); the image itself
    when it is already that narrow."""
    h, w = image.shape[:2]
    if w <= width:
        return image
    return cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


class FrameSource:
    """Base class: counting, wall/monotonic stamps, context manager."""

    name = "source"
    live = True

    def __init__(self, *, detect_width: int = 640, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.detect_width = detect_width
        self.clock = clock
        self.wall = wall
        self.index = 0
        self._closed = False

    def start(self) -> None:
        """Open the device or file; raises CameraError when it cannot."""

    def read(self) -> Frame | None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop capturing (the source may be started again)."""

    def close(self) -> None:
        """Release everything (safe twice)."""
        if not self._closed:
            self._closed = True
            self.stop()

    def _frame(self, image: np.ndarray, lores: np.ndarray | None = None) -> Frame:
        self.index += 1
        if lores is None:
            lores = downscale(image, self.detect_width)
        return Frame(image, self.clock(), self.wall(), self.index, lores, self.name)

    def __enter__(self) -> FrameSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileSource(FrameSource):
    """Replay a video file or a folder of images.

    ``realtime``: pace frames at the file's own rate (``fps`` for image folders, frames
    per second); else as fast as the reader asks. ``loop``: start again at the end.
    A video that disappears raises CameraError. In an image folder a file that cannot be
    read is skipped (``unreadable``: name -> reason, ``skipped``: count) and replay goes on
    with the next one; only a folder with no readable image at all raises CameraError.

    Frame timestamps are MEDIA time (start + frame number / fps), so liveness timing and
    track ages are the same whether the file is replayed in real time or as fast as
    possible; ``wall`` advances the same way from the wall clock at start.
    """

    def __init__(self, path: str | Path, *, realtime: bool = True, loop: bool = True, fps: float = 15.0,
                 sleep: Callable[[float], None] = time.sleep, **kw: Any) -> None:
        super().__init__(**kw)
        self.path = Path(path)
        self.realtime = realtime
        self.live = realtime
        self.loop = loop
        self.fps = fps
        self.sleep = sleep
        self.name = f"file:{self.path.name}"
        self._capture: cv2.VideoCapture | None = None
        self._images: list[Path] = []
        self.unreadable: dict[str, str] = {}
        self.skipped = 0
        self._pos = 0
        self._next_due = 0.0
        self._t0: float | None = None
        self._wall0 = 0.0

    def start(self) -> None:
        if self.path.is_dir():
            self._images = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._images:
                raise CameraError(f"{self.path}: no images (.jpg, .png) in this folder")
        elif self.path.is_file():
            self._open_video()
        else:
            raise CameraError(f"{self.path}: no such video file or image folder")
        self._pos = 0
        self._next_due = self.clock()
        if self._t0 is None:
            self._t0, self._wall0 = self.clock(), self.wall()

    def _open_video(self) -> None:
        # One decoder thread: the loop takes one frame at a time (one-frame slot), and each
        # extra FFmpeg frame thread holds its own 1080p buffers (~8 MB measured).
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
        if not capture.isOpened():
            raise CameraError(f"{self.path}: cannot open as a video (unsupported format?)")
        rate = capture.get(cv2.CAP_PROP_FPS)
        self.fps = rate if 0 < rate < 240 else self.fps
        self._capture = capture

    def _next_image(self) -> np.ndarray | None:
        if self._capture is not None:
            if not self.path.exists():
                raise CameraError(f"{self.path}: file went away during replay")
            ok, image = self._capture.read()
            return image if ok else None
        while self._pos < len(self._images):
            file = self._images[self._pos]
            self._pos += 1
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is not None:
                return image
            self._skip(file)
        if self._images and len(self.unreadable) >= len(self._images):
            raise CameraError(f"{self.path}: none of the {len(self._images)} images can be read")
        return None

    def _skip(self, file: Path) -> None:
        """Count an unreadable image; log each file once."""
        self.skipped += 1
        if file.name not in self.unreadable:
            self.unreadable[file.name] = "missing or not an image"
            logger.warning("%s: missing or not an image; skipped", file)

    def read(self) -> Frame | None:
        image = self._next_image()
        if image is None and self.loop:
            self.stop()
            self.start()
            image = self._next_image()
        if image is None:
            return None
        if self.realtime:
            self._pace()
        media_s = self.index / self.fps  # index counts frames already delivered
        self.index += 1
        return Frame(image, self._t0 + media_s, self._wall0 + media_s, self.index,
                     downscale(image, self.detect_width), self.name)

    def _pace(self) -> None:
        self._next_due += 1.0 / self.fps
        delay = self._next_due - self.clock()
        if delay > 0:
            self.sleep(delay)
        elif delay < -1.0:  # far behind (e.g. after a stall): do not try to catch up
            self._next_due = self.clock()

    def stop(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class WebcamSource(FrameSource):
    """A V4L2/USB webcam through OpenCV. A reader thread keeps only the newest frame, so a
    slow loop never sees stale video. ``timeout_s``: seconds without a frame before the
    camera counts as lost."""

    def __init__(self, device: int | str = 0, *, width: int = 1280, height: int = 720, fps: float = 15.0,
                 timeout_s: float = 3.0, capture_factory: Callable[..., Any] = cv2.VideoCapture,
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self.timeout_s = timeout_s
        self.capture_factory = capture_factory
        self.name = f"webcam:{device}"
        self._capture: Any = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._latest: np.ndarray | None = None
        self._error: str | None = None
        self._running = False

    def start(self) -> None:
        capture = self.capture_factory(self.device)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"webcam {self.device}: cannot open (unplugged, or in use by another program?)")
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        capture.set(cv2.CAP_PROP_FPS, self.fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._capture, self._error, self._running = capture, None, True
        self._thread = threading.Thread(target=self._reader, name=f"webcam-{self.device}", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        while self._running:
            ok, image = self._capture.read()
            with self._cond:
                if not ok:
                    self._error = f"webcam {self.device}: read failed (unplugged?)"
                    self._cond.notify_all()
                    return
                self._latest = image
                self._cond.notify_all()

    def read(self) -> Frame | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._latest is not None or self._error, self.timeout_s):
                raise CameraError(f"webcam {self.device}: no frame for {self.timeout_s:.0f} s")
            if self._error:
                raise CameraError(self._error)
            image, self._latest = self._latest, None
        return self._frame(image)

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s)
            self._thread = None
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class Picamera2Source(FrameSource):
    """Raspberry Pi camera through picamera2 (imported only here). ``main`` (BGR, for crops)
    and ``lores`` (YUV420, ``detect_width`` pixels wide, for detection) come from the same
    request, which is always released, even when conversion fails."""

    name = "picamera2"

    def __init__(self, *, width: int = 1280, height: int = 720, fps: float = 15.0, camera_num: int = 0,
                 camera_factory: Callable[[int], Any] | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.width, self.height, self.fps, self.camera_num = width, height, fps, camera_num
        self.camera_factory = camera_factory
        self._camera: Any = None
        self._lores_size = (0, 0)

    def start(self) -> None:
        factory = self.camera_factory or _picamera2_factory()
        try:
            camera = factory(self.camera_num)
            lw = min(self.detect_width, self.width) // 2 * 2
            lh = round(self.height * lw / self.width) // 2 * 2
            config = camera.create_video_configuration(
                main={"size": (self.width, self.height), "format": "RGB888"},
                lores={"size": (lw, lh), "format": "YUV420"},
                controls={"FrameRate": self.fps}, buffer_count=4)
            camera.configure(config)
            camera.start()
        except Exception as exc:  # libcamera raises plain RuntimeError/IndexError
            raise CameraError(f"picamera2 camera {self.camera_num}: cannot start: {exc}") from exc
        self._camera, self._lores_size = camera, (lw, lh)

    def read(self) -> Frame | None:
        if self._camera is None:
            raise CameraError("picamera2: not started")
        try:
            request = self._camera.capture_request()
        except Exception as exc:
            raise CameraError(f"picamera2: capture failed: {exc}") from exc
        try:
            main = request.make_array("main")  # "RGB888" is B, G, R in memory: OpenCV order
            yuv = request.make_array("lores")
            lores = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)
        except Exception as exc:  # a bad buffer is a camera fault, reported like one
            raise CameraError(f"picamera2: bad frame: {exc}") from exc
        finally:
            request.release()
        return self._frame(main, lores)

    def stop(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.stop()
            finally:
                camera.close()


def _picamera2_factory() -> Callable[[int], Any]:
    try:
        from picamera2 import Picamera2  # type: ignore[import-not-found]
    except ImportError as exc:
        raise CameraError("picamera2 is not installed (apt-get install python3-picamera2)") from exc
    return Picamera2


def picamera2_present() -> bool:
    """True when picamera2 imports and libcamera lists at least one camera."""
    try:
        from picamera2 import Picamera2  # type: ignore[import-not-found]
        return bool(Picamera2.global_camera_info())
    except Exception:  # not installed, or libcamera not usable here
        return False
