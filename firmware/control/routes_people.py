"""Control routes for people, photos and the unknown-face / spoof review queue."""

from __future__ import annotations

import base64
import binascii
import logging
import uuid

import bottle

from firmware.control.web import MAX_BODY_BYTES, ApiError, field, must, query, read_json, request_actor
from firmware.store.people import BASES, has_basis

logger = logging.getLogger(__name__)

MAX_PHOTOS_PER_REQUEST = 10


def _person_view(store, person: dict) -> dict:
    """The person with their photos (a person from a synced roster has none locally)."""
    out = dict(person)
    try:
        out["photos"] = store.people.photos(person["id"])
    except ValueError:
        out["photos"] = []
    return out


def _decode_images(data: dict) -> list[bytes]:
    images = field(data, "images", list)
    if not images:
        raise ApiError(400, "no photos given", "images")
    if len(images) > MAX_PHOTOS_PER_REQUEST:
        raise ApiError(400, f"at most {MAX_PHOTOS_PER_REQUEST} photos per request", "images")
    out = []
    for index, item in enumerate(images):
        if not isinstance(item, str):
            raise ApiError(400, f"photo {index + 1}: must be a base64 string", "images")
        try:
            out.append(base64.b64decode(item, validate=True))
        except (binascii.Error, ValueError):
            raise ApiError(400, f"photo {index + 1}: not valid base64", "images") from None
    return out


def _send_file(path, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, TypeError):
        raise ApiError(404, f"{what} not found") from None
    bottle.response.content_type = "image/jpeg"
    bottle.response.set_header("Cache-Control", "private, max-age=60")
    return data


def register(app: bottle.Bottle, ctx: dict) -> None:
    store, device = ctx["store"], ctx["device"]

    @app.get("/v1/people")
    def people_list():
        items = store.people.list(search=query("q"))
        for person in items:
            person["photo_count"] = len(_person_view(store, person)["photos"])
        return {"items": items}

    @app.post("/v1/people")
    def people_create():
        data = read_json()
        person_id = field(data, "person_id", required=False) or f"p{uuid.uuid4().hex[:12]}"
        consent = consent_of(data, store.privacy.default_basis)
        person = store.people.add(person_id, field(data, "name").strip(),
                                  external_id=field(data, "external_id", required=False),
                                  consent=consent)
        return person

    @app.get("/v1/people/<person_id>")
    def people_get(person_id: str):
        return _person_view(store, must(store.people.get(person_id), "person"))

    @app.post("/v1/people/<person_id>")
    def people_update(person_id: str):
        must(store.people.get(person_id), "person")
        data = read_json()
        allowed = {k: data[k] for k in ("name", "external_id") if k in data}
        if not allowed:
            raise ApiError(400, "nothing to update (name, external_id)")
        return store.people.update(person_id, **allowed)

    @app.delete("/v1/people/<person_id>")
    def people_delete(person_id: str):
        person = must(store.people.get(person_id), "person")
        full = query("full") in ("1", "true")
        erasure = device.erase(person_id, query("by") or request_actor(), full=full)
        if not full and person.get("source") == "local" and store.people.get(person_id):
            store.people.delete(person_id)  # attendance keeps the name and number it had
        return {"deleted": person_id, "full": full, "erasure": erasure}

    @app.post("/v1/people/<person_id>/photos")
    def photos_add(person_id: str):
        require_basis(must(store.people.get(person_id), "person"))
        data = read_json(limit=MAX_BODY_BYTES)
        images = _decode_images(data)
        confirm = field(data, "confirm_duplicate", bool, required=False, default=False)
        results = device.enrol_photos(person_id, images, confirm_duplicate=confirm)
        return {"results": results, "accepted": sum(1 for r in results if r.get("ok"))}

    @app.get("/v1/people/<person_id>/templates")
    def templates_list(person_id: str):
        must(store.people.get(person_id), "person")
        return {"items": store.people.templates(person_id, source=query("source"))}

    @app.delete("/v1/people/<person_id>/templates/<embedding_id>")
    def templates_delete(person_id: str, embedding_id: str):
        must(store.people.get(person_id), "person")
        removed = device.remove_template(person_id, embedding_id)
        return {"deleted": removed["id"], "source": removed.get("source", "photo")}

    @app.get("/v1/people/<person_id>/photos/<photo_id>")
    def photo_get(person_id: str, photo_id: str):
        return _send_file(store.people.photo_path(person_id, photo_id), "photo")

    @app.get("/v1/unknowns")
    def unknowns_list():
        return {"items": store.unknowns.list(kind=query("kind"), session_id=query("session_id"),
                                             state=query("state") or "open")}

    @app.get("/v1/unknowns/<unknown_id>")
    def unknowns_get(unknown_id: str):
        return must(store.unknowns.get(unknown_id), "unknown face")

    @app.get("/v1/unknowns/<unknown_id>/crop.jpg")
    def unknowns_crop(unknown_id: str):
        must(store.unknowns.get(unknown_id), "unknown face")
        return _send_file(store.unknowns.crop_path(unknown_id), "crop")

    @app.post("/v1/unknowns/<unknown_id>/resolve")
    def unknowns_resolve(unknown_id: str):
        must(store.unknowns.get(unknown_id), "unknown face")
        data = read_json()
        action, by = field(data, "action"), field(data, "by")
        if action == "discard":
            return {"resolved": store.unknowns.resolve(unknown_id, "discard", by)}
        if action != "assign":
            raise ApiError(400, "action must be assign or discard", "action")
        person_id = field(data, "person_id")
        require_basis(must(store.people.get(person_id), "person"))
        record = store.unknowns.get(unknown_id)
        if record.get("kind") == "spoof" and not field(data, "confirm_spoof", bool, required=False, default=False):
            raise ApiError(409, "this face FAILED the liveness check (a photo or a screen?): confirm that it "
                                "is a live person to add it", "confirm_spoof")
        crop = _read_crop(store, unknown_id)
        confirm = field(data, "confirm_duplicate", bool, required=False, default=False)
        result = device.enrol_photos(person_id, [crop], source="device", confirm_duplicate=confirm)[0]
        if not result.get("ok"):
            raise ApiError(422, f"the face was not added: {result.get('message')}", "person_id")
        resolved = store.unknowns.resolve(unknown_id, "assign", by, person_id=person_id)
        return {"resolved": resolved, "enrolment": result}


def consent_of(data: dict, default_basis: str | None) -> dict:
    """``{"basis", "by"}`` from a request: the basis is required unless a default is set."""
    basis = field(data, "basis", required=False) or default_basis
    if basis is None:
        raise ApiError(400, f"a legal basis for the face data is required: basis = one of "
                            f"{', '.join(BASES)} (or set privacy.default_basis)", "basis")
    if basis not in BASES:
        raise ApiError(400, f"basis must be one of {', '.join(BASES)}", "basis")
    return {"basis": basis, "by": field(data, "by", required=False) or request_actor()}


def require_basis(person: dict) -> None:
    """400 unless the person has a recorded, not withdrawn, basis (before any face data)."""
    if not has_basis(person):
        raise ApiError(400, f"{person['name']} has no recorded legal basis for face data"
                            f"{' (consent was withdrawn)' if person.get('consent') else ''}: "
                            "record consent, contract or legal obligation first", "consent")


def _read_crop(store, unknown_id: str) -> bytes:
    try:
        with open(store.unknowns.crop_path(unknown_id), "rb") as handle:
            return handle.read()
    except (FileNotFoundError, TypeError):
        raise ApiError(404, "the crop of this unknown face is gone (retention?)") from None
