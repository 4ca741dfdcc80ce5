"""MqttLink: the device's one connection to the central broker (paho-mqtt 2.x, MQTT v5).

One thread owns the paho client and drives it with ``client.loop()``; every paho callback
only records what happened, and the thread then acts on it (outbox acks, commands, roster
bundles, birth). The thread also owns reconnecting (with :class:`Backoff`), because with
paho's own ``loop_start`` thread a new publish can overtake the re-sent unacknowledged
window after a reconnect; here the re-send always happens first, so order per device holds.

Other threads call only ``wake()``, ``publish_telemetry()``, ``connected`` and ``close()``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable

from paho.mqtt.subscribeoptions import SubscribeOptions

from firmware.config import DeviceConfig, MqttConfig
from firmware.errors import LinkError, RollcallError
from firmware.link import payloads
from firmware.link.client import (ANONYMOUS_WARNING, RECONNECT_MAX_S, RECONNECT_MIN_S,
                                  accepts_anonymous, build_client,
                                  describe_connect_error, describe_refusal, set_nodelay)
from firmware.link.cmdauth import build_command_auth
from firmware.link.commands import CommandDispatcher
from firmware.link.drain import Drain
from firmware.link.roster import RosterSync
from firmware.hal.clock import clock_synced
from firmware.link.state import Backoff, ConnectionSeq, LinkState
from firmware.link.topics import Topics

logger = logging.getLogger(__name__)

LOOP_TIMEOUT_S = 0.05
IDLE_FILL_S = 1.0
WARN_FRACTION = 0.8
CONN_SEQ_FILE = "link-connection-seq"
NO_MATCHING_SUBSCRIBERS = 0x10


def delivered(reason_code: Any) -> bool:
    """Does this PUBACK mean the broker took the event for someone?

    MQTT v5 PUBACK 0x10 "No matching subscribers" is not a failure code, but nobody got the
    event: e.g. right after a broker restart mosquitto has not yet restored the collectors'
    shared subscription. The event stays in the outbox and is re-sent (``Drain`` refusal path).
    """
    if reason_code is None:
        return True
    return not reason_code.is_failure and getattr(reason_code, "value", 0) != NO_MATCHING_SUBSCRIBERS


class MqttLink:
    """Drains the store's outbox to the broker, publishes status/telemetry, takes commands."""

    def __init__(self, mqtt_cfg: MqttConfig, device_cfg: DeviceConfig, store: Any, *,
                 commands: Callable[[str, dict], dict] | None = None,
                 status_provider: Callable[[], dict] | None = None,
                 telemetry_provider: Callable[[], dict] | None = None,
                 model_id: str | None = None, clock: Callable[[], float] = time.monotonic,
                 client_factory: Callable[..., Any] | None = None,
                 reconnect_max_s: float = RECONNECT_MAX_S,
                 anonymous_probe: Callable[[MqttConfig], bool | None] | None = None) -> None:
        self._cfg = mqtt_cfg
        self._device = device_cfg
        self._store = store
        self._status_provider = status_provider or dict
        self._telemetry_provider = telemetry_provider or dict
        self._clock = clock
        self._client_factory = client_factory or build_client
        self.topics = Topics(mqtt_cfg.prefix, device_cfg.site, device_cfg.id, device_cfg.room)
        self.model_id = model_id or str(self._status().get("model_id") or "unknown")
        self.drain = Drain(store.outbox, max_inflight=mqtt_cfg.max_inflight,
                           stall_timeout_s=max(10.0, 2.0 * mqtt_cfg.keepalive_s))
        self.roster = RosterSync(store, mqtt_cfg.roster_public_key_file, self.model_id,
                                 device_cfg.site, device_cfg.room, self._reported_roster_version)
        self._dispatcher = CommandDispatcher(device_cfg.id, {
            "roster_sync": self._cmd_roster_sync, "rebirth": self._cmd_rebirth,
            "telemetry_now": self._cmd_telemetry_now}, commands, auth=build_command_auth(
            mqtt_cfg, device_cfg, getattr(store, "data_dir", None)))
        self.state = LinkState(f"{mqtt_cfg.host}:{mqtt_cfg.port}")
        self._backoff = Backoff(min_s=RECONNECT_MIN_S, max_s=reconnect_max_s)
        data_dir = getattr(store, "data_dir", None)
        self._conn_seq = ConnectionSeq(Path(data_dir) / CONN_SEQ_FILE if data_dir else None)
        self._client: Any = None
        self._socket_open = False
        self._connected = False
        self._acks: list[tuple[int, bool]] = []
        self._inbox: list[Any] = []
        self._events: list[tuple[str, Any]] = []
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_telemetry = 0.0
        self._outbox_warned = False
        self._step_failing = False
        self._closed = False
        self._anonymous: bool | None = None
        self._probing = False
        self._probe = anonymous_probe or accepts_anonymous

    @property
    def commands_refused(self) -> int:
        """Commands refused since start (unsigned, forged, expired, replayed, misdirected...)."""
        return self._dispatcher.auth.refused

    @property
    def security_warnings(self) -> list[str]:
        """Loud warnings about the broker's own security (anonymous clients accepted)."""
        return [ANONYMOUS_WARNING] if self._anonymous else []

    def _check_anonymous(self) -> None:
        """Once per process, after the first connect: does the broker let anyone in? The
        probe (one extra connect) runs in its own thread: the link never waits for it."""
        if self._anonymous is not None or self._probing:
            return
        if not self._cfg.username:
            self._set_anonymous(True)  # we got in without credentials ourselves
            return
        self._probing = True
        threading.Thread(target=lambda: self._set_anonymous(bool(self._probe(self._cfg))),
                         name="mqtt-anon-probe", daemon=True).start()

    def _set_anonymous(self, accepted: bool) -> None:
        self._anonymous = accepted
        if accepted:
            logger.error("%s", ANONYMOUS_WARNING)

    # ----- public API (any thread) -------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the broker has accepted the connection (CONNACK success)."""
        return self._connected

    def start(self) -> "MqttLink":
        """Start the link thread (returns at once; connecting happens in the background)."""
        if self._thread is not None or self._closed:
            return self
        if not self._cfg.enabled or not self._cfg.host:
            logger.warning("MQTT link disabled or no broker host set; events stay in the outbox")
            return self
        if not self._device.id:
            raise LinkError("device.id is empty; set it at provisioning (it is the MQTT client id)")
        self._client = self._client_factory(self._cfg, f"rollcall-{self._device.id}",
                                            will=(self.topics.status, payloads.will(self._device.id)))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.max_inflight_messages_set(self._cfg.max_inflight + 100)
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """New outbox entries were written: drain them now."""
        self._wake.set()

    def publish_telemetry(self, values: dict | None = None) -> None:
        """Publish telemetry now (QoS 0), merged over the provider's values."""
        self._requests.put(("telemetry", dict(values or {})))

    def close(self) -> None:
        """Say offline (retained), disconnect, stop the thread; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> "MqttLink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- paho callbacks (record only; run inside client.loop() on the link thread) ----

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._events.append(("refused", describe_refusal(reason_code)))
            return
        self._connected = True
        self._events.append(("connected", None))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected = False
        self._socket_open = False
        self._events.append(("disconnected", str(reason_code)))

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self._acks.append((mid, delivered(reason_code)))

    def _on_message(self, client, userdata, message) -> None:
        self._inbox.append(message)

    # ----- the link thread ---------------------------------------------------------------

    def _run(self) -> None:
        last_fill = 0.0
        while not self._stop.is_set():
            if not self._socket_open:
                self._maybe_connect()
            if self._socket_open:
                self._loop_once()
            else:
                self._wake.wait(LOOP_TIMEOUT_S * 4)
            try:
                last_fill = self._step(last_fill)
                self._step_failing = False
            except Exception:  # noqa: BLE001 - the link must survive a bad step and retry
                if not self._step_failing:  # once per failure streak, not every retry
                    logger.exception("MQTT link step failed; retrying every 0.5 s")
                self._step_failing = True
                time.sleep(0.5)
        self._shutdown()

    def _loop_once(self) -> None:
        """One paho network round; a lost socket that paho did not report becomes an event."""
        try:
            rc = self._client.loop(timeout=LOOP_TIMEOUT_S)
        except OSError as exc:  # e.g. a TLS error surfacing mid-read
            rc = getattr(exc, "errno", None) or -1
        if rc != 0 and self._socket_open:
            self._on_disconnect(self._client, None, None, f"network error {rc}", None)

    def _step(self, last_fill: float) -> float:
        now = self._clock()
        self._handle_events(now)
        acks, self._acks = self._acks, []
        if acks:
            self.drain.on_acks(acks, now)
        self._handle_inbox()
        self._handle_requests()
        if not self._connected:
            return last_fill
        if acks or self._wake.is_set() or now - last_fill >= IDLE_FILL_S:
            self._wake.clear()
            if self.drain.fill(self._publish_event, now):
                self._wake.set()
            last_fill = now
        if now >= self._next_telemetry:
            self._publish_telemetry({})
        return last_fill

    def _maybe_connect(self) -> None:
        now = self._clock()
        if not self._backoff.ready(now):
            return
        try:
            self._client.will_set(self.topics.status, payloads.encode(
                payloads.will(self._device.id, conn_seq=self._conn_seq.next())), qos=1, retain=True)
            self._client.connect(self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s,
                                 clean_start=True)
            set_nodelay(self._client)
            self._socket_open = True
        except (OSError, ValueError) as exc:
            self.state.went_down(describe_connect_error(exc, self._cfg))
            self._backoff.failed(now)

    def _handle_events(self, now: float) -> None:
        events, self._events = self._events, []
        for kind, detail in events:
            if kind == "connected":
                self._backoff.succeeded()
                self.state.went_up()
                self._check_anonymous()
                self._subscribe()
                self._publish_birth()
                self.drain.on_connect(now)
                self._next_telemetry = now
            elif kind == "refused":
                self.state.went_down(detail)
                self._backoff.failed(now)
            elif kind == "disconnected" and not self._stop.is_set():
                if self.state.up:
                    self.state.went_down(f"connection lost ({detail})")
                if self._backoff.ready(now):
                    self._backoff.failed(now)

    def _subscribe(self) -> None:
        """Commands with retain-as-published (so a retained command is seen as such and
        refused, never re-run at each connect), and the retained roster topics."""
        subs = [(self.topics.commands, SubscribeOptions(qos=1, retainAsPublished=True))]
        subs += [(topic, SubscribeOptions(qos=1)) for topic in self.topics.rosters()]
        self._client.subscribe(subs)

    def _publish_event(self, entry: dict) -> int | None:
        message = payloads.event_message(entry, self._device.id, self.model_id, self._device.room or None)
        topic = self.topics.event(payloads.wire_suffix(entry))
        info = self._client.publish(topic, payloads.encode(message), qos=1)
        return info.mid if info.rc == 0 else None

    def _publish(self, topic: str, message: dict, qos: int = 1, retain: bool = False) -> None:
        self._client.publish(topic, payloads.encode(message), qos=qos, retain=retain)

    def _status(self) -> dict:
        try:
            status = self._status_provider()
            return status if isinstance(status, dict) else {}
        except Exception:  # noqa: BLE001 - a status problem must not stop the link
            logger.exception("status_provider failed")
            return {}

    def _reported_roster_version(self) -> int | None:
        version = self._status().get("roster_version")
        return version if isinstance(version, int) else None

    def _publish_birth(self) -> None:
        status = payloads.birth(self._status(), self._device.id, self.model_id, self.roster.version,
                                conn_seq=self._conn_seq.last or None, room=self._device.room or None)
        status["warnings"] = self.security_warnings + list(status.get("warnings") or [])
        self._publish(self.topics.status, status, retain=True)
        if self._cfg.ha_discovery:
            for topic, config in payloads.ha_discovery(self.topics, self._device.name):
                self._publish(topic, config, retain=True)

    def _telemetry(self, extra: dict) -> dict:
        values = {}
        try:
            values.update(self._telemetry_provider() or {})
        except Exception:  # noqa: BLE001
            logger.exception("telemetry_provider failed")
        provided = [w for w in values.get("warnings") or [] if isinstance(w, str)]
        values.update(extra)
        values.update(self._outbox_health())
        values["warnings"] = self.security_warnings + provided + values["warnings"]
        values.setdefault("clock_synced", clock_synced())
        stats = self.drain.stats
        values.update({"device_id": self._device.id, "at": payloads.utc_iso(),
                       "published": stats.published, "acked": stats.acked,
                       "republished": stats.republished, "inflight": len(self.drain.inflight),
                       "commands_refused": self.commands_refused})
        return values

    def _outbox_health(self) -> dict:
        outbox = self._store.outbox
        depth, fraction = outbox.depth(), outbox.capacity_fraction()
        age = outbox.oldest_age_s() if hasattr(outbox, "oldest_age_s") else None
        warnings = []
        if fraction >= WARN_FRACTION:
            warnings.append(f"OUTBOX {100 * fraction:.0f}% FULL: {depth} events waiting for the broker")
        if (fraction >= WARN_FRACTION) != self._outbox_warned:
            self._outbox_warned = fraction >= WARN_FRACTION
            (logger.warning if self._outbox_warned else logger.info)(
                "outbox %.0f %% full (%d events waiting)", 100 * fraction, depth)
        return {"outbox_depth": depth, "outbox_capacity_fraction": round(fraction, 4),
                "outbox_oldest_age_s": age, "warnings": warnings}

    def _publish_telemetry(self, extra: dict) -> dict:
        values = self._telemetry(extra)
        if self._connected:
            self._publish(self.topics.telemetry, values, qos=0)
        self._next_telemetry = self._clock() + self._cfg.telemetry_interval_s
        return values

    def _handle_requests(self) -> None:
        while True:
            try:
                kind, value = self._requests.get_nowait()
            except queue.Empty:
                return
            if kind == "telemetry":
                self._publish_telemetry(value)

    def _handle_inbox(self) -> None:
        inbox, self._inbox = self._inbox, []
        for message in inbox:
            if self.topics.is_roster(message.topic):
                self._handle_roster_topic(message.payload)
                continue
            name = self.topics.command_name(message.topic)
            if name is None:
                continue
            result_name, result = self._dispatcher.handle(name, message.payload, bool(message.retain))
            if self._connected:
                self._publish(self.topics.result(result_name), result)

    def _handle_roster_topic(self, raw: bytes) -> None:
        if not raw:
            return  # a cleared retained topic
        try:
            result = self.roster.apply_raw(raw)
            ok, error = True, None
        except (RollcallError, ValueError) as exc:
            result, ok, error = None, False, str(exc)
        except Exception:  # noqa: BLE001 - a bad bundle must never stop the link
            logger.exception("applying a roster bundle crashed; previous roster kept")
            result, ok, error = None, False, "internal error applying the roster; see the device log"
        if ok and not result.get("applied"):
            return
        self._publish(self.topics.result("roster_sync"),
                      payloads.command_result("roster_sync", None, ok, self._device.id, result, error))
        if ok:
            self._publish_birth()

    # ----- local commands ----------------------------------------------------------------

    def _cmd_roster_sync(self, payload: dict) -> dict:
        result = self.roster.apply_dict(payload.get("bundle"))
        if result.get("applied"):
            self._publish_birth()
        return result

    def _cmd_rebirth(self, payload: dict) -> dict:
        self._publish_birth()
        return {"status": "published"}

    def _cmd_telemetry_now(self, payload: dict) -> dict:
        return {"telemetry": self._publish_telemetry({})}

    def _shutdown(self) -> None:
        if self._client is None:
            return
        if self._connected:
            self._publish(self.topics.status, payloads.will(self._device.id, "shutdown", self._conn_seq.last),
                          retain=True)
            deadline = time.monotonic() + 2.0  # let the window's PUBACKs in: fewer re-sends later
            while (self.drain.inflight or self._client.want_write()) and self._connected \
                    and time.monotonic() < deadline:
                self._client.loop(timeout=0.05)
                acks, self._acks = self._acks, []
                self.drain.on_acks(acks, self._clock())
            self._client.disconnect()
            self._client.loop(timeout=0.1)
        self._connected = False
        self._socket_open = False
