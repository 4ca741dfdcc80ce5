"""Enrolment pages beyond single uploads: "Enrol from camera" (a capture at the door,
frames kept or discarded by the admin) and bulk enrolment (a CSV plus a zip of photos).

Both go through the firmware's control API; the bulk rules are
:mod:`firmware.domain.bulk`, shared with ``rollcall enroll --csv``.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import bottle

from console.bulkjobs import BulkJob, JobBusy
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
    """:class:`firmware.domain.bulk.BulkTarget` over the firmware's control API. ``fw`` is
    the control client acting for the user who started the upload (a background job has no
    request to take the user from); by default the logged-in user's."""

    def __init__(self, ctx, basis: str, fw=None) -> None:
        self.ctx, self.basis = ctx, basis
        self.fw = fw if fw is not None else ctx.fw
        self.max_bytes = int(ctx.config.console.max_upload_mb * 1048576)

    def exists(self, person_id: str) -> bool:
        try:
            self.fw.person(person_id)
            return True
        except ControlError as exc:
            if exc.status == 404:
                return False
            raise

    def create(self, person_id: str, name: str, external_id: str | None) -> None:
        self.fw.create_person(name, person_id=person_id, external_id=external_id, basis=self.basis)

    def delete(self, person_id: str) -> None:
        self.fw.delete_person(person_id)

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
            answer = self.fw.add_photos(person_id, images, timeout=120, confirm_duplicate=confirm)
            return answer.get("results", [])
        except ControlError as exc:
            return [{"ok": False, "reason": "error", "message": str(exc)} for _ in images]


class BulkRefused(ValueError):
    """The upload as a whole cannot be run (the message is shown as it is)."""


def _upload_bytes(name: str, limit: int) -> bytes | None:
    upload = bottle.request.files.get(name)
    return upload.file.read(limit + 1) if upload is not None else None


def prepare_bulk_upload(ctx, csv_data: bytes, zip_data: bytes,
                        basis: str = "") -> tuple[list[bulk.Row], PhotoZip, str]:
    """(rows, the open photo zip, the legal basis) of a valid upload; raises
    :class:`BulkRefused` for a CSV, zip or basis that cannot be used. ``basis`` is recorded
    for every person the upload creates (required unless ``privacy.default_basis`` is set)."""
    try:
        rows = bulk.parse_csv(csv_data)
        photos = PhotoZip(zip_data)
    except (bulk.BulkError, ZipRejected) as exc:
        raise BulkRefused(str(exc)) from None
    basis = basis or ctx.config.privacy.default_basis or ""
    if basis not in BASES:
        photos.close()
        raise BulkRefused("choose the legal basis for keeping these people's face data")
    return rows, photos, basis


def start_bulk_job(ctx, csv_data: bytes, zip_data: bytes, confirm: bool, basis: str = "") -> BulkJob:
    """Validate the upload here and now, then run its rows as the console's background job
    (raises :class:`BulkRefused`, or :class:`console.bulkjobs.JobBusy` while a job runs).
    The audit log names who started it and gets a summary when it ends."""
    rows, photos, basis = prepare_bulk_upload(ctx, csv_data, zip_data, basis)
    user = ctx.user() or "anonymous"
    target = ConsoleTarget(ctx, basis, ctx.client.as_actor(user))

    def started(job: BulkJob) -> None:
        ctx.audit("bulk.started", job.id, {"rows": job.total, "basis": basis, "confirm_duplicate": confirm},
                  actor=user)

    def ended(job: BulkJob) -> None:
        summary = job.summary()
        logger.info("bulk enrolment %s by %s %s: %s%s", job.id, user, job.state, summary,
                    f" ({job.error})" if job.error else "")
        details = {"state": job.state, "rows": job.total, "done": sum(summary.values()), "summary": summary}
        if job.error:
            details["error"] = job.error
        ctx.audit("bulk.finished", job.id, details, actor=user)

    try:
        return ctx.bulk.start(user, rows, photos.read, target, confirm_duplicate=confirm,
                              options={"basis": basis, "confirm_duplicate": confirm},
                              on_start=started, on_end=ended, cleanup=photos.close)
    except JobBusy:
        photos.close()
        raise


def _capture_status(ctx) -> dict | None:
    try:
        return ctx.fw.capture()
    except ControlError as exc:
        if exc.status == 404:
            return None
        raise


def register(app: bottle.Bottle, ctx) -> None:
    def bulk_form(error: str = "", status: int = 200):
        bottle.response.status = status
        return ctx.render("bulk.tpl", title="Bulk enrolment", nav="/people", error=error,
                          job=ctx.bulk.latest(), default_basis=ctx.config.privacy.default_basis)

    @app.get("/people/bulk")
    def bulk_page():
        return bulk_form()

    @app.post("/people/bulk")
    def bulk_upload():
        """Validate at once (errors answer here, as before), then 303 to the job's page:
        a reload of that page re-runs nothing. JSON clients get 202 and the job to poll."""
        limit = int(ctx.config.console.max_upload_mb * 1048576)
        csv_data, zip_data = _upload_bytes("csv", limit), _upload_bytes("zip", limit)
        confirm = bottle.request.forms.get("confirm_duplicate") == "1"
        wants_json = bottle.request.headers.get("Accept", "").startswith("application/json")
        error, status, running = "", 200, None
        try:
            if not csv_data or not zip_data:
                raise BulkRefused("choose a CSV file and a zip of photos")
            job = start_bulk_job(ctx, csv_data, zip_data, confirm, bottle.request.forms.get("basis") or "")
        except BulkRefused as exc:
            error = str(exc)
        except JobBusy as exc:
            error, status, running = str(exc), 409, exc.job
        if error:
            if wants_json:
                bottle.response.status = status
                return {"reports": [], "error": error, "counts": {},
                        "job": running.id if running is not None else None}
            return bulk_form(error, status)
        if wants_json:
            bottle.response.status = 202
            return {"job": job.id, "state": job.state, "total": job.total,
                    "url": f"/api/bulk/{job.id}", "page": f"/people/bulk/{job.id}"}
        bottle.redirect(f"/people/bulk/{job.id}", 303)

    @app.get("/people/bulk/<job_id>")
    def bulk_job_page(job_id: str):
        job = ctx.bulk.get(job_id)
        if job is None:
            raise bottle.HTTPError(404, "this bulk enrolment is no longer kept: the console keeps the "
                                        f"last {ctx.bulk.keep} in memory until it restarts (the people it "
                                        "enrolled are listed under People and in the audit log)")
        view = job.snapshot()
        return ctx.render("bulk_job.tpl", title="Bulk enrolment", nav="/people", job=view,
                          reports=view["reports"], counts=view["counts"])

    @app.get("/api/bulk/<job_id>")
    def bulk_job_api(job_id: str):
        """The job's progress; ``?since=N`` sends only the row reports after the first N."""
        job = ctx.bulk.get(job_id)
        if job is None:
            raise bottle.HTTPError(404, "no such bulk enrolment (the console keeps the last "
                                        f"{ctx.bulk.keep} until it restarts)")
        since = bottle.request.query.get("since", "0")
        return job.snapshot(int(since) if since.isdigit() else 0)

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
