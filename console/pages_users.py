"""Console users (admin only) and each user's own account page (password change)."""

from __future__ import annotations

import logging

import bottle

from console.auth import password_problem
from console.pages_auth import USER_RE
from console.security import rotate_session
from console.users import ROLES, UserError

logger = logging.getLogger(__name__)

AUDIT_ACTIONS = {"role": "user.role_changed", "password": "user.password_reset",
                 "delete": "user.deleted"}


def _new_password_problem(form, user: str) -> str | None:
    if form.get("password", "") != form.get("password2", ""):
        return "the two passwords differ"
    return password_problem(form.get("password", ""), user)


def _add_user(ctx, form) -> None:
    user, role = form.get("user", "").strip(), form.get("role", "")
    problem = (None if USER_RE.match(user) else "user name: 1-32 letters, digits, '_', '.', '-'")
    problem = problem or _new_password_problem(form, user)
    try:
        if problem:
            raise UserError(problem)
        ctx.users.add(user, form.get("password"), role)
    except UserError as exc:
        ctx.flash(f"user not added: {exc}", "error")
        return
    ctx.audit("user.created", user, {"role": role})
    ctx.flash(f"User {user} ({role}) added.")


def _change_user(ctx, user: str, action: str, form) -> None:
    """Role change, password reset or deletion of ``user`` by an admin."""
    if action == "role":
        ctx.users.set_role(user, form.get("role", ""))
        details = {"role": form.get("role")}
    elif action == "password":
        problem = _new_password_problem(form, user)
        if problem:
            raise UserError(problem)
        ctx.users.set_password(user, form.get("password"))
        details = {}
    else:
        if user == ctx.user():
            raise UserError("you cannot delete the account you are logged in with")
        ctx.users.delete(user)
        details = {}
    ctx.sessions.drop_user(user)  # a new role or password applies at the next login
    ctx.audit(AUDIT_ACTIONS[action], user, details)


def register(app: bottle.Bottle, ctx) -> None:
    @app.get("/users")
    def users():
        return ctx.render("users.tpl", title="Users", nav="/users", users=ctx.users.list(),
                          roles=ROLES)

    @app.post("/users")
    def users_add():
        _add_user(ctx, bottle.request.forms.decode())
        bottle.redirect("/users")

    @app.post("/users/<user>/<action:re:role|password|delete>")
    def user_change(user: str, action: str):
        me = ctx.user()
        try:
            _change_user(ctx, user, action, bottle.request.forms.decode())
        except UserError as exc:
            ctx.flash(f"user {user} not changed: {exc}", "error")
            bottle.redirect("/users")
        if user == me and ctx.users.role(me):
            rotate_session(ctx, me)  # the admin who changed their own account stays logged in
        ctx.flash(f"User {user} deleted." if action == "delete" else f"User {user}: {action} changed.")
        bottle.redirect("/users")

    @app.get("/account", role="operator")
    def account():
        return ctx.render("account.tpl", title="My account", nav="/account")
