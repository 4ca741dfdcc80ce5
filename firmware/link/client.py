"""Building a paho-mqtt 2.x client from ``MqttConfig``, and saying clearly why a connect failed.

Used by the device link and by the reference central tools. The password is read from
``password_file`` here and handed to paho only; it never reaches a log line or a message.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import ssl
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from firmware.config import MqttConfig, secret_path
from firmware.errors import LinkError

logger = logging.getLogger(__name__)

ANONYMOUS_WARNING = ("BROKER ACCEPTS ANONYMOUS CLIENTS: anyone on the network can read attendance "
                     "events and publish to the broker; set allow_anonymous false and use the "
                     "ACL of provisioning/mosquitto/")
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0


def read_password(path: Path | None) -> str | None:
    """The MQTT password from its 0600 file (first line); None when unset or the file is empty.

    The file is looked up as a systemd credential first (:func:`firmware.config.secret_path`).
    """
    path = secret_path(path)
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LinkError(f"cannot read mqtt.password_file {path}: {exc.strerror}; "
                        "check the path and that the rollcall user may read it") from None
    return text.splitlines()[0] if text.strip() else None


def build_client(cfg: MqttConfig, client_id: str, *, manual_ack: bool = False,
                 will: tuple[str, dict] | None = None) -> mqtt.Client:
    """A configured, not yet connected MQTT v5 client (TLS, credentials, retained last will)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    if cfg.tls:
        try:
            client.tls_set(ca_certs=_opt(cfg.ca_file), certfile=_opt(cfg.cert_file),
                           keyfile=_opt(cfg.key_file), cert_reqs=ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError) as exc:
            raise LinkError(f"TLS setup failed ({_tls_reason(exc)}); check mqtt.ca_file, "
                            "mqtt.cert_file and mqtt.key_file") from None
    if cfg.username:
        client.username_pw_set(cfg.username, read_password(cfg.password_file))
    if will is not None:
        topic, payload = will
        client.will_set(topic, json.dumps(payload, separators=(",", ":")), qos=1, retain=True)
    client.reconnect_delay_set(int(RECONNECT_MIN_S), int(RECONNECT_MAX_S))
    return client


def connect_started(cfg: MqttConfig, client_id: str) -> mqtt.Client:
    """A client connected to the broker with its network loop running (the central
    tools that publish a few messages); LinkError saying why when the broker is not
    reachable. Stop it with ``disconnect()`` then ``loop_stop()``."""
    client = build_client(cfg, client_id)
    try:
        client.connect(cfg.host, cfg.port, keepalive=cfg.keepalive_s)
    except OSError as exc:
        raise LinkError(describe_connect_error(exc, cfg)) from None
    client.loop_start()
    return client


def set_nodelay(client: mqtt.Client) -> None:
    """Disable Nagle on the client socket: many small QoS 1 packets would wait ~40 ms each."""
    sock = client.socket()
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket (unix, websockets): nothing to tune
            pass


def session_properties(expiry_s: int) -> Properties:
    """CONNECT properties asking the broker to keep the session ``expiry_s`` seconds."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry_s
    return props


def _opt(path: Path | None) -> str | None:
    """A TLS file as paho wants it: systemd credential first; missing/empty file = not set."""
    real = secret_path(path)
    if real is None or (real.is_file() and real.stat().st_size == 0):
        return None
    return str(real)


def _tls_reason(exc: BaseException) -> str:
    return getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or \
        getattr(exc, "strerror", None) or exc.__class__.__name__


def describe_connect_error(exc: BaseException, cfg: MqttConfig) -> str:
    """One clear line saying why connecting to the broker failed and what to check."""
    where = f"{cfg.host}:{cfg.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS certificate of broker {where} rejected: {exc.verify_message}; "
                f"check mqtt.ca_file ({cfg.ca_file}) is the CA that signed the broker certificate "
                "and that mqtt.host matches its name")
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with broker {where} failed ({_tls_reason(exc)}); check mqtt.tls and the port"
    if isinstance(exc, ConnectionRefusedError):
        return f"broker {where} refused the TCP connection; is it running and is the port right?"
    if isinstance(exc, socket.gaierror):
        return f"broker host {cfg.host!r} cannot be resolved; check mqtt.host and DNS"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"broker {where} did not answer in time; check the network"
    return f"cannot connect to broker {where}: {getattr(exc, 'strerror', None) or exc.__class__.__name__}"


def describe_refusal(reason_code: object) -> str:
    """A CONNACK refusal as one line with a hint (credentials, client id, ...)."""
    text = str(reason_code)
    hint = ""
    if "user name or password" in text.lower() or "authori" in text.lower():
        hint = "; check mqtt.username and mqtt.password_file"
    elif "identifier" in text.lower():
        hint = "; check device.id (used as the MQTT client id)"
    return f"broker refused the connection: {text}{hint}"


def accepts_anonymous(cfg: MqttConfig, timeout_s: float = 3.0) -> bool | None:
    """Try ONE connect without user name and password: True when the broker accepts it
    (anyone on the network could then read events and publish to any topic), False when
    refused, None when it could not tell (unreachable, no answer)."""
    anonymous = cfg.model_copy(update={"username": "", "password_file": None})
    client = build_client(anonymous, f"rollcall-anon-probe-{secrets.token_hex(4)}")
    answer: dict[str, bool] = {}
    client.on_connect = lambda c, u, f, reason, p: answer.setdefault("ok", not reason.is_failure)
    try:
        client.connect(cfg.host, cfg.port, keepalive=10)
        deadline = time.monotonic() + timeout_s
        while "ok" not in answer and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != 0:
                break
        if answer.get("ok"):
            client.disconnect()
    except (OSError, ValueError):
        return None
    finally:
        sock = client.socket()
        if sock is not None:
            sock.close()
    return answer.get("ok")
