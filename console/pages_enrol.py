"""Enrolment pages beyond single uploads: "Enrol from camera" (a capture at the door,
frames kept or discarded by the admin) and bulk enrolment (a CSV plus a zip of photos).

Both go through the firmware's control API; the bulk rules are
:mod:`firmware.domain.bulk`, shared with ``rollcall enroll --csv``.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import bottle

from console.pages_people import secure_context
from console.uploads import PhotoZip, ZipRejected, clean_image
from firmware.domain import bulk
from firmware.errors import ControlError, ImageError
from firmware.store.people import BASES

logger = logging.getLogger(__name__)

CAPTURE_FRAMES = (3, 5, 8)


def q(value: str) -> str:
    return quote(value, safe="")


class ConsoleTarget:
    """:class:`firmware.domain.bulk.BulkTarget` over the firmware's control API."""

    def __init__(self, ctx, basis: str) -> None:
        self.ctx, self.basis = ctx, basis
        self.max_bytes = int(ctx.config.console.max_upload_mb * 1048576)

    def exists(self, person_id: str) -> bool:
        try:
            self.ctx.fw.person(person_id)
            return True
        except ControlError as exc:
            if exc.status == 404:
                return False
            raise

    def create(self, person_id: str, name: str, external_id: str | None) -> None:
        self.ctx.fw.create_person(name, person_id=person_id, external_id=external_id, basis=self.basis)

    def delete(self, person_id: str) -> None:
        self.ctx.fw.delete_person(person_id)

    def enrol(self, person_id: str, photos: list[bytes], confirm_duplicate: bool) -> list[dict]:
        """One result per photo, in order; photos the console refuses never reach the firmware."""
        results: list[dict | None] = []
        clean: list[bytes] = []
        for data in photos:
            try:
                clean.append(clean_image(data, self.max_bytes))
                results.append(None)
            except ImageError as exc:
                results.append({"ok": False, "reason": "bad_image", "message": str(exc)})
        answers = iter(self._send(person_id, clean, confirm_duplicate) if clean else [])
        return [r if r is not None else next(answers) for r in results]

    def _send(self, person_id: str, images: list[bytes], confirm: bool) -> list[dict]:
        try:
            answer = self.ctx.fw.add_photos(person_id, images, timeout=120, confirm_duplicate=confirm)
            return answer.get("results", [])
        except ControlError as exc:
            return [{"ok": False, "reason": "error", "message": str(exc)} for _ in images]


def _upload_bytes(name: str, limit: int) -> bytes | None:
    upload = bottle.request.files.get(name)
    return upload.file.read(limit + 1) if upload is not None else None


def run_bulk_upload(ctx, csv_data: bytes, zip_data: bytes, confirm: bool,
                    basis: str = "") -> tuple[list[dict], str]:
    """(row reports as dicts, an error for the whole upload or ""); ``basis`` is recorded for
    every person the upload creates (required unless ``privacy.default_basis`` is set)."""
    try:
        rows = bulk.parse_csv(csv_data)
        photos = PhotoZip(zip_data)
    except (bulk.BulkError, ZipRejected) as exc:
        return [], str(exc)
    basis = basis or ctx.config.privacy.default_basis or ""
    if basis not in BASES:
        photos.close()
        return [], "choose the legal basis for keeping these people's face data"
    try:
        reports = bulk.run_bulk(rows, photos.read, ConsoleTarget(ctx, basis), confirm_duplicate=confirm)
    except ControlError as exc:
        return [], f"the firmware did not answer: {exc}"
    finally:
        photos.close()
    logger.info("bulk enrolment by %s: %s", ctx.user(), bulk.summary(reports))
    return [r.as_dict() for r in reports], ""


def _capture_status(ctx) -> dict | None:
    try:
        return ctx.fw.capture()
    except ControlError as exc:
        if exc.status == 404:
            return None
        raise


