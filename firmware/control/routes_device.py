"""Control routes about the device itself: status, live images, kiosk, tests, audit, reload."""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterator

import bottle

from firmware.control.web import ApiError, field, query, read_json, request_actor

logger = logging.getLogger(__name__)

STREAM_FPS = 5.0
STREAM_MAX_S = 600.0
STREAM_MAX_VIEWERS = 3  # each viewer holds a server thread: keep most for the API
BOUNDARY = "rollcallframe"


class _Stream:
    """An MJPEG response body that frees its viewer slot when the server closes it
    (even if it was never iterated: a generator's ``finally`` would not run then)."""

    def __init__(self, parts: Iterator[bytes], slot: threading.Semaphore) -> None:
        self.parts, self.slot, self.closed = parts, slot, False

    def __iter__(self) -> Iterator[bytes]:
        return self.parts

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.parts.close()
            self.slot.release()


def mjpeg_frames(device, *, fps: float = STREAM_FPS, max_s: float = STREAM_MAX_S,
                 max_frames: int | None = None, clock=time.monotonic,
                 sleep=time.sleep) -> Iterator[bytes]:
    """multipart/x-mixed-replace parts from ``device.latest_jpeg`` at about ``fps`` frames/s."""
    end = clock() + max_s
    sent = 0
    while clock() < end and (max_frames is None or sent < max_frames):
        jpeg = device.latest_jpeg(annotated=True)
        if jpeg:
            head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n").encode("ascii")
            yield head + jpeg + b"\r\n"
            sent += 1
        sleep(1.0 / fps)


def register(app: bottle.Bottle, ctx: dict) -> None:
    store, device = ctx["store"], ctx["device"]
    viewers = threading.Semaphore(STREAM_MAX_VIEWERS)

    @app.get("/v1/status")
    def status():
        data = dict(device.status())
        data.setdefault("outbox_depth", store.outbox.depth())
        return data

    @app.get("/v1/kiosk")
    def kiosk():
        return device.kiosk_state()

    @app.get("/v1/snapshot.jpg")
    def snapshot():
        annotated = query("annotated") not in ("0", "false")
        jpeg = device.latest_jpeg(annotated=annotated)
        if not jpeg:
            raise ApiError(503, "no camera frame yet (is the camera connected?)")
        bottle.response.content_type = "image/jpeg"
        bottle.response.set_header("Cache-Control", "no-store")
        return jpeg

    @app.get("/v1/stream.mjpg")
    def stream():
        max_frames = query("frames")
        max_s = float(query("max_s") or STREAM_MAX_S)
        if not viewers.acquire(blocking=False):
            raise ApiError(503, f"too many live viewers (at most {STREAM_MAX_VIEWERS}); "
                                "close another live view or use the snapshot")
        bottle.response.content_type = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
        bottle.response.set_header("Cache-Control", "no-store")
        return _Stream(mjpeg_frames(device, max_s=min(max_s, STREAM_MAX_S),
                                    max_frames=int(max_frames) if max_frames else None), viewers)

    @app.post("/v1/config/reload")
    def reload_config():
        return device.reload_config()

    @app.post("/v1/restart")
    def restart():
        return device.restart()

    @app.post("/v1/indicators/test")
    def indicators_test():
        return device.test_indicators()

    @app.post("/v1/broker/test")
    def broker_test():
        data = read_json()
        return device.test_broker(field(data, "mqtt", dict, required=False, default={}))

    @app.get("/v1/notices")
    def notices_list():
        wanted = store.notices.all() if query("all") in ("1", "true") else store.notices.active()
        return {"items": wanted}

    @app.post("/v1/notices/<notice_id>/ack")
    def notice_ack(notice_id: str):
        read_json()  # no fields; still a JSON object (or empty)
        by = request_actor()
        notice = store.notices.acknowledge(notice_id, by)
        store.audit.log(by, "notice.acknowledged", notice_id, {"kind": notice["kind"],
                                                               "message": notice["message"][:200]})
        return notice

    @app.get("/v1/audit")
    def audit_list():
        limit = int(query("limit") or 200)
        return {"items": store.audit.list(limit=max(1, min(limit, 5000)))}

    @app.post("/v1/audit")
    def audit_add():
        data = read_json()
        entry = store.audit.log(field(data, "actor"), field(data, "action"),
                                target=field(data, "target", required=False),
                                details=field(data, "details", dict, required=False))
        return entry
