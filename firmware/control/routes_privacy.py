"""Control routes for consent, erasure, retention, the clock and subject access exports."""

from __future__ import annotations

import logging

import bottle

from firmware.control.web import ApiError, field, must, query, read_json, request_actor
from firmware.control.routes_people import consent_of

logger = logging.getLogger(__name__)


def subject_access(store, person_id: str) -> dict:
    """Everything the device holds about one person (JSON-safe), for a subject access request."""
    person = must(store.people.get(person_id), "person")
    local = person.get("source") == "local"
    attendance = store.attendance.query(person_id=person_id)
    faces = [u for u in store.unknowns.list(state=None) if u.get("person_id") == person_id]
    rosters = [{"roster_id": r["id"], "name": r["name"], "seat": e.get("seat")}
               for r in store.rosters.list() for e in r["entries"] if e["person_id"] == person_id]
    audit = [a for a in store.audit.list(5000) if a.get("target") == person_id]
    return {"person": person, "photos": store.people.photos(person_id) if local else [],
            "templates": store.people.templates_of(person_id),
            "rosters": rosters, "attendance": attendance, "unknown_faces_assigned": faces,
            "erasures": store.erasures.list(person_id), "audit": audit,
            "review": [r for r in store.retention.review() if r["person_id"] == person_id]}


def register(app: bottle.Bottle, ctx: dict) -> None:
    store, device = ctx["store"], ctx["device"]

    @app.post("/v1/people/<person_id>/consent")
    def consent_set(person_id: str):
        must(store.people.get(person_id), "person")
        consent = consent_of(read_json(), None)
        return store.people.set_consent(person_id, consent["basis"], consent["by"])

    @app.post("/v1/people/<person_id>/withdraw")
    def consent_withdraw(person_id: str):
        must(store.people.get(person_id), "person")
        by = field(read_json(), "by", required=False) or request_actor()
        return device.erase(person_id, by, reason="consent_withdrawn")

    @app.post("/v1/people/<person_id>/erase")
    def erase(person_id: str):
        data = read_json()
        by = field(data, "by", required=False) or request_actor()
        full = field(data, "full", bool, required=False, default=False)
        if store.people.get(person_id) is None and not store.erasures.list(person_id):
            raise ApiError(404, "person not found")
        return device.erase(person_id, by, full=full)

    @app.get("/v1/people/<person_id>/export")
    def export(person_id: str):
        return subject_access(store, person_id)

    @app.get("/v1/erasures")
    def erasures():
        return {"items": store.erasures.list(query("person_id"))}

    @app.get("/v1/privacy")
    def privacy():
        return {**store.retention.status(store.config), "clock": device.clock_state(),
                "retention": {"attendance_days": store.config.retention_days,
                              "unknown_days": store.config.unknown_retention_days,
                              "audit_days": store.config.audit_retention_days},
                "default_basis": store.privacy.default_basis}

    @app.post("/v1/privacy/sweep")
    def sweep():
        by = field(read_json(), "by", required=False) or request_actor()
        result = store.sweep_retention()
        store.audit.log(by, "retention.sweep", None, {"result": result})
        return result

