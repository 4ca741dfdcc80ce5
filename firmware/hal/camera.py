"""The camera supervisor: picks a frame source, keeps it running, reports its state.

``Camera`` owns one capture thread. It opens a source (``--source`` / ``camera.source``:
``auto`` | ``picamera2`` | ``webcam`` | ``webcam:N`` | ``/dev/videoN`` | a video file or
image folder), reads frames into a :class:`~firmware.hal.slot.LatestSlot`, and when the
camera is lost (unplugged, read errors, file gone) it logs that ONCE, closes the source
and reopens it with exponential backoff (1 s doubling up to ``retry_max_s``). When it
comes back, that is logged once too. No restart needed.

With ``auto`` and no camera at all, state is ``no_camera`` ("no camera found") and the
rest of the device keeps running; it keeps looking, at the slowest backoff.

States: ``starting`` | ``running`` | ``lost`` | ``no_camera`` | ``ended`` (a non-looping
replay finished) | ``stopped``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable

from firmware.config import CameraConfig
from firmware.errors import CameraError, NoCameraFound
from firmware.hal.slot import LatestSlot
from firmware.hal.sources import FileSource, FrameSource, Picamera2Source, WebcamSource, picamera2_present

logger = logging.getLogger(__name__)

NO_CAMERA_MESSAGE = ("no camera found: connect a Raspberry Pi camera or a USB webcam, "
                     "or set camera.source to a video file; the console and MQTT keep working")


def _webcam_index(spec: str) -> int | str:
    tail = spec.split(":", 1)[1] if ":" in spec else "0"
    return int(tail) if tail.isdigit() else tail


def _first_webcam(cfg: CameraConfig, kw: dict) -> WebcamSource:
    for index in range(4):
        if Path(f"/dev/video{index}").exists():
            return WebcamSource(index, width=cfg.width, height=cfg.height, fps=cfg.fps, **kw)
    raise NoCameraFound(NO_CAMERA_MESSAGE)


def open_source(spec: str, cfg: CameraConfig, **kw: Any) -> FrameSource:
    """Make (not start) the frame source named by ``spec``; raises NoCameraFound for
    ``auto`` with no camera and CameraError for a bad spec."""
    kw.setdefault("detect_width", cfg.detect_width)
    if spec == "auto":
        if picamera2_present():
            return Picamera2Source(width=cfg.width, height=cfg.height, fps=cfg.fps, **kw)
        return _first_webcam(cfg, kw)
    if spec == "picamera2":
        return Picamera2Source(width=cfg.width, height=cfg.height, fps=cfg.fps, **kw)
    if spec == "webcam" or spec.startswith("webcam:"):
        return WebcamSource(_webcam_index(spec), width=cfg.width, height=cfg.height, fps=cfg.fps, **kw)
    if spec.startswith("/dev/video"):
        return WebcamSource(spec, width=cfg.width, height=cfg.height, fps=cfg.fps, **kw)
    return FileSource(spec, realtime=cfg.replay_realtime, loop=cfg.replay_loop, fps=cfg.fps, **kw)


class CameraState(StrEnum):
    """What the camera is doing (``Camera.state``; shown in status and telemetry)."""

    STARTING = "starting"
    RUNNING = "running"
    LOST = "lost"            # was running or should be there: retried with backoff
    NO_CAMERA = "no_camera"  # none found (auto); the console and MQTT keep working
    ENDED = "ended"          # a replayed file finished
    STOPPED = "stopped"


IDLE_STATES = frozenset({CameraState.NO_CAMERA, CameraState.LOST, CameraState.STARTING,
                         CameraState.ENDED, CameraState.STOPPED})  # no frames, and status says why


class Camera:
    """Capture thread + reconnection with backoff. ``source_factory()`` makes a new,
    unstarted source (default: :func:`open_source` on ``spec``); frames go into ``slot``.
    ``retry_min_s``/``retry_max_s``: backoff bounds in seconds."""

    def __init__(self, cfg: CameraConfig, *, spec: str | None = None, slot: LatestSlot | None = None,
                 source_factory: Callable[[], FrameSource] | None = None, retry_min_s: float = 1.0) -> None:
        self.cfg = cfg
        self.spec = spec or cfg.source
        self.slot: LatestSlot = slot if slot is not None else LatestSlot()
        self.source_factory = source_factory or (lambda: open_source(self.spec, cfg))
        self.retry_min_s = retry_min_s
        self.retry_max_s = cfg.retry_max_s
        self.state = CameraState.STOPPED
        self.message = ""
        self.source_name = ""
        self.source: FrameSource | None = None
        self.frames = 0
        self.losses = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = True
        self.waits: deque[float] = deque(maxlen=16)  # recent backoff waits in seconds

    @property
    def live(self) -> bool:
        """False for a file replayed as fast as possible (the loop gets every frame)."""
        return self._live

    def start(self) -> None:
        """Start the capture thread (it keeps retrying; it never raises)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._set_state(CameraState.STARTING, "")
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def _set_state(self, state: str, message: str) -> None:
        if state == self.state and message == self.message:
            return
        previous, self.state, self.message = self.state, state, message
        if state == CameraState.RUNNING and previous in (CameraState.LOST, CameraState.NO_CAMERA):
            logger.warning("camera back: %s", self.source_name)
        elif state == CameraState.RUNNING:
            logger.info("camera running: %s", self.source_name)
        elif state == CameraState.LOST and previous != CameraState.LOST:
            self.losses += 1
            logger.warning("camera lost (%s); retrying every %g..%g s", message,
                           self.retry_min_s, self.retry_max_s)
        elif state == CameraState.NO_CAMERA and previous != CameraState.NO_CAMERA:
            logger.warning("%s", message)
        elif state == CameraState.ENDED:
            logger.info("replay finished: %s", self.source_name)

    def _run(self) -> None:
        delay = self.retry_min_s
        while not self._stop.is_set():
            outcome = self._session()
            if outcome == "ended" or self._stop.is_set():
                return
            if outcome != "failed":
                delay = self.retry_min_s
            self.waits.append(delay)
            self._stop.wait(delay)
            delay = min(delay * 2, self.retry_max_s)

    def _session(self) -> str:
        """Open, read until failure; returns ended | failed (never ran) | lost (ran, then
        failed: retry soon) | stopped."""
        try:
            source = self.source_factory()
        except NoCameraFound as exc:
            self._set_state(CameraState.NO_CAMERA, str(exc))
            return "failed"
        except (CameraError, OSError) as exc:
            self._set_state(CameraState.LOST, str(exc))
            return "failed"
        self.source_name = source.name
        self.source = source
        try:
            source.start()
            return self._pump(source)
        except (CameraError, OSError) as exc:
            self._set_state(CameraState.NO_CAMERA if isinstance(exc, NoCameraFound) else CameraState.LOST, str(exc))
            return "failed"
        except Exception as exc:  # a driver bug must not kill the capture thread: retry like a loss
            logger.debug("camera source raised", exc_info=True)
            self._set_state(CameraState.LOST, f"{type(exc).__name__}: {exc}")
            return "failed"
        finally:
            source.close()

    def _pump(self, source: FrameSource) -> str:
        self._live = source.live
        first = True
        while not self._stop.is_set():
            if not source.live and not self.slot.wait_empty(timeout=0.5):
                # A file replayed as fast as possible: read the next frame only once the loop
                # took the last one, so no decoded frame waits here beside the one in the
                # slot (one full-resolution frame less: 6 MB at 1080p).
                if self.slot.closed:
                    return "stopped"
                continue
            try:
                frame = source.read()
            except (CameraError, OSError) as exc:
                self._set_state(CameraState.LOST, str(exc))
                return "failed" if first else "lost"
            if frame is None:
                self._set_state(CameraState.ENDED, "replay finished")
                self.slot.close()
                return "ended"
            if first:
                self._set_state(CameraState.RUNNING, "")
                first = False
            self.frames += 1
            while not self.slot.put(frame, block=not source.live, timeout=0.5):
                if self._stop.is_set() or self.slot.closed:
                    return "stopped"
        return "stopped"

    def status(self) -> dict:
        """State for the console and telemetry."""
        return {"state": self.state, "source": self.source_name or self.spec, "message": self.message,
                "frames": self.frames, "dropped": self.slot.dropped, "losses": self.losses,
                "unreadable_files": dict(getattr(self.source, "unreadable", {})),
                "skipped_files": getattr(self.source, "skipped", 0)}

    def stop(self) -> None:
        """Stop capturing and release the source (the thread is joined)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)
            if self.state != CameraState.ENDED:
                self._set_state(CameraState.STOPPED, "")

    def close(self) -> None:
        """Stop; safe twice."""
        self.stop()

    def __enter__(self) -> Camera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
