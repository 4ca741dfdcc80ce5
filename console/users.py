"""Console users and roles: each user has an argon2 password hash and one role.

Roles: ``admin`` (everything) and ``operator`` (an invigilator: sessions, live view, kiosk,
attendance and manual marks; no enrolment, deletion or settings). The users live in
``<secrets_dir>/users.json`` (0600). ``admin.json`` is the bootstrap record written by
``rollcall provision`` (and by the first-run page): when its hash is new, that user is
(re)imported as an admin, so provisioning can still reset an admin password.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from console.auth import pi_hasher
from firmware.errors import ConfigError
from firmware.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

ADMIN = "admin"
OPERATOR = "operator"
ROLES = (ADMIN, OPERATOR)
USERS_FILE = "users.json"
ADMIN_FILE = "admin.json"
SETUP_CODE_FILE = "setup-code"


class UserError(ConfigError):
    """A user could not be added, changed or deleted (message says why)."""


class Users:
    """The console's user accounts (thread-safe; every change is written atomically)."""

    def __init__(self, secrets_dir: Path, hasher: PasswordHasher | None = None) -> None:
        self.secrets_dir = Path(secrets_dir)
        self.path = self.secrets_dir / USERS_FILE
        self.hasher = hasher or pi_hasher()  # argon2id sized for a 1 GB Pi (console.auth)
        self._lock = threading.Lock()
        self._cache: tuple[tuple, str] | None = None  # (file stamps, users JSON)
        self._dummy = self.hasher.hash("not a password: equalises timing for unknown users")

    # ---- storage ------------------------------------------------------------------
    def _read(self) -> dict:
        """The users file (with admin.json taken in); re-read only when a file changed."""
        stamp = tuple(_mtime(self.secrets_dir / n) for n in (USERS_FILE, ADMIN_FILE))
        if self._cache is not None and self._cache[0] == stamp:
            return json.loads(self._cache[1])
        data = self._load()
        self._cache = (tuple(_mtime(self.secrets_dir / n) for n in (USERS_FILE, ADMIN_FILE)),
                       json.dumps(data))
        return data

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            data = {"users": {}, "imported": None}
        except (OSError, ValueError):
            logger.error("cannot read the console users file %s", self.path)
            data = {"users": {}, "imported": None}
        return self._import_bootstrap(data)

    def _import_bootstrap(self, data: dict) -> dict:
        """Take in admin.json (provisioning) when its hash is one we have not seen."""
        try:
            boot = json.loads((self.secrets_dir / ADMIN_FILE).read_text())
            name, digest = boot["user"], boot["hash"]
        except (OSError, ValueError, KeyError):
            return data
        if data.get("imported") != digest:
            data["users"][name] = {"hash": digest, "role": ADMIN}
            data["imported"] = digest
            self._write(data)
            logger.info("console admin %s taken from %s", name, ADMIN_FILE)
        return data

    def _write(self, data: dict) -> None:
        atomic_write_bytes(self.path, json.dumps(data, sort_keys=True).encode(), mode=0o600)

    # ---- queries ------------------------------------------------------------------
    def exists(self) -> bool:
        """True once at least one admin exists (the first-run page is closed then)."""
        return any(u["role"] == ADMIN for u in self._read()["users"].values())

    def list(self) -> list[dict]:
        """[{"user", "role"}] sorted by name (no hashes)."""
        users = self._read()["users"]
        return [{"user": name, "role": users[name]["role"]} for name in sorted(users)]

    def role(self, user: str | None) -> str | None:
        """The role of ``user`` now (None when the user no longer exists)."""
        if not user:
            return None
        found = self._read()["users"].get(user)
        return found["role"] if found else None

    def verify(self, user: str, password: str) -> str | None:
        """The user's role when ``user``/``password`` match, else None (argon2 runs either way)."""
        found = self._read()["users"].get(user)
        digest = found["hash"] if found else self._dummy
        try:
            ok = self.hasher.verify(digest, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if not (ok and found):
            return None
        if self.hasher.check_needs_rehash(digest):
            self.set_password(user, password)  # older, costlier parameters: re-hash once
        return found["role"]

    # ---- changes ------------------------------------------------------------------
    def add(self, user: str, password: str, role: str, *, bootstrap: bool = False) -> None:
        """Create ``user``; ``bootstrap`` also writes admin.json (the first-run admin)."""
        _check_role(role)
        digest = self.hasher.hash(password)
        with self._lock:
            data = self._read()
            if user in data["users"]:
                raise UserError(f"the user {user!r} already exists")
            data["users"][user] = {"hash": digest, "role": role}
            if bootstrap:
                boot = {"user": user, "hash": digest}
                atomic_write_bytes(self.secrets_dir / ADMIN_FILE, json.dumps(boot).encode(), mode=0o600)
                data["imported"] = digest
            self._write(data)
        logger.info("console user %s (%s) added", user, role)

    def set_password(self, user: str, password: str) -> None:
        digest = self.hasher.hash(password)
        with self._lock:
            data = self._read()
            self._need(data, user)["hash"] = digest
            self._write(data)
        logger.info("console user %s: password changed", user)

    def set_role(self, user: str, role: str) -> None:
        _check_role(role)
        with self._lock:
            data = self._read()
            self._need(data, user)
            if role != ADMIN:
                self._keep_an_admin(data, user)
            data["users"][user]["role"] = role
            self._write(data)
        logger.info("console user %s: role %s", user, role)

    def delete(self, user: str) -> None:
        with self._lock:
            data = self._read()
            self._need(data, user)
            self._keep_an_admin(data, user)
            del data["users"][user]
            self._write(data)
        logger.info("console user %s deleted", user)

    @staticmethod
    def _need(data: dict, user: str) -> dict:
        if user not in data["users"]:
            raise UserError(f"no user {user!r}")
        return data["users"][user]

    @staticmethod
    def _keep_an_admin(data: dict, user: str) -> None:
        others = [n for n, u in data["users"].items() if u["role"] == ADMIN and n != user]
        if data["users"][user]["role"] == ADMIN and not others:
            raise UserError("the last admin cannot be removed or made an operator")

    # ---- first run ----------------------------------------------------------------
    def setup_code(self) -> str | None:
        """The one-time setup code written by provisioning, if any."""
        try:
            return (self.secrets_dir / SETUP_CODE_FILE).read_text().strip() or None
        except OSError:
            return None

    def consume_setup_code(self) -> None:
        (self.secrets_dir / SETUP_CODE_FILE).unlink(missing_ok=True)


def _mtime(path: Path) -> tuple[int, int, int] | None:
    """A file's identity for the cache: (mtime ns, inode, size); None when absent."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_ino, info.st_size


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r} (admin or operator)")
