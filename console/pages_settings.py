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
from firmware.config import machine_device_id
from firmware.errors import ConfigError, ControlError
from firmware.runtime.tuning import threshold_warning

logger = logging.getLogger(__name__)

PARTS = ("green", "amber", "red", "buzzer", "relay", "button")


# Each settings form's inputs and the configuration key each one sets: a refused save shows
# the problem beside the input that caused it.
FORM_KEYS = {
    "recognition": {"security_level": "recognition.security_level",
                    "match_threshold": "recognition.match_threshold",
                    "margin": "recognition.margin", "policy": "liveness.policy"},
    "retention": {"retention_days": "store.retention_days",
                  "unknown_retention_days": "store.unknown_retention_days",
                  "audit_retention_days": "store.audit_retention_days"},
    "mqtt": {"mqtt_enabled": "mqtt.enabled", "mqtt_host": "mqtt.host", "mqtt_port": "mqtt.port",
             "mqtt_username": "mqtt.username", "mqtt_tls": "mqtt.tls"},
}


class _Numbers:
    """Reads number inputs, collecting every unreadable one as {config key: problem}."""

    def __init__(self, form) -> None:
        self.form = form
        self.problems: dict[str, str] = {}

    def read(self, name: str, key: str, cast, default=None):
        raw = (self.form.get(name) or "").strip()
        if raw == "":
            return default
        try:
            return cast(raw)
        except ValueError:
            self.problems[key] = f"not {'a whole number' if cast is int else 'a number'}: {raw[:40]!r}"
            return default

    def check(self) -> None:
        if self.problems:
            raise ConfigError("; ".join(f"{k}: {v}" for k, v in self.problems.items()), self.problems)


def _mqtt_from_form(form, numbers: _Numbers) -> dict:
    return {"host": form.get("mqtt_host", "").strip(), "port": numbers.read("mqtt_port", "mqtt.port", int, 1883),
            "tls": form.get("mqtt_tls") == "1"}


def _changes(kind: str, form) -> dict:
    """{section: {field: value}} for one settings form (ConfigError naming each unreadable number)."""
    numbers = _Numbers(form)
    if kind == "recognition":
        recognition = {"match_threshold": numbers.read("match_threshold", "recognition.match_threshold", float),
                       "margin": numbers.read("margin", "recognition.margin", float)}
        if form.get("security_level"):
            recognition["security_level"] = form.get("security_level")
        changes = {"recognition": recognition, "liveness": {"policy": form.get("policy")}}
    elif kind == "retention":
        store = {}
        for name, key in FORM_KEYS["retention"].items():  # input names are the store's field names
            value = numbers.read(name, key, int)
            if value is not None:
                store[name] = value
            elif name != "unknown_retention_days" and key not in numbers.problems:
                numbers.problems[key] = "required"
        changes = {"store": store}
    elif kind == "mqtt":
        mqtt = _mqtt_from_form(form, numbers)
        mqtt.update(enabled=form.get("mqtt_enabled") == "1",
                    username=form.get("mqtt_username", "").strip())
        changes = {"mqtt": mqtt}
    elif kind == "device":
        gpio = {part: {"pin": numbers.read(f"pin_{part}", f"gpio.{part}.pin", int)} for part in PARTS}
        device = {k: form.get(k, "").strip() for k in ("name", "site", "room", "timezone")}
        if "id" in form:  # an id field left empty is refused; a form without one keeps the id
            device["id"] = form.get("id", "").strip()
        changes = {"device": device,
                   "camera": {"source": form.get("camera_source", "auto").strip() or "auto"},
                   "mqtt": _mqtt_from_form(form, numbers), "gpio": gpio}
    else:
        raise bottle.HTTPError(404, "no such settings form")
    numbers.check()
    return changes


def _save(ctx, kind: str, form) -> dict[str, str] | None:
    """Save one settings form; None when saved, else {dotted key: problem} (flashed too)."""
    try:
        config, message, diff = ctx.save_config(_changes(kind, form))
    except ConfigError as exc:
        ctx.flash(f"not saved: {exc}", "error")
        return exc.fields or {"": str(exc)}
    except (ValueError, TypeError) as exc:
        ctx.flash(f"not saved: {exc}", "error")
        return {"": str(exc)}
    except OSError as exc:  # StoreError from the atomic write: permissions, full disk
        logger.error("cannot write the config file %s: %s", ctx.config_path, exc)
        ctx.flash(f"not saved: cannot write {ctx.config_path} ({exc})", "error")
        return {"": str(exc)}
    ctx.audit(f"settings.{kind}", None, diff or {"changed": "nothing"})
    ctx.flash(f"Saved. {message}")
    if kind == "recognition":
        warning = threshold_warning(config.recognition.embedder, config.recognition.match_threshold)
        if warning:
            ctx.flash(warning, "warn")
    return None


def audit_details(details: dict | None) -> str:
    """An audit record's details as 'key: value; ...', a store change ``[old, new]`` as
    'old -> new' (nested ``changes`` flattened)."""
    parts = []
    for key, value in (details or {}).items():
        if key == "changes" and isinstance(value, dict):
            parts.append(audit_details(value))
        elif isinstance(value, list) and len(value) == 2:
            parts.append(f"{key}: {_plain(value[0])} -> {_plain(value[1])}")
        else:
            parts.append(f"{key}: {_plain(value)}")
    return "; ".join(p for p in parts if p)


