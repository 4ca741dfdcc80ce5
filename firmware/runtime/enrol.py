"""Device helpers for the console: enrol photos, probe a broker.

Kept out of ``device.py`` so that module stays about the running loop. Both run on the
control API's threads, never on the loop's.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from firmware.config import MqttConfig
from firmware.domain.enrolment import ENROL_DETECTOR, check_and_embed
from firmware.errors import LinkError, RollcallError
from firmware.inference.embedder import same_person_threshold
from firmware.inference.pipeline import FacePipeline
from firmware.link.client import build_client, describe_connect_error, describe_refusal

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 5.0


def _failed(images: list[bytes], message: str) -> list[dict]:
    return [{"ok": False, "message": message, "photo_id": None} for _ in images]


def _pipeline(device: Any) -> Any:
    """The enrolment pipeline (its own interpreters: the loop's are used by the loop's
    thread), created at the first enrolment and kept."""
    if device._enrol_pipeline is None:

        cfg = device.config
        device._enrol_pipeline = FacePipeline(cfg.paths.models_dir, detector_id=ENROL_DETECTOR,
                                              embedder_id=cfg.recognition.embedder, min_face_px=24,
                                              score_threshold=cfg.detection.score_threshold, max_faces=10)
    return device._enrol_pipeline


def enrol_photos(device: Any, person_id: str, images: list[bytes]) -> list[dict]:
    """Check, embed and store photos of one person; per photo ``{"ok", "message", "photo_id"}``."""

    store, model_id = device.store, device.config.recognition.embedder
    if store.people.get(person_id) is None:
        return _failed(images, f"person {person_id!r} does not exist: add them first")
    if device.models["state"] != "ok":
        return _failed(images, f"cannot enrol: {device.models['message']}")
    try:
        pipeline = _pipeline(device)
    except RollcallError as exc:
        return _failed(images, f"cannot enrol: {exc}")
    _, existing = store.people.embeddings(model_id, [person_id])
    shas = [p["photo_sha256"] for p in store.people.photos(person_id) if p.get("photo_sha256")]
    results = check_and_embed(images, existing if len(existing) else None, shas, pipeline,
                              same_person_threshold=same_person_threshold(model_id))
    out = []
    for r in results:
        if not r.accepted:
            out.append({"ok": False, "message": r.message, "photo_id": None})
            continue
        meta = store.people.add_embedding(person_id, r.embedding, model_id, photo_sha256=r.sha256,
                                          photo_jpeg=r.face_jpeg)
        out.append({"ok": True, "message": r.message, "photo_id": meta.get("photo_id")})
    logger.info("enrolled %d of %d photos for %s", sum(o["ok"] for o in out), len(out), person_id)
    return out


def probe_broker(mqtt: dict, timeout_s: float = PROBE_TIMEOUT_S) -> dict:
    """Try one MQTT connection with these settings (a ``[mqtt]`` section as a dict);
    ``{"ok": bool, "message": str}``, never raises."""
    from pydantic import ValidationError


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
