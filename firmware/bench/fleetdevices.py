"""One worker process of ``rollcall bench fleet``: many simulated devices, each a real
:class:`~firmware.store.Store` and a real :class:`~firmware.link.mqtt.MqttLink`.

Driven by its parent over stdin/stdout, one line each way:

- parent -> worker: ``rate R`` (events per second, spread over this worker's devices, round
  robin), ``burst B`` (queue B events on every device at once), ``stop`` (stop producing,
  wait until every outbox is empty, write the produced ids, close the links, exit);
- worker -> parent: ``ready N`` (N links connected), ``done {json}``.

``--poll-s`` raises the link thread's network poll timeout (0.05 s on a device): on a real
device each link has its own CPU, here hundreds share two cores, and 1,000 link threads
waking 20 times a second cost ~0.9 core doing nothing. A new event then waits up to
``--poll-s`` before it is published; that wait is inside the measured capture -> commit time.

Every event is written to the device's outbox (journal + fdatasync, the Store's normal
path) before the link publishes it, exactly as on a device; ``captured_at`` is the moment
it was written. The ids produced go to ``<workdir>/ids-<first>.tsv`` (device, event_id, seq).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from firmware.config import DeviceConfig, MqttConfig, StoreConfig
from firmware.link import mqtt as link_module
from firmware.link.mqtt import MqttLink
from firmware.store import Store

TICK_S = 0.01
OWED_MAX_S = 0.5  # a producer that falls behind skips, so the achieved rate is what is reported
ROOMS = 40


class Fleet:
    """``count`` devices numbered from ``first``; produces events and counts them."""

    def __init__(self, workdir: Path, first: int, count: int, cfg: MqttConfig) -> None:
        self.workdir, self.cfg = workdir, cfg
        self.names = [f"fleet-{i:05d}" for i in range(first, first + count)]
        store_cfg = StoreConfig(outbox_max_events=200_000)
        self.stores = [Store(workdir / "devices" / name, config=store_cfg) for name in self.names]
        self.links = [MqttLink(cfg, DeviceConfig(id=name, site="fleet", room=f"room-{n % ROOMS}"), store,
                               model_id="bench", reconnect_max_s=2)
                      for n, (name, store) in enumerate(zip(self.names, self.stores))]
        self.produced: list[tuple[str, str, int]] = []
        self.rate = 0.0
        self._next = 0
        self._lock = threading.Lock()

    def start(self, timeout: float = 120.0) -> int:
        for link in self.links:
            link.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(link.connected for link in self.links):
            time.sleep(0.1)
        return sum(link.connected for link in self.links)

    def produce_one(self, device: int) -> None:
        entry = self.stores[device].outbox.put("event/attendance", {
            "session_id": None, "room": f"room-{device % ROOMS}", "day": time.strftime("%Y-%m-%d", time.gmtime()),
            "person_id": f"p{len(self.produced)}", "status": "present", "score": 0.9})
        with self._lock:
            self.produced.append((self.names[device], entry["event_id"], entry["seq"]))
        self.links[device].wake()

    def burst(self, per_device: int) -> None:
        for _ in range(per_device):
            for device in range(len(self.stores)):
                self.produce_one(device)

    def run_rate(self, stop: threading.Event) -> None:
        """Produce ``self.rate`` events/s (round robin over the devices) until ``stop``."""
        owed, last = 0.0, time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            owed = min(owed + self.rate * (now - last), max(1.0, self.rate * OWED_MAX_S))
            last = now
            while owed >= 1.0:
                self.produce_one(self._next)
                self._next = (self._next + 1) % len(self.stores)
                owed -= 1.0
            if self.rate == 0:
                owed = 0.0
            time.sleep(TICK_S)

    def depth(self) -> int:
        return sum(store.outbox.depth() for store in self.stores)

    def finish(self, first: int, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while self.depth() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = self.depth()
        with open(self.workdir / f"ids-{first}.tsv", "w", encoding="utf-8") as out:
            out.writelines(f"{d}\t{e}\t{s}\n" for d, e, s in self.produced)
        republished = sum(link.drain.stats.republished for link in self.links)
        for link in self.links:
            link.close()
        for store in self.stores:
            store.close()
        return {"produced": len(self.produced), "outbox_left": left, "republished": republished}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-inflight", type=int, default=20)
    parser.add_argument("--poll-s", type=float, default=link_module.LOOP_TIMEOUT_S,
                        help="the link thread's network poll timeout (a device's own CPU is not shared)")
    args = parser.parse_args(argv)
    link_module.LOOP_TIMEOUT_S = args.poll_s
    cfg = MqttConfig(host="127.0.0.1", port=args.port, max_inflight=args.max_inflight, telemetry_interval_s=30)
    fleet = Fleet(args.workdir, args.first, args.count, cfg)
    print(f"ready {fleet.start()}", flush=True)
    stop = threading.Event()
    producer = threading.Thread(target=fleet.run_rate, args=(stop,), daemon=True)
    producer.start()
    for line in sys.stdin:
        word, _, value = line.strip().partition(" ")
        if word == "rate":
            fleet.rate = float(value)
        elif word == "burst":
            fleet.burst(int(value))
            print("burst-written", flush=True)
        elif word == "depth":
            print(f"depth {fleet.depth()}", flush=True)
        elif word == "stop":
            break
    stop.set()
    producer.join(5)
    print("done " + json.dumps(fleet.finish(args.first)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
