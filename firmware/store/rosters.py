"""Rosters: local ones (``rosters/rosters.json``) and synced bundles swapped atomically.

A synced roster lives in ``rosters/synced/<roster_id>/gen-<ulid>/bundle.json`` and the
file ``rosters/synced/<roster_id>/CURRENT`` names the generation in force. ``apply_bundle``
writes a complete new generation first and then replaces ``CURRENT`` atomically: a crash
or an error at any point leaves the previous roster (people, seats, embeddings) intact.
Generations not named by ``CURRENT`` are leftovers and are deleted.

``rosters/versions.json`` keeps the newest applied bundle version per site and per roster
(written after each switch, and never lowered), so a captured older or equal bundle is
refused after any restart, even for a roster that was replaced or is not in force.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Callable

from firmware.errors import BundleError
from firmware.store.atomic import atomic_write_bytes
from firmware.store.context import ID_RE_TEXT, StoreContext, audited, check_text
from firmware.store.errors import NotFound, StoreValueError
from firmware.store.ids import new_ulid, to_iso
from firmware.store.people import People, check_person_id, make_consent
from firmware.store.tinyfile import DIR_MODE, FILE_MODE, DocFile, dumps, ensure_dir, read_json_file
from firmware.store.vectors import check_model_id, decode_b64, encode_b64, to_vector

logger = logging.getLogger(__name__)

ROSTER_ID_RE = re.compile(ID_RE_TEXT)
GEN_RE = re.compile(r"^gen-[0-9A-Z]{26}$")


def check_roster_id(value: object) -> str:
    if not isinstance(value, str) or not ROSTER_ID_RE.match(value):
        raise StoreValueError(f"roster_id {value!r}: use 1-64 letters, digits, '_' or '-'",
                              "roster_id")
    return value


def _seat(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or len(str(value)) > 16:
        raise StoreValueError(f"seat {value!r}: expected a short text or number", "seat")
    return str(value)


class Rosters:
    """``store.rosters``."""

    def __init__(self, ctx: StoreContext, people: People) -> None:
        self._ctx = ctx
        self._people = people
        self._root = ensure_dir(ctx.data_dir / "rosters")
        self._synced_root = ensure_dir(self._root / "synced")
        self._file = DocFile(self._root / "rosters.json", ctx.clock, ctx.on_corrupt)
        self._local = {r["id"]: r for r in self._file.all()}
        self._synced: dict[str, dict] = {}
        self._synced_people: dict[str, dict] = {}
        self.in_use: Callable[[str], bool] = lambda roster_id: False
        self.erased_at: Callable[[str], str | None] = lambda person_id: None  # set by Erasures
        self._versions_path = self._root / "versions.json"
        self._versions = self._load_versions()
        self._load_synced()
        people.set_synced_source(lambda: self._synced_people)
        people.on_delete.append(self._drop_person)

    # -- local rosters -------------------------------------------------------------
    def _entries(self, entries: object) -> list[dict]:
        if not isinstance(entries, list):
            raise StoreValueError("entries: expected a list of {person_id, seat}", "entries")
        out, seen = [], set()
        for item in entries:
            if not isinstance(item, dict) or set(item) - {"person_id", "seat"}:
                raise StoreValueError("entries: each entry is {person_id, seat}", "entries")
            pid = check_person_id(item.get("person_id"))
            if pid in seen:
                raise StoreValueError(f"entries: {pid} appears twice", "entries")
            self._people.require(pid)
            seen.add(pid)
            out.append({"person_id": pid, "seat": _seat(item.get("seat"))})
        return out

    @audited("roster.created", target="roster_id")
    def create(self, name: str, entries: list[dict], roster_id: str | None = None,
               version: int | None = None, source: str = "local") -> dict:
        """Create a local roster; ``roster_id`` defaults to a new ULID."""
        now = self._ctx.clock()
        roster_id = check_roster_id(roster_id) if roster_id is not None else new_ulid(now)
        if roster_id in self._local or roster_id in self._synced:
            raise StoreValueError(f"roster {roster_id!r} already exists", "roster_id")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)
                                    or version < 1):
            raise StoreValueError("version: expected an integer >= 1", "version")
        rec = {"id": roster_id, "name": check_text(name, "name", 120),
               "entries": self._entries(entries), "version": version or 1,
               "source": check_text(source, "source", 40), "created_at": to_iso(now),
               "updated_at": to_iso(now)}
        self._ctx.audit_note(roster_id, name=rec["name"], members=len(rec["entries"]))
        rec["_id"] = self._file.insert(rec)
        self._local[roster_id] = rec
        return _public(rec)

    def get(self, roster_id: str) -> dict | None:
        if roster_id in self._local:
            return _public(self._local[roster_id])
        synced = self._synced.get(roster_id)
        return dict(synced["roster"]) if synced else None

    def require(self, roster_id: str) -> dict:
        roster = self.get(roster_id)
        if roster is None:
            raise NotFound(f"roster {roster_id!r} does not exist", "roster_id")
        return roster

    def member_ids(self, roster_id: str) -> list[str]:
        """Person ids on a roster (empty if the roster is gone)."""
        roster = self.get(roster_id)
        return [e["person_id"] for e in roster["entries"]] if roster else []

    def person(self, person_id: str) -> dict | None:
        """A person (local or synced) by id, or None."""
        return self._people.get(person_id)

    def list(self) -> list[dict]:
        rows = [_public(r) for r in self._local.values()]
        rows += [dict(s["roster"]) for s in self._synced.values()]
        return sorted(rows, key=lambda r: (r["name"].lower(), r["id"]))

    @audited("roster.updated", target="roster_id")
    def update(self, roster_id: str, name: str | None = None,
               entries: list[dict] | None = None) -> dict:
        """Rename and/or replace the entries of a local roster (version + 1)."""
        if roster_id not in self._local:
            self.require(roster_id)
            raise StoreValueError(f"roster {roster_id} is synced: change it centrally", "roster_id")
        rec = self._local[roster_id]
        changes: dict = {"version": rec["version"] + 1, "updated_at": to_iso(self._ctx.clock())}
        if name is not None:
            changes["name"] = check_text(name, "name", 120)
        if entries is not None:
            changes["entries"] = self._entries(entries)
        self._ctx.audit_note(**{k: v for k, v in changes.items() if k != "entries"},
                             members=len(changes.get("entries", rec["entries"])))
        self._file.update(rec["_id"], changes)
        rec.update(changes)
        return _public(rec)

    @audited("roster.deleted", target="roster_id")
    def delete(self, roster_id: str) -> None:
        """Delete a roster (local or synced) unless a scheduled/in-progress session uses it."""
        self.require(roster_id)
        if self.in_use(roster_id):
            raise StoreValueError(f"roster {roster_id} is used by a scheduled or running "
                                  "session: cancel or complete it first", "roster_id")
        if roster_id in self._local:
            self._file.remove([self._local.pop(roster_id)["_id"]])
            return
        self._synced.pop(roster_id)
        shutil.rmtree(self._synced_root / roster_id, ignore_errors=True)
        self._refresh_people()

    def _drop_person(self, person_id: str) -> None:
        for rec in self._local.values():
            kept = [e for e in rec["entries"] if e["person_id"] != person_id]
            if len(kept) != len(rec["entries"]):
                self._file.update(rec["_id"], {"entries": kept})
                rec["entries"] = kept

    # -- synced bundles --------------------------------------------------------------
    def apply_bundle(self, bundle: dict) -> dict:
        """Atomically replace a synced roster from an already verified bundle dict.

        Returns the roster; ``unchanged`` is True when this version is already in force.
        Raises ``BundleError`` for a malformed or older bundle (previous roster kept).
        """
        roster_id, version, content = self._parse_bundle(bundle)
        current = self._synced.get(roster_id)
        if current and current["roster"]["version"] == version:
            return {**current["roster"], "unchanged": True}
        if current and current["roster"]["version"] > version:
            raise BundleError(f"roster {roster_id}: bundle version {version} is older than "
                              f"{current['roster']['version']} in force; ignored")
        self._check_not_older(bundle.get("site"), roster_id, version)
        self._check_dims(roster_id, content)
        dropped = self._drop_unlawful(content)
        self._write_generation(roster_id, content)
        self._remember_version(bundle.get("site"), roster_id, version)
        logger.info("roster %s version %d applied (%d people)", roster_id, version,
                    len(content["people"]))
        return {**content["roster"], "unchanged": False, **dropped}

    def _write_generation(self, roster_id: str, content: dict) -> None:
        directory = ensure_dir(self._synced_root / roster_id)
        gen = f"gen-{new_ulid(self._ctx.clock())}"
        atomic_write_bytes(directory / gen / "bundle.json", dumps(content), FILE_MODE, DIR_MODE)
        atomic_write_bytes(directory / "CURRENT", gen.encode(), FILE_MODE)  # the switch
        self._clean_generations(directory, gen)
        self._synced[roster_id] = _inflate(content)
        self._refresh_people()

    def _drop_unlawful(self, content: dict) -> dict:
        """Keep no face data of people without a basis, or erased since their basis was
        recorded; returns ``{"without_basis": [ids], "erased": [ids]}`` (logged)."""
        out: dict[str, list[str]] = {"without_basis": [], "erased": []}
        for person in content["people"]:
            if not person["embeddings"]:
                continue
            erased, consent = self.erased_at(person["id"]), person.get("consent")
            reason = "without_basis" if not consent else \
                "erased" if erased and erased >= consent["recorded_at"] else None
            if reason:
                person["embeddings"] = []
                out[reason].append(person["id"])
        if out["without_basis"] or out["erased"]:
            logger.warning("roster bundle: face data not kept for %d people without a recorded basis "
                           "and %d erased before their basis was recorded", len(out["without_basis"]),
                           len(out["erased"]))
        return out

    def erase_person(self, person_id: str, full: bool) -> int:
        """Remove a person's embeddings (``full``: the whole entry) from every synced
        roster, rewriting its generation atomically; returns embeddings removed."""
        removed = 0
        for roster_id, synced in list(self._synced.items()):
            if person_id not in synced["people"]:
                continue
            content = self._current_content(roster_id)
            for person in content["people"]:
                if person["id"] == person_id:
                    removed += len(person["embeddings"])
                    person["embeddings"] = []
                    person["biometrics_erased"] = True
            if full:
                content["people"] = [p for p in content["people"] if p["id"] != person_id]
                content["roster"]["entries"] = [e for e in content["roster"]["entries"]
                                                if e["person_id"] != person_id]
            self._write_generation(roster_id, content)
        return removed

    def _current_content(self, roster_id: str) -> dict:
        directory = self._synced_root / roster_id
        gen = (directory / "CURRENT").read_text().strip()
        return read_json_file(directory / gen / "bundle.json", self._ctx.clock, self._ctx.on_corrupt)

    def roster_people(self) -> set[str]:
        """Every person id on any roster (local or synced)."""
        ids = {e["person_id"] for r in self._local.values() for e in r["entries"]}
        for synced in self._synced.values():
            ids |= {e["person_id"] for e in synced["roster"]["entries"]}
        return ids

    # -- version high-water marks ------------------------------------------------------
    def site_version(self, site: str) -> int | None:
        """The newest bundle version ever applied for ``site`` (None: none yet)."""
        return self._versions["sites"].get(site)

    def applied_versions(self) -> dict:
        """``{"sites": {site: version}, "rosters": {roster_id: version}}`` (a copy)."""
        return {k: dict(v) for k, v in self._versions.items()}

    def _check_not_older(self, site: object, roster_id: str, version: int) -> None:
        marks = [("roster " + roster_id, self._versions["rosters"].get(roster_id))]
        if isinstance(site, str):
            marks.append(("site " + site, self._versions["sites"].get(site)))
        for what, newest in marks:
            if newest is not None and version <= newest:
                error = BundleError(f"{what}: bundle version {version} is not newer than "
                                    f"{newest} applied before; ignored")
                error.stale = True  # type: ignore[attr-defined]
                raise error

    def _remember_version(self, site: object, roster_id: str, version: int) -> None:
        rosters, sites = self._versions["rosters"], self._versions["sites"]
        rosters[roster_id] = max(version, rosters.get(roster_id, 0))
        if isinstance(site, str):
            sites[site] = max(version, sites.get(site, 0))
        atomic_write_bytes(self._versions_path, dumps(self._versions), FILE_MODE)

    def _load_versions(self) -> dict:
        data = read_json_file(self._versions_path, self._ctx.clock, self._ctx.on_corrupt) or {}
        out: dict[str, dict[str, int]] = {"sites": {}, "rosters": {}}
        for kind in out:
            for name, value in (data.get(kind) or {}).items() if isinstance(data, dict) else []:
                if isinstance(value, int) and not isinstance(value, bool):
                    out[kind][str(name)] = value
        return out

    def _check_dims(self, roster_id: str, content: dict) -> None:
        known = self._people.local_dims()
        for rid, synced in self._synced.items():
            if rid != roster_id:
                known.update({e["model_id"]: e["vec"].shape[0] for p in synced["people"].values()
                              for e in p["embeddings"]})
        for person in content["people"]:
            for emb in person["embeddings"]:
                dim = _dim(emb["vector_b64"])
                if known.setdefault(emb["model_id"], dim) != dim:
                    raise BundleError(f"roster bundle rejected: {emb['model_id']} vectors of "
                                      f"{dim} values, expected {known[emb['model_id']]}")

    def _parse_bundle(self, bundle: object) -> tuple[str, int, dict]:
        try:
            return _parse(bundle, self._ctx.clock(), self._ctx.default_basis)
        except (StoreValueError, KeyError, TypeError) as exc:
            raise BundleError(f"roster bundle rejected: {exc}") from None

    def _load_synced(self) -> None:
        for directory in sorted(p for p in self._synced_root.iterdir() if p.is_dir()):
            try:
                gen = (directory / "CURRENT").read_text().strip()
            except FileNotFoundError:
                gen = ""
            content = read_json_file(directory / gen / "bundle.json", self._ctx.clock,
                                     self._ctx.on_corrupt) if GEN_RE.match(gen) else None
            self._clean_generations(directory, gen)
            if content:
                self._synced[directory.name] = _inflate(content)
                marks = self._versions["rosters"]
                version = content["roster"]["version"]
                marks[directory.name] = max(version, marks.get(directory.name, 0))
        self._refresh_people()

    @staticmethod
    def _clean_generations(directory: Path, keep: str) -> None:
        for old in directory.iterdir():
            if old.is_dir() and GEN_RE.match(old.name) and old.name != keep:
                shutil.rmtree(old, ignore_errors=True)

    def _refresh_people(self) -> None:
        merged: dict[str, dict] = {}
        for synced in self._synced.values():
            merged.update(synced["people"])
        self._synced_people = merged
        self._people.invalidate()

    def close(self) -> None:
        """Release files; safe twice."""
        self._file.close()


def _parse(bundle: object, now: float, default_basis: str | None = None) -> tuple[str, int, dict]:
    if not isinstance(bundle, dict):
        raise StoreValueError("expected a dict")
    roster_id = check_roster_id(bundle["roster_id"])
    version = bundle["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise StoreValueError("version: expected an integer >= 1")
    people, entries = [], []
    for item in bundle["people"]:
        pid = check_person_id(item["person_id"])
        embs = [{"model_id": check_model_id(e["model_id"]),
                 "vector_b64": encode_b64(to_vector(e["vector"]))} for e in item.get("embeddings", [])]
        consent = item.get("consent")
        if consent is None and default_basis is not None:
            consent = {"basis": default_basis, "by": "privacy.default_basis (roster from the centre)"}
        people.append({"id": pid, "name": check_text(item["name"], "name", 120),
                       "external_id": item.get("external_id"), "source": f"bundle:{roster_id}",
                       "consent": make_consent(consent, now) if consent is not None else None,
                       "embeddings": embs})
        entries.append({"person_id": pid, "seat": _seat(item.get("seat"))})
    if len({p["id"] for p in people}) != len(people):
        raise StoreValueError("a person appears twice")
    roster = {"id": roster_id, "name": check_text(bundle.get("name") or roster_id, "name", 120),
              "entries": entries, "version": version, "source": "bundle",
              "created_at": to_iso(now), "updated_at": to_iso(now)}
    return roster_id, version, {"roster": roster, "people": people}


def _dim(vector_b64: str) -> int:
    return int(decode_b64(vector_b64).shape[0])


def _inflate(content: dict) -> dict:
    people = {}
    for p in content["people"]:
        embs = [{"id": f"{p['id']}-{i}", "model_id": e["model_id"], "vec": decode_b64(e["vector_b64"])}
                for i, e in enumerate(p["embeddings"])]
        person = {k: v for k, v in p.items() if k != "embeddings"}
        people[p["id"]] = {"person": person, "embeddings": embs}
    return {"roster": content["roster"], "people": people}


def _public(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if not k.startswith("_")}
