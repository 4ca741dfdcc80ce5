"""Slow clients against the real console server (issue 13.3): they are cut off after the
request deadline and a legitimate user keeps being served meanwhile. Before, twelve
clients sending a header line every 10 s held all 12 cheroot workers forever."""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time

import pytest

from console.slowclients import DeadlineServer, body_s
from tests.conftest import free_port
from tests.unit.test_console_support import make_env

pytestmark = pytest.mark.integration
HEADER_S = 1.0


@pytest.fixture
def served():
    env = make_env()
    port = free_port()
    server = DeadlineServer(("127.0.0.1", port), env.app, header_s=HEADER_S, body_base_s=HEADER_S,
                            timeout=30)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.stop()
        env.close()


def slow_client(port: int, results: list, body: bool = False) -> None:
    """Trickle a header line (or body bytes) every 0.3 s; record how long until cut off."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    start = time.monotonic()
    head = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" if body else \
        b"GET /login HTTP/1.1\r\nHost: x\r\n"
    sock.sendall(head)
    answer = b""
    try:
        while time.monotonic() - start < 20:
            if select.select([sock], [], [], 0.3)[0]:
                answer = sock.recv(200)
                break
            sock.sendall(b"x" if body else b"X-Slow: 1\r\n")
    except OSError:
        pass
    results.append((time.monotonic() - start, answer[:12]))
    sock.close()


def get(port: int, path: str = "/setup") -> tuple[int, float]:
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status, time.monotonic() - start


@pytest.mark.parametrize("count", [12, 50])
def test_slow_header_clients_are_cut_off_and_others_still_served(served, count):
    results: list = []
    threads = [threading.Thread(target=slow_client, args=(served, results)) for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    served_meanwhile = [get(served) for _ in range(5)]
    for thread in threads:
        thread.join(30)
    assert all(status == 200 and took < HEADER_S for status, took in served_meanwhile), served_meanwhile
    assert len(results) == count
    assert all(took < HEADER_S + 2.0 for took, _ in results), sorted(results)[-3:]
    assert {answer[:12] for _, answer in results} <= {b"HTTP/1.1 408", b""}


def test_slow_body_is_cut_off_after_its_allowance(served):
    results: list = []
    slow_client(served, results, body=True)
    took, answer = results[0]
    assert took < HEADER_S + body_s(100_000, HEADER_S) + 2.0 and answer in (b"HTTP/1.1 408", b"")
    assert get(served)[0] == 200
