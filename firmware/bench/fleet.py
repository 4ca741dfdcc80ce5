"""`rollcall bench fleet`: a simulated fleet through a real broker into several collectors.

``--devices`` (default 1,000) simulated devices, each a real Store and a real MqttLink, run
in ``--processes`` worker processes (:mod:`firmware.bench.fleetdevices`); they publish through
a real mosquitto to ``--collectors`` (default 3) ``rollcall central collect`` processes in
one MQTT v5 shared-subscription group, writing one real PostgreSQL (own cluster, private
port, ``track_commit_timestamp = on`` so every row's commit time is known exactly).

Phases: *steady* (``--rate`` events/s offered, no faults), *faults* (the same rate; one
collector is SIGKILLed and restarted, then the broker is restarted), *burst* (the
collectors are paused with SIGSTOP, every device queues ``--burst`` events and publishes
them to the broker, which queues them in the collectors' persistent sessions; then the
collectors resume), *direct* (``--direct-s`` seconds of ``--rate`` events/s from one plain
MQTT publisher on the devices' topics: the central side alone at the target rate, when the
simulated devices cannot offer it on a small machine). Reported:

- ``events_per_s``: burst events / (collectors resumed -> last burst row committed): the
  central side's ingest rate (broker -> collectors -> PostgreSQL), not limited by how fast
  the simulated devices, sharing these cores, can publish (reported separately);
- ``capture_to_commit_ms`` p50/p99/max per phase (captured = written to the device outbox;
  committed = PostgreSQL commit time stamp of the row);
- ``lost`` (produced, never stored), ``duplicates_stored`` (rows - distinct event ids),
  ``duplicates_received`` (re-sends the collectors ignored, from their exit report);
- ``order``: devices whose events were committed in ``seq`` order (the shared group spreads
  one device's events over several collectors: consumers order by ``seq``), and devices
  with a seq missing from the database;
- CPU seconds and peak RSS of the collectors, the broker, PostgreSQL and the device workers,
  and the load average (the machine may be shared).

Targets: >= 3,000 events/s ingested, 0 lost, 0 duplicates stored, p99 capture -> commit
< 2 s at 1,000 events/s offered (judged in every phase that reached 95 % of the rate:
steady with the simulated devices, direct).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import psutil

from firmware.bench.broker import Mosquitto
from firmware.bench.postgres import Postgres
from provisioning.central.db import connect

logger = logging.getLogger(__name__)

TARGET_EVENTS_PER_S = 3000.0
TARGET_P99_MS = 2000.0
# A throughput figure needs a burst of at least one second's worth of events at the target rate:
# a few dozen events committed in one transaction can "show" any rate at all.
MIN_BURST_EVENTS = int(TARGET_EVENTS_PER_S)
DEVICE_NICE = 10
REPO = Path(__file__).resolve().parents[2]
BROKER_CONF = "max_inflight_messages 1000\nmax_queued_messages 1000000\n"
PG_SETTINGS = {"track_commit_timestamp": "on", "shared_buffers": "'128MB'", "wal_buffers": "'16MB'"}


@dataclass
class Plan:
    """What to run; every duration in seconds, ``rate`` in events per second."""

    devices: int = 1000
    processes: int = 4
    collectors: int = 3
    rate: float = 1000.0
    steady_s: float = 20.0
    fault_s: float = 20.0
    burst: int = 10
    kill_after_s: float = 3.0
    killed_for_s: float = 2.0
    broker_after_s: float = 10.0
    device_poll_s: float = 0.25
    direct_s: float = 15.0


def register(parser: argparse.ArgumentParser, command: str) -> None:
    plan = Plan()
    for field, value in asdict(plan).items():
        parser.add_argument("--" + field.replace("_", "-"), type=type(value), default=value,
                            help=f"default {value}")
    parser.add_argument("--workdir", type=Path, help="device stores and broker here (default: a dir in /dev/shm)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.set_defaults(func=run)


class Worker:
    """One device worker process, talked to line by line."""

    def __init__(self, workdir: Path, first: int, count: int, port: int, poll_s: float) -> None:
        self.first = first
        self.proc = subprocess.Popen([sys.executable, "-m", "firmware.bench.fleetdevices", "--workdir", str(workdir),
                                      "--first", str(first), "--count", str(count), "--port", str(port),
                                      "--poll-s", str(poll_s)],
                                     cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=_lower_priority)

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, word: str) -> str:
        for line in self.proc.stdout:
            if line.startswith(word):
                return line[len(word):].strip()
        raise RuntimeError(f"device worker {self.first} ended before saying {word!r}")


def _lower_priority() -> None:
    """Device workers run at nice 10: a real device has its own CPU, and 1,000 simulated links
    (2,000+ threads) would otherwise take the CPU share of the central side being measured."""
    os.nice(DEVICE_NICE)


class Processes:
    """CPU seconds and peak RSS of a changing set of processes (killed ones keep their CPU)."""

    def __init__(self) -> None:
        self.groups: dict[str, dict[int, psutil.Process]] = {}
        self.cpu: dict[str, dict[int, float]] = {}
        self.rss: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def add(self, group: str, pid: int, children: bool = False) -> None:
        proc = psutil.Process(pid)
        procs = [proc] + (proc.children(recursive=True) if children else [])
        for p in procs:
            self.groups.setdefault(group, {})[p.pid] = p

    def sample(self) -> None:
        for group, procs in self.groups.items():
            rss = 0
            for pid, proc in list(procs.items()):
                try:
                    t = proc.cpu_times()
                    self.cpu.setdefault(group, {})[pid] = t.user + t.system
                    rss += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.rss[group] = max(self.rss.get(group, 0), rss / 2**20)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def start(self) -> "Processes":
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(2)
        return {g: {"cpu_s": round(sum(self.cpu.get(g, {}).values()), 1),
                    "peak_rss_mb": round(self.rss.get(g, 0), 1)} for g in self.groups}


class Collectors:
    """K ``rollcall central collect`` processes in one shared-subscription group."""

    def __init__(self, count: int, port: int, url: str, workdir: Path, procs: Processes) -> None:
        self.port, self.url, self.workdir, self.procs = port, url, workdir, procs
        self.running: dict[int, subprocess.Popen] = {}
        self.outputs: list[Path] = []
        for n in range(count):
            self.start(n)

    def start(self, n: int) -> None:
        out = self.workdir / f"collector-{n}-{len(self.outputs)}.log"
        self.outputs.append(out)
        with open(out, "wb") as log:
            self.running[n] = subprocess.Popen(
                [sys.executable, "-m", "firmware.cli", "-q", "central", "collect", "--broker",
                 f"127.0.0.1:{self.port}", "--db", self.url, "--group", "fleet", "--client-id", f"fleet-c{n}"],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})
        self.procs.add("collectors", self.running[n].pid)

    def kill(self, n: int) -> None:
        self.procs.sample()
        self.running[n].send_signal(signal.SIGKILL)
        self.running[n].wait(10)

    def signal(self, signum: int) -> None:
        for proc in self.running.values():
            proc.send_signal(signum)

    def stop(self) -> int:
        """SIGTERM all (they commit, ack and report); returns the duplicates they reported."""
        self.procs.sample()
        for proc in self.running.values():
            proc.terminate()
        for proc in self.running.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        duplicates = 0
        for out in self.outputs:
            for line in out.read_text(errors="replace").splitlines():
                if "duplicates ignored" in line:
                    duplicates += int(line.split(" new events, ")[1].split()[0])
        return duplicates


def bench_fleet(plan: Plan, workdir: Path | None = None) -> dict:
    """Run the fleet benchmark; returns the result dict (see the module docstring)."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="rollcall-fleet-", dir=base))
    try:
        with Postgres(settings=PG_SETTINGS) as pg, \
                Mosquitto(work / "broker", extra_conf=BROKER_CONF) as broker:
            return _run(plan, work, pg, broker)
    finally:
        if not workdir:
            shutil.rmtree(work, ignore_errors=True)


