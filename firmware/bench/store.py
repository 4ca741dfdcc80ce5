"""Store benchmark: how long ``attendance.record`` takes with a big history on disk.

``bench_append(n_existing)`` pre-fills a data dir with ``n_existing`` attendance records
(spread over the retention window, realistic size) and as many unacknowledged outbox
entries (the broker was down for a long time), opens a Store on it, then times
``attendance.record`` (outbox entry + day segment, each an fsynced atomic write).
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
                 data_dir: str | os.PathLike | None = None) -> dict:
    """Time ``attendance.record`` with ``n_existing`` events stored; times in milliseconds."""
    work = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="rollcall-bench-store-"))
    try:
        now = time.time()
        t0 = time.perf_counter()
        prefill(ensure_dir(work), n_existing, now)
        prefill_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store = Store(work, config=StoreConfig(outbox_max_events=10_000_000))
        open_s = time.perf_counter() - t0
        with store:
            times = _time_appends(store, n_appends, now)
            depth = store.outbox.depth()
        baseline = _fsync_baseline(work, n_appends)
        files, size = _disk_usage(work)
    finally:
        if not data_dir:
            shutil.rmtree(work, ignore_errors=True)
    times.sort()
    return {"n_existing": n_existing, "n_appends": n_appends,
            "append_ms_median": round(statistics.median(times), 3),
            "append_ms_p99": round(times[min(len(times) - 1, int(0.99 * len(times)))], 3),
            "append_ms_max": round(times[-1], 3),
            "atomic_write_ms_median": round(statistics.median(baseline), 3),
            "atomic_write_ms_p99": round(baseline[int(0.99 * len(baseline))], 3), "open_s": round(open_s, 3),
            "prefill_s": round(prefill_s, 3), "outbox_depth": depth, "files": files, "bytes": size}


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


def _fsync_baseline(work: Path, n: int) -> list[float]:
    """Same-disk reference: one bare 1 KiB atomic write (fsync file + rename + fsync dir)."""
    from firmware.store.atomic import atomic_write_bytes

    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        atomic_write_bytes(work / "baseline.bin", b"x" * 1024)
        times.append((time.perf_counter() - t0) * 1000.0)
    (work / "baseline.bin").unlink()
    return sorted(times)


def _bulk_people(store: Store, ids: list[str]) -> None:
    for pid in ids:
        store.people.add(pid, f"Bench {pid}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", type=int, default=100_000, help="events already stored")
    parser.add_argument("--appends", type=int, default=300, help="records to time")
    parser.add_argument("--dir", default=None, help="data dir to use (default: a temp dir)")
    parser.add_argument("--json", default=None, help="also write the result to this file")
    args = parser.parse_args(argv)
    result = bench_append(args.existing, args.appends, args.dir)
    for key, value in result.items():
        print(f"{key:>18}  {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
