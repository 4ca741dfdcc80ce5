"""Probe an MQTT broker for the console's settings page (runs on a control API thread)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from pydantic import ValidationError

from firmware.config import MqttConfig
from firmware.errors import LinkError
from firmware.link.client import build_client, describe_connect_error, describe_refusal

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0


def probe_broker(mqtt: dict, timeout_s: float = PROBE_TIMEOUT_S) -> dict:
    """Try one MQTT connection with these settings (a ``[mqtt]`` section as a dict);
    ``{"ok": bool, "message": str}``, never raises."""
    try:
        cfg = MqttConfig.model_validate(mqtt or {})
    except ValidationError as exc:
        return {"ok": False, "message": "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())}
    if not cfg.host:
        return {"ok": False, "message": "no broker host set (mqtt.host)"}
    try:
        client = build_client(cfg, "rollcall-probe")
    except LinkError as exc:
        return {"ok": False, "message": str(exc)}
    return _connect_once(client, cfg, timeout_s)


def _connect_once(client: Any, cfg: Any, timeout_s: float) -> dict:
    """Connect, wait for the CONNACK up to ``timeout_s`` seconds, disconnect."""

    done, answer = threading.Event(), {}

    def on_connect(_client, _userdata, _flags, reason_code, _properties=None):
        answer["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.port, keepalive=10)
    except Exception as exc:  # paho raises socket, ssl and ValueError alike
        return {"ok": False, "message": describe_connect_error(exc, cfg)}
    client.loop_start()
    try:
        done.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    rc = answer.get("rc")
    if rc is None:
        return {"ok": False, "message": f"broker {cfg.host}:{cfg.port} did not answer in {timeout_s:.0f} s"}
    if rc.is_failure:
        return {"ok": False, "message": describe_refusal(rc)}
    return {"ok": True, "message": f"connected to {cfg.host}:{cfg.port}"}
