"""Dashboard, live view (MJPEG proxied from the firmware), snapshot and the kiosk page."""

from __future__ import annotations

import logging
import re
from typing import Callable

import bottle

from firmware.errors import ControlError

logger = logging.getLogger(__name__)

NOTICE_ID_RE = re.compile(r"^[0-9A-Z]{26}$")
HEALTH_FIELDS = (("camera", "Camera"), ("broker", "Broker"), ("models", "Model"),
                 ("roster_version", "Roster version"), ("session", "Active session"),
                 ("fps", "FPS"), ("outbox_depth", "Outbox depth"),
                 ("disk_free_mb", "Disk free (MB)"), ("cpu_temp_c", "CPU temperature (°C)"),
                 ("liveness_policy", "Liveness"), ("uptime_s", "Uptime (s)"))


def _text(value) -> str:
    if isinstance(value, dict):
        return value.get("name") or value.get("state") or value.get("id") or ", ".join(
            f"{k}: {v}" for k, v in value.items() if not isinstance(v, (dict, list)))
    if isinstance(value, float):
        return f"{value:.1f}"
    return "—" if value in (None, "") else str(value)


def health_rows(status: dict | None) -> list[tuple[str, str, str]]:
    """(label, text, css class) per health field; class 'bad' flags a problem."""
    rows = []
    for key, label in HEALTH_FIELDS:
        value = (status or {}).get(key)
        text = _text(value)
        bad = isinstance(value, str) and value.lower() not in ("ok", "connected", "running", "blink",
                                                               "challenge", "blink_challenge", "online", "ready")
        rows.append((label, text, "bad" if bad and key in ("camera", "broker", "models") else ""))
    clock = (status or {}).get("clock")
    if isinstance(clock, dict):
        rows.append(clock_row(clock))
    return rows


def clock_row(clock: dict) -> tuple[str, str, str]:
    """The dashboard's clock line: synchronised or not, by which source, held back or not."""
    text = ("synchronised" if clock.get("synced") else "NOT synchronised") + f" ({clock.get('source')})"
    if clock.get("behind_s"):
        text += f"; system clock {clock['behind_s']:.0f} s behind the newest recorded time"
    return ("Clock", text, "" if clock.get("synced") and not clock.get("behind_s") else "bad")


def first_photo(ctx, person_id: str, cache: dict) -> str | None:
    """Id of the person's first enrolment photo (cached; the kiosk polls twice a second)."""
    if person_id not in cache:
        if len(cache) > 1000:
            cache.clear()
        try:
            photos = ctx.client.person(person_id, timeout=2)["photos"]
            cache[person_id] = photos[0]["photo_id"] if photos else None
        except (ControlError, KeyError, IndexError):
            return None
    return cache[person_id]


def proxy_jpeg(fetch: Callable[[], bytes]):
    """A JPEG from the firmware (``fetch`` is a client call), or the firmware's error."""
    try:
        data = fetch()
    except ControlError as exc:
        raise bottle.HTTPError(503 if exc.status in (None, 503) else exc.status, str(exc))
    bottle.response.content_type = "image/jpeg"
    bottle.response.set_header("Cache-Control", "no-store")
    return data


def _on_kiosk_now(ctx, person_id: str) -> bool:
    """True when the kiosk shows ``person_id`` now (a screen without a login may fetch only
    that person's photo, not walk through everyone's)."""
    try:
        return ctx.client.kiosk(timeout=2).get("person_id") == person_id
    except ControlError:
        return False


def register(app: bottle.Bottle, ctx) -> None:
    @app.get("/", role="operator")
    def dashboard():
        status, error = ctx.firmware_status()
        warnings = [w for w in (status or {}).get("warnings") or [] if not w.startswith("DAMAGE:")]
        return ctx.render("dashboard.tpl", title="Dashboard", nav="/", rows=health_rows(status),
                          warnings=warnings, notices=(status or {}).get("notices") or [])

    @app.post("/notices/<notice_id>/ack")
    def acknowledge_notice(notice_id: str):
        if not NOTICE_ID_RE.match(notice_id):
            raise bottle.HTTPError(404, "no such notice")
        try:
            ctx.fw.acknowledge_notice(notice_id)
            ctx.flash("Notice acknowledged; it is kept in the audit log.")
        except ControlError as exc:
            ctx.flash(f"Could not acknowledge the notice: {exc}", "error")
        ctx.forget_status()
        bottle.redirect("/")

    @app.get("/api/status", role="operator")
    def api_status():
        status, error = ctx.firmware_status()
        return {"status": status, "error": error}

    @app.get("/live/snapshot.jpg", role="operator")
    def snapshot():
        annotated = bottle.request.query.get("annotated", "1")
        return proxy_jpeg(lambda: ctx.client.snapshot(annotated=annotated != "0"))

    @app.get("/live/stream.mjpg", role="operator")
    def stream():
        try:
            ctype, chunks = ctx.client.live_stream(max_s=600)
        except ControlError as exc:
            raise bottle.HTTPError(503, str(exc))
        bottle.response.content_type = ctype
        bottle.response.set_header("Cache-Control", "no-store")
        return chunks

    @app.get("/kiosk", role="operator", kiosk=True)
    def kiosk():
        if bottle.request.query.get("token"):
            bottle.redirect("/kiosk")  # the token is now in a cookie: keep it out of the address bar
        return ctx.render("kiosk.tpl", title="Kiosk", need_status=False)

    photos: dict[str, str | None] = {}

    @app.get("/api/kiosk", role="operator", kiosk=True)
    def api_kiosk():
        try:
            state = ctx.client.kiosk(timeout=2)
        except ControlError as exc:
            return {"state": "offline", "prompt": "Device starting…", "error": str(exc)}
        person_id = state.get("person_id")
        if person_id and not state.get("photo_id"):
            state["photo_id"] = first_photo(ctx, person_id, photos)
        return state

    @app.get("/people/<person_id>/photos/<photo_id>.jpg", role="operator", kiosk=True)
    def person_photo(person_id: str, photo_id: str):
        if ctx.role() is None and not _on_kiosk_now(ctx, person_id):
            raise bottle.HTTPError(403, "a kiosk screen sees only the photo of the person it shows")
        return proxy_jpeg(lambda: ctx.client.photo(person_id, photo_id))

    @app.get("/unknowns/<unknown_id>/crop.jpg")
    def unknown_crop(unknown_id: str):
        return proxy_jpeg(lambda: ctx.client.unknown_crop(unknown_id))
