"""Roster sync on the device: verify a signed bundle, then apply it to the store atomically.

A bundle arrives retained on ``<prefix>/<site>/roster/<room>`` (or ``.../_all``) or inside
``cmd/roster_sync``. Anything wrong (signature, schema, model id, site/room, size) raises
``BundleError`` with the reason and changes nothing; an equal or older version is ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from firmware.config import secret_path
from firmware.errors import BundleError
from firmware.link.bundle import (is_stale, load_public_key, to_store_form, verify_bundle,
                                  verify_bundle_dict)

logger = logging.getLogger(__name__)


class RosterSync:
    """Verifies and applies roster bundles for one device (site, room, active model)."""

    def __init__(self, store: Any, public_key_file: Path | None, model_id: str, site: str,
                 room: str, version_provider: Callable[[], int | None] = lambda: None) -> None:
        self._store = store
        self._model_id = model_id
        self._site = site
        self._room = room
        self._version_provider = version_provider
        self._applied: int | None = None
        self._key = None
        self._key_problem = "no roster public key installed (mqtt.roster_public_key_file); " \
                            "install the central key with `rollcall provision`"
        if public_key_file is not None:
            self._load_key(Path(public_key_file))

    def _load_key(self, path: Path) -> None:
        path = secret_path(path) or path
        try:
            pem = path.read_bytes()
            if pem.strip():  # install.sh creates credential files empty: "not installed yet"
                self._key = load_public_key(pem)
        except OSError as exc:
            self._key_problem = f"cannot read roster public key {path}: {exc.strerror}"
            logger.error("%s", self._key_problem)
        except BundleError as exc:
            self._key_problem = f"{path}: {exc}"
            logger.error("%s", self._key_problem)

    @property
    def public_key(self):
        """The central Ed25519 public key (None when not installed); also checks signed commands."""
        return self._key

    @property
    def version(self) -> int | None:
        """Newest site version: the last applied, the store's durable mark, what the device reports."""
        reported = self._version_provider()
        durable = self._store.rosters.site_version(self._site)
        versions = [v for v in (self._applied, reported, durable) if isinstance(v, int)]
        return max(versions) if versions else None

    def apply_raw(self, raw: bytes) -> dict:
        """Verify raw bundle bytes and apply them; see :meth:`apply`."""
        return self._apply(lambda key, version: verify_bundle(
            raw, key, self._model_id, version, site=self._site, room=self._room))

    def apply_dict(self, bundle: object) -> dict:
        """Verify an already parsed bundle object and apply it; see :meth:`apply`."""
        return self._apply(lambda key, version: verify_bundle_dict(
            bundle, key, self._model_id, version, site=self._site, room=self._room))

    def _apply(self, verify: Callable) -> dict:
        """Result dict ``{"applied", "roster_version", ...}``; raises BundleError when rejected."""
        if self._key is None:
            raise BundleError(self._key_problem)
        current = self.version
        try:
            bundle = verify(self._key, current)
        except BundleError as exc:
            if is_stale(exc):
                logger.debug("roster bundle ignored: %s", exc)
                return {"applied": False, "roster_version": current, "reason": str(exc)}
            logger.warning("roster bundle rejected: %s", exc)
            raise
        try:
            self._store.rosters.apply_bundle(to_store_form(bundle))
        except BundleError as exc:
            if not is_stale(exc):
                raise
            logger.debug("roster bundle ignored: %s", exc)
            return {"applied": False, "roster_version": current, "reason": str(exc)}
        self._applied = bundle["roster_version"]
        logger.info("roster version %d applied (%d people, room %s)", bundle["roster_version"],
                    len(bundle["people"]), bundle["room"])
        return {"applied": True, "roster_version": bundle["roster_version"],
                "people": len(bundle["people"]), "room": bundle["room"]}
