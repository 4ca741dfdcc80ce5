"""A minimal device process: a real Store and a real MqttLink, nothing else.

Used by integration tests and the MQTT benchmark to kill (SIGKILL) and restart a "device"
while it drains its outbox::

    python -m firmware.link.devicechild --data-dir D --port P --device-id dev1 [--record N]

``--record N`` first writes N events into the outbox (flushed as ``recorded N``), then the
link drains until SIGTERM/SIGINT (clean close: retained ``offline`` status) or SIGKILL.
Progress lines go to stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from firmware.config import DeviceConfig, MqttConfig
from firmware.link.mqtt import MqttLink
from firmware.store import Store


BENCH_TOPIC = "event/bench"


def record_events(store, count: int, session_id: str = "s-test") -> None:
    """Put ``count`` synthetic events on the outbox (topic ``event/bench``), oldest first.

    Real attendance goes through ``store.attendance.record`` (which needs people and a
    session); the link does not care what an event says, so tests and the benchmark use
    this cheaper, contract-shaped event.
    """
    for number in range(count):
        store.outbox.put(BENCH_TOPIC, {"session_id": session_id, "person_id": f"p{number:05d}",
                                       "status": "present", "score": 0.9})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--device-id", default="dev1")
    parser.add_argument("--site", default="site1")
    parser.add_argument("--room", default="room1")
    parser.add_argument("--model-id", default="dlib_resnet_int8")
    parser.add_argument("--record", type=int, default=0)
    parser.add_argument("--max-inflight", type=int, default=20)
    parser.add_argument("--keepalive", type=int, default=5)
    parser.add_argument("--config-json", help="extra MqttConfig fields as JSON (tls, ca_file...)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import json

    extra = json.loads(args.config_json) if args.config_json else {}
    mqtt_cfg = MqttConfig(host=args.host, port=args.port, max_inflight=args.max_inflight,
                          keepalive_s=args.keepalive, **extra)
    device = DeviceConfig(id=args.device_id, site=args.site, room=args.room)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    with Store(args.data_dir) as store:
        record_events(store, args.record)
        print(f"recorded {args.record} depth {store.outbox.depth()}", flush=True)
        status = {"roster_version": None, "session": None}
        with MqttLink(mqtt_cfg, device, store, model_id=args.model_id,
                      status_provider=lambda: dict(status)):
            print("started", flush=True)
            while not stop.wait(0.2):
                pass
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