def register(app: bottle.Bottle, ctx) -> None:
    @app.get("/people/bulk")
    def bulk_page():
        return ctx.render("bulk.tpl", title="Bulk enrolment", nav="/people", reports=None, error="", counts={},
                          default_basis=ctx.config.privacy.default_basis)

    @app.post("/people/bulk")
    def bulk_upload():
        limit = int(ctx.config.console.max_upload_mb * 1048576)
        csv_data, zip_data = _upload_bytes("csv", limit), _upload_bytes("zip", limit)
        confirm = bottle.request.forms.get("confirm_duplicate") == "1"
        if not csv_data or not zip_data:
            reports, error = [], "choose a CSV file and a zip of photos"
        else:
            reports, error = run_bulk_upload(ctx, csv_data, zip_data, confirm,
                                             bottle.request.forms.get("basis") or "")
        counts: dict[str, int] = {}
        for r in reports:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
        if bottle.request.headers.get("Accept", "").startswith("application/json"):
            return {"reports": reports, "error": error, "counts": counts}
        return ctx.render("bulk.tpl", title="Bulk enrolment", nav="/people", reports=reports, error=error,
                          counts=counts, default_basis=ctx.config.privacy.default_basis)

    @app.post("/people/<person_id>/capture")
    def capture_start(person_id: str):
        frames = bottle.request.forms.get("frames", "5")
        try:
            ctx.fw.start_capture(person_id, int(frames) if frames.isdigit() else 5)
            ctx.flash("Capture started: the person looks at the door's screen and follows the prompts.")
        except ControlError as exc:
            ctx.flash(str(exc), "error")
            bottle.redirect(f"/people/{q(person_id)}")
        bottle.redirect(f"/people/{q(person_id)}/capture")

    @app.get("/people/<person_id>/capture")
    def capture_page(person_id: str):
        try:
            person = ctx.fw.person(person_id)
            status = _capture_status(ctx)
        except ControlError as exc:
            ctx.flash(str(exc), "error")
            bottle.redirect("/people")
        if status is None or status["person_id"] != person_id:
            ctx.flash("No capture is running for this person: start one.", "error")
            bottle.redirect(f"/people/{q(person_id)}")
        return ctx.render("capture.tpl", title=f"Enrol {person['name']} from camera", nav="/people",
                          person=person, status=status)

    @app.get("/api/capture")
    def capture_api():
        try:
            return _capture_status(ctx) or {"state": "none"}
        except ControlError as exc:
            return {"state": "error", "message": str(exc)}

    @app.get("/capture/frames/<index:int>.jpg")
    def capture_frame(index: int):
        try:
            data = ctx.fw.capture_frame(index)
        except ControlError:
            raise bottle.HTTPError(404, "no such frame") from None
        bottle.response.content_type = "image/jpeg"
        bottle.response.set_header("Cache-Control", "no-store")
        return data

    @app.post("/people/<person_id>/capture/cancel")
    def capture_cancel(person_id: str):
        try:
            ctx.fw.cancel_capture()
            ctx.flash("Capture cancelled.")
        except ControlError as exc:
            ctx.flash(str(exc), "error")
        bottle.redirect(f"/people/{q(person_id)}")

    @app.post("/people/<person_id>/capture/keep")
    def capture_keep(person_id: str):
        forms = bottle.request.forms
        keep = [int(v) for v in forms.getall("keep") if v.isdigit()]
        try:
            answer = ctx.fw.keep_capture(keep, forms.get("confirm_duplicate") == "1")
        except ControlError as exc:
            ctx.flash(str(exc), "error")
            bottle.redirect(f"/people/{q(person_id)}")
        results = [{"name": f"camera frame {i + 1}", "ok": bool(r.get("ok")), "message": r.get("message", "")}
                   for i, r in zip(sorted(set(keep)), answer.get("results", []))]
        ctx.flash(f"{answer.get('accepted', 0)} camera frames stored as templates; "
                  f"{answer.get('discarded', 0)} discarded.")
        person = ctx.fw.person(person_id)
        return ctx.render("person.tpl", title=person["name"], nav="/people", person=person, results=results,
                          secure=secure_context(ctx), q=q, frames=CAPTURE_FRAMES)
