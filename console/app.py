"""The web console: ``create_app(config_path, ...)`` builds the Bottle app.

Cross-cutting concerns are a plugin and hooks: session loading, the login requirement,
CSRF on every state-changing request, upload limits, security headers and error pages.
Pages live in ``pages_*.py``; each provides ``register(app, ctx)``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable

import bottle

from console import (pages_attendance, pages_auth, pages_enrol, pages_live, pages_people, pages_privacy,
                     pages_reports, pages_sessions, pages_settings, pages_users)
from console.auth import SESSIONS_FILE, LoginLimiter, Sessions, load_or_make_key
from console.bulkjobs import BulkJobs
from console.context import Context
from console.kiosk import KioskToken
from console.security import SecurityPlugin, install_hooks
from console.throttle import PasswordGate
from console.users import Users
from firmware.config import config_path as resolve_config_path
from firmware.config import load_config
from firmware.control.client import ControlClient

logger = logging.getLogger(__name__)


def create_app(config_path: str | os.PathLike | None = None, *, client=None,
               socket_path: str | os.PathLike | None = None,
               clock: Callable[[], float] = time.time,
               monotonic: Callable[[], float] = time.monotonic,
               password_hasher=None) -> bottle.Bottle:
    """Build the console for the config file at ``config_path``.

    ``client`` defaults to a ControlClient on the config's (or ``socket_path``'s) socket;
    ``password_hasher`` to argon2-cffi's ``PasswordHasher()`` (tests pass cheaper parameters).
    """
    path = resolve_config_path(config_path)
    config = load_config(path)
    secrets_dir = Path(config.console.secrets_dir)
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    sock = socket_path or config.paths.control_socket
    ctx = Context(config_path=path, config=config, client=client or ControlClient(sock),
                  users=Users(secrets_dir, password_hasher),
                  sessions=Sessions(load_or_make_key(secrets_dir), clock=clock,
                                    path=secrets_dir / SESSIONS_FILE),
                  limiter=LoginLimiter(clock=monotonic), kiosk=KioskToken(secrets_dir), clock=clock,
                  bulk=BulkJobs(clock=clock))
    ctx.gate = PasswordGate(ctx.limiter, clock=monotonic)
    app = bottle.Bottle()
    app.config["rollcall.ctx"] = ctx
    install_hooks(app, ctx)
    app.install(SecurityPlugin(ctx))
    for module in (pages_auth, pages_live, pages_enrol, pages_people, pages_privacy, pages_sessions,
                   pages_attendance, pages_reports, pages_settings, pages_users):
        module.register(app, ctx)
    return app
