"""JSON payloads of the MQTT contract v1: events, status (birth and will), telemetry,
command results and Home Assistant discovery. Pure functions, no I/O.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from firmware import __version__
from firmware.link.topics import CONTRACT_VERSION, HA_PREFIX, Topics


def utc_iso(epoch: float | None = None) -> str:
    """UTC ISO-8601 with milliseconds and a ``Z``: ``2026-11-21T08:01:02.123Z``."""
    moment = datetime.now(timezone.utc) if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode(payload: dict) -> bytes:
    """Compact UTF-8 JSON (no NaN: it is not JSON)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def event_message(entry: dict, device_id: str, model_id: str, room: str | None = None) -> dict:
    """The wire form of an outbox entry: its payload plus the fields every event carries.

    ``room``: the device's room, filled in when the record has none (an open-door arrival
    has no session to take it from), so the central side can group by room.
    """
    payload = dict(entry.get("payload") or {})
    if room and "room" in payload and payload["room"] is None:
        payload["room"] = room
    payload["event_id"] = entry["event_id"]
    payload["seq"] = entry["seq"]
    payload["device_id"] = device_id
    payload.setdefault("captured_at", entry.get("created_at") or utc_iso())
    payload.setdefault("model_id", model_id)
    return payload


def wire_suffix(entry: dict) -> str:
    """Topic suffix on the wire: the store keeps spoofs with unknowns; the contract splits them."""
    topic = entry["topic"]
    if topic == "event/unknown" and (entry.get("payload") or {}).get("kind") == "spoof":
        return "event/spoof"
    return topic


def birth(status: dict, device_id: str, model_id: str, roster_version: int | None,
          conn_seq: int | None = None, room: str | None = None) -> dict:
    """Retained ``status`` published on every connect (and on ``rebirth``).

    ``conn_seq`` numbers the connection (the same number is in that connection's will).
    """
    message = {k: v for k, v in status.items() if _json_safe(v)}
    message.update({
        "state": "online", "device_id": device_id, "contract": CONTRACT_VERSION,
        "firmware_version": status.get("firmware_version", __version__), "model_id": model_id,
        "roster_version": roster_version, "session": status.get("session"), "at": utc_iso(),
    })
    if conn_seq is not None:
        message["conn_seq"] = conn_seq
    if room is not None:
        message.setdefault("room", room)
    return message


def will(device_id: str, reason: str = "connection lost", conn_seq: int | None = None) -> dict:
    """Retained ``status`` the broker publishes when the device vanishes (or says goodbye)."""
    message = {"state": "offline", "device_id": device_id, "contract": CONTRACT_VERSION,
               "reason": reason, "at": utc_iso()}
    if conn_seq is not None:
        message["conn_seq"] = conn_seq
    return message


def command_result(name: str, request_id: str | None, ok: bool, device_id: str,
                   result: dict | None = None, error: str | None = None) -> dict:
    """``cmd/<name>/result``: ``ok`` plus ``result`` or a human ``error``."""
    message: dict = {"command": name, "request_id": request_id, "ok": ok,
                     "device_id": device_id, "at": utc_iso()}
    if ok:
        message["result"] = result or {}
    else:
        message["error"] = error or "failed"
    return message


HA_SENSORS = (  # (key in telemetry, name, unit, device_class)
    ("fps", "Frame rate", "fps", None),
    ("decision_latency_ms", "Decision latency", "ms", "duration"),
    ("outbox_depth", "Outbox depth", "events", None),
    ("cpu_temp_c", "CPU temperature", "°C", "temperature"),
    ("disk_free_mb", "Disk free", "MB", "data_size"),
    ("uptime_s", "Uptime", "s", "duration"),
)


def ha_discovery(topics: Topics, device_name: str) -> list[tuple[str, dict]]:
    """Home Assistant MQTT discovery configs (retained) for the telemetry sensors."""
    node = f"rollcall_{topics.device_id}".replace(".", "_").replace("-", "_")
    device = {"identifiers": [node], "name": device_name, "manufacturer": "Rollcall",
              "sw_version": __version__}
    out = []
    for key, name, unit, device_class in HA_SENSORS:
        config = {"name": name, "unique_id": f"{node}_{key}", "state_topic": topics.telemetry,
                  "value_template": "{{ value_json.%s }}" % key, "unit_of_measurement": unit,
                  "availability_topic": topics.status, "availability_template": "{{ value_json.state }}",
                  "payload_available": "online", "payload_not_available": "offline",
                  "device": device}
        if device_class:
            config["device_class"] = device_class
        out.append((f"{HA_PREFIX}/sensor/{node}/{key}/config", config))
    return out


def _json_safe(value: object) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True
