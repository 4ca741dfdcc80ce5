"""Cross-cutting security of the console: sessions, login requirement, CSRF, body limits,
security headers and error pages (a plugin plus hooks; no route knows about them)."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import bottle

from console.auth import csrf_ok
from console.kiosk import COOKIE as KIOSK_COOKIE, COOKIE_MAX_AGE_S, is_loopback
from console.users import ADMIN, OPERATOR
from console.prelogin import prelogin_ok, prelogin_token

logger = logging.getLogger(__name__)

COOKIE = "rc_session"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSP = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
       "style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
FORM_OVERHEAD = 256 * 1024  # multipart headers and text fields on top of the file bytes


class _LimitedInput:
    """wsgi.input wrapper that refuses to read more than ``limit`` bytes."""

    def __init__(self, stream, limit: int) -> None:
        self.stream, self.left = stream, limit

    def _take(self, data: bytes) -> bytes:
        self.left -= len(data)
        if self.left < 0:
            raise bottle.HTTPError(413, "upload too large")
        return data

    def read(self, size: int = -1) -> bytes:
        return self._take(self.stream.read(size if size is not None and size >= 0 else self.left + 1))

    def readline(self, size: int = -1) -> bytes:
        return self._take(self.stream.readline(size))


def set_session_cookie(ctx, sid: str) -> None:
    bottle.response.set_cookie(COOKIE, ctx.sessions.cookie_value(sid), path="/", httponly=True,
                               samesite="strict", secure=ctx.config.console.https)


def ensure_session(ctx) -> str:
    """The CSRF token of this request: the session's, or for an anonymous visitor a
    stateless pre-login token (console.prelogin); never a server-side session."""
    session = bottle.request.environ.get("rc.session")
    if session is not None:
        return session["csrf"]
    return prelogin_token(ctx.sessions.key, ctx.config.console.https, ctx.clock)


def rotate_session(ctx, user: str) -> dict:
    """Log ``user`` in with a NEW session id (no fixation); the old id stops working."""
    env = bottle.request.environ
    if env.get("rc.sid"):
        ctx.sessions.drop(env["rc.sid"])
    sid, session = ctx.sessions.new(user)
    env["rc.sid"], env["rc.session"] = sid, session
    set_session_cookie(ctx, sid)
    return session


def install_hooks(app: bottle.Bottle, ctx) -> None:
    limit = int(ctx.config.console.max_upload_mb * 1024 * 1024) + FORM_OVERHEAD
    # Bottle keeps multipart parts under MEMFILE_MAX (100 KiB) in memory and refuses a
    # request whose in-memory parts add up to more ("Memory limit reached."): three 40 KB
    # photos failed. The body is already bounded by ``limit`` below.
    bottle.BaseRequest.MEMFILE_MAX = max(bottle.BaseRequest.MEMFILE_MAX, limit)

    def before() -> None:
        env = bottle.request.environ
        found = ctx.sessions.lookup(bottle.request.get_cookie(COOKIE))
        env["rc.sid"], env["rc.session"] = found if found else (None, None)
        if bottle.request.method in UNSAFE:
            length = bottle.request.content_length
            if length > limit:
                raise bottle.HTTPError(413, f"upload too large: {length / 1048576:.1f} MiB "
                                            f"(limit {ctx.config.console.max_upload_mb:g} MiB per request)")
            if length < 0 and "chunked" in env.get("HTTP_TRANSFER_ENCODING", "").lower():
                raise bottle.HTTPError(411, "send a Content-Length")
            env["wsgi.input"] = _LimitedInput(env["wsgi.input"], max(length, 0))

    def after() -> None:
        add_security_headers(ctx)

    app.add_hook("before_request", before)
    app.add_hook("after_request", after)
    _error_pages(app, ctx)


def add_security_headers(ctx) -> None:
    """CSP without inline script, no framing, nosniff, no referrer, HSTS on HTTPS."""
    headers = bottle.response
    headers.set_header("Content-Security-Policy", CSP)
    headers.set_header("X-Frame-Options", "DENY")
    headers.set_header("X-Content-Type-Options", "nosniff")
    headers.set_header("Referrer-Policy", "no-referrer")
    headers.set_header("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
    if ctx.config.console.https:
        headers.set_header("Strict-Transport-Security", "max-age=31536000")
    if "Cache-Control" not in headers:
        headers.set_header("Cache-Control", "no-store")


def _error_pages(app: bottle.Bottle, ctx) -> None:
    def handler(error: bottle.HTTPError) -> str:
        add_security_headers(ctx)
        if error.status_code >= 500 and error.exception is not None:
            logger.error("console error on %s: %r", bottle.request.path, error.exception)
            error.body = "internal error in the console (see its log)"
        message = error.body if isinstance(error.body, str) and error.body else error.status_line
        if bottle.request.path.startswith("/api/"):
            bottle.response.content_type = "application/json"
            return json.dumps({"error": message})
        bottle.response.content_type = "text/html; charset=utf-8"
        return bottle.template(
            "<!doctype html><title>{{code}}</title><link rel='stylesheet' href='/static/style.css'>"
            "<main class='narrow'><h1>{{code}}</h1><p>{{message}}</p><p><a href='/'>Back</a></p></main>",
            code=error.status_code, message=message)

    for code in (400, 401, 403, 404, 405, 411, 413, 500, 502, 503):
        app.error_handler[code] = handler


class SecurityPlugin:
    """Login, role and CSRF checks. Route options: ``public=True`` (no login needed),
    ``role="operator"`` (operators too; every other route is admin-only), ``kiosk=True``
    (also the device's own screen and browsers holding the kiosk token)."""

    name = "rollcall-security"
    api = 2

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def apply(self, callback, route):
        public = route.config.get("public", False)
        kiosk = route.config.get("kiosk", False)
        operator_ok = route.config.get("role") == OPERATOR

        def wrapper(*args, **kwargs):
            if bottle.request.method in UNSAFE:
                _check_csrf(self.ctx, public)
            if not public and not (kiosk and kiosk_allowed(self.ctx)):
                _check_login(self.ctx, operator_ok)
            return callback(*args, **kwargs)

        return wrapper


def _check_csrf(ctx, public: bool) -> None:
    """The session's CSRF token, or (anonymous, on a public page) the pre-login token."""
    request = bottle.request
    token = request.headers.get("X-CSRF-Token") or request.forms.get("csrf")
    session = request.environ.get("rc.session")
    if not (csrf_ok(session, token) or (session is None and public
                                        and prelogin_ok(ctx.sessions.key, token, ctx.clock))):
        logger.warning("CSRF check failed for %s %s", request.method, request.path)
        raise bottle.HTTPError(403, "the form expired or did not come from this "
                                    "console; reload the page and try again")


def _check_login(ctx, operator_ok: bool) -> None:
    """Redirect to setup/login, or 403 when the user's role may not use this route."""
    request = bottle.request
    if not ctx.users.exists():
        bottle.redirect("/setup")
    role = ctx.role()
    if role is None:
        if request.environ.get("rc.sid") and ctx.user():  # the user was deleted meanwhile
            ctx.sessions.drop(request.environ["rc.sid"])
        if request.path.startswith("/api/"):
            raise bottle.HTTPError(401, "log in first")
        here = request.path + ("?" + request.query_string if request.query_string else "")
        bottle.redirect("/login?next=" + quote(here, safe="/"))
    if role != ADMIN and not operator_ok:
        raise bottle.HTTPError(403, f"this page needs an admin; you are logged in as "
                                    f"{ctx.user()} ({role})")


def kiosk_allowed(ctx) -> bool:
    """The device's own screen (loopback) or a browser holding the kiosk token. A valid
    ``?token=`` is moved into an HttpOnly cookie."""
    request = bottle.request
    if is_loopback(request.environ.get("REMOTE_ADDR")):
        return True
    token = request.query.get("token")
    if token and ctx.kiosk.valid(token):
        bottle.response.set_cookie(KIOSK_COOKIE, token, path="/", httponly=True, samesite="strict",
                                   secure=ctx.config.console.https, max_age=COOKIE_MAX_AGE_S)
        return True
    return ctx.kiosk.valid(request.get_cookie(KIOSK_COOKIE))
