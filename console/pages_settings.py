"""Settings (thresholds, retention, MQTT, password), device setup, tests, diagnostics, audit."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from zoneinfo import available_timezones

import bottle

from console.auth import password_problem
from console.diagnostics import build_bundle
from console.pages_people import fw_call
from console.security import rotate_session
from firmware.errors import ConfigError, ControlError
from firmware.runtime.tuning import threshold_warning

logger = logging.getLogger(__name__)

PARTS = ("green", "amber", "red", "buzzer", "relay", "button")


def _opt_float(value: str | None) -> float | None:
    return None if value in (None, "") else float(value)


def _opt_int(value: str | None) -> int | None:
    return None if value in (None, "") else int(value)


def _mqtt_from_form(form) -> dict:
    return {"host": form.get("mqtt_host", "").strip(), "port": int(form.get("mqtt_port") or 1883),
            "tls": form.get("mqtt_tls") == "1"}


def _changes(kind: str, form) -> dict:
    """{section: {field: value}} for one settings form (ValueError on bad numbers)."""
    if kind == "recognition":
        recognition = {"match_threshold": _opt_float(form.get("match_threshold")),
                       "margin": _opt_float(form.get("margin"))}
        if form.get("security_level"):
            recognition["security_level"] = form.get("security_level")
        return {"recognition": recognition, "liveness": {"policy": form.get("policy")}}
    if kind == "retention":
        return {"store": {"retention_days": int(form.get("retention_days")),
                          "audit_retention_days": int(form.get("audit_retention_days"))}}
    if kind == "mqtt":
        mqtt = _mqtt_from_form(form)
        mqtt.update(enabled=form.get("mqtt_enabled") == "1",
                    username=form.get("mqtt_username", "").strip())
        return {"mqtt": mqtt}
    if kind == "device":
        gpio = {part: {"pin": _opt_int(form.get(f"pin_{part}"))} for part in PARTS}
        return {"device": {k: form.get(k, "").strip() for k in ("name", "site", "room", "timezone")},
                "camera": {"source": form.get("camera_source", "auto").strip() or "auto"},
                "mqtt": _mqtt_from_form(form), "gpio": gpio}
    raise bottle.HTTPError(404, "no such settings form")


def _save(ctx, kind: str, form) -> bool:
    try:
        config, message = ctx.save_config(_changes(kind, form))
    except (ConfigError, ValueError, TypeError) as exc:
        ctx.flash(f"not saved: {exc}", "error")
        return False
    except OSError as exc:  # StoreError from the atomic write: permissions, full disk
        logger.error("cannot write the config file %s: %s", ctx.config_path, exc)
        ctx.flash(f"not saved: cannot write {ctx.config_path} ({exc})", "error")
        return False
    ctx.audit(f"settings.{kind}", None, {"changed": kind})
    ctx.flash(f"Saved. {message}")
    if kind == "recognition":
        warning = threshold_warning(config.recognition.embedder, config.recognition.match_threshold)
        if warning:
            ctx.flash(warning, "warn")
    return True


def register(app: bottle.Bottle, ctx) -> None:
    @app.get("/settings")
    def settings():
        return ctx.render("settings.tpl", title="Settings", nav="/settings",
                          cfg=ctx.reload_config_file())

    @app.post("/settings/password")
    def change_password():
        form = bottle.request.forms.decode()
        user = ctx.user()
        problem = password_problem(form.get("new_password", ""), user)
        if not ctx.admin.verify(user, form.get("old_password", "")):
            problem = "the current password is wrong"
        elif form.get("new_password") != form.get("new_password2"):
            problem = "the two new passwords differ"
        if problem:
            ctx.flash(f"password not changed: {problem}", "error")
        else:
            ctx.admin.set_password(user, form.get("new_password"))
            ctx.sessions.drop_user(user)
            rotate_session(ctx, user)
            ctx.audit("settings.password_changed", user)
            ctx.flash("Password changed; other sessions were logged out.")
        bottle.redirect("/settings")

    @app.post("/settings/<kind:re:recognition|retention|mqtt>")
    def settings_save(kind: str):
        _save(ctx, kind, bottle.request.forms.decode())
        bottle.redirect("/settings")

    @app.get("/settings/diagnostics.zip")
    def diagnostics():
        status, error = ctx.firmware_status()
        audit = fw_call(ctx, ctx.fw.audit, 200)
        data = build_bundle(ctx.reload_config_file(), status, error, audit)
        ctx.audit("diagnostics.downloaded")
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        bottle.response.content_type = "application/zip"
        bottle.response.set_header("Content-Disposition",
                                   f'attachment; filename="rollcall-diagnostics-{stamp}.zip"')
        return data

    @app.get("/setup/device")
    def setup_device():
        zones = sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc"))
        return ctx.render("setup_device.tpl", title="Device setup", nav="/settings",
                          cfg=ctx.reload_config_file(), zones=zones)

    @app.post("/setup/device")
    def setup_device_save():
        ok = _save(ctx, "device", bottle.request.forms.decode())
        bottle.redirect("/" if ok else "/setup/device")

    @app.post("/api/broker-test")
    def broker_test():
        try:
            mqtt = _mqtt_from_form(bottle.request.forms.decode())
            return ctx.fw.test_broker(mqtt)
        except (ValueError, ControlError) as exc:
            return {"ok": False, "message": str(exc)}

    @app.post("/api/indicators-test")
    def indicators_test():
        try:
            return ctx.fw.test_indicators()
        except ControlError as exc:
            return {"ok": False, "message": str(exc)}

    @app.get("/audit")
    def audit():
        items = fw_call(ctx, ctx.fw.audit, 500, fallback=[])
        return ctx.render("audit.tpl", title="Audit log", nav="/audit", items=items)
