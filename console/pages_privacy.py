"""Privacy: consent on the person page, erasure, what is held and until when, the retention
sweep, the clock, and the one-page subject access export of one person."""

from __future__ import annotations

import base64
import json
import logging

import bottle

from console.pages_people import fw_call, q
from firmware.errors import ControlError

logger = logging.getLogger(__name__)

BASIS_LABELS = {"consent": "Consent", "contract": "Contract",
                "legal_obligation": "Legal obligation"}


def _photo_data_uris(ctx, person_id: str, photos: list[dict]) -> list[str]:
    """The person's enrolment photos as data: URIs (the export is one self-contained page)."""
    out = []
    for photo in photos:
        try:
            jpeg = ctx.fw.photo(person_id, photo["photo_id"])
        except ControlError:
            continue
        out.append("data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii"))
    return out


def register(app: bottle.Bottle, ctx) -> None:
    @app.post("/people/<person_id>/consent")
    def consent(person_id: str):
        form = bottle.request.forms.decode()
        if fw_call(ctx, ctx.fw.set_consent, person_id, form.get("basis") or None):
            ctx.flash(f"Basis recorded: {BASIS_LABELS.get(form.get('basis'), form.get('basis'))}.")
        bottle.redirect(f"/people/{q(person_id)}")

    @app.post("/people/<person_id>/withdraw")
    def withdraw(person_id: str):
        result = fw_call(ctx, ctx.fw.withdraw_consent, person_id)
        if result:
            ctx.flash(f"Consent withdrawn: face data erased ({_counts(result['counts'])}).")
        bottle.redirect(f"/people/{q(person_id)}")

    @app.post("/people/<person_id>/erase")
    def erase(person_id: str):
        result = fw_call(ctx, ctx.fw.erase_person, person_id)
        if result:
            ctx.flash(f"Face data erased ({_counts(result['counts'])}); the name stays on "
                      "attendance records.")
        bottle.redirect(f"/people/{q(person_id)}")

    @app.get("/people/<person_id>/export")
    def export(person_id: str):
        data = fw_call(ctx, ctx.fw.person_export, person_id)
        if not data:
            raise bottle.HTTPError(404, "no such person")
        ctx.audit("person.exported", person_id)
        if bottle.request.query.get("format") == "json":
            bottle.response.content_type = "application/json"
            bottle.response.set_header("Content-Disposition",
                                       f'attachment; filename="rollcall-{person_id}.json"')
            return json.dumps(data, indent=2)
        photos = _photo_data_uris(ctx, person_id, data["photos"])
        return ctx.render("export.tpl", title=f"Data held about {data['person']['name']}",
                          nav="/people", data=data, photos=photos, q=q, labels=BASIS_LABELS)

    @app.get("/privacy")
    def privacy():
        info = fw_call(ctx, ctx.fw.privacy, fallback=None)
        erasures = fw_call(ctx, ctx.fw.erasures, fallback=[])
        return ctx.render("privacy.tpl", title="Privacy", nav="/privacy", info=info,
                          erasures=erasures, q=q)

    @app.post("/privacy/sweep")
    def sweep():
        result = fw_call(ctx, ctx.fw.retention_sweep)
        if result:
            ctx.flash(result.get("skipped") or f"Retention sweep done: {_counts(result['deleted'])}.",
                      "error" if result.get("skipped") else "ok")
        bottle.redirect("/privacy")


def _counts(counts: dict) -> str:
    shown = [f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if v]
    return ", ".join(shown) or "nothing was held"
