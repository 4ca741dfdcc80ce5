"""Console authentication: the admin account (argon2), server-side sessions with CSRF
tokens, and the per-client login rate limiter. Secrets live in ``secrets_dir`` (0600 files).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from firmware.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

MIN_PASSWORD_LEN = 12
COMMON_PASSWORDS = frozenset("""
password1234 password12345 password123456 passwordpassword 123456789012 1234567890123
qwertyuiopas qwerty123456 qwertyuiop123 iloveyou1234 letmein12345 welcome12345
administrator admin1234567 adminadmin12 changeme1234 rollcall1234 rollcallrollcall
raspberrypi1 raspberry123 abcdefghijkl abc123456789 111111111111 000000000000
correcthorsebatterystaple trustno1trustno1 football1234 baseball1234 monkey123456
""".split())

ADMIN_FILE = "admin.json"
KEY_FILE = "session-key"
SETUP_CODE_FILE = "setup-code"


def password_problem(password: str, user: str = "") -> str | None:
    """Why ``password`` is too weak, or None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LEN:
        return f"the password must have at least {MIN_PASSWORD_LEN} characters"
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS or len(set(lowered)) <= 2:
        return "this password is too common; choose another"
    if user and user.lower() in lowered:
        return "the password must not contain the user name"
    return None


# argon2id for a 1 GB Raspberry Pi: 32 MiB and 3 passes per check (~0.3 s on a Pi 4 core),
# 2 lanes. The console runs at most 2 checks at once (console.throttle), so password checks
# never hold more than 64 MiB. OWASP's floor is 19 MiB x 2 passes; argon2-cffi's default
# (64 MiB x 3, 4 lanes) let 12 parallel guesses take the console from 75 to 803 MB RSS.
ARGON2_TIME_COST = 3
ARGON2_MEMORY_KIB = 32 * 1024
ARGON2_PARALLELISM = 2


def pi_hasher() -> PasswordHasher:
    """The console's argon2id parameters (see above); old hashes still verify."""
    return PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                          parallelism=ARGON2_PARALLELISM)


class AdminAccount:
    """The single admin account stored as an argon2 hash in ``secrets_dir/admin.json``."""

    def __init__(self, secrets_dir: Path, hasher: PasswordHasher | None = None) -> None:
        self.secrets_dir = Path(secrets_dir)
        self.path = self.secrets_dir / ADMIN_FILE
        self.hasher = hasher or pi_hasher()

    def exists(self) -> bool:
        return self.path.exists()

    def user(self) -> str | None:
        try:
            return json.loads(self.path.read_text())["user"]
        except (OSError, ValueError, KeyError):
            return None

    def set_password(self, user: str, password: str) -> None:
        data = {"user": user, "hash": self.hasher.hash(password)}
        atomic_write_bytes(self.path, json.dumps(data).encode(), mode=0o600)
        logger.info("admin account %s saved", user)

    def verify(self, user: str, password: str) -> bool:
        """True when ``user``/``password`` match (constant-time in the hash check)."""
        try:
            data = json.loads(self.path.read_text())
            ok = self.hasher.verify(data["hash"], password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        except (OSError, ValueError, KeyError):
            logger.error("cannot read the admin account file %s", self.path)
            return False
        ok = ok and hmac.compare_digest(user.encode(), data["user"].encode())
        if ok and self.hasher.check_needs_rehash(data["hash"]):
            self.set_password(user, password)  # older, costlier parameters: re-hash once
        return ok

    def setup_code(self) -> str | None:
        """The one-time setup code written by provisioning, if any."""
        try:
            return (self.secrets_dir / SETUP_CODE_FILE).read_text().strip() or None
        except OSError:
            return None

    def consume_setup_code(self) -> None:
        (self.secrets_dir / SETUP_CODE_FILE).unlink(missing_ok=True)


def load_or_make_key(secrets_dir: Path) -> bytes:
    """The session signing key (32 random bytes, 0600), made on first use."""
    path = Path(secrets_dir) / KEY_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    atomic_write_bytes(path, key, mode=0o600)
    return key


class Sessions:
    """Server-side sessions of logged-in users (anonymous visitors get none: see
    console.prelogin). The cookie holds ``id.signature``; the id rotates at login. A session
    ends after ``IDLE_S`` without use or ``ABSOLUTE_S`` after login, whichever comes first."""

    IDLE_S = 8 * 3600
    ABSOLUTE_S = 12 * 3600
    MAX_SESSIONS = 5000

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self.clock = clock
        self._data: OrderedDict[str, dict] = OrderedDict()

    def _sign(self, sid: str) -> str:
        return hmac.new(self.key, sid.encode(), hashlib.sha256).hexdigest()[:32]

    def cookie_value(self, sid: str) -> str:
        return f"{sid}.{self._sign(sid)}"

    def new(self, user: str | None = None) -> tuple[str, dict]:
        sid = secrets.token_urlsafe(32)
        session = {"user": user, "csrf": secrets.token_urlsafe(32), "seen": self.clock(),
                   "created": self.clock(), "flash": []}
        self._data[sid] = session
        while len(self._data) > self.MAX_SESSIONS:
            self._data.popitem(last=False)
        return sid, session

    def lookup(self, cookie: str | None) -> tuple[str, dict] | None:
        if not cookie or "." not in cookie:
            return None
        sid, sig = cookie.rsplit(".", 1)
        if not hmac.compare_digest(sig, self._sign(sid)):
            return None
        session = self._data.get(sid)
        now = self.clock()
        if session is None or now - session["seen"] > self.IDLE_S \
                or now - session.get("created", session["seen"]) > self.ABSOLUTE_S:
            self._data.pop(sid, None)
            return None
        session["seen"] = self.clock()
        self._data.move_to_end(sid)
        return sid, session

    def drop(self, sid: str) -> None:
        self._data.pop(sid, None)

    def drop_user(self, user: str) -> None:
        """End every session of ``user`` (after a password change)."""
        for sid in [s for s, d in self._data.items() if d.get("user") == user]:
            del self._data[sid]


def csrf_ok(session: dict | None, token: str | None) -> bool:
    """Constant-time check of a submitted CSRF token against the session's."""
    if not session or not token:
        return False
    return hmac.compare_digest(token.encode(), session["csrf"].encode())


class LoginLimiter:
    """Per-client lockout: after ``free`` failures, wait base_s x 2^(extra failures), capped."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, free: int = 5,
                 base_s: float = 30.0, max_s: float = 900.0, max_clients: int = 10000) -> None:
        self.clock, self.free, self.base_s, self.max_s = clock, free, base_s, max_s
        self.max_clients = max_clients
        self._clients: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def wait_s(self, client: str) -> float:
        """Seconds ``client`` must still wait before trying again (0 = may try)."""
        failures, until = self._clients.get(client, (0, 0.0))
        return max(0.0, until - self.clock())

    def failed(self, client: str) -> None:
        failures, _ = self._clients.get(client, (0, 0.0))
        failures += 1
        until = 0.0
        if failures >= self.free:
            until = self.clock() + min(self.max_s, self.base_s * 2 ** (failures - self.free))
            logger.warning("console login locked for a client after %d failures", failures)
        self._clients[client] = (failures, until)
        self._clients.move_to_end(client)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)
