"""Signed downlink commands from the central side (docs/mqtt-contract.md, "Commands").

:func:`send_command` publishes a command signed with :func:`firmware.link.cmdauth.sign_command`
to one device and waits for its ``cmd/<name>/result``.
"""

from __future__ import annotations

import json
import queue
import time

from firmware.config import MqttConfig
from firmware.link.client import connect_started
from firmware.link.cmdauth import sign_command

__all__ = ["send_command", "sign_command"]


def send_command(cfg: MqttConfig, site: str, device: str, name: str, raw: bytes,
                 timeout: float = 10.0) -> dict | None:
    """Publish signed command bytes to ``device`` and wait for its result (None on timeout)."""
    topic = f"{cfg.prefix}/{site}/{device}/cmd/{name}"
    results: queue.SimpleQueue = queue.SimpleQueue()
    client = connect_started(cfg, f"rollcall-central-cmd-{int(time.time() * 1000) % 10**9}")
    client.on_message = lambda c, u, msg: results.put(msg.payload)
    try:
        client.subscribe(topic + "/result", qos=1)
        time.sleep(0.2)  # let the SUBACK in before the device can answer
        client.publish(topic, raw, qos=1).wait_for_publish(timeout)
        return json.loads(results.get(timeout=timeout))
    except queue.Empty:
        return None
    finally:
        client.disconnect()
        client.loop_stop()