def _plain(value) -> str:
    return "(none)" if value is None else str(value)


def _back(default: str) -> str:
    """Where the form came from (same-site paths only), else ``default``."""
    target = bottle.request.forms.get("back") or ""
    return target if target.startswith("/") and not target.startswith("//") else default


def _kiosk_url(ctx) -> str | None:
    token = ctx.kiosk.current()
    if not token:
        return None
    return f"{bottle.request.urlparts.scheme}://{bottle.request.get_header('Host', 'localhost')}/kiosk?token={token}"


def _device_page(ctx, form, errors: dict[str, str]) -> str:
    """The device setup form; after a refused save it shows what was typed and, by each
    field, what is wrong with it."""
    zones = sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc"))
    cfg = ctx.reload_config_file()
    if not cfg.device.id and form is None:
        cfg.device.id = machine_device_id()  # proposed; saved with the form

    def val(name: str, current) -> str:
        value = form.get(name) if form is not None else current
        return "" if value is None else str(value)

    return ctx.render("setup_device.tpl", title="Device setup", nav="/settings", cfg=cfg,
                      zones=zones, val=val, err=lambda key: errors.get(key, ""),
                      tls=(form.get("mqtt_tls") == "1") if form is not None else cfg.mqtt.tls)


def register(app: bottle.Bottle, ctx) -> None:
    def settings_page(kind: str | None = None, form=None, errors: dict[str, str] | None = None) -> str:
        """The settings page; after a refused save, the refused form shows what was typed
        and, beside each input, what is wrong with it (the flash says it all in one line)."""
        errors = errors or {}
        cfg = ctx.reload_config_file()

        def val(name: str, current):
            if kind is not None and name in FORM_KEYS[kind]:
                return form.get(name, "")
            return "" if current is None else current

        def checked(name: str, current: bool) -> bool:
            return form.get(name) == "1" if kind is not None and name in FORM_KEYS[kind] else current

        return ctx.render("settings.tpl", title="Settings", nav="/settings", cfg=cfg,
                          kiosk_url=_kiosk_url(ctx),
                          val=val, checked=checked, err=lambda key: errors.get(key, ""))

    @app.get("/settings")
    def settings():
        return settings_page()

    @app.post("/settings/restart")
    def restart_firmware():
        try:
            answer = ctx.fw.restart()
        except ControlError as exc:
            ctx.flash(f"firmware not restarted: {exc}", "error")
        else:
            ctx.audit("firmware.restart")
            ctx.flash(answer.get("message", "restarting"), "ok" if answer.get("ok") else "error")
        bottle.redirect(_back("/settings"))

    @app.post("/settings/kiosk/<action:re:renew|revoke>")
    def kiosk_token(action: str):
        if action == "renew":
            ctx.kiosk.renew()
            ctx.flash("New kiosk link made; screens with the old link stop showing the kiosk.")
        else:
            ctx.kiosk.revoke()
            ctx.flash("Kiosk link revoked: only the device's own screen shows the kiosk now.")
        ctx.audit(f"kiosk.link_{'renewed' if action == 'renew' else 'revoked'}")
        bottle.redirect("/settings#kiosk")

    @app.post("/settings/password", role="operator")
    def change_password():
        form = bottle.request.forms.decode()
        user = ctx.user()
        problem = password_problem(form.get("new_password", ""), user)
        if not ctx.users.verify(user, form.get("old_password", "")):
            problem = "the current password is wrong"
        elif form.get("new_password") != form.get("new_password2"):
            problem = "the two new passwords differ"
        if problem:
            ctx.flash(f"password not changed: {problem}", "error")
        else:
            ctx.users.set_password(user, form.get("new_password"))
            ctx.sessions.drop_user(user)
            rotate_session(ctx, user)
            ctx.audit("settings.password_changed", user)
            ctx.flash("Password changed; other sessions were logged out.")
        bottle.redirect("/account")

    @app.post("/settings/<kind:re:recognition|retention|mqtt>")
    def settings_save(kind: str):
        form = bottle.request.forms.decode()
        errors = _save(ctx, kind, form)
        if errors is None:
            bottle.redirect("/settings")
        bottle.response.status = 400
        return settings_page(kind, form, errors)

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
        return _device_page(ctx, None, {})

    @app.post("/setup/device")
    def setup_device_save():
        form = bottle.request.forms.decode()
        errors = _save(ctx, "device", form)
        if errors is None:
            bottle.redirect("/")
        bottle.response.status = 400
        return _device_page(ctx, form, errors)

    @app.post("/api/broker-test")
    def broker_test():
        try:
            form = bottle.request.forms.decode()
            numbers = _Numbers(form)
            mqtt = _mqtt_from_form(form, numbers)
            numbers.check()  # ConfigError is a ValueError
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
        return ctx.render("audit.tpl", title="Audit log", nav="/audit", items=items,
                          zone=ctx.config.device.timezone, details=audit_details)
