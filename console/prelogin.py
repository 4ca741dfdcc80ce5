"""Stateless CSRF protection for anonymous pages (login, first-run setup).

An anonymous visitor gets NO server-side session (thousands of cookie-less ``GET /login``
used to evict the logged-in admins). Instead a signed cookie ``rc_pre`` =
``<nonce>.<issued UNIX s>.<HMAC>`` carries a random nonce, and the form's CSRF token is
``HMAC(key, "csrf:" + nonce)``: the server checks both with its session key and stores
nothing. The cookie is good for ``MAX_AGE_S``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

import bottle

COOKIE = "rc_pre"
MAX_AGE_S = 2 * 3600


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]


def _valid_nonce(key: bytes, cookie: str | None, now: float) -> str | None:
    parts = (cookie or "").split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    nonce, issued, mac = parts
    if not hmac.compare_digest(mac, _mac(key, f"{nonce}.{issued}")):
        return None
    return nonce if 0 <= now - int(issued) <= MAX_AGE_S else None


def prelogin_token(key: bytes, https: bool, clock=time.time) -> str:
    """The CSRF token for this anonymous visitor (sets the ``rc_pre`` cookie when needed)."""
    env = bottle.request.environ
    if "rc.pre" not in env:
        now = clock()
        nonce = _valid_nonce(key, bottle.request.get_cookie(COOKIE), now)
        if nonce is None:
            nonce, issued = secrets.token_urlsafe(18), str(int(now))
            bottle.response.set_cookie(COOKIE, f"{nonce}.{issued}.{_mac(key, f'{nonce}.{issued}')}",
                                       path="/", httponly=True, samesite="strict", secure=https,
                                       max_age=MAX_AGE_S)
        env["rc.pre"] = _mac(key, "csrf:" + nonce)
    return env["rc.pre"]


def prelogin_ok(key: bytes, token: str | None, clock=time.time) -> bool:
    """True when ``token`` matches the visitor's valid ``rc_pre`` cookie."""
    nonce = _valid_nonce(key, bottle.request.get_cookie(COOKIE), clock())
    if nonce is None or not token:
        return False
    return hmac.compare_digest(token.encode(), _mac(key, "csrf:" + nonce).encode())
