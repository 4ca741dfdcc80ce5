"""People and enrolment (upload or browser camera), and the unknown-face / spoof review."""

from __future__ import annotations

import logging
from urllib.parse import quote

import bottle

from console.uploads import clean_image, display_name
from firmware.errors import ControlError, ImageError

logger = logging.getLogger(__name__)

MAX_FILES = 10
CAPTURE_FRAMES = (3, 5, 8)   # choices for "Enrol from camera"


def q(value: str) -> str:
    return quote(value, safe="")


def fw_call(ctx, fn, *args, fallback=None, **kwargs):
    """Call the firmware; on failure flash the reason and return ``fallback``."""
    try:
        return fn(*args, **kwargs)
    except ControlError as exc:
        ctx.flash(str(exc), "error")
        return fallback


def validate_uploads(ctx, uploads) -> tuple[list[bytes], list[str], list[dict]]:
    """(clean JPEGs, their labels, rejected {"name", "ok": False, "message"})."""
    max_bytes = int(ctx.config.console.max_upload_mb * 1048576)
    images, names, rejected = [], [], []
    for index, upload in enumerate(uploads[:MAX_FILES]):
        name = display_name(upload.raw_filename, index)
        try:
            images.append(clean_image(upload.file.read(max_bytes + 1), max_bytes))
            names.append(name)
        except ImageError as exc:
            rejected.append({"name": name, "ok": False, "message": str(exc)})
    for upload in uploads[MAX_FILES:]:
        rejected.append({"name": display_name(upload.raw_filename, 0), "ok": False,
                         "message": f"at most {MAX_FILES} photos at a time"})
    return images, names, rejected


def enrol(ctx, person_id: str, uploads, confirm_duplicate: bool = False) -> list[dict]:
    """Per-photo results {"name", "ok", "message", "reason"} for the uploaded files;
    ``confirm_duplicate``: the admin confirmed that a look-alike is a different person."""
    images, names, results = validate_uploads(ctx, uploads)
    if not uploads:
        return [{"name": "-", "ok": False, "message": "choose at least one photo"}]
    if images:
        try:
            answer = ctx.fw.add_photos(person_id, images, timeout=60, confirm_duplicate=confirm_duplicate)
            for name, res in zip(names, answer.get("results", [])):
                results.append({"name": name, "ok": bool(res.get("ok")), "reason": res.get("reason", ""),
                                "message": res.get("message", "")})
        except ControlError as exc:
            results.extend({"name": n, "ok": False, "message": str(exc)} for n in names)
    return results  # the firmware's store audits each photo it keeps


def secure_context(ctx) -> bool:
    """Browsers allow getUserMedia only on HTTPS or localhost."""
    host = (bottle.request.get_header("Host") or "").rsplit(":", 1)[0]
    return ctx.config.console.https or host in ("localhost", "127.0.0.1", "[::1]")


def _wants_json() -> bool:
    return "application/json" in bottle.request.headers.get("Accept", "")


def register(app: bottle.Bottle, ctx) -> None:
    @app.get("/people")
    def people():
        search = bottle.request.query.getunicode("q", "").strip()
        found = fw_call(ctx, ctx.fw.people, search, fallback=[])
        return ctx.render("people.tpl", title="People", nav="/people", people=found,
                          search=search, default_basis=ctx.config.privacy.default_basis)

    @app.post("/people")
    def people_add():
        form = bottle.request.forms.decode()
        data = {"name": form.get("name", "").strip(), "external_id": form.get("external_id") or None,
                "basis": form.get("basis") or None, "by": ctx.user() or "console"}
        if not data["name"]:
            ctx.flash("a name is needed", "error")
            bottle.redirect("/people")
        person = fw_call(ctx, ctx.fw.create_person, **data)
        if not person:
            bottle.redirect("/people")
        ctx.flash(f"{data['name']} added. Now add 3-5 photos.")
        bottle.redirect(f"/people/{q(person['id'])}")

    @app.get("/people/<person_id>")
    def person(person_id: str):
        found = fw_call(ctx, ctx.fw.person, person_id)
        if not found:
            raise bottle.HTTPError(404, "no such person")
        session = ctx.session() or {}
        results = session.pop("photo_results", None)  # from the upload just before (PRG)
        return ctx.render("person.tpl", title=found["name"], nav="/people", person=found,
                          results=results, secure=secure_context(ctx), q=q, frames=CAPTURE_FRAMES)

    @app.post("/people/<person_id>/photos")
    def person_photos(person_id: str):
        confirm = bottle.request.forms.get("confirm_duplicate") == "1"
        results = enrol(ctx, person_id, bottle.request.files.getall("photos"), confirm)
        if _wants_json():
            return {"results": results}
        session = ctx.session()
        if session is not None:
            session["photo_results"] = results[:MAX_FILES * 2]
        bottle.redirect(f"/people/{q(person_id)}#results", 303)  # a refresh must not upload again

    @app.post("/people/<person_id>/edit")
    def person_edit(person_id: str):
        form = bottle.request.forms.decode()
        before = fw_call(ctx, ctx.fw.person, person_id)
        data = {"name": form.get("name", "").strip(), "external_id": form.get("external_id", "").strip() or None}
        if not data["name"]:
            ctx.flash("a name is needed", "error")
        elif before and fw_call(ctx, ctx.fw.update_person, person_id, **data):
            ctx.flash("Saved.")  # the store audits the change (old -> new, who)
        bottle.redirect(f"/people/{q(person_id)}")

    @app.post("/people/<person_id>/delete")
    def person_delete(person_id: str):
        full = bottle.request.forms.get("full") == "1"
        answer = fw_call(ctx, ctx.fw.delete_person, person_id, full=full)
        if answer:
            kept = "and their attendance records" if full else "(attendance records keep the name)"
            ctx.flash(f"Person deleted with their photos and face data {kept}; "
                      f"erasure {answer['erasure']['id']}.")
        bottle.redirect("/people")

    @app.get("/unknowns")
    def unknowns():
        kind = bottle.request.query.get("kind") or None
        items = fw_call(ctx, ctx.fw.unknowns, kind=kind, fallback=[])
        people_list = fw_call(ctx, ctx.fw.people, fallback=[])
        names = {p["id"]: p["name"] for p in people_list}
        return ctx.render("unknowns.tpl", title="Unknown faces", nav="/unknowns", items=items,
                          people=people_list, names=names, kind=kind or "", q=q)

    @app.post("/unknowns/<unknown_id>/resolve")
    def unknown_resolve(unknown_id: str):
        form = bottle.request.forms.decode()
        action = "assign" if form.get("action") == "assign" else "discard"
        confirm = {"confirm_spoof": form.get("confirm_spoof") == "1",
                   "confirm_duplicate": form.get("confirm_duplicate") == "1"}
        if fw_call(ctx, ctx.fw.resolve_unknown, unknown_id, action, form.get("person_id") or None, **confirm):
            ctx.flash("Face added to the person's enrolment." if action == "assign" else "Discarded.")
        bottle.redirect("/unknowns")
