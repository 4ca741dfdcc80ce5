"""Login, logout, first-run account creation and static files."""

from __future__ import annotations

import hmac
import logging
import re
import threading
from pathlib import Path

import bottle

from console.auth import password_problem
from console.security import ensure_session, rotate_session
from console.throttle import Verdict
from console.users import ADMIN

logger = logging.getLogger(__name__)

STATIC = str(Path(__file__).with_name("static"))
USER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


NEXT_RE = re.compile(r"^/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@%/?#-]{0,500}$")


def safe_next(url: str | None) -> str:
    """Only a plain same-origin path is followed after login (no open redirect): it starts
    with one ``/``, has no ``//`` or backslash anywhere, and only printable URL characters
    (a tab, CR or LF could be dropped by a browser and turn ``/\t/evil`` into ``//evil``)."""
    if url and NEXT_RE.fullmatch(url) and "//" not in url and "\\" not in url:
        return url
    return "/"


def client_id() -> str:
    return bottle.request.environ.get("REMOTE_ADDR") or "unknown"


def _setup_error(ctx, form) -> str | None:
    code = ctx.users.setup_code()
    if code and not hmac.compare_digest(form.get("setup_code", "").strip().encode(), code.encode()):
        return "wrong setup code"
    user = form.get("user", "").strip()
    if not USER_RE.match(user):
        return "user name: 1-32 letters, digits, '_', '.', '-'"
    if form.get("password", "") != form.get("password2", ""):
        return "the two passwords differ"
    return password_problem(form.get("password", ""), user)


def _audit_failure(ctx, user: str, who: str, action: str = "login.failed") -> None:
    """Audit a failed login (already counted by the limiters), and the lockout when this
    failure starts one (for the address or for the account)."""
    logger.warning("console %s for user %r from %s", action, user[:32], who)
    ctx.audit(action, user[:32] or None, {"client": who}, actor="anonymous")
    wait = max(ctx.limiter.wait_s(who), ctx.gate.by_account.wait_s(user.lower()) if ctx.gate else 0.0)
    if wait > 0:
        ctx.audit("login.locked", user[:32] or None, {"client": who, "for_s": int(wait) + 1},
                  actor="system")


def register(app: bottle.Bottle, ctx) -> None:
    @app.get("/static/<name:path>", public=True)
    def static(name: str):
        response = bottle.static_file(name, root=STATIC)
        response.set_header("Cache-Control", "max-age=3600")
        return response

    @app.get("/login", public=True)
    def login_form():
        if not ctx.users.exists():
            bottle.redirect("/setup")
        ensure_session(ctx)
        return ctx.render("login.tpl", title="Log in", error=None, user_name="",
                          next_url=safe_next(bottle.request.query.get("next")))

    @app.post("/login", public=True)
    def login():
        form, who = bottle.request.forms, client_id()
        user = (form.getunicode("user") or "").strip()[:64]
        password = form.getunicode("password") or ""
        ok, verdict = ctx.gate.check(who, user, lambda: ctx.users.verify(user, password) is not None)
        if ok:
            rotate_session(ctx, user)
            ctx.audit("login", user, {"client": who})
            bottle.redirect(safe_next(form.getunicode("next")))
        if verdict.allowed:
            verdict = Verdict(False, 401, "wrong user name or password")
            _audit_failure(ctx, user, who)
        bottle.response.status = verdict.status
        if verdict.status == 503:
            bottle.response.set_header("Retry-After", "2")
        ensure_session(ctx)
        return ctx.render("login.tpl", title="Log in", error=verdict.message, user_name=user,
                          next_url=safe_next(form.getunicode("next")))

    @app.post("/logout", role="operator")
    def logout():
        ctx.audit("logout", ctx.user())
        ctx.sessions.drop(bottle.request.environ["rc.sid"])
        bottle.response.delete_cookie("rc_session", path="/")
        bottle.redirect("/login")

    @app.get("/setup", public=True)
    def setup_form():
        if ctx.users.exists():
            bottle.redirect("/login")
        ensure_session(ctx)
        return ctx.render("setup.tpl", title="First-run setup", error=None, user_name="admin",
                          need_code=bool(ctx.users.setup_code()))

    setup_lock = threading.Lock()  # two first-run forms at once: only one admin is created

    @app.post("/setup", public=True)
    def setup():
        form = bottle.request.forms.decode()
        with setup_lock:
            if ctx.users.exists():
                raise bottle.HTTPError(403, "the admin account already exists; log in instead")
            wait = ctx.limiter.wait_s(client_id())
            error = (f"too many failed attempts; try again in {int(wait) + 1} s" if wait > 0
                     else _setup_error(ctx, form))
            if error == "wrong setup code":  # the setup code is guessed like a password
                ctx.limiter.failed(client_id())
                _audit_failure(ctx, form.get("user", "").strip(), client_id(), "setup.code_wrong")
            if error:
                bottle.response.status = 429 if wait > 0 else 400
                ensure_session(ctx)
                return ctx.render("setup.tpl", title="First-run setup", error=error,
                                  user_name=form.get("user", ""), need_code=bool(ctx.users.setup_code()))
            user = form.get("user").strip()
            ctx.users.add(user, form.get("password"), ADMIN, bootstrap=True)
            ctx.users.consume_setup_code()
        rotate_session(ctx, user)
        ctx.audit("setup.admin_created", user)
        ctx.flash("Admin account created. Now set up the device.")
        bottle.redirect("/setup/device")
