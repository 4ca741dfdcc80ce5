"""People, their embeddings (float32, tagged with model_id) and enrolment photos.

Layout: ``people/people.json`` (one record per person), and per person
``people/<person_id>/embeddings.json`` plus ``people/<person_id>/photos/<photo_id>.jpg``
(re-encoded JPEG, 0600; ids are generated, user file names never reach a path).
People from synced roster bundles are read-only here; they come from ``rosters``.
``embeddings(model_id)`` is served from an in-memory matrix invalidated on every write.

Face data is biometric data: ``add_embedding`` refuses (``ConsentRequired``) unless the
person has a recorded legal basis (``consent``: ``{"basis", "recorded_by", "recorded_at"}``,
basis one of ``consent | contract | legal_obligation``) that was not withdrawn.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from firmware.store.atomic import atomic_write_bytes, fsync_dir
from firmware.store.context import ID_RE_TEXT, StoreContext, audited, check_text
from firmware.store.errors import ConsentRequired, NotFound, StoreValueError
from firmware.store.ids import is_ulid, new_ulid, to_iso
from firmware.store.tinyfile import DIR_MODE, FILE_MODE, DocFile, ensure_dir
from firmware.store.vectors import (check_model_id, check_sha256, decode_b64, encode_b64,
                                    reencode_jpeg, to_vector)

logger = logging.getLogger(__name__)

PERSON_ID_RE = re.compile(ID_RE_TEXT)
EDITABLE = ("name", "external_id")
BASES = ("consent", "contract", "legal_obligation")
SOURCES = ("photo", "device", "door")   # where a template came from (see add_embedding)
SyncedSource = Callable[[], dict[str, dict]]


def check_person_id(value: object) -> str:
    if not isinstance(value, str) or not PERSON_ID_RE.match(value):
        raise StoreValueError(f"person_id {value!r}: use 1-64 letters, digits, '_' or '-'",
                              "person_id")
    return value


def check_basis(value: object) -> str:
    """One of :data:`BASES`."""
    if value not in BASES:
        raise StoreValueError(f"basis {value!r}: use one of {', '.join(BASES)} (the legal basis "
                              "for keeping this person's face data)", "basis")
    return str(value)


def make_consent(consent: object, now: float, default_basis: str | None = None) -> dict | None:
    """A consent record ``{"basis", "recorded_by", "recorded_at"}`` from ``{"basis", "by"}``
    (or a bare basis string); None when nothing is given and there is no default."""
    if consent is None:
        if default_basis is None:
            return None
        consent = {"basis": default_basis, "by": "privacy.default_basis"}
    if isinstance(consent, str):
        consent = {"basis": consent}
    if not isinstance(consent, dict):
        raise StoreValueError("consent: expected {basis, by}", "consent")
    by = consent.get("by") or consent.get("recorded_by") or "unknown"
    at = consent.get("recorded_at")
    return {"basis": check_basis(consent.get("basis")), "recorded_by": check_text(by, "by", 80),
            "recorded_at": at if isinstance(at, str) and len(at) <= 40 else to_iso(now)}


def has_basis(person: dict) -> bool:
    """True when the person has a recorded basis that was not withdrawn."""
    consent = person.get("consent")
    return bool(consent) and not consent.get("withdrawn_at")


class People:
    """``store.people``."""

    def __init__(self, ctx: StoreContext) -> None:
        self._ctx = ctx
        self._root = ensure_dir(ctx.data_dir / "people")
        self._file = DocFile(self._root / "people.json", ctx.clock, ctx.on_corrupt)
        self._people = {r["id"]: r for r in self._file.all()}
        self._emb: dict[str, list[dict]] = {pid: self._load_embeddings(pid) for pid in self._people}
        self._synced: SyncedSource = lambda: {}
        self._cache: dict[str, tuple[list[str], np.ndarray]] = {}
        self.on_delete: list[Callable[[str], None]] = []

    def set_synced_source(self, source: SyncedSource) -> None:
        """``source()`` -> {person_id: {"person": dict, "embeddings": [meta + "vec"]}}."""
        self._synced = source
        self.invalidate()

    def invalidate(self) -> None:
        self._cache.clear()

    def _emb_file(self, person_id: str) -> DocFile:
        return DocFile(self._root / person_id / "embeddings.json", self._ctx.clock,
                       self._ctx.on_corrupt)

    def _load_embeddings(self, person_id: str) -> list[dict]:
        doc = self._emb_file(person_id)
        try:
            return [{**r, "vec": decode_b64(r.pop("vector_b64"))} for r in doc.all()]
        finally:
            doc.close()

    # -- people ------------------------------------------------------------------
    @audited("person.created", target="person_id")
    def add(self, person_id: str, name: str, external_id: str | None = None,
            consent: dict | str | None = None) -> dict:
        """Create a local person; the id must be new. ``consent``: ``{"basis", "by"}``
        (None: ``privacy.default_basis`` if set, else the person gets no face data until
        :meth:`set_consent`)."""
        check_person_id(person_id)
        if person_id in self._people or person_id in self._synced():
            raise StoreValueError(f"person {person_id!r} already exists", "person_id")
        clock = self._ctx.clock()
        now = to_iso(clock)
        rec = {"id": person_id, "name": check_text(name, "name", 120),
               "external_id": None if external_id is None
               else check_text(external_id, "external_id", 120),
               "source": "local", "created_at": now, "updated_at": now,
               "consent": make_consent(consent, clock, self._ctx.default_basis)}
        self._ctx.audit_note(name=rec["name"], basis=(rec["consent"] or {}).get("basis"))
        rec["_id"] = self._file.insert(rec)
        self._people[person_id], self._emb[person_id] = rec, []
        return _public(rec)

    def get(self, person_id: str) -> dict | None:
        """A person (local first, then synced), or None."""
        if person_id in self._people:
            return _public(self._people[person_id])
        synced = self._synced().get(person_id) if isinstance(person_id, str) else None
        return dict(synced["person"]) if synced else None

    def require(self, person_id: str) -> dict:
        person = self.get(person_id)
        if person is None:
            raise NotFound(f"person {person_id!r} does not exist (enrol them first)", "person_id")
        return person

    def list(self, search: str | None = None) -> list[dict]:
        """Every person (local and synced), by name; ``search`` matches id/name/external id."""
        merged = {pid: s["person"] for pid, s in self._synced().items()}
        merged.update({pid: _public(r) for pid, r in self._people.items()})
        needle = (search or "").strip().lower()
        rows = [dict(p) for p in merged.values()
                if not needle or needle in " ".join(str(p.get(k) or "") for k in
                                                    ("id", "name", "external_id")).lower()]
        return sorted(rows, key=lambda p: (p["name"].lower(), p["id"]))

    def _require_local(self, person_id: str) -> dict:
        if person_id not in self._people:
            if self.get(person_id) is not None:
                raise StoreValueError(f"person {person_id!r} comes from a synced roster: change "
                                      "it centrally", "person_id")
            self.require(person_id)
        return self._people[person_id]

    @audited("person.updated", target="person_id")
    def update(self, person_id: str, **fields: object) -> dict:
        """Change ``name`` and/or ``external_id`` of a local person."""
        rec = self._require_local(person_id)
        bad = set(fields) - set(EDITABLE)
        if bad:
            raise StoreValueError(f"cannot update {sorted(bad)}; editable: {EDITABLE}", sorted(bad)[0])
        changes = {k: (None if v is None and k == "external_id" else check_text(v, k, 120))
                   for k, v in fields.items()}
        self._ctx.audit_note(changes={k: [rec.get(k), v] for k, v in changes.items()})
        changes["updated_at"] = to_iso(self._ctx.clock())
        self._file.update(rec["_id"], changes)
        rec.update(changes)
        return _public(rec)

    @audited("person.consent", target="person_id", actor="by")
    def set_consent(self, person_id: str, basis: str, by: str) -> dict:
        """Record (again) the legal basis for a local person's face data; audited."""
        rec = self._require_local(person_id)
        consent = make_consent({"basis": basis, "by": by}, self._ctx.clock())
        self._ctx.audit_note(basis=consent["basis"])
        self._file.update(rec["_id"], {"consent": consent})
        rec["consent"] = consent
        return _public(rec)

    def mark_withdrawn(self, person_id: str, by: str) -> None:
        """Consent withdrawn: keep the record of it (who, when) on the person."""
        rec = self._people.get(person_id)
        if rec is None:
            return
        consent = {**(rec.get("consent") or {}), "withdrawn_at": to_iso(self._ctx.clock()),
                   "withdrawn_by": check_text(by, "by", 80)}
        self._file.update(rec["_id"], {"consent": consent})
        rec["consent"] = consent

    def erase_biometrics(self, person_id: str) -> dict:
        """Delete every embedding and photo of a local person (keeps name and consent
        history); returns ``{"embeddings", "photos"}`` counted before deletion."""
        rec = self._people.get(person_id)
        if rec is None:
            return {"embeddings": 0, "photos": 0}
        metas = self._emb.get(person_id, [])
        counts = {"embeddings": len(metas), "photos": _count_files(self._root / person_id)}
        shutil.rmtree(self._root / person_id, ignore_errors=True)
        fsync_dir(self._root)
        self._emb[person_id] = []
        stamp = to_iso(self._ctx.clock())
        self._file.update(rec["_id"], {"biometrics_erased_at": stamp})
        rec["biometrics_erased_at"] = stamp
        self.invalidate()
        return counts

    def templates_of(self, person_id: str) -> list[dict]:
        """Every template of one person with its vector (base64 float32), for an export."""
        metas = self._emb.get(person_id)
        if metas is None:
            metas = (self._synced().get(person_id) or {}).get("embeddings", [])
        return [{**{k: v for k, v in m.items() if k != "vec"}, "vector_b64": encode_b64(m["vec"])}
                for m in metas]

    def vectors_of(self, person_id: str) -> list[np.ndarray]:
        """Every stored vector of one person (local or synced), any model."""
        metas = self._emb.get(person_id)
        if metas is None:
            metas = (self._synced().get(person_id) or {}).get("embeddings", [])
        return [m["vec"] for m in metas]

    @audited("person.deleted", target="person_id")
    def delete(self, person_id: str) -> None:
        """Delete a local person with their embeddings and photos."""
        rec = self._require_local(person_id)
        self._file.remove([rec["_id"]])
        del self._people[person_id]
        self._emb.pop(person_id, None)
        shutil.rmtree(self._root / person_id, ignore_errors=True)
        fsync_dir(self._root)
        self.invalidate()
        for hook in self.on_delete:
            hook(person_id)

    # -- embeddings and photos -----------------------------------------------------
    @audited("person.photo_added", target="person_id")
    def add_embedding(self, person_id: str, vector: object, model_id: str,
                      photo_sha256: str | None = None, photo_jpeg: bytes | None = None,
                      source: str = "photo") -> dict:
        """Store an L2-normalised float32 embedding (and its re-encoded photo).

        ``source`` tags where the template came from: ``photo`` (an uploaded photo),
        ``device`` (the door's own camera: a capture or an assigned unknown face),
        ``door`` (learnt at the door after a confident accept; see :meth:`templates`).
        The same ``photo_sha256`` and ``model_id`` twice returns the first with ``duplicate``.
        """
        rec = self._require_local(person_id)
        if not has_basis(rec):
            raise ConsentRequired(f"person {person_id!r} has no recorded legal basis for face data "
                                  f"(consent, contract or legal_obligation){' (withdrawn)' if rec.get('consent') else ''}: "
                                  "record one first", "consent")
        if source not in SOURCES:
            raise StoreValueError(f"source {source!r}: use one of {', '.join(SOURCES)}", "source")
        vec, model_id = to_vector(vector), check_model_id(model_id)
        sha = check_sha256(photo_sha256)
        self._check_dim(model_id, vec.shape[0])
        for meta in self._emb[person_id]:
            if sha and meta["photo_sha256"] == sha and meta["model_id"] == model_id:
                return {**_meta(meta, person_id), "duplicate": True}
        jpeg = reencode_jpeg(photo_jpeg) if photo_jpeg is not None else None
        now = self._ctx.clock()
        meta = {"id": new_ulid(now), "model_id": model_id, "dim": int(vec.shape[0]),
                "photo_sha256": sha, "photo_id": None, "created_at": to_iso(now), "source": source}
        if jpeg is not None:
            meta["photo_id"] = new_ulid(now)
            self._write_photo(person_id, meta["photo_id"], jpeg)
        doc = self._emb_file(person_id)
        try:
            doc.insert({**meta, "vector_b64": encode_b64(vec)})
        finally:
            doc.close()
        self._emb[person_id].append({**meta, "vec": vec})
        self.invalidate()
        return {**_meta(meta, person_id), "duplicate": False}

    def _check_dim(self, model_id: str, dim: int) -> None:
        ids, matrix = self.embeddings(model_id)
        if ids and matrix.shape[1] != dim:
            raise StoreValueError(f"vector has {dim} values but {model_id} embeddings have "
                                  f"{matrix.shape[1]}", "vector")

    def _write_photo(self, person_id: str, photo_id: str, jpeg: bytes) -> None:
        atomic_write_bytes(self.photo_path(person_id, photo_id), jpeg, mode=FILE_MODE,
                           dir_mode=DIR_MODE)

    def embeddings(self, model_id: str, person_ids: list[str] | None = None
                   ) -> tuple[list[str], np.ndarray]:
        """(person id per row, float32 [N, D] L2-normalised) for ``model_id``; cached."""
        if model_id not in self._cache:
            self._cache[model_id] = self._build(model_id)
        ids, matrix = self._cache[model_id]
        if person_ids is None:
            return list(ids), matrix
        wanted = set(person_ids)
        rows = [i for i, pid in enumerate(ids) if pid in wanted]
        return [ids[i] for i in rows], matrix[rows] if rows else matrix[:0]

    def _build(self, model_id: str) -> tuple[list[str], np.ndarray]:
        sources = {pid: s["embeddings"] for pid, s in self._synced().items()}
        sources.update(self._emb)
        ids, vecs = [], []
        for pid in sorted(sources):
            for meta in sources[pid]:
                if meta["model_id"] == model_id:
                    ids.append(pid)
                    vecs.append(meta["vec"])
        if not vecs:
            return [], np.zeros((0, 0), dtype=np.float32)
        matrix = np.vstack(vecs).astype(np.float32)
        matrix.setflags(write=False)
        return ids, matrix

    def template_counts(self) -> dict[str, int]:
        """Local people holding face templates -> how many."""
        return {pid: len(metas) for pid, metas in self._emb.items() if metas}

    def synced_template_count(self) -> int:
        """Face templates held from synced roster bundles."""
        return sum(len(s["embeddings"]) for s in self._synced().values())

    def local_dims(self) -> dict[str, int]:
        """Vector length per model id among local people's embeddings."""
        return {m["model_id"]: m["dim"] for metas in self._emb.values() for m in metas}

    def photos(self, person_id: str) -> list[dict]:
        """Photo metadata of a local person (id, sha256, model, created)."""
        self._require_local(person_id)
        return [{"photo_id": m["photo_id"], "photo_sha256": m["photo_sha256"],
                 "embedding_id": m["id"], "model_id": m["model_id"], "created_at": m["created_at"],
                 "source": m.get("source", "photo")}
                for m in self._emb[person_id] if m.get("photo_id")]

    def templates(self, person_id: str, source: str | None = None) -> list[dict]:
        """Every template (embedding) of a local person, oldest first: id, model, source,
        created, photo id (None for door-learnt ones); only ``source`` ones when given."""
        self._require_local(person_id)
        return [{"embedding_id": m["id"], "model_id": m["model_id"], "source": m.get("source", "photo"),
                 "created_at": m["created_at"], "photo_id": m.get("photo_id")}
                for m in self._emb[person_id] if source is None or m.get("source", "photo") == source]

    def remove_embedding(self, person_id: str, embedding_id: str) -> dict:
        """Delete one template (and its photo); returns its metadata. Unknown id: StoreValueError."""
        self._require_local(person_id)
        meta = next((m for m in self._emb[person_id] if m["id"] == embedding_id), None)
        if meta is None:
            raise StoreValueError(f"person {person_id!r} has no template {embedding_id!r}", "embedding_id")
        doc = self._emb_file(person_id)
        try:
            doc.remove([d["_id"] for d in doc.all() if d.get("id") == embedding_id])
        finally:
            doc.close()
        self._emb[person_id] = [m for m in self._emb[person_id] if m["id"] != embedding_id]
        if meta.get("photo_id"):
            self.photo_path(person_id, meta["photo_id"]).unlink(missing_ok=True)
        self.invalidate()
        return _meta(meta, person_id)

    def photo_path(self, person_id: str, photo_id: str) -> Path:
        """Where a photo lives (validated ids only; the file may not exist)."""
        check_person_id(person_id)
        if not is_ulid(photo_id):
            raise StoreValueError(f"photo_id {photo_id!r} is not a photo id", "photo_id")
        return self._root / person_id / "photos" / f"{photo_id}.jpg"

    def close(self) -> None:
        """Release files; safe twice."""
        self._file.close()


def _count_files(directory: Path) -> int:
    photos = directory / "photos"
    return sum(1 for p in photos.iterdir() if p.is_file()) if photos.is_dir() else 0


def _public(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if not k.startswith("_")}


def _meta(meta: dict, person_id: str) -> dict:
    return {**{k: v for k, v in meta.items() if k != "vec"}, "person_id": person_id}
