"""Store benchmark: how long ``attendance.record`` takes with a big history on disk.

``bench_append(n_existing)`` pre-fills a data dir with ``n_existing`` attendance records
(spread over the retention window, realistic size) and as many unacknowledged outbox
entries (the broker was down for a long time), opens a Store on it, then times
``attendance.record`` (record + outbox entry: one fdatasync'd journal line; the files
are rewritten by the background checkpointer). For context it also times, on the same
disk, a bare 1 KiB atomic write and a bare 1 KiB append + fdatasync (the floor). Then it
times ``attendance.query`` for the newest day, the newest week and everything, the first
call (days read from disk) and a second one (per-day cache).
Run: ``python -m firmware.bench.store [--existing N] [--appends N] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from firmware.config import StoreConfig
from firmware.store import Store
from firmware.store.atomic import atomic_write_bytes
from firmware.store.facade import SEGMENT_MAX
from firmware.store.ids import SEQ_BLOCK, day_of, new_ulid, to_iso
from firmware.store.segments import segment_name
from firmware.store.tinyfile import TABLE, dumps, ensure_dir

logger = logging.getLogger(__name__)

DAY_S = 86400.0


def _record(seq: int, ts: float) -> dict:
    return {"event_id": new_ulid(ts), "seq": seq, "session_id": f"S{int(ts // DAY_S)}",
            "room": "hall-1", "day": day_of(ts), "person_id": f"p{seq % 5000:05d}",
            "status": "present", "score": 0.71234, "captured_at": to_iso(ts),
            "recorded_at": to_iso(ts), "source": "auto", "revision": 0,
            "extra": {"track_id": seq, "liveness": "blink", "model_id": "dlib_resnet_int8"}}


def _write_segments(directory: Path, records: list[dict], per_file: int, wrap=None) -> int:
    ensure_dir(directory)
    files = 0
    for start in range(0, len(records), per_file):
        chunk = records[start:start + per_file]
        table = {str(i + 1): (wrap(r) if wrap else r) for i, r in enumerate(chunk)}
        path = directory / segment_name(start // per_file + 1)
        path.write_bytes(dumps({TABLE: table}))
        os.chmod(path, 0o600)
        files += 1
    return files


def prefill(data_dir: Path, n_existing: int, now: float, days: int = 90,
            segment_max: int = 256) -> None:
    """Write ``n_existing`` attendance records and outbox entries straight to segment files."""
    by_day: dict[str, list[dict]] = {}
    recs = []
    for seq in range(1, n_existing + 1):
        ts = now - DAY_S - (n_existing - seq) * (days * DAY_S / max(1, n_existing))
        rec = _record(seq, ts)
        by_day.setdefault(rec["day"], []).append(rec)
        recs.append(rec)
    for day, day_recs in by_day.items():
        _write_segments(data_dir / "attendance" / day, day_recs, segment_max)
    _write_segments(data_dir / "outbox", recs, segment_max, wrap=lambda r: {
        "event_id": r["event_id"], "seq": r["seq"], "topic": "event/attendance", "payload": r,
        "created": now, "created_at": to_iso(now)})
    (data_dir / "counters.json").write_bytes(dumps({"seq_reserved": n_existing + SEQ_BLOCK}))
    (data_dir / "schema_version").write_text("1\n")


def _disk_usage(data_dir: Path) -> tuple[int, int]:
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def bench_append(n_existing: int = 100_000, n_appends: int = 300,
                 data_dir: str | os.PathLike | None = None, segment_max: int = SEGMENT_MAX) -> dict:
    """Time ``attendance.record`` with ``n_existing`` events stored; times in milliseconds."""
    work = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="rollcall-bench-store-"))
    try:
        now = time.time()
        t0 = time.perf_counter()
        prefill(ensure_dir(work), n_existing, now, segment_max=segment_max)
        prefill_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store = Store(work, config=StoreConfig(outbox_max_events=10_000_000), segment_max=segment_max)
        open_s = time.perf_counter() - t0
        with store:
            times = _time_appends(store, n_appends, now)
            depth = store.outbox.depth()
            queries = _time_queries(store)
        atomic, append = _fsync_baseline(work, n_appends)
        files, size = _disk_usage(work)
    finally:
        if not data_dir:
            shutil.rmtree(work, ignore_errors=True)
    times.sort()
    return {"n_existing": n_existing, "n_appends": n_appends, "segment_max": segment_max,
            "append_ms_median": _median(times), "append_ms_p99": _p99(times),
            "append_ms_max": round(times[-1], 3),
            "atomic_write_ms_median": _median(atomic), "atomic_write_ms_p99": _p99(atomic),
            "fdatasync_append_ms_median": _median(append), "fdatasync_append_ms_p99": _p99(append),
            **queries, "open_s": round(open_s, 3),
            "prefill_s": round(prefill_s, 3), "outbox_depth": depth, "files": files, "bytes": size}


def _median(sorted_ms: list[float]) -> float:
    return round(statistics.median(sorted_ms), 3)


def _p99(sorted_ms: list[float]) -> float:
    return round(sorted_ms[min(len(sorted_ms) - 1, int(0.99 * len(sorted_ms)))], 3)


def _time_appends(store: Store, n: int, now: float) -> list[float]:
    people = [f"q{i:05d}" for i in range(n)]
    _bulk_people(store, people)
    roster = store.rosters.create("bench", [{"person_id": p, "seat": i} for i, p in enumerate(people)])
    session = store.sessions.create(roster["id"], "hall-1", "bench", now - 60, now + 7200, now + 3600)
    store.sessions.set_state(session["id"], "in_progress", "bench")
    times = []
    for person in people:
        t0 = time.perf_counter()
        store.attendance.record(session["id"], person, score=0.7, extra={"track_id": 1})
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def _time_queries(store: Store) -> dict:
    """``attendance.query`` in ms: first call (from disk) and second (cached) per range."""
    days = store.attendance.days()
    ranges = {"day": days[-1:] * 2, "week": [days[max(0, len(days) - 7)], days[-1]],
              "all": [days[0], days[-1]]} if days else {}
    out = {}
    for name, (lo, hi) in ranges.items():
        for run in ("first", "again"):
            t0 = time.perf_counter()
            store.attendance.query(day_from=lo, day_to=hi)
            out[f"query_{name}_ms_{run}"] = round((time.perf_counter() - t0) * 1000.0, 1)
    return out


def _fsync_baseline(work: Path, n: int) -> tuple[list[float], list[float]]:
    """Same-disk references in ms: a bare 1 KiB atomic write (fsync file + rename + fsync
    dir), and a bare 1 KiB append + fdatasync."""

    atomic, append = [], []
    fd = os.open(work / "baseline.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            atomic_write_bytes(work / "baseline.bin", b"x" * 1024)
            t1 = time.perf_counter()
            os.write(fd, b"y" * 1024)
            os.fdatasync(fd)
            atomic.append((t1 - t0) * 1000.0)
            append.append((time.perf_counter() - t1) * 1000.0)
    finally:
        os.close(fd)
    (work / "baseline.bin").unlink()
    (work / "baseline.log").unlink()
    return sorted(atomic), sorted(append)


def _bulk_people(store: Store, ids: list[str]) -> None:
    for pid in ids:
        store.people.add(pid, f"Bench {pid}")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--existing", type=int, default=100_000, help="events already stored")
    parser.add_argument("--appends", type=int, default=300, help="records to time")
    parser.add_argument("--segment-max", type=int, default=SEGMENT_MAX, help="records per file")
    parser.add_argument("--dir", default=None, help="data dir to use (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the result to this file")


def register(parser: argparse.ArgumentParser, command: str) -> None:
    """`rollcall bench store`: the CLI entry (see firmware/cli/__init__.py)."""
    _add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    result = bench_append(args.existing, args.appends, args.dir, args.segment_max)
    for key, value in result.items():
        print(f"{key:>18}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
