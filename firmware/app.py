"""`rollcall run`: the composition root of the device process.

Start order: config (validated) -> models (verified; missing = degraded, mismatch =
refuse) -> store -> indicators -> decision engine + device -> MQTT link -> control server
-> camera -> loop. Shutdown runs the same list in reverse, each ``close()`` safe twice.
SIGTERM / SIGINT set the stop event; systemd hears ``READY=1`` when the loop runs,
``WATCHDOG=1`` while it is healthy and ``STOPPING=1`` on the way out.

The device always serves its control socket, even with no camera, no broker, no models or
no roster, and says in its status what is missing and how to fix it.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from firmware.config import Config, config_path, load_config
from firmware.domain.decisions import DecisionEngine
from firmware.errors import ModelError, ModelHashMismatch, RollcallError

logger = logging.getLogger(__name__)

BUILD_HINT = "build them with `rollcall models build --out {dir}` (or `./install.sh`)"
# A track's new embedding this far below the match threshold is another face (a swap):
# frames of one face score well above the threshold, different people (dlib ~0.8) below.
SWAP_MARGIN = 0.07


def register(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--config", help="config file (default: $ROLLCALL_CONFIG or /etc/rollcall/config.toml)")
    parser.add_argument("--source", help="auto | picamera2 | webcam[:N] | /dev/videoN | video file | image folder")
    parser.add_argument("--max-frames", type=int, help="stop after this many processed frames")
    parser.add_argument("--data-dir", type=Path, help="override paths.data_dir")
    parser.add_argument("--models-dir", type=Path, help="override paths.models_dir")
    parser.add_argument("--socket", type=Path, help="override paths.control_socket")
    parser.set_defaults(func=run)


def configure_engine(engine: DecisionEngine, config: Config, rng: random.Random | None = None) -> None:
    """Apply decision and liveness settings (also on reload: new tracks use them)."""
    from firmware.device_sessions import match_threshold
    from firmware.domain.liveness import LivenessTracker

    engine.cooldown_s = config.decisions.cooldown_s
    engine.retry_after_s = config.decisions.retry_after_s
    engine.embeddings_per_track = config.recognition.embeddings_per_track
    engine.swap_cosine = match_threshold(config) - SWAP_MARGIN
    live_cfg = config.liveness
    engine.liveness_factory = None if live_cfg.policy == "off" else (lambda: LivenessTracker(live_cfg, rng))


def check_models(config: Config) -> dict:
    """{"state": ok | missing, "message"}; raises ModelHashMismatch (refuse to start)."""
    from models.registry import verify_models

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
    """The device process. ``pin_factory``/``source_factory``/``notifier`` are injectable
    (tests: MockFactory, a replayed file, a socket of their own)."""

    config: Config
    config_file: Path | None = None
    source: str | None = None
    max_frames: int | None = None
    pin_factory: Any = None
    notifier: Any = None
    source_factory: Callable[[], Any] | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    parts: list[tuple[str, Any]] = field(default_factory=list)

    def _add(self, name: str, part: Any) -> Any:
        self.parts.append((name, part))
        return part

    def start(self) -> App:
        """Start every component in order (see module doc)."""
        from firmware.hal.systemd import Notifier

        cfg = self.config
        self.models = check_models(cfg)
        self.analyser = self._add("models", self._analyser()) if self.models["state"] == "ok" else None
        self.store = self._add("store", self._store())
        self.indicators = self._add("indicators", self._indicators())
        self.engine = DecisionEngine()
        configure_engine(self.engine, cfg)
        self.camera = self._camera()
        self.device = self._device()
        self.link = self._add("link", self._link()) if cfg.mqtt.enabled and cfg.mqtt.host else None
        self.device.link = self.link
        self._add("control", self._control())
        self._add("camera", self.camera)
        self.camera.start()
        self.device.sessions.refresh()
        self.notifier = self._add("notifier", self.notifier or Notifier())
        return self

    def _analyser(self) -> Any:
        from firmware.loop import FrameAnalyser

        return FrameAnalyser(self.config, self.config.paths.models_dir)

    def _store(self) -> Any:
        from firmware.store import Store

        return Store(self.config.paths.data_dir, config=self.config.store,
                     timezone=self.config.device.timezone)

    def _indicators(self) -> Any:
        from firmware.hal.indicators import Indicators

        return Indicators(self.config.gpio, pin_factory=self.pin_factory, on_button=self._button)

    def _button(self) -> None:
        try:
            self.device.sessions.toggle("button")
        except RollcallError as exc:
            logger.warning("session button: %s", exc)

    def _camera(self) -> Any:
        from firmware.hal.camera import Camera

        return Camera(self.config.camera, spec=self.source, source_factory=self.source_factory)

    def _device(self) -> Any:
        from firmware.device import Device

        return Device(self.config, store=self.store, engine=self.engine, indicators=self.indicators,
                      camera=self.camera, analyser=self.analyser, models=self.models,
                      config_path=self.config_file)

    def _link(self) -> Any:
        from firmware.link.mqtt import MqttLink

        link = MqttLink(self.config.mqtt, self.config.device, self.store, commands=self.device.commands,
                        status_provider=self.device.status, telemetry_provider=self.device.telemetry,
                        model_id=self.config.recognition.embedder)
        return link.start()

    def _control(self) -> Any:
        try:
            from firmware.control.server import ControlServer
        except ImportError as exc:
            logger.warning("control server not available (%s); console cannot reach this device", exc)
            return None
        return ControlServer(self.config.paths.control_socket, self.store, self.device).start()

    def run(self) -> str:
        """Run the loop on this thread until stopped; returns why it ended."""
        from firmware.loop import DeviceLoop

        loop = DeviceLoop(camera=self.camera, engine=self.engine, sink=self.device, analyser=self.analyser,
                          notifier=self.notifier, max_frames=self.max_frames)
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


def load_run_config(args: argparse.Namespace) -> tuple[Config, Path]:
    """The config file with the command-line overrides applied."""
    path = config_path(args.config)
    config = load_config(path)
    paths = config.paths
    if args.data_dir:
        paths.data_dir = args.data_dir
    if args.models_dir:
        paths.models_dir = args.models_dir
    if args.socket:
        paths.control_socket = args.socket
    return config, path


def run(args: argparse.Namespace) -> int:
    config, path = load_run_config(args)
    app = App(config, config_file=path, source=args.source, max_frames=args.max_frames)
    previous = {sig: signal.signal(sig, lambda *_: app.stop_event.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with app:
            reason = app.run()
        logger.info("device stopped: %s", reason)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
