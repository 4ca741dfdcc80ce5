"""`rollcall bench console`: latency of the dashboard and attendance pages under load.

Seeds a fresh data dir with ``--records`` attendance records (real Store), starts the real
firmware (`rollcall run`, replaying ``--firmware-source VIDEO``, or with no camera at all:
degraded but serving its control socket) and the real console (`rollcall console`) as two
processes, as on the device, and lets ``--clients`` concurrent logged-in clients fetch the
pages for ``--seconds`` (bounded): the dashboard, and the attendance page (its first page
of 100 rows, newest first) for today, the last 7 days and all history. Days are local
dates in ``--timezone`` (the bench device's ``device.timezone``), as on a real device.
Prints a table and writes ``--json``. The target (p99 <= 200 ms) is reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from datetime import datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from console import bench_attack
from console.benchstack import PASSWORD, Client, free_port, percentile, start_stack, stop

logger = logging.getLogger(__name__)

TARGET_P99_MS = 200.0
PAGE_NAMES = ("dashboard", "attendance_today", "attendance_week", "attendance_all")


def register(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--records", type=int, default=10_000, help="attendance records to seed")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (1-32)")
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration in seconds (<= 300)")
    parser.add_argument("--firmware-source", help="run the real firmware replaying this video meanwhile")
    parser.add_argument("--models-dir", default=os.environ.get("ROLLCALL_MODELS_DIR", "var/models"))
    parser.add_argument("--pages", default=",".join(PAGE_NAMES),
                        help=f"comma-separated subset of {', '.join(PAGE_NAMES)}")
    parser.add_argument("--timezone", default="UTC", type=_zone,
                        help="device.timezone of the bench device (IANA name): days are its local dates")
    parser.add_argument("--attack", action="store_true",
                        help="instead: a legitimate user's latency while slow clients and a login "
                             "burst attack the console, and its peak RSS (console/bench_attack.py)")
    parser.add_argument("--slow", default="12,50", help="--attack: slow-client counts to try")
    parser.add_argument("--burst", type=int, default=50, help="--attack: simultaneous wrong logins")
    parser.add_argument("--json", help="write the results to this file")
    parser.set_defaults(func=run)


def _zone(name: str) -> str:
    """An IANA zone name for ``--timezone`` (argparse reports a bad one)."""
    try:
        ZoneInfo(name)
    except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise argparse.ArgumentTypeError(f"unknown time zone {name!r} (use e.g. Europe/London)") from exc
    return name


def seed(data_dir: Path, records: int, people: int = 200, zone: str = "UTC") -> dict:
    """Fill a real Store: ``people`` enrolled, one session per day, ``records`` arrivals.

    Days are local dates in ``zone`` (the device's time zone): day 0's session starts at
    01:00 local time today, day N's N days earlier."""
    from firmware.store import Store

    started = time.perf_counter()
    store = Store(data_dir, timezone=zone)
    try:
        ids = [store.people.add(f"b{i:04d}", f"Bench Person {i}")["id"] for i in range(people)]
        roster = store.rosters.create("Bench", [{"person_id": p, "seat": str(i)} for i, p in enumerate(ids)])
        day, left = 0, records
        while left > 0:
            start = _local_midnight(zone, day) + 3600
            session = store.sessions.create(roster["id"], "default", f"Day {day}", start, start + 3600,
                                            start + 600)
            store.sessions.set_state(session["id"], "in_progress", "bench", start)
            for offset, pid in enumerate(ids[:left]):
                store.attendance.record(session["id"], pid, score=0.8, captured_at=start + offset * 5)
            store.sessions.set_state(session["id"], "completed", "bench", start + 3600)
            left -= min(left, len(ids))
            day += 1
    finally:
        store.close()
    return {"records": records, "days": day, "seed_s": round(time.perf_counter() - started, 1)}


def load(port: int, clients: int, seconds: float, pages: dict[str, str]) -> dict:
    """Each client fetches every page in turn until ``seconds`` pass; latencies in ms."""
    timings: dict[str, list[float]] = {name: [] for name in pages}
    errors: list[str] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def worker() -> None:
        client = Client(port)
        client.login()
        while time.monotonic() < end:
            for name, path in pages.items():
                t0 = time.perf_counter()
                status, _ = client.request("GET", path)
                took = (time.perf_counter() - t0) * 1000
                with lock:
                    (timings[name].append(took) if status == 200 else errors.append(f"{name}: {status}"))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {name: {"n": len(v), "p50_ms": round(percentile(v, 50), 1),
                   "p99_ms": round(percentile(v, 99), 1), "max_ms": round(max(v, default=0), 1)}
            for name, v in timings.items()} | {"errors": errors[:20]}


def days_back(days: int, zone: str = "UTC", now: float | None = None) -> dict:
    """The filter of the last ``days`` days up to today, as LOCAL dates in ``zone`` (the
    device's ``device.timezone``, as the Store names attendance days); ``now`` in UNIX s."""
    today = datetime.fromtimestamp(time.time() if now is None else now, ZoneInfo(zone)).date()
    return {"day_from": (today - timedelta(days=days)).isoformat(), "day_to": today.isoformat()}


def _local_midnight(zone: str, days_ago: int = 0) -> float:
    """UNIX seconds of 00:00 local time in ``zone``, ``days_ago`` days before today."""
    tz = ZoneInfo(zone)
    day = datetime.now(tz).date() - timedelta(days=days_ago)
    return datetime.combine(day, dt_time(0, 0), tz).timestamp()


def run(args: argparse.Namespace) -> int:
    from console.users import ADMIN, Users

    clients, seconds = max(1, min(args.clients, 32)), max(1.0, min(args.seconds, 300.0))
    zone = args.timezone
    root = Path(tempfile.mkdtemp(prefix="rc-bench-"))
    (root / "config.toml").write_text(
        f'[paths]\ndata_dir = "{root}/data"\nmodels_dir = "{Path(args.models_dir).resolve()}"\n'
        f'control_socket = "{root}/control.sock"\nlog_dir = "{root}"\n[gpio]\npin_factory = "mock"\n'
        f'[mqtt]\nenabled = false\n[console]\nsecrets_dir = "{root}/secrets"\n'
        f'[device]\ntimezone = "{zone}"\n')
    source = args.firmware_source or str(root / "no-camera")
    firmware = console = None
    try:
        seeded = seed(root / "data", args.records, zone=zone)
        print(f"seeded {seeded['records']} records over {seeded['days']} days in {seeded['seed_s']} s")
        Users(root / "secrets").add("admin", PASSWORD, ADMIN, bootstrap=True)
        port = free_port()
        firmware, console = start_stack(root, source, port)
        pages = {"dashboard": "/", "attendance_today": "/attendance",
                 "attendance_week": "/attendance?" + urlencode(days_back(6, zone)),
                 "attendance_all": "/attendance?" + urlencode({"day_from": "2000-01-01",
                                                               "day_to": "2100-01-01"})}
        wanted = [p.strip() for p in args.pages.split(",") if p.strip() in pages]
        pages = {name: pages[name] for name in wanted or PAGE_NAMES}
        if args.attack:
            results = bench_attack.attack(port, console.pid, min(seconds, 60.0),
                                          [int(n) for n in args.slow.split(",") if n.strip()],
                                          max(1, min(args.burst, 200)))
        else:
            results = load(port, clients, seconds, pages)
    finally:
        stop(console)
        stop(firmware)
        shutil.rmtree(root, ignore_errors=True)
    if args.attack:
        return _attack_report(results, args)
    report = {"bench": "console", **seeded, "clients": clients, "seconds": seconds,
              "firmware": f"real, replaying {args.firmware_source}" if args.firmware_source
              else "real, no camera (degraded)", "pages": results, "target_p99_ms": TARGET_P99_MS,
              "meets_target": {p: results[p]["p99_ms"] <= TARGET_P99_MS for p in pages}}
    _print(report, pages)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def _attack_report(phases: dict, args: argparse.Namespace) -> int:
    bench_attack.print_report(phases)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"bench": "console-attack", "phases": phases}, indent=2))
    return 0


def _print(report: dict, pages: dict) -> None:
    results = report["pages"]
    print(f"firmware: {report['firmware']}; {report['clients']} clients for {report['seconds']:g} s")
    print(f"{'page':<18}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name in pages:
        r = results[name]
        print(f"{name:<18}{r['n']:>7}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['max_ms']:>10}")
    missed = [p for p, ok in report["meets_target"].items() if not ok]
    print(f"target p99 <= {TARGET_P99_MS:.0f} ms: {'met' if not missed else 'NOT met by ' + ', '.join(missed)}"
          f"{'; errors: ' + ', '.join(results['errors']) if results['errors'] else ''}")
