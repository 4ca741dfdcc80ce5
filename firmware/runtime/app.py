"""The composition root of the device process (``rollcall run``, see :mod:`firmware.cli.run`).

Start order: config (validated) -> models (verified; missing = degraded, mismatch =
refuse) -> trusted clock (sync state + lower bound) -> store -> indicators -> decision engine + device -> MQTT link -> control server
-> camera -> loop. Shutdown runs the same list in reverse, each ``close()`` safe twice.
SIGTERM / SIGINT set the stop event; systemd hears ``READY=1`` when the loop runs,
``WATCHDOG=1`` while it is healthy and ``STOPPING=1`` on the way out.

The device always serves its control socket, even with no camera, no broker, no models or
no roster, and says in its status what is missing and how to fix it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, TypeVar

from gpiozero import Factory

from firmware.config import Config, machine_device_id
from firmware.control.server import ControlServer
from firmware.domain.decisions import DecisionEngine
from firmware.errors import ModelError, ModelHashMismatch, RollcallError
from firmware.hal.camera import Camera
from firmware.hal.indicators import Indicators
from firmware.hal.sources import FrameSource
from firmware.hal.systemd import Notifier
from firmware.hal.timesync import SyncSource, default_source
from firmware.link.mqtt import MqttLink
from firmware.runtime.clock import TrustedClock
from firmware.runtime.device import Device
from firmware.runtime.loop import DeviceLoop, FrameAnalyser
from firmware.runtime.tuning import configure_engine
from firmware.store import Store
from models.registry import verify_models

logger = logging.getLogger(__name__)


class Closeable(Protocol):
    """A started part of the device: ``close()`` is safe twice."""

    def close(self) -> None: ...


P = TypeVar("P", bound=Closeable | None)

BUILD_HINT = "build them with `rollcall models build --out {dir}` (or `./install.sh`)"
RESTART_EXIT = 75  # EX_TEMPFAIL: "start me again" (systemd Restart=on-failure, `rollcall up`)


def check_models(config: Config) -> dict:
    """{"state": ok | missing, "message"}; raises ModelHashMismatch (refuse to start)."""

    ids = [config.detection.model, "face_mesh", config.recognition.embedder]
    models_dir = config.paths.models_dir
    try:
        verify_models(models_dir, ids)
    except ModelHashMismatch as exc:
        raise ModelHashMismatch(f"{exc}\nrefusing to start with models that differ from the manifest: "
                                f"{BUILD_HINT.format(dir=models_dir)}") from None
    except ModelError as exc:
        message = f"models missing ({exc}); recognition is off until you {BUILD_HINT.format(dir=models_dir)}"
        logger.error("%s", message)
        return {"state": "missing", "message": message}
    return {"state": "ok", "message": ""}


@dataclass
class App:
    """The device process. ``pin_factory``/``source_factory``/``notifier``/``sync_source``
    are injectable (tests: MockFactory, a replayed file, a socket of their own, a fixed
    clock-sync answer)."""

    config: Config
    config_file: Path | None = None
    source: str | None = None
    max_frames: int | None = None
    pin_factory: Factory | None = None
    notifier: Notifier | None = None
    source_factory: Callable[[], FrameSource] | None = None
    sync_source: SyncSource | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    parts: list[tuple[str, Closeable | None]] = field(default_factory=list)
    restart_requested: bool = False
    degraded: list[str] = field(default_factory=list)

    def _add(self, name: str, part: P) -> P:
        self.parts.append((name, part))
        return part

    def start(self) -> App:
        """Start every component in order (see module doc)."""

        cfg = self.config
        self._ensure_device_id()
        self.models = check_models(cfg)
        self.analyser = self._add("models", self._analyser()) if self.models["state"] == "ok" else None
        source = self.sync_source or default_source(cfg.privacy.clock_source)
        self.clock = self._add("clock", TrustedClock(cfg.paths.data_dir / "clock.json", source))
        self.store = self._add("store", self._store())
        self.indicators = self._add("indicators", self._indicators())
        self.engine = DecisionEngine()
        configure_engine(self.engine, cfg)
        self.camera = self._camera()
        self.device = self._device()
        self.device.on_restart = self.request_restart
        self.link = self._add("link", self._link()) if cfg.mqtt.enabled and cfg.mqtt.host else None
        self.device.link = self.link
        self.device.warnings_extra.extend(self.degraded)
        self._add("control", self._control())
        self._add("camera", self.camera)
        self.camera.start()
        self.device.sessions.refresh()
        self.notifier = self._add("notifier", self.notifier or Notifier())
        return self

    def _ensure_device_id(self) -> None:
        """An empty ``device.id`` (a hand-edited file) must not stop the device: use the
        one made from the machine id, and say so."""
        if self.config.device.id:
            return
        self.config.device.id = machine_device_id()
        message = (f"device.id was empty: using {self.config.device.id} (made from this machine's "
                   "id); set it in the console's Device setup")
        logger.warning("%s", message)
        self.degraded.append(message)

    def request_restart(self) -> None:
        """Stop the loop and exit with RESTART_EXIT (the console's "Restart firmware")."""
        logger.warning("restart requested: stopping; the service manager starts the firmware again")
        self.restart_requested = True
        self.stop_event.set()

    def _analyser(self) -> FrameAnalyser:

        return FrameAnalyser(self.config, self.config.paths.models_dir)

    def _store(self) -> Store:

        store = Store(self.config.paths.data_dir, clock=self.clock.now, config=self.config.store,
                      timezone=self.config.device.timezone, privacy=self.config.privacy,
                      clock_synced=self.clock.synced)
        threading.Thread(target=_warm_indexes, args=(store,), name="store-warm", daemon=True).start()
        return store

    def _indicators(self) -> Indicators:

        return Indicators(self.config.gpio, pin_factory=self.pin_factory, on_button=self._button)

    def _button(self) -> None:
        try:
            self.device.sessions.toggle("button")
        except RollcallError as exc:
            logger.warning("session button: %s", exc)

    def _camera(self) -> Camera:

        return Camera(self.config.camera, spec=self.source, source_factory=self.source_factory)

    def _device(self) -> Device:

        return Device(self.config, store=self.store, engine=self.engine, indicators=self.indicators,
                      camera=self.camera, analyser=self.analyser, models=self.models,
                      config_path=self.config_file, wall=self.clock.now, timekeeper=self.clock)

    def _link(self) -> MqttLink | None:
        """The MQTT link; a link that cannot start (bad TLS files, no credentials...) leaves
        the device running without a broker, saying why."""
        link = MqttLink(self.config.mqtt, self.config.device, self.store, commands=self.device.commands,
                        status_provider=self.device.status, telemetry_provider=self.device.telemetry,
                        model_id=self.config.recognition.embedder)
        try:
            return link.start()
        except (RollcallError, OSError, ValueError) as exc:
            message = f"MQTT link not started ({exc}); attendance stays on the device until it is fixed"
            logger.error("%s", message)
            self.degraded.append(message)
            link.close()
            return None

    def _control(self) -> ControlServer:
        return ControlServer(self.config.paths.control_socket, self.store, self.device).start()

    def run(self) -> str:
        """Run the loop on this thread until stopped; returns why it ended."""

        loop = DeviceLoop(camera=self.camera, engine=self.engine, sink=self.device, analyser=self.analyser,
                          notifier=self.notifier, max_frames=self.max_frames, capture=self.device.enrol_capture)
        self.loop = loop
        self.device.loop_stats = loop.stats
        logger.info("device running (camera %s, models %s, broker %s)", self.camera.spec,
                    self.models["state"], "configured" if self.link else "not configured")
        return loop.run(self.stop_event)

    def loop_frames(self) -> int:
        """Frames the loop processed so far (0 before it runs)."""
        loop = getattr(self, "loop", None)
        return loop.stats.frames if loop is not None else 0

    def close(self) -> None:
        """Stop everything in reverse start order (safe twice)."""
        self.stop_event.set()
        notifier = dict(self.parts).get("notifier")
        if notifier is not None:
            notifier.stopping()
        while self.parts:
            name, part = self.parts.pop()
            if part is None:
                continue
            try:
                part.close()
            except Exception:  # keep closing the rest; say what failed
                logger.exception("closing %s failed", name)

    def __enter__(self) -> App:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


def _warm_indexes(store: Store) -> None:
    """Index every attendance day once in the background, so the first report or
    whole-history page after a start does not read a year of files while a user waits."""
    started = time.monotonic()
    try:
        days = store.attendance.warm()
    except (RollcallError, OSError) as exc:  # closed meanwhile, or a disk problem (logged there)
        logger.info("attendance index warm-up stopped: %s", exc)
        return
    logger.info("attendance indexes ready: %d days in %.1f s", days, time.monotonic() - started)