def _run(plan: Plan, work: Path, pg: Postgres, broker: Mosquitto) -> dict:
    connect(pg.url).close()  # migrate once, before the collectors race for it
    load_before = os.getloadavg()
    procs = Processes()
    procs.add("broker", broker.proc.pid)
    procs.add("postgres", _postmaster_pid(pg), children=True)
    procs.start()
    collectors = Collectors(plan.collectors, broker.port, pg.url, work, procs)
    workers = _start_workers(plan, work, broker.port, procs)
    marks = {"steady": time.time()}
    _set_rate(workers, plan.rate)
    time.sleep(plan.steady_s)
    marks["faults"] = time.time()
    faults = _faults(plan, collectors, broker, procs)
    _set_rate(workers, 0)
    time.sleep(2.0)  # let the rated events settle before the burst
    _burst(plan, workers, collectors, marks)
    finished = _finish(workers)
    marks["direct"] = time.time()
    direct = _direct(plan, work, broker.port) if plan.direct_s > 0 else {"published": 0}
    marks["direct_end"] = time.time()
    stored = _wait_stored(pg.url, finished["produced"] + direct["published"], timeout=120)
    procs.add("postgres", _postmaster_pid(pg), children=True)  # backends started since
    duplicates_received = collectors.stop()
    cpu = procs.stop()
    result = _measure(pg.url, work, marks, plan)
    result["baseline"] = raw_insert_rate(pg.url, plan.burst * plan.devices)
    if result["events_per_s"] and result["baseline"]["rows_per_s"]:
        result["ratio_to_baseline"] = round(result["events_per_s"] / result["baseline"]["rows_per_s"], 3)
    wall = time.time() - marks["steady"]
    result.update({"stored_when_checked": stored, "duplicates_received": duplicates_received,
                   "republished_by_devices": finished["republished"], "outbox_left": finished["outbox_left"],
                   "faults": faults, "phase_starts_s": {k: round(v - marks["steady"], 2) for k, v in marks.items()},
                   "processes": {g: {**v, "cpu_percent_of_run": round(100 * v["cpu_s"] / wall, 1)}
                                                   for g, v in cpu.items()},
                   "loadavg_before": [round(x, 2) for x in load_before],
                   "loadavg_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()})
    return result


def raw_insert_rate(url: str, rows: int, batch: int = 2000) -> dict:
    """Baseline in the same run: one process inserting event-sized rows straight into a copy of
    the events table (same statement shape, commit per ``batch``) - no MQTT, no parsing."""
    import psycopg

    payload = json.dumps({"person_id": "p1", "status": "present", "score": 0.9, "room": "room-1",
                          "day": "2026-11-30", "event_id": "X" * 26, "seq": 1, "device_id": "fleet-00001"})
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE baseline_events (LIKE events INCLUDING ALL)")
        conn.commit()
        start = time.perf_counter()
        for first in range(0, rows, batch):
            conn.cursor().executemany(
                "INSERT INTO baseline_events (event_id, device_id, seq, payload, captured_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
                [(f"B{n:025d}", f"fleet-{n % 1000:05d}", n, payload, "2026-11-30T08:00:00.000Z")
                 for n in range(first, min(rows, first + batch))])
            conn.commit()
        seconds = time.perf_counter() - start
    return {"what": "one process, executemany + commit per 2,000 rows, no MQTT", "rows": rows,
            "rows_per_s": round(rows / seconds, 1)}


def _postmaster_pid(pg: Postgres) -> int:
    return int((pg.datadir / "postmaster.pid").read_text().splitlines()[0])


def _start_workers(plan: Plan, work: Path, port: int, procs: Processes) -> list[Worker]:
    per = -(-plan.devices // plan.processes)
    workers = [Worker(work, first, min(per, plan.devices - first), port, plan.device_poll_s)
               for first in range(0, plan.devices, per)]
    connected = sum(int(w.expect("ready")) for w in workers)
    if connected < plan.devices:
        raise RuntimeError(f"only {connected} of {plan.devices} simulated devices connected")
    for worker in workers:
        procs.add("device_workers", worker.proc.pid)
    return workers


def _set_rate(workers: list[Worker], rate: float) -> None:
    for worker in workers:
        worker.send(f"rate {rate / len(workers)}")


def _faults(plan: Plan, collectors: Collectors, broker: Mosquitto, procs: Processes) -> list[str]:
    start, done = time.time(), []
    time.sleep(plan.kill_after_s)
    collectors.kill(0)
    done.append(f"{time.time() - start:.1f} s: collector fleet-c0 SIGKILLed")
    time.sleep(plan.killed_for_s)
    collectors.start(0)
    done.append(f"{time.time() - start:.1f} s: collector fleet-c0 restarted (same client id and session)")
    time.sleep(max(0.0, plan.broker_after_s - (time.time() - start)))
    procs.sample()
    broker.stop()
    broker.start()
    procs.add("broker", broker.proc.pid)
    done.append(f"{time.time() - start:.1f} s: broker restarted (SIGTERM, persistence, same port)")
    time.sleep(max(0.0, plan.fault_s - (time.time() - start)))
    return done


def _burst(plan: Plan, workers: list[Worker], collectors: Collectors, marks: dict) -> None:
    """Collectors paused (SIGSTOP), every device queues ``plan.burst`` events and publishes
    them (the broker queues them in the collectors' sessions); then the collectors resume and
    the time to commit the whole backlog is the central side's own ingest rate."""
    collectors.signal(signal.SIGSTOP)
    try:
        marks["burst"] = time.time()
        for worker in workers:
            worker.send(f"burst {plan.burst}")
        for worker in workers:
            worker.expect("burst-written")
        marks["burst_written"] = time.time()
        deadline = time.monotonic() + 60  # < keepalive x 1.5: the broker keeps the paused collectors
        while _depth(workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        marks["burst_at_broker"] = time.time()
    finally:
        marks["resume"] = time.time()
        collectors.signal(signal.SIGCONT)


def _depth(workers: list[Worker]) -> int:
    for worker in workers:
        worker.send("depth")
    return sum(int(worker.expect("depth")) for worker in workers)


def _finish(workers: list[Worker]) -> dict:
    for worker in workers:
        worker.send("stop")
    totals = {"produced": 0, "outbox_left": 0, "republished": 0}
    for worker in workers:
        report = json.loads(worker.expect("done"))
        worker.proc.wait(60)
        for key in totals:
            totals[key] += report[key]
    return totals


def _direct(plan: Plan, work: Path, port: int) -> dict:
    """The central side alone at ``plan.rate`` (see :mod:`firmware.bench.fleetdirect`)."""
    out = subprocess.run([sys.executable, "-m", "firmware.bench.fleetdirect", "--workdir", str(work), "--port",
                          str(port), "--devices", str(plan.devices), "--rate", str(plan.rate),
                          "--seconds", str(plan.direct_s)], cwd=REPO, capture_output=True, text=True,
                         timeout=plan.direct_s + 180, env={**os.environ, "PYTHONPATH": str(REPO)})
    if out.returncode != 0:
        raise RuntimeError(f"direct publisher failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _wait_stored(url: str, produced: int, timeout: float) -> int:
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            count = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            if count >= produced or time.monotonic() > deadline:
                return count
            time.sleep(0.5)


def _measure(url: str, work: Path, marks: dict, plan: Plan) -> dict:
    import psycopg

    produced = {}
    for path in work.glob("ids-*.tsv"):
        for line in path.read_text().splitlines():
            device, event_id, seq = line.split("\t")
            produced[event_id] = (device, int(seq))
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event_id, device_id, seq, captured_at, "
                            "EXTRACT(EPOCH FROM pg_xact_commit_timestamp(xmin))::float8 FROM events").fetchall()
    stored = {r[0] for r in rows}
    lat = {"steady": [], "faults": [], "burst": [], "direct": []}
    commits = []
    by_device: dict[str, list[tuple[float, int]]] = {}
    steady_by_device: dict[str, list[tuple[float, int]]] = {}
    for event_id, device, seq, captured_at, committed in rows:
        captured = _epoch(captured_at)
        phase = ("steady" if captured < marks["faults"] else "faults" if captured < marks["burst"]
                 else "burst" if captured < marks["direct"] else "direct")
        lat[phase].append(1000 * (committed - captured))
        if phase == "burst":
            commits.append(committed)
        by_device.setdefault(device, []).append((committed, seq))
        if phase == "steady":
            steady_by_device.setdefault(device, []).append((committed, seq))
    burst_events = plan.burst * plan.devices
    burst_s = (max(commits) - marks["resume"]) if commits else None
    in_order = lambda groups: sum(all(a[1] < b[1] for a, b in zip(s, s[1:]))  # noqa: E731
                                  for s in (sorted(v) for v in groups.values()))
    lost = sorted(produced.keys() - stored)
    missing = {produced[e][0] for e in lost}
    lost_examples = [{"device": produced[e][0], "seq": produced[e][1], "event_id": e,
                      "created_s_after_start": round(_ulid_time(e) - marks["steady"], 3)} for e in lost[:20]]
    steady_n = len(lat["steady"])
    return {"plan": asdict(plan), "offered_per_s_achieved_steady": round(steady_n / plan.steady_s, 1),
            "produced": len(produced), "stored_unique": len(stored),
            "lost": len(lost), "lost_examples": lost_examples, "duplicates_stored": len(rows) - len(stored),
            "events_per_s": round(len(commits) / burst_s, 1) if burst_s else None,
            "burst": {"events": len(commits), "expected": burst_events,
                      "devices_seconds_to_write_outboxes": round(marks["burst_written"] - marks["burst"], 2),
                      "devices_seconds_to_publish_all": round(marks["burst_at_broker"] - marks["burst"], 2),
                      "collectors_seconds_to_commit_all": round(burst_s, 2) if burst_s else None,
                      "peak_commits_per_s": _peak_rate(commits)},
            "capture_to_commit_ms": {k: _percentiles(v) for k, v in lat.items()},
            "direct_offered_per_s": round(len(lat["direct"]) / plan.direct_s, 1) if plan.direct_s else None,
            "order": {"devices": len(by_device), "committed_in_seq_order_steady": in_order(steady_by_device),
                      "committed_in_seq_order_whole_run": in_order(by_device),
                      "devices_missing_events": len(missing)}}


def _ulid_time(ulid: str) -> float:
    """Creation time (epoch seconds) in a ULID's first 10 characters (Crockford base32 ms)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    ms = 0
    for char in ulid[:10].upper():
        ms = ms * 32 + alphabet.index(char)
    return ms / 1000


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    values = sorted(values)
    pick = lambda q: round(values[min(len(values) - 1, int(q * len(values)))], 1)  # noqa: E731
    return {"n": len(values), "p50": pick(0.5), "p99": pick(0.99), "max": round(values[-1], 1)}


def _peak_rate(commits: list[float]) -> int:
    per_second: dict[int, int] = {}
    for t in commits:
        per_second[int(t)] = per_second.get(int(t), 0) + 1
    return max(per_second.values(), default=0)


def verdict(result: dict) -> tuple[bool, list[str]]:
    """(all targets met, the misses)."""
    misses = []
    burst_n = result["burst"]["events"]
    if burst_n < MIN_BURST_EVENTS:
        misses.append(f"events_per_s not measured: a burst of {burst_n} events is too small to show "
                      f"{TARGET_EVENTS_PER_S:.0f} events/s (needs >= {MIN_BURST_EVENTS}; raise --devices or --burst)")
    elif (result["events_per_s"] or 0) < TARGET_EVENTS_PER_S:
        misses.append(f"events_per_s {result['events_per_s']} < {TARGET_EVENTS_PER_S:.0f}")
    if result["lost"]:
        misses.append(f"lost {result['lost']}")
    if result["duplicates_stored"]:
        misses.append(f"duplicates_stored {result['duplicates_stored']}")
    rate = result["plan"]["rate"]
    at_rate = [(phase, offered) for phase, offered in (("steady", result["offered_per_s_achieved_steady"]),
                                                        ("direct", result.get("direct_offered_per_s") or 0))
               if offered >= 0.95 * rate]
    if not at_rate:
        misses.append(f"no phase offered {rate:.0f} events/s (devices: {result['offered_per_s_achieved_steady']}, "
                      f"direct: {result.get('direct_offered_per_s')})")
    for phase, _ in at_rate:
        p99 = result["capture_to_commit_ms"][phase].get("p99")
        if p99 is None or p99 >= TARGET_P99_MS:
            misses.append(f"{phase} p99 capture_to_commit_ms {p99} >= {TARGET_P99_MS:.0f}")
    return not misses, misses


def run(args: argparse.Namespace) -> int:
    plan = Plan(**{k: getattr(args, k) for k in asdict(Plan())})
    result = bench_fleet(plan, args.workdir)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ok, misses = verdict(result)
    print("PASS" if ok else "FAIL: " + "; ".join(misses))
    return 0 if ok else 1
