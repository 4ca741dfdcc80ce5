"""Fuzzing the control API's JSON bodies (issue 13.5): any bytes, any nesting, any shape
give a 2xx or a 4xx with a JSON error, never a 500 (deep nesting used to give a 500)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.control.client import ControlClient
from firmware.control.server import ControlServer
from firmware.store import Store
from tests.doubles.control import FakeDevice

ROUTES = ["/v1/audit", "/v1/people", "/v1/rosters", "/v1/sessions", "/v1/broker/test",
          "/v1/notices/01ARZ3NDEKTSV4RRFFQ69G5FAV/ack", "/v1/unknowns/x/resolve"]
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                           max_leaves=12)


@pytest.fixture(scope="module")
def client():
    root = Path(tempfile.mkdtemp(prefix="rc-fuzz-"))
    store = Store(root / "data")
    server = ControlServer(root / "control.sock", store, FakeDevice(store)).start()
    yield ControlClient(root / "control.sock")
    server.close()
    store.close()
    shutil.rmtree(root, ignore_errors=True)


def check(client: ControlClient, route: str, body: bytes) -> None:
    status, ctype, answer = client.request_raw("POST", route, body)
    assert status < 500, (route, body[:80], answer[:200])
    if status >= 400:
        assert ctype.startswith("application/json") and "error" in json.loads(answer)


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_deep_nesting_is_a_400(client, depth):
    for opener, closer in ((b"[", b"]"), (b'{"a":', b"}")):
        body = b'{"actor": "a", "action": "x", "details": ' + opener * depth + b"1" + closer * depth + b"}"
        status, _, answer = client.request_raw("POST", "/v1/audit", body)
        assert status in (400, 413) and b"Traceback" not in answer


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), body=st.binary(max_size=200))
def test_random_bytes_never_500(client, route, body):
    check(client, route, body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), value=st.dictionaries(st.sampled_from(
    ["actor", "action", "name", "by", "entries", "mqtt", "person_id", "roster_id", "room", "details",
     "scheduled_start", "scheduled_end", "target", "action"]), json_values, max_size=6))
def test_random_json_objects_never_500(client, route, value):
    check(client, route, json.dumps(value).encode())
