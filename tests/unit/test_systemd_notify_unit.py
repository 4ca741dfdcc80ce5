"""sd_notify over a real AF_UNIX datagram socket (no systemd needed)."""

from __future__ import annotations

import os
import socket

import pytest

from firmware.hal.systemd import Notifier


@pytest.fixture
def listener(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(1.0)
    yield path, sock
    sock.close()


def received(sock) -> list[str]:
    out = []
    sock.settimeout(0.05)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except (TimeoutError, socket.timeout):
        return out


def test_ready_watchdog_stopping(listener):
    path, sock = listener
    now = [100.0]
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    n = Notifier(environ=env, clock=lambda: now[0])
    assert n.interval_s == 1.0
    assert n.ready("running")
    assert n.tick(True)            # first healthy tick pings
    assert not n.tick(True)        # too soon
    now[0] += 1.1
    assert not n.tick(False)       # unhealthy: no ping even when due
    assert n.tick(True)
    assert n.stopping()
    n.close()
    n.close()
    assert received(sock) == ["READY=1\nSTATUS=running", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket_name():
    name = f"@rollcall-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    try:
        n = Notifier(environ={"NOTIFY_SOCKET": name})
        assert n.ready()
        assert received(sock) == ["READY=1"]
        n.close()
    finally:
        sock.close()


def test_not_under_systemd_is_a_no_op():
    n = Notifier(environ={})
    assert not n.enabled and not n.ready() and not n.tick(True)


def test_watchdog_for_another_pid_is_ignored(listener):
    path, _ = listener
    n = Notifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.interval_s is None


def test_send_failure_is_logged_once(tmp_path, caplog):
    n = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert not n.ready() and not n.stopping()
    assert sum("cannot notify systemd" in r.getMessage() for r in caplog.records) == 1
    n.close()


def test_full_queue_never_blocks_the_loop(listener):
    path, _ = listener  # nobody reads: the datagram queue fills up
    n = Notifier(environ={"NOTIFY_SOCKET": path})
    import time as _time
    started = _time.monotonic()
    results = [n.notify("WATCHDOG=1") for _ in range(500)]
    assert _time.monotonic() - started < 2.0
    assert results[0] is True and results[-1] is False
    n.close()
