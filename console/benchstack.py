"""Shared parts of the console benchmarks: start the real firmware and console as
processes, a logged-in HTTP client, percentiles. No timing logic of its own."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

PASSWORD = "bench-only-password-1"


class Client:
    """One keep-alive HTTP client with the session cookie and CSRF token of a login."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        cookie = resp.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return resp.status, data

    def login(self) -> None:
        _, page = self.request("GET", "/login")
        token = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
        status, _ = self.request("POST", "/login", urlencode({"user": "admin", "password": PASSWORD,
                                                               "csrf": token}))
        if status != 303:
            raise RuntimeError(f"bench login failed (HTTP {status})")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))] if ordered else 0.0


def spawn(root: Path, name: str, argv: list[str]) -> subprocess.Popen:
    log = open(root / f"{name}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "firmware.cli", *argv], stdout=log,
                            stderr=subprocess.STDOUT)


def wait_for(ready, proc: subprocess.Popen, what: str, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start (see {log})")
        time.sleep(0.2)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return True
    except OSError:
        return False


def stop(proc: subprocess.Popen | None, grace_s: float = 30.0) -> None:
    """SIGTERM (the clean shutdown path), SIGKILL after ``grace_s`` seconds."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_stack(root: Path, source: str, port: int) -> tuple[subprocess.Popen, subprocess.Popen]:
    config = str(root / "config.toml")
    firmware = spawn(root, "firmware", ["run", "--config", config, "--source", source])
    wait_for(lambda: (root / "control.sock").exists(), firmware, "the firmware", root / "firmware.log")
    console = spawn(root, "console", ["console", "--config", config, "--bind", "127.0.0.1",
                                       "--port", str(port)])
    wait_for(lambda: port_open(port), console, "the console", root / "console.log", timeout=30)
    return firmware, console


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
