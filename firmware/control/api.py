"""The control API as a Bottle app: JSON in, JSON out (``create_control_app``).

Cross-cutting concerns are plugins/hooks from :mod:`firmware.control.web` (body-size
limit, JSON error mapping, the acting user); ``store`` and ``device`` are injected into
the route modules ``routes_*.py``.
"""

from __future__ import annotations

import time
from typing import Callable

import bottle

from firmware.control import routes_capture, routes_device, routes_people, routes_privacy, routes_sessions
from firmware.control.web import actor_plugin, json_default_errors, json_errors_plugin, limit_body


def create_control_app(store, device, *, clock: Callable[[], float] = time.monotonic) -> bottle.Bottle:
    """Build the control API for ``store`` (firmware.store.Store) and ``device`` (DeviceAPI)."""
    app = bottle.Bottle(autojson=True)
    app.add_hook("before_request", limit_body)
    app.install(json_errors_plugin)
    app.install(actor_plugin(store))
    json_default_errors(app)
    ctx = {"store": store, "device": device, "clock": clock}
    routes_device.register(app, ctx)
    routes_people.register(app, ctx)
    routes_capture.register(app, ctx)
    routes_sessions.register(app, ctx)
    routes_privacy.register(app, ctx)
    return app
