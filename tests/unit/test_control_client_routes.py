"""The typed control client and the control server agree on every route.

A route the server serves but the client cannot call (or the reverse) fails here, so the
console never builds a path string by hand again.
"""

from __future__ import annotations

import inspect

from firmware.control.api import create_control_app
from firmware.control.client import ControlClient, client_routes
from tests.doubles.control import FakeDevice, FakeStore


def server_routes() -> set[tuple[str, str]]:
    app = create_control_app(FakeStore(), FakeDevice(FakeStore()))
    return {(r.method, r.rule) for r in app.routes}


def test_every_server_route_has_exactly_one_client_method():
    missing = server_routes() - client_routes()
    extra = client_routes() - server_routes()
    assert not missing, f"routes the ControlClient cannot call: {sorted(missing)}"
    assert not extra, f"ControlClient methods for routes the server lacks: {sorted(extra)}"
    marked = [fn for fn in vars(ControlClient).values() if hasattr(fn, "control_route")]
    assert len(marked) == len(client_routes()), "two client methods claim the same route"


def test_client_methods_are_typed():
    for name, fn in vars(ControlClient).items():
        if hasattr(fn, "control_route"):
            assert inspect.signature(fn).return_annotation is not inspect.Signature.empty, name
