"""`rollcall bench console`: latency of the dashboard, attendance and report pages under load.

Seeds a fresh data dir with ``--records`` attendance records (real Store; ``--seed-cache
DIR`` keeps a copy of today's seed to reuse), starts the real firmware (`rollcall run`,
replaying ``--firmware-source VIDEO``, or with no camera at all: degraded but serving its
control socket) and the real console (`rollcall console`) as two processes, as on the
device, and lets ``--clients`` concurrent logged-in clients fetch the pages for
``--seconds`` (bounded): the dashboard, the attendance page (its first page of 100 rows,
newest first) for today, the last 7 days and all history, and the report of the seeded
roster over one term (the last 120 days). Each client first fetches every page once,
untimed (the firmware's per-day indexes are built in the background after a start; the
numbers are the steady state a school office sees). Days are local dates in
``--timezone`` (the bench device's ``device.timezone``), as on a real device.

Baseline in the same run: a static file (``/static/app.js``) fetched by the same clients
under the same load; each page's p99 is also printed as a ratio to it. Prints a table
and writes ``--json``. The target (p99 <= 150 ms per page) is reported, not asserted.
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

TARGET_P99_MS = 150.0
PAGE_NAMES = ("dashboard", "attendance_today", "attendance_week", "attendance_all", "report_term")
BASELINE_PAGE = "baseline_static"
TERM_DAYS = 120


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
    parser.add_argument("--seed-cache", help="reuse (or keep) today's seeded data dir here")
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


def seed(data_dir: Path, records: int, people: int = 200, zone: str = "UTC", came: int = 40) -> dict:
    """Fill a real Store: ``people`` enrolled, one session per day, ``records`` records.

    Each session records ``came`` arrivals through ``attendance.record`` (a different
    group each day, every fourth one late); completing it writes the others' ``absent``
    records in one batch, as on a device (one fsync'd step per arrival: far fewer than one
    per record, so seeding 100,000 records takes minutes, not an hour, on a busy disk).
    Days are local dates in ``zone`` (the device's time zone): day 0's session starts at
    01:00 local time today, day N's N days earlier."""
    from firmware.store import Store

    started = time.perf_counter()
    store = Store(data_dir, timezone=zone)
    try:
        ids = [store.people.add(f"b{i:04d}", f"Bench Person {i}", f"S{i:05d}")["id"] for i in range(people)]
        roster = store.rosters.create("Bench", [{"person_id": p, "seat": str(i)} for i, p in enumerate(ids)])
        day, left = 0, records
        while left > 0:
            start = _local_midnight(zone, day) + 3600
            members = ids[:left]
            session = store.sessions.create(roster["id"], "default", f"Day {day}", start, start + 3600,
                                            start + 600)
            store.sessions.set_state(session["id"], "in_progress", "bench", start)
            first = (day * came) % len(members)
            for n in range(min(came, len(members))):
                pid = members[(first + n) % len(members)]
                store.attendance.record(session["id"], pid, score=0.8,
                                        captured_at=start + (900 if n % 4 == 3 else n * 5))
            _complete(store, session["id"], members, start + 3600)
            left -= len(members)
            day += 1
    finally:
        store.close()
    return {"records": records, "days": day, "seed_s": round(time.perf_counter() - started, 1),
            "roster_id": roster["id"]}


def _complete(store, session_id: str, members: list[str], at: float) -> None:
    """Complete a session; a short last day's roster is cut to ``members`` first."""
    session = store.sessions.get(session_id)
    roster = store.rosters.get(session["roster_id"])
    if len(members) < len(roster["entries"]):
        store.rosters.update(roster["id"], entries=[e for e in roster["entries"]
                                                    if e["person_id"] in set(members)])
    store.sessions.set_state(session_id, "completed", "bench", at)


def seed_cached(data_dir: Path, records: int, zone: str, cache: str | None) -> dict:
    """``seed`` unless ``cache`` holds a seed of the same size, zone and day (copied in)."""
    if not cache:
        return seed(data_dir, records, zone=zone)
    cache_dir = Path(cache)
    key = {"records": records, "zone": zone, "today": datetime.now(ZoneInfo(zone)).date().isoformat()}
    meta = cache_dir / "seed.json"
    if meta.is_file() and json.loads(meta.read_text()).get("key") == key:
        shutil.copytree(cache_dir / "data", data_dir)
        return {**json.loads(meta.read_text())["seeded"], "seed_s": 0.0, "cached": True}
    seeded = seed(data_dir, records, zone=zone)
    shutil.rmtree(cache_dir, ignore_errors=True)
    shutil.copytree(data_dir, cache_dir / "data", ignore=shutil.ignore_patterns(".lock"))
    meta.write_text(json.dumps({"key": key, "seeded": seeded}))
    return seeded


def load(port: int, clients: int, seconds: float, pages: dict[str, str]) -> dict:
    """Each client logs in, fetches every page once (untimed), then, once all are ready,
    fetches every page in turn until ``seconds`` pass; latencies in ms."""
    timings: dict[str, list[float]] = {name: [] for name in pages}
    errors: list[str] = []
    lock = threading.Lock()
    window = {"end": 0.0}  # set by the barrier's action, before any client is released
    ready = threading.Barrier(clients + 1, action=lambda: window.update(end=time.monotonic() + seconds))

    def worker() -> None:
        client = Client(port)
        try:
            client.login()
            for path in pages.values():
                client.request("GET", path)
        finally:
            ready.wait()
        while time.monotonic() < window["end"]:
            for name, path in pages.items():
                t0 = time.perf_counter()
                status, _ = client.request("GET", path)
                took = (time.perf_counter() - t0) * 1000
                with lock:
                    (timings[name].append(took) if status == 200 else errors.append(f"{name}: {status}"))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
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
        seeded = seed_cached(root / "data", args.records, zone, args.seed_cache)
        print(f"seeded {seeded['records']} records over {seeded['days']} days in {seeded['seed_s']} s"
              f"{' (from --seed-cache)' if seeded.get('cached') else ''}")
        Users(root / "secrets").add("admin", PASSWORD, ADMIN, bootstrap=True)
        port = free_port()
        firmware, console = start_stack(root, source, port)
        pages = {"dashboard": "/", "attendance_today": "/attendance",
                 "attendance_week": "/attendance?" + urlencode(days_back(6, zone)),
                 "attendance_all": "/attendance?" + urlencode({"day_from": "2000-01-01",
                                                               "day_to": "2100-01-01"}),
                 "report_term": "/reports?" + urlencode({"roster_id": seeded["roster_id"],
                                                         **days_back(TERM_DAYS, zone)})}
        wanted = [p.strip() for p in args.pages.split(",") if p.strip() in pages]
        pages = {name: pages[name] for name in wanted or PAGE_NAMES}
        if args.attack:
            results = bench_attack.attack(port, console.pid, min(seconds, 60.0),
                                          [int(n) for n in args.slow.split(",") if n.strip()],
                                          max(1, min(args.burst, 200)))
        else:
            results = load(port, clients, seconds, {**pages, BASELINE_PAGE: "/static/app.js"})
    finally:
        stop(console)
        stop(firmware)
        shutil.rmtree(root, ignore_errors=True)
    if args.attack:
        return _attack_report(results, args)
    base = results[BASELINE_PAGE]["p99_ms"] or 0.1
    report = {"bench": "console", **seeded, "clients": clients, "seconds": seconds,
              "firmware": f"real, replaying {args.firmware_source}" if args.firmware_source
              else "real, no camera (degraded)", "pages": results, "target_p99_ms": TARGET_P99_MS,
              "baseline": BASELINE_PAGE,
              "p99_vs_baseline": {p: round(results[p]["p99_ms"] / base, 1) for p in pages},
              "meets_target": {p: results[p]["n"] > 0 and results[p]["p99_ms"] <= TARGET_P99_MS
                               for p in pages}}
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
    print(f"{'page':<18}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'p99/baseline':>14}")
    for name in [*pages, report["baseline"]]:
        r = results[name]
        ratio = report["p99_vs_baseline"].get(name, 1.0)
        print(f"{name:<18}{r['n']:>7}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['max_ms']:>10}{ratio:>13}x")
    missed = [p for p, ok in report["meets_target"].items() if not ok]
    print(f"target p99 <= {TARGET_P99_MS:.0f} ms: {'met' if not missed else 'NOT met by ' + ', '.join(missed)}"
          f"{'; errors: ' + ', '.join(results['errors']) if results['errors'] else ''}")
