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
from console.users import ADMIN

logger = logging.getLogger(__name__)

STATIC = str(Path(__file__).with_name("static"))
USER_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


def safe_next(url: str | None) -> str:
    """Only same-site absolute paths are followed after login (no open redirect)."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
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


def _login_failed(ctx, user: str, who: str, action: str = "login.failed") -> None:
    """Count the failure, audit it, and audit the lockout when this failure starts one."""
    ctx.limiter.failed(who)
    logger.warning("console %s for user %r from %s", action, user[:32], who)
    ctx.audit(action, user[:32] or None, {"client": who}, actor="anonymous")
    wait = ctx.limiter.wait_s(who)
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
        wait = ctx.limiter.wait_s(who)
        user = form.getunicode("user", "").strip()
        error = None
        if wait > 0:
            error = f"too many failed attempts; try again in {int(wait) + 1} s"
        elif ctx.users.verify(user, form.getunicode("password", "")):
            ctx.limiter.succeeded(who)
            rotate_session(ctx, user)
            ctx.audit("login", user, {"client": who})
            bottle.redirect(safe_next(form.getunicode("next")))
        else:
            error = "wrong user name or password"
            _login_failed(ctx, user, who)
        bottle.response.status = 429 if wait > 0 else 401
        return ctx.render("login.tpl", title="Log in", error=error, user_name=user,
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
                _login_failed(ctx, form.get("user", "").strip(), client_id(), "setup.code_wrong")
            if error:
                bottle.response.status = 429 if wait > 0 else 400
                return ctx.render("setup.tpl", title="First-run setup", error=error,
                                  user_name=form.get("user", ""), need_code=bool(ctx.users.setup_code()))
            user = form.get("user").strip()
            ctx.users.add(user, form.get("password"), ADMIN, bootstrap=True)
            ctx.users.consume_setup_code()
        rotate_session(ctx, user)
        ctx.audit("setup.admin_created", user)
        ctx.flash("Admin account created. Now set up the device.")
        bottle.redirect("/setup/device")
