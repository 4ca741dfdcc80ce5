"""Console authentication: password rules, server-side sessions with CSRF tokens (kept
across restarts, with an idle and an absolute lifetime), and the per-client login rate
limiter. Users and roles are in :mod:`console.users`. Secrets live in ``secrets_dir``
(0600 files).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from argon2 import PasswordHasher

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

KEY_FILE = "session-key"
SESSIONS_FILE = "sessions.json"


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
    console.prelogin). The cookie holds ``id.signature``; the id rotates at login.

    Sessions are saved (0600, keyed by a hash of the id) in ``path`` so a console restart
    logs nobody out; a session ends after ``IDLE_S`` without a request or ``ABSOLUTE_S``
    after login, whichever comes first.
    """

    IDLE_S = 8 * 3600
    ABSOLUTE_S = 12 * 3600
    MAX_SESSIONS = 5000
    SAVE_SEEN_S = 60.0  # "last seen" is saved at most this often per session

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time,
                 path: Path | None = None) -> None:
        self.key = key
        self.clock = clock
        self.path = Path(path) if path else None
        self._lock = threading.RLock()
        self._data: OrderedDict[str, dict] = OrderedDict()
        self._saved_seen: dict[str, float] = {}
        self._load()

    def _sign(self, sid: str) -> str:
        return hmac.new(self.key, sid.encode(), hashlib.sha256).hexdigest()[:32]

    @staticmethod
    def _key(sid: str) -> str:
        return hashlib.sha256(sid.encode()).hexdigest()

    def cookie_value(self, sid: str) -> str:
        return f"{sid}.{self._sign(sid)}"

    def new(self, user: str | None = None) -> tuple[str, dict]:
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        session = {"user": user, "csrf": secrets.token_urlsafe(32), "seen": now,
                   "created": now, "flash": []}
        with self._lock:
            self._data[self._key(sid)] = session
            while len(self._data) > self.MAX_SESSIONS:
                self._data.popitem(last=False)
            if user:
                self._save()
        return sid, session

    def _expired(self, session: dict, now: float) -> bool:
        return (now - session["seen"] > self.IDLE_S
                or now - session.get("created", session["seen"]) > self.ABSOLUTE_S)

    def lookup(self, cookie: str | None) -> tuple[str, dict] | None:
        if not cookie or "." not in cookie:
            return None
        sid, sig = cookie.rsplit(".", 1)
        if not hmac.compare_digest(sig, self._sign(sid)):
            return None
        key, now = self._key(sid), self.clock()
        with self._lock:
            session = self._data.get(key)
            if session is None or self._expired(session, now):
                if self._data.pop(key, None) and session.get("user"):
                    self._save()
                return None
            session["seen"] = now
            self._data.move_to_end(key)
            if session.get("user") and now - self._saved_seen.get(key, 0.0) > self.SAVE_SEEN_S:
                self._save()
        return sid, session

    def drop(self, sid: str) -> None:
        with self._lock:
            gone = self._data.pop(self._key(sid), None)
            if gone and gone.get("user"):
                self._save()

    def drop_user(self, user: str) -> None:
        """End every session of ``user`` (after a password change, a new role, a deletion)."""
        with self._lock:
            for key in [k for k, d in self._data.items() if d.get("user") == user]:
                del self._data[key]
            self._save()

    # ---- persistence --------------------------------------------------------------
    def _save(self) -> None:
        if self.path is None:
            return
        now = self.clock()
        keep = {k: {f: d[f] for f in ("user", "csrf", "seen", "created")}
                for k, d in self._data.items() if d.get("user") and not self._expired(d, now)}
        try:
            atomic_write_bytes(self.path, json.dumps(keep).encode(), mode=0o600)
        except OSError as exc:
            logger.warning("console sessions not saved (logins end at restart): %s", exc)
            return
        self._saved_seen = {k: d["seen"] for k, d in keep.items()}

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            saved = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            logger.warning("console sessions file %s unreadable (%s); everyone logs in again",
                           self.path, exc)
            return
        now = self.clock()
        for key, d in sorted(saved.items(), key=lambda kv: kv[1].get("seen", 0)):
            session = {"user": d.get("user"), "csrf": d.get("csrf"), "seen": float(d.get("seen", 0)),
                       "created": float(d.get("created", 0)), "flash": []}
            if session["user"] and session["csrf"] and not self._expired(session, now):
                self._data[key] = session
        self._saved_seen = {k: d["seen"] for k, d in self._data.items()}


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
