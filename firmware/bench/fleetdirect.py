"""The *direct* phase of ``rollcall bench fleet``: the central side alone at a given rate.

One plain paho client publishes attendance events (the same wire form and topics as the
devices', ``captured_at`` = the moment of publishing) at ``--rate`` per second for
``--seconds``, round robin over ``--devices`` device topics, QoS 1 with up to 2,000 in flight.
It stands in for the devices' outboxes and links, whose CPU (about 2.5 ms per event in
Python, see README "Fleet") cannot be afforded 1,000 times a second on the benchmark
machine. Writes the ids it published to ``<workdir>/ids-direct.tsv``; exits when every
PUBACK is in (an event refused with "No matching subscribers" is re-published).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from ulid import ULID

from firmware.link.mqtt import delivered
from firmware.link.payloads import utc_iso

INFLIGHT = 2000
TICK_S = 0.005


class Direct:
    """Publishes and tracks acknowledgements (one thread: paho's loop_start)."""

    def __init__(self, port: int, devices: int) -> None:
        self.devices = devices
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-direct", protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(INFLIGHT)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.inflight: dict[int, tuple[str, str, bytes]] = {}
        self.refused: list[tuple[str, str, bytes]] = []
        self.ids: list[tuple[str, str, int]] = []
        self.acks: list[tuple[int, bool]] = []

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.acks.append((mid, delivered(reason_code)))  # handled on the main thread (no race)

    def _apply_acks(self) -> None:
        acks, self.acks = self.acks, []
        for mid, ok in acks:
            item = self.inflight.pop(mid, None)
            if item is not None and not ok:
                self.refused.append(item)

    def publish_one(self, n: int) -> None:
        device = f"fleet-{n % self.devices:05d}"
        event_id = str(ULID())
        payload = json.dumps({"event_id": event_id, "seq": 1_000_000 + n // self.devices, "device_id": device,
                              "captured_at": utc_iso(), "model_id": "bench", "session_id": None,
                              "room": f"room-{n % 40}", "day": time.strftime("%Y-%m-%d", time.gmtime()),
                              "person_id": f"d{n}", "status": "present", "score": 0.9}).encode()
        self._send(f"rollcall/v1/fleet/{device}/event/attendance", event_id, payload)
        self.ids.append((device, event_id, 1_000_000 + n // self.devices))

    def _send(self, topic: str, event_id: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        self.inflight[info.mid] = (topic, event_id, payload)

    def run(self, rate: float, seconds: float) -> None:
        start, n = time.monotonic(), 0
        while time.monotonic() - start < seconds:
            due = int(rate * (time.monotonic() - start))
            self._apply_acks()
            while n < due and len(self.inflight) < INFLIGHT:
                self.publish_one(n)
                n += 1
            time.sleep(TICK_S)

    def finish(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while (self.inflight or self.refused or self.acks) and time.monotonic() < deadline:
            self._apply_acks()
            while self.refused:
                self._send(*self.refused.pop())
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    direct = Direct(args.port, args.devices)
    direct.run(args.rate, args.seconds)
    direct.finish()
    with open(args.workdir / "ids-direct.tsv", "w", encoding="utf-8") as out:
        out.writelines(f"{d}\t{e}\t{s}\n" for d, e, s in direct.ids)
    print(json.dumps({"published": len(direct.ids), "unacked": len(direct.inflight)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
