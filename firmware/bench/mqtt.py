"""`rollcall bench mqtt`: drain a stored backlog to a real mosquitto and count what arrives.

A broker that was down for a long time left ``--events`` (default 10,000) attendance
events in the outbox. The benchmark starts its own mosquitto on a free loopback port,
opens the real Store on that backlog, starts the reference collector (in-process, SQLite,
persistent session) and an ``MqttLink``, and measures:

- ``events_per_s``: events / ``seconds_to_all_collected`` (link start -> last unique event
  committed by the collector);
- ``seconds_to_outbox_empty``: link start -> every PUBACK applied to the outbox;
- ``lost`` (recorded but never stored centrally), ``duplicates_stored`` (must be 0: the
  collector de-duplicates by ``event_id``), ``duplicates_received`` and ``order_ok``
  (first arrivals in ``seq`` order per device).

Target: >= 500 events/s, 0 lost, 0 duplicates stored.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from firmware.bench.broker import Mosquitto
from firmware.config import DeviceConfig, MqttConfig, StoreConfig
from firmware.link.mqtt import MqttLink
from firmware.store import Store
from provisioning.central import Collector

logger = logging.getLogger(__name__)

TARGET_EVENTS_PER_S = 500.0


def register(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--events", type=int, default=10_000, help="backlog size (default 10000)")
    parser.add_argument("--max-inflight", type=int, default=MqttConfig().max_inflight,
                        help="QoS 1 messages in flight (default: the config default)")
    parser.add_argument("--workdir", type=Path, help="keep broker, data and database here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.set_defaults(func=run)


def prefill_backlog(data_dir: Path, events: int) -> None:
    """Write ``events`` unacknowledged attendance events as the Store would have left them."""
    from firmware.bench.store import prefill  # the Store's own backlog writer

    prefill(data_dir, events, time.time(), days=1)


def stored_stats(db_path: Path) -> dict:
    """Unique/duplicate counts and per-device order of what the collector stored."""
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT device_id, seq FROM events ORDER BY rowid").fetchall()
        distinct = db.execute("SELECT COUNT(DISTINCT event_id) FROM events").fetchone()[0]
    last: dict[str, int] = {}
    order_ok = True
    for device, seq in rows:
        order_ok = order_ok and seq > last.get(device, 0)
        last[device] = seq
    return {"rows": len(rows), "unique": distinct, "order_ok": order_ok}


def bench_drain(events: int = 10_000, max_inflight: int = 20, workdir: Path | None = None) -> dict:
    """Run the drain benchmark; returns the result dict (see the module docstring)."""
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="rollcall-bench-mqtt-"))
    try:
        t0 = time.perf_counter()
        prefill_backlog(work / "data", events)
        prefill_s = time.perf_counter() - t0
        with Mosquitto(work / "broker") as broker:
            result = _measure(work, broker.port, events, max_inflight)
        result["prefill_s"] = round(prefill_s, 2)
        return result
    finally:
        if not workdir:
            shutil.rmtree(work, ignore_errors=True)


def _measure(work: Path, port: int, events: int, max_inflight: int) -> dict:
    cfg = MqttConfig(host="127.0.0.1", port=port, max_inflight=max_inflight)
    device = DeviceConfig(id="bench-device", site="bench", room="hall-1")
    store_cfg = StoreConfig(outbox_max_events=max(100_000, 2 * events))
    with Store(work / "data", config=store_cfg) as store, Collector(cfg, work / "central.db") as collector:
        if not collector.connected.wait(10):
            raise RuntimeError("collector could not connect to the benchmark broker")
        backlog = store.outbox.depth()
        start = time.perf_counter()
        with MqttLink(cfg, device, store, model_id="dlib_resnet_int8") as link:
            collected = collector.run(until_count=backlog, timeout=max(60.0, backlog / 50))
            all_collected_s = time.perf_counter() - start
            while store.outbox.depth() and time.perf_counter() - start < all_collected_s + 30:
                time.sleep(0.02)
            outbox_empty_s = time.perf_counter() - start
            stats = link.drain.stats
        left = store.outbox.depth()
        duplicates_received = collector.duplicates
    db = stored_stats(work / "central.db")
    return {"events": backlog, "max_inflight": max_inflight,
            "events_per_s": round(collected / all_collected_s, 1) if all_collected_s else None,
            "seconds_to_all_collected": round(all_collected_s, 3),
            "seconds_to_outbox_empty": round(outbox_empty_s, 3), "outbox_left": left,
            "lost": backlog - db["unique"], "duplicates_stored": db["rows"] - db["unique"],
            "duplicates_received": duplicates_received, "republished": stats.republished,
            "order_ok": db["order_ok"], "target_events_per_s": TARGET_EVENTS_PER_S}


def run(args: argparse.Namespace) -> int:
    result = bench_drain(args.events, args.max_inflight, args.workdir)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ok = (result["lost"] == 0 and result["duplicates_stored"] == 0 and result["order_ok"]
          and (result["events_per_s"] or 0) >= TARGET_EVENTS_PER_S)
    print("PASS" if ok else "FAIL (target: >= 500 events/s, 0 lost, 0 duplicates stored, order kept)")
    return 0 if ok else 1
