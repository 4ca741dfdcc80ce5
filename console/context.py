"""Shared state of one console app (config, control client, auth) and page helpers."""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from datetime import datetime
from zoneinfo import ZoneInfo

import bottle

from console.auth import LoginLimiter, Sessions
from console.bulkjobs import BulkJobs
from console.kiosk import KioskToken
from console.throttle import PasswordGate
from console.users import Users
from firmware.config import (Config, check_startable, config_diff, load_config, machine_device_id,
                             parse_config, write_config_atomic)
from firmware.control.client import ControlClient
from firmware.errors import ControlError
from firmware.runtime.logfiles import read_start_error

logger = logging.getLogger(__name__)

VIEWS = str(Path(__file__).with_name("views"))
STATUS_TTL_S = 1.0


@dataclass
class Context:
    config_path: Path
    config: Config
    client: ControlClient
    users: Users
    sessions: Sessions
    limiter: LoginLimiter
    kiosk: KioskToken
    clock: Callable[[], float] = time.time
    gate: PasswordGate | None = None
    bulk: BulkJobs = field(default_factory=BulkJobs)
    _status: tuple[float, dict | None, str | None] = (0.0, None, None)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache: dict = field(default_factory=dict)

    # --- request state -------------------------------------------------------------
    @staticmethod
    def session() -> dict | None:
        return bottle.request.environ.get("rc.session")

    def user(self) -> str | None:
        session = self.session()
        return session.get("user") if session else None

    def role(self) -> str | None:
        """The logged-in user's role now (None: not logged in, or the user was deleted)."""
        return self.users.role(self.user())

    def flash(self, message: str, kind: str = "ok") -> None:
        session = self.session()
        if session is not None:
            session["flash"].append((kind, message))

    # --- firmware ------------------------------------------------------------------
    @property
    def fw(self) -> ControlClient:
        """The firmware's control client acting for the logged-in user: the firmware's
        store audits every change it makes with that name (same journal step)."""
        return self.client.as_actor(self.user() or "anonymous")

    def firmware_status(self) -> tuple[dict | None, str | None]:
        """(status, None) or (None, error message); cached for a second."""
        with self._lock:
            at, status, error = self._status
            if time.monotonic() - at < STATUS_TTL_S:
                return status, error
        try:
            status, error = self.client.status(timeout=2), None
        except ControlError as exc:
            status, error = None, str(exc)
        with self._lock:
            self._status = (time.monotonic(), status, error)
        return status, error

    def cached(self, key: str, ttl_s: float, fetch: Callable[[], Any]) -> Any:
        """``fetch()`` at most once per ``ttl_s`` seconds (name lookups for big pages)."""
        with self._lock:
            hit = self._cache.get(key)
            if hit and time.monotonic() - hit[0] < ttl_s:
                return hit[1]
        value = fetch()
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def forget_status(self) -> None:
        """Drop the cached firmware status (after a change the next page must show)."""
        with self._lock:
            self._status = (0.0, None, None)

    def forget(self, key: str) -> None:
        with self._lock:
            self._cache.pop(key, None)

    def audit(self, action: str, target: str | None = None, details: dict | None = None,
              actor: str | None = None) -> None:
        """Audit a console event that changes no stored data (login, logout, settings
        file, download); ``actor`` defaults to the logged-in user. Changes to people,
        rosters and sessions are audited by the firmware's store itself. Logged locally if
        the firmware is down."""
        actor = actor or self.user() or "anonymous"
        try:
            self.client.as_actor(actor).record_event(action, target, details)
        except ControlError as exc:
            logger.warning("audit entry %s by %s not stored: %s", action, actor, exc)

    # --- config --------------------------------------------------------------------
    def reload_config_file(self) -> Config:
        self.config = load_config(self.config_path)
        return self.config

    def save_config(self, changes: dict[str, dict]) -> tuple[Config, str, dict]:
        """Validate ``{section: {field: value}}`` with the firmware schema and the firmware's
        own start checks, write atomically, ask the firmware to reload. Returns (config,
        message, {key: "old -> new"} with secrets masked); raises ConfigError."""
        old = self.reload_config_file()
        data = old.model_dump(mode="json", exclude_none=True)
        merged = copy.deepcopy(data)
        for section, values in changes.items():
            target = merged.setdefault(section, {})
            for key, value in values.items():
                if isinstance(value, dict):
                    target.setdefault(key, {}).update(value)
                elif value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
        if not merged.get("device", {}).get("id") and "id" not in changes.get("device", {}):
            merged.setdefault("device", {})["id"] = machine_device_id()  # a device id always exists
        config = parse_config(merged, "settings")
        check_startable(config)
        write_config_atomic(config, self.config_path)
        self.config = config
        try:
            answer = self.fw.reload_config()
            message = answer.get("message") or "the firmware reloaded the configuration"
        except ControlError as exc:
            message = f"saved; the firmware will use it when it starts ({exc})"
        return config, message, config_diff(old, config)

    # --- rendering -----------------------------------------------------------------
    def local_time(self, value: Any, seconds: bool = True) -> str:
        """A time (UNIX s or ISO-8601 string) as 'YYYY-MM-DD HH:MM:SS' in the device's time
        zone (``device.timezone``); '' for None, the value itself when it is not a time."""
        if value in (None, ""):
            return ""
        zone = ZoneInfo(self.config.device.timezone)
        try:
            if isinstance(value, (int, float)):
                moment = datetime.fromtimestamp(value, zone)
            else:
                moment = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(zone)
        except (ValueError, OverflowError, OSError):
            return str(value)
        return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")

    def render(self, name: str, **values: Any) -> str:
        session = self.session()
        flashes = list(session["flash"]) if session else []
        if session:
            session["flash"].clear()
        status, fw_error = self.firmware_status() if values.pop("need_status", True) else (None, None)
        start_error = read_start_error(self.config.paths.log_dir) if fw_error else None
        base = {"user": self.user(), "role": self.role(),
                "csrf": session["csrf"] if session else bottle.request.environ.get("rc.pre", ""),
                "flashes": flashes, "fw_error": fw_error, "fw_status": status,
                "fw_start_error": start_error, "when": self.local_time,
                "device_name": self.config.device.name, "https": self.config.console.https,
                "nav": values.get("nav", ""), "title": values.get("title", ""),
                "q": lambda value: quote(str(value), safe="")}
        base.update(values)
        return bottle.template(name, template_lookup=[VIEWS], **base)
