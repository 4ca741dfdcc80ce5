"""Control routes for enrolment at the door: start / poll / cancel a capture from the live
camera, show its frames, keep some as the person's ``device`` templates (the rest are
discarded). See :mod:`firmware.runtime.capture`."""

from __future__ import annotations

import logging

import bottle

from firmware.control.routes_people import require_basis
from firmware.control.web import ApiError, field, must, read_json
from firmware.runtime.capture import MAX_FRAMES

logger = logging.getLogger(__name__)

MAX_TIMEOUT_S = 300.0


def _frames(data: dict) -> int:
    frames = field(data, "frames", int, required=False, default=5)
    if not 1 <= frames <= MAX_FRAMES:
        raise ApiError(400, f"frames must be 1..{MAX_FRAMES}", "frames")
    return frames


def _timeout(data: dict) -> float:
    timeout = field(data, "timeout_s", (int, float), required=False, default=60.0)
    if isinstance(timeout, bool) or not 5 <= timeout <= MAX_TIMEOUT_S:
        raise ApiError(400, f"timeout_s must be 5..{MAX_TIMEOUT_S:.0f} seconds", "timeout_s")
    return float(timeout)


def _indices(data: dict) -> list[int]:
    keep = field(data, "keep", list)
    if len(keep) > MAX_FRAMES or not all(isinstance(i, int) and not isinstance(i, bool) for i in keep):
        raise ApiError(400, f"keep must be a list of at most {MAX_FRAMES} frame numbers", "keep")
    return keep


def register(app: bottle.Bottle, ctx: dict) -> None:
    store, device = ctx["store"], ctx["device"]

    @app.post("/v1/capture")
    def capture_start():
        data = read_json()
        person_id = field(data, "person_id")
        require_basis(must(store.people.get(person_id), "person"))
        running = device.capture_status()
        if running and running["state"] == "capturing":
            raise ApiError(409, f"a capture for {running['name']} is running: cancel it first")
        return device.capture_start(person_id, _frames(data), _timeout(data))

    @app.get("/v1/capture")
    def capture_get():
        return must(device.capture_status(), "capture")

    @app.post("/v1/capture/cancel")
    def capture_cancel():
        return must(device.capture_cancel(), "capture")

    @app.get("/v1/capture/frames/<index:int>")
    def capture_frame(index: int):
        jpeg = must(device.capture_frame_jpeg(index), "captured frame")
        bottle.response.content_type = "image/jpeg"
        bottle.response.set_header("Cache-Control", "no-store")
        return jpeg

    @app.post("/v1/capture/keep")
    def capture_keep():
        data = read_json()
        keep = _indices(data)
        status = must(device.capture_status(), "capture")
        confirm = field(data, "confirm_duplicate", bool, required=False, default=False)
        results = device.capture_keep(keep, confirm_duplicate=confirm)
        accepted = sum(1 for r in results if r.get("ok"))
        logger.info("capture for %s: %d kept, %d stored", status["person_id"], len(keep), accepted)
        return {"person_id": status["person_id"], "results": results, "accepted": accepted,
                "discarded": status["kept"] - len(results)}
