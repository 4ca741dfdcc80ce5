"""`rollcall bench console --attack`: what a legitimate user sees while the console is attacked.

Against the real console process (and real firmware), one logged-in user fetches the
dashboard for ``seconds`` in each phase, and we report its p50/p99/max latency and errors:

1. ``baseline``: nothing else runs (the ratio of every other phase is against this);
2. ``slow_<N>``: N slowloris clients (in another process, as the burst below) (one header line every ``SLOW_LINE_S`` s, reconnecting
   whenever the console cuts them off) for N in ``--slow`` (default 12 and 50);
3. ``login_burst``: ``--burst`` simultaneous wrong-password logins, repeated for the
   phase; the console's peak RSS (sampled from /proc every 20 ms) is reported with it
   (target < 200 MB on a 1 GB Pi).
"""

from __future__ import annotations

import multiprocessing
import re
import select
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlencode

from console.benchstack import Client, percentile

SLOW_LINE_S = 2.0
RSS_TARGET_MB = 200.0


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler:
    """Samples a process's RSS every 20 ms in a thread; ``peak_mb`` after the block."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_mb, self.start_mb = pid, 0.0, rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_mb = max(self.peak_mb, rss_mb(self.pid))

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class SlowClients:
    """``count`` slowloris connections that reconnect whenever the server cuts them."""

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.connections = self.cut = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(count)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                time.sleep(0.2)
                continue
            with self._lock:
                self.connections += 1
            self._trickle(sock)

    def _trickle(self, sock: socket.socket) -> None:
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n")
            line = 0
            while not self._stop.is_set():
                readable, _, _ = select.select([sock], [], [], SLOW_LINE_S)
                if readable:  # a 408 or a close: the console cut us off
                    with self._lock:
                        self.cut += 1
                    return
                line += 1
                sock.sendall(b"X-Slow-%d: 1\r\n" % line)
        except OSError:
            with self._lock:
                self.cut += 1
        finally:
            sock.close()

    def __enter__(self) -> "SlowClients":
        for thread in self._threads:
            thread.start()
        time.sleep(0.5)  # let them all connect and start trickling
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(SLOW_LINE_S + 6)


def legit_latency(client: Client, seconds: float) -> dict:
    """The logged-in user's dashboard latency (ms) for ``seconds``."""
    times, errors, end = [], [], time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            status, _ = client.request("GET", "/")
        except OSError as exc:
            status = f"{type(exc).__name__}"
            client.conn.close()
        took = (time.perf_counter() - t0) * 1000
        times.append(took)
        if status != 200:
            errors.append(str(status))
        time.sleep(0.05)
    return {"n": len(times), "p50_ms": round(percentile(times, 50), 1),
            "p99_ms": round(percentile(times, 99), 1), "max_ms": round(max(times, default=0), 1),
            "errors": len(errors)}


def login_burst(port: int, count: int, stop: threading.Event, statuses: list) -> None:
    """Waves of ``count`` simultaneous wrong-password logins until ``stop`` is set."""
    while not stop.is_set():
        gate = threading.Barrier(count)

        def attempt() -> None:
            client = Client(port)
            try:
                _, page = client.request("GET", "/login")
                token = re.search(rb'name="csrf" value="([^"]+)"', page).group(1).decode()
                gate.wait(10)
                status, _ = client.request("POST", "/login", urlencode(
                    {"user": "admin", "password": "wrong-password-guess", "csrf": token}))
            except (OSError, AttributeError, threading.BrokenBarrierError) as exc:
                status = type(exc).__name__
            statuses.append(status)

        threads = [threading.Thread(target=attempt) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)


def _slow_worker(port: int, count: int, stop, out) -> None:
    with SlowClients(port, count) as attackers:
        stop.wait()
    out.put({"slow_connections": attackers.connections, "slow_cut": attackers.cut})


def _burst_worker(port: int, count: int, stop, out) -> None:
    statuses: list = []
    login_burst(port, count, stop, statuses)
    out.put({"attempts": len(statuses), "statuses": dict(sorted(Counter(map(str, statuses)).items()))})


def _attacked(user: Client, seconds: float, worker, port: int, count: int) -> dict:
    """The user's latency while ``worker`` attacks from ANOTHER process (so the attackers'
    threads do not share the measuring process's interpreter lock)."""
    context = multiprocessing.get_context("fork")
    stop, out = context.Event(), context.Queue()
    proc = context.Process(target=worker, args=(port, count, stop, out), daemon=True)
    proc.start()
    time.sleep(0.5)
    result = legit_latency(user, seconds)
    stop.set()
    result.update(out.get(timeout=120))
    proc.join(30)
    return result


def attack(port: int, console_pid: int, seconds: float, slow: list[int], burst: int) -> dict:
    """Every phase's legit latency; slow-client and burst counts; peak RSS of the burst."""
    user = Client(port)
    user.login()
    legit_latency(user, 1.0)  # warm up (templates, firmware status cache)
    phases = {"baseline": legit_latency(user, seconds)}
    for count in slow:
        phases[f"slow_{count}"] = _attacked(user, seconds, _slow_worker, port, count)
    with RssSampler(console_pid) as rss:
        phases["login_burst"] = _attacked(user, seconds, _burst_worker, port, burst)
    phases["login_burst"].update(rss_start_mb=round(rss.start_mb, 1), rss_peak_mb=round(rss.peak_mb, 1))
    base = phases["baseline"]["p99_ms"] or 1.0
    for phase in phases.values():
        phase["p99_vs_baseline"] = round(phase["p99_ms"] / base, 2)
    return phases


def print_report(phases: dict) -> None:
    print(f"{'phase':<14}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'x base':>8}{'errors':>8}  notes")
    for name, r in phases.items():
        notes = ""
        if "slow_cut" in r:
            notes = f"{r['slow_connections']} slow connections, {r['slow_cut']} cut off"
        if "rss_peak_mb" in r:
            notes = (f"{r['attempts']} logins {r['statuses']}; console RSS {r['rss_start_mb']} -> peak "
                     f"{r['rss_peak_mb']} MB (target < {RSS_TARGET_MB:.0f})")
        print(f"{name:<14}{r['n']:>6}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['max_ms']:>10}"
              f"{r['p99_vs_baseline']:>8}{r['errors']:>8}  {notes}")
