"""The running firmware as the control API sees it (``DeviceAPI`` in docs/interfaces.md),
and the effects of each decision: record, indicate, report.

:class:`Device` is the loop's sink (decisions, frames, housekeeping once a second) and
the control server's device. It holds no camera or model code itself: it is given the
camera, indicators, store, link and decision engine by the composition root
(``firmware/runtime/app.py``). Store writes from the loop and from control commands go through
one lock so a session change and a decision never interleave.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from firmware import __version__
from firmware.config import Config, load_config
from firmware.domain.decisions import Decision, DecisionEngine, Outcome
from firmware.domain.types import Frame
from firmware.errors import CaptureError, CommandError, RollcallError
from firmware.hal.camera import Camera, CameraState
from firmware.hal.display import annotate, encode_jpeg
from firmware.hal.indicators import Indicators
from firmware.inference import images
from firmware.inference.embedder import same_person_threshold
from firmware.link.mqtt import MqttLink
from firmware.runtime.capture import DEFAULT_FRAMES, DEFAULT_TIMEOUT_S, EnrolCapture
from firmware.runtime.clock import TrustedClock
from firmware.runtime.damage import DamageWatch
from firmware.runtime.enrol import Enroller, failed_views
from firmware.runtime.learning import DoorLearner
from firmware.runtime.loop import FrameAnalyser, LoopStats, Overlay
from firmware.runtime.probe import probe_broker
from firmware.runtime.sessions import SessionKeeper
from firmware.runtime.tuning import configure_engine, match_threshold
from firmware.store import Store

logger = logging.getLogger(__name__)

#: A calibrated threshold this high (cosine) is out of reach for genuine faces too.
UNREACHABLE_THRESHOLD = 0.985

KIOSK_HOLD_S = 3.0   # seconds a decision stays on the kiosk screen
VIEW_WAIT_S = 1.0    # seconds an annotated live view waits for the loop to finish its frame
KIOSK_STATES = {"look": "look", "blink": "blink", "checking": "blink", "accepted": "accepted",
                "already": "already", "unknown": "unknown", "spoof": "spoof"}
CHALLENGE_CODES = {"turn_left", "turn_right", "look_up", "look_down", "blink", "hold_still", "try_again"}


def challenge_view(liveness_state: object) -> dict | None:
    """The kiosk's view of a head-pose challenge (None for other policies): the prompt code,
    every step's code, how many are done and how many tries failed."""
    code = str(getattr(liveness_state, "prompt_code", "") or "")
    if getattr(liveness_state, "policy", "") != "challenge" or code not in CHALLENGE_CODES:
        return None
    return {"code": code, "steps": list(getattr(liveness_state, "steps", ())),
            "step": int(getattr(liveness_state, "step", 0)), "failures": int(getattr(liveness_state, "failures", 0))}


class Device:
    """Implements DeviceAPI. ``models`` is ``{"state": "ok"|"missing"|..., "message"}``;
    ``analyser`` the loop's FrameAnalyser (None when models are missing)."""

    def __init__(self, config: Config, *, store: Store, engine: DecisionEngine, indicators: Indicators,
                 camera: Camera, link: MqttLink | None = None, analyser: FrameAnalyser | None = None,
                 models: dict | None = None, config_path: Path | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, timekeeper: TrustedClock | None = None) -> None:
        self.config = config
        self.store = store
        self.engine = engine
        self.indicators = indicators
        self.camera = camera
        self.link = link
        self.analyser = analyser
        self.models = models or {"state": "ok", "message": ""}
        self.config_path = config_path
        self.clock, self.wall = clock, wall
        self.timekeeper = timekeeper
        self.started = clock()
        self.lock = threading.RLock()
        self.sessions = SessionKeeper(config, store, engine, lock=self.lock, wall=wall, clock=clock,
                                      synced=self.clock_synced)
        self.learner = DoorLearner(config, store)
        #: Called with (decision, frame) after each decision is recorded (e.g. `rollcall replay`).
        self.listeners: list[Callable[[Decision, Frame], None]] = []
        self.loop_stats: LoopStats | None = None
        self.warnings_extra: list[str] = []
        self.on_restart: Callable[[], None] | None = None  # set by the composition root
        self.restart_needed: list[str] = []  # config sections changed since the start
        # The live view: the frame the loop works on (or finished last) and, once finished,
        # its overlays. Only one full-resolution frame is kept (see on_frame_start).
        self._view = threading.Condition()
        self._frame: Frame | None = None
        self._overlays: list[Overlay] = []
        self._view_ready = False
        self._kiosk: dict = {"state": "idle", "name": None, "person_id": None, "seat": None, "status": None,
                             "prompt": "", "required_blinks": 0, "at": None, "challenge": None}
        self._challenge_code = ""
        self._kiosk_until = 0.0
        self._kiosk_track: int | None = None
        self.enroller = Enroller(config, store)
        self._capture: EnrolCapture | None = None
        notices = getattr(store, "notices", None)
        self.damage = DamageWatch(config.paths.data_dir, notices, clock=clock) if notices else None

    # ---- loop sink -------------------------------------------------------------------
    def on_frame_start(self, frame: Frame) -> None:
        """The loop took ``frame``: the live view shows it from now on (an annotated view
        waits for its overlays) and lets go of the previous frame, so no older
        full-resolution frame stays in memory beside the one being processed."""
        with self._view:
            self._frame, self._overlays, self._view_ready = frame, [], False

    def on_frame(self, frame: Frame, overlays: list[Overlay]) -> None:
        """The loop finished ``frame``: its overlays for the live view; amber prompt and
        kiosk follow the largest face."""
        with self._view:
            self._frame, self._overlays, self._view_ready = frame, overlays, True
            self._view.notify_all()
        capture = self._capture
        if capture is not None and capture.active:
            self._kiosk = {"state": "enrol", "name": capture.name, "person_id": None, "seat": None,
                           "prompt": capture.prompt, "required_blinks": 0, "at": None}
            return
        main = max(overlays, key=lambda o: float(o.box[2] - o.box[0]), default=None)
        stage = main.stage if main is not None else "idle"
        track = self.engine.tracks.get(main.track_id) if main else None
        challenge = challenge_view(track.liveness_state) if track is not None and stage == "blink" else None
        self._indicate_challenge(challenge)
        self.indicators.prompt(challenge["code"] if challenge else stage)
        if self.clock() < self._kiosk_until or (main is not None and main.track_id == self._kiosk_track):
            return  # a decision stays up while its face is in view (and KIOSK_HOLD_S at least)
        state = "challenge" if challenge else KIOSK_STATES.get(stage, "idle")
        if (state != self._kiosk["state"] or (main and main.prompt != self._kiosk["prompt"])
                or challenge != self._kiosk.get("challenge")):
            self._kiosk = {"state": state, "name": None, "person_id": None, "seat": None, "status": None,
                           "prompt": main.prompt if main else "",
                           "required_blinks": track.required_blinks if track else 0, "at": None,
                           "challenge": challenge}

    def _indicate_challenge(self, challenge: dict | None) -> None:
        """Buzzer and red flash once when a challenge try fails."""
        code = challenge["code"] if challenge else ""
        if code == "try_again" and self._challenge_code != "try_again":
            self.indicators.show("challenge_failed")
        self._challenge_code = code

    def on_decision(self, decision: Decision, frame: Frame, box: np.ndarray) -> None:
        """Record, then indicate, then wake the MQTT link (record before you report)."""
        with self.lock:
            shown, status = self._record(decision, frame, box)
            if self.learner.learn(decision, self.engine.scope.rule) is not None:
                self.sessions.invalidate()
        for listener in self.listeners:
            listener(decision, frame)
        self.indicators.show(shown)
        self._set_kiosk(shown, decision, frame, status)
        if self.link is not None:
            self.link.wake()

    def _record(self, d: Decision, frame: Frame, box: np.ndarray) -> tuple[str, str | None]:
        """Store the decision; returns (indicator pattern to show, attendance status or None)."""
        try:
            if d.outcome is Outcome.ACCEPTED:
                rec = self.store.attendance.record(d.session_id, d.person_id, None, d.score, frame.wall,
                                                   {"track": d.track_id, "latency_ms": round(d.latency_s * 1000)},
                                                   liveness_policy=d.liveness_policy or None)
                if rec.get("duplicate"):
                    logger.info("duplicate check-in ignored: %s already marked", d.person_id)
                    return "already", rec.get("status")
                logger.info("accepted %s (score %.3f) in %.2f s", d.person_id, d.score, d.latency_s)
                return "accepted", rec.get("status")
            elif d.outcome is Outcome.ALREADY:
                logger.info("duplicate check-in ignored: %s already marked", d.person_id)
                return "already", self._marked_status(d)
            elif d.outcome in (Outcome.UNKNOWN, Outcome.SPOOF) and d.embedding is not None:
                self._keep_face(d, frame, box)
            elif d.outcome is Outcome.SPOOF:
                logger.warning("spoof verdict on track %d (no embedding to keep)", d.track_id)
        except (RollcallError, OSError, ValueError) as exc:
            logger.error("could not record %s for %s: %s", d.outcome.value, d.person_id or "face", exc)
            return "retry", None
        return d.outcome.value, None

    def _marked_status(self, d: Decision) -> str | None:
        """The status already recorded for this person in this session (for the kiosk)."""
        if d.session_id is None or d.person_id is None:
            return None
        rec = self.store.attendance.get(d.session_id, d.person_id)
        return rec.get("status") if rec else None

    def _keep_face(self, d: Decision, frame: Frame, box: np.ndarray) -> None:
        """Keep an unknown or spoof face for review, with why it was not recognised: the
        closest enrolled person, their score and the accept threshold in force."""
        kind = "spoof" if d.outcome is Outcome.SPOOF else "unknown"
        full = encode_jpeg(frame.image) if self.config.decisions.save_unknown_frame else None
        extra = {"track": d.track_id, "score": round(d.score, 4), "closest_person_id": d.closest,
                 "threshold": round(d.threshold if d.threshold is not None else match_threshold(self.config), 4)}
        rec = self.store.unknowns.add(kind, d.session_id, d.embedding, images.face_jpeg(frame.image, box), full,
                                      extra, same_face_cosine=same_person_threshold(self.config.recognition.embedder))
        logger.info("%s face on track %d: %s", kind, d.track_id, "kept" if rec else "already kept")

    def _set_kiosk(self, shown: str, d: Decision, frame: Frame, status: str | None = None) -> None:
        """What the kiosk screen shows for a decision; ``status`` is the attendance status
        recorded (``present`` / ``late``), None when nothing was recorded."""
        person = self._person(d.person_id) if d.person_id else {}
        self._kiosk = {"state": shown, "name": person.get("name"), "person_id": d.person_id,
                       "seat": self.sessions.seat_of(d.person_id), "status": status,
                       "prompt": kiosk_prompt(shown, status), "required_blinks": 0, "at": frame.wall,
                       "challenge": None}
        self._kiosk_until = self.clock() + KIOSK_HOLD_S
        self._kiosk_track = d.track_id if d.outcome is not Outcome.RETRY else None

    def _person(self, person_id: str) -> dict:
        try:
            return self.store.people.get(person_id) or {}
        except (RollcallError, OSError, ValueError):
            return {}

    def housekeeping(self) -> None:
        """Once a second from the loop: clock sync state, session schedule and scope, the
        daily retention sweep (the link publishes telemetry itself from :meth:`telemetry`)."""
        if self.timekeeper is not None:
            self.timekeeper.refresh()
        self.sessions.tick()
        if self.damage is not None:
            self.damage.check(self.camera.status() if self.camera else {})
        self.retention_tick()

    def clock_synced(self) -> bool:
        """Is the wall clock synchronised? (True without a timekeeper: tests, tools.)"""
        return self.timekeeper.synced() if self.timekeeper is not None else True

    def clock_state(self) -> dict:
        if self.timekeeper is None:
            return {"synced": True, "source": "not checked", "lower_bound": None, "behind_s": 0.0,
                    "clamped": 0}
        return self.timekeeper.state()

    def retention_tick(self) -> dict | None:
        """Run the retention sweep when a day has passed since the last one (synced clock only)."""
        try:
            retention = self.store.retention
            if not self.clock_synced() or not retention.due(self.wall()):
                return None
            result = self.store.sweep_retention()
        except (RollcallError, OSError) as exc:
            logger.error("retention sweep failed: %s", exc)
            return None
        self.sessions.invalidate()
        return result

    def erase(self, person_id: str, by: str, full: bool = False, reason: str = "request",
              request_id: str | None = None) -> dict:
        """Erase a person's face data everywhere on the device (and stop matching them now)."""
        threshold = same_person_threshold(self.config.recognition.embedder)
        with self.lock:
            if reason == "consent_withdrawn":
                result = self.store.withdraw_consent(person_id, by, threshold=threshold)
            else:
                result = self.store.erase(person_id, by, full=full, reason=reason,
                                          request_id=request_id, threshold=threshold)
            self.sessions.invalidate()
            self.sessions.refresh()
        if self.link is not None:
            self.link.wake()
        return result

    # ---- DeviceAPI -------------------------------------------------------------------
    def telemetry(self) -> dict:
        stats = self.loop_stats.summary() if self.loop_stats else {}
        cam = self.camera.status() if self.camera else {}
        return {"fps": stats.get("fps", 0.0), "decision_latency_ms_median": stats.get("decision_latency_ms_median"),
                "dropped_frames": cam.get("dropped", 0), "outbox_depth": self._outbox_depth(),
                "cpu_temp_c": cpu_temp_c(), "disk_free_mb": self._disk_free_mb(),
                "skipped_files": cam.get("skipped_files", 0), "notices": self._notices(),
                "warnings": self._notice_warnings(),
                "clock_synced": self.clock_synced()}

    def _notices(self) -> list[dict]:
        """Unacknowledged damage notices (persistent until an admin acknowledges them)."""
        try:
            return self.store.notices.active()
        except (AttributeError, RollcallError, OSError):
            return []

    def _notice_warnings(self) -> list[str]:
        return [f"DAMAGE: {n['message']}" + (f"; copy kept at {n['copy']}" if n.get("copy") else "")
                for n in self._notices()]

    def _outbox_depth(self) -> int | None:
        try:
            return int(self.store.outbox.depth())
        except (AttributeError, RollcallError, OSError):
            return None

    def _disk_free_mb(self) -> int | None:
        try:
            return int(shutil.disk_usage(self.config.paths.data_dir).free // 2**20)
        except OSError:
            return None

    def status(self) -> dict:
        cam = self.camera.status() if self.camera else {"state": "none", "message": ""}
        session = self.sessions.status()
        out = {**self.telemetry(), "camera": cam["state"], "camera_detail": cam,
               "broker": self._broker_state(), "models": self.models["state"],
               "model_id": self.config.recognition.embedder, "firmware_version": __version__,
               "roster_version": self.sessions.roster_version, "session": session["session"],
               "mode": session["mode"], "liveness_policy": self.sessions.policy,
               "gpio": self.indicators.status(), "uptime_s": round(self.clock() - self.started, 1),
               "clock": self.clock_state(),
               "device_id": self.config.device.id, "restart_needed": list(self.restart_needed)}
        out["warnings"] = self._warnings(cam, session)  # replaces telemetry's notice-only list
        return out

    def _broker_state(self) -> str:
        if self.link is None:
            return "not_configured" if not self.config.mqtt.host else "disabled"
        return "connected" if getattr(self.link, "connected", False) else "disconnected"

    def _warnings(self, cam: dict, session: dict) -> list[str]:
        warnings = list(self.warnings_extra) + list(getattr(self.link, "security_warnings", []))
        warnings += self._notice_warnings()
        if cam["state"] in (CameraState.NO_CAMERA, CameraState.LOST):
            warnings.append(cam.get("message") or "camera not available")
        if self.models["state"] != "ok":
            warnings.append(self.models["message"])
        if session["message"]:
            warnings.append(session["message"])
        warnings.extend(clock_warnings(self.clock_state()))
        if not self.config.mqtt.host:
            warnings.append("broker not configured: attendance is kept on the device only")
        if self.config.liveness.policy == "off":
            warnings.append("liveness is OFF: a printed photo would be marked present")
        scope = self.engine.scope
        if scope.gallery is not None and scope.rule.threshold >= UNREACHABLE_THRESHOLD:
            warnings.append(f"security level {self.config.recognition.security_level!r} needs a match score of "
                            f"{scope.rule.threshold:.3f} with {len(scope.gallery.people)} people in scope: almost "
                            "nobody will be recognised; enrol more photos per person or lower the level")
        gpio = self.indicators.status()
        if gpio["state"] == "unavailable":
            warnings.append(gpio["message"])
        return warnings

    def latest_jpeg(self, annotated: bool = True) -> bytes | None:
        """The newest frame as JPEG (None before the first one). Annotated: with its faces'
        boxes and names, waiting up to VIEW_WAIT_S for the loop to finish that frame (a
        frame whose processing failed is shown without boxes)."""
        with self._view:
            if annotated:
                self._view.wait_for(lambda: self._frame is None or self._view_ready, VIEW_WAIT_S)
            frame, overlays = self._frame, self._overlays
        if frame is None:
            return None
        image = annotate(frame.image, overlays, self._names(overlays)) if annotated else frame.image
        return encode_jpeg(image)

    def _names(self, overlays: list[Overlay]) -> dict[str, str]:
        return {o.label: self._person(o.label).get("name", o.label) for o in overlays if o.label}

    def kiosk_state(self) -> dict:
        return dict(self._kiosk)

    def remove_template(self, person_id: str, embedding_id: str) -> dict:
        """Delete one template of a person (e.g. a door-learnt one); the gallery follows."""
        with self.lock:
            removed = self.store.people.remove_embedding(person_id, embedding_id)
        self.sessions.invalidate()
        logger.info("template %s of %s removed (source %s)", embedding_id, person_id, removed.get("source"))
        return removed

    def enrol_photos(self, person_id: str, photos: list[bytes], *, source: str = "photo",
                     confirm_duplicate: bool = False) -> list[dict]:
        """Check, embed and store photos of one person (per photo: ok, status, reason,
        message, photo_id, other_person...)."""
        if self.store.people.get(person_id) is None:
            return failed_views(len(photos), "no_person", f"person {person_id!r} does not exist: add them first")
        if self.models["state"] != "ok":
            return failed_views(len(photos), "no_models", f"cannot enrol: {self.models['message']}")
        try:
            with self.lock:
                results = self.enroller.enrol_photos(person_id, photos, source=source,
                                                     confirm_duplicate=confirm_duplicate)
        except RollcallError as exc:
            return failed_views(len(photos), "error", f"cannot enrol: {exc}")
        self.sessions.invalidate()
        return results

    # ---- enrolment at the door (capture mode) ----------------------------------------
    def enrol_capture(self) -> EnrolCapture | None:
        """The running or last capture (the loop feeds it while it is active)."""
        return self._capture

    def capture_start(self, person_id: str, frames: int = DEFAULT_FRAMES,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> dict:
        """Start keeping ``frames`` good frames of the person in front of the camera."""
        person = self.store.people.get(person_id)
        if person is None:
            raise CaptureError(f"person {person_id!r} does not exist: add them first")
        if self.models["state"] != "ok" or self.analyser is None:
            raise CaptureError(f"cannot capture: {self.models['message'] or 'models are not loaded'}")
        if self._capture is not None and self._capture.active:
            raise CaptureError(f"a capture for {self._capture.name} is running: cancel it first")
        # the door's own liveness check (the policy in force), as the decision engine runs it
        self._capture = EnrolCapture(person_id, person.get("name", person_id), target=frames, timeout_s=timeout_s,
                                     liveness_factory=self.engine.liveness_factory, clock=self.clock)
        logger.info("enrolment capture started for %s (%d frames)", person_id, self._capture.target)
        return self._capture.status()

    def capture_status(self) -> dict | None:
        return self._capture.status() if self._capture is not None else None

    def capture_cancel(self) -> dict | None:
        if self._capture is not None:
            self._capture.cancel()
        return self.capture_status()

    def capture_frame_jpeg(self, index: int) -> bytes | None:
        frame = self._capture.frame(index) if self._capture is not None else None
        return frame.jpeg if frame is not None else None

    def capture_keep(self, keep: list[int], *, confirm_duplicate: bool = False) -> list[dict]:
        """Store the kept frames as ``device`` templates and end the capture."""
        capture = self._capture
        if capture is None:
            raise CaptureError("no capture to keep frames from: start one first")
        capture.cancel()
        faces = capture.faces(keep)
        results = []
        if faces:
            with self.lock:
                results = self.enroller.enrol_faces(capture.person_id, faces, source="device",
                                                    confirm_duplicate=confirm_duplicate)
            self.sessions.invalidate()
        self._capture = None
        return results

    def reload_config(self) -> dict:
        """Re-read the config file; decision and liveness settings apply at once, others at restart."""
        try:
            new = load_config(self.config_path)
        except RollcallError as exc:
            return {"ok": False, "message": str(exc)}
        restart = [name for name in ("camera", "gpio", "mqtt", "paths", "detection", "console")
                   if getattr(new, name) != getattr(self.config, name)]
        if not new.device.id:
            new.device.id = self.config.device.id  # keep the id in use (see App._ensure_device_id)
        if new.device != self.config.device:
            restart.append("device")
        with self.lock:
            self.restart_needed = sorted(set(self.restart_needed) | set(restart))
            self.config = new
            self.sessions.config = new
            self.enroller.config = new
            configure_engine(self.engine, new)
            self.sessions.invalidate()
        message = "reloaded" + (f"; restart to apply: {', '.join(restart)}" if restart else "")
        logger.info("config %s", message)
        return {"ok": True, "message": message, "restart_needed": restart}

    def restart(self) -> dict:
        """Exit (after this answer is sent) so the service manager starts the firmware again."""
        if self.on_restart is None:
            return {"ok": False, "message": "this firmware was not started by `rollcall run`: restart it by hand"}
        threading.Timer(0.3, self.on_restart).start()
        return {"ok": True, "message": "restarting: the firmware is back in a few seconds"}

    def test_indicators(self) -> dict:
        return self.indicators.test()

    def test_broker(self, mqtt: dict) -> dict:
        return probe_broker(mqtt)

    def session_command(self, action: str, session_id: str, by: str, liveness_policy: str | None = None) -> dict:
        result = self.sessions.command(action, session_id, by, liveness_policy)
        self.indicators.show({"start": "session_start"}.get(action, "session_stop"))
        if self.link is not None:
            self.link.wake()
        return result

    def commands(self, name: str, payload: dict) -> dict:
        """MQTT commands delegated by the link (``session_start`` / ``session_stop`` /
        ``erasure``), already verified by it (signature, target, time, nonce; ``by`` = the
        signing key)."""
        if name == "erasure":
            args = erasure_args(payload)
            return self.erase(args["person_id"], args["by"], full=args["full"], reason="central",
                              request_id=args["erasure_id"])
        action = {"session_start": "start", "session_stop": "stop", "session_cancel": "cancel"}.get(name)
        if action is None:
            raise CommandError(f"unknown command {name!r}")
        policy = payload.get("liveness_policy")
        if policy is not None and not isinstance(policy, str):
            raise CommandError("liveness_policy must be a string")
        return self.session_command(action, str(payload.get("session_id", "")), str(payload.get("by", "mqtt")),
                                    policy)


def erasure_args(payload: dict) -> dict:
    """The fields of a verified ``cmd/erasure``: ``erasure_id`` (the centre's request, also
    the device's de-duplication key), ``person_id``, ``full``, ``by`` (signing key, plus
    ``requested_by`` when the centre names a person); CommandError when one is wrong."""
    person_id, erasure_id = payload.get("person_id"), payload.get("erasure_id")
    if not isinstance(person_id, str) or not 0 < len(person_id) <= 64:
        raise CommandError("erasure: person_id is missing")
    if not isinstance(erasure_id, str) or not 0 < len(erasure_id) <= 64:
        raise CommandError("erasure: erasure_id is missing (the centre matches confirmations by it)")
    full = payload.get("full", False)
    if not isinstance(full, bool):
        raise CommandError("erasure: full must be true or false")
    requested = payload.get("requested_by")
    if requested is not None and (not isinstance(requested, str) or not 0 < len(requested) <= 40):
        raise CommandError("erasure: requested_by must be a short text")
    by = str(payload.get("by") or "central")
    by = f"{requested} via {by}"[:80] if requested else by[:80]
    return {"person_id": person_id, "erasure_id": erasure_id, "full": full, "by": by}


def clock_warnings(clock: dict) -> list[str]:
    """Operator-facing lines about the clock (empty when all is well)."""
    out = []
    if not clock.get("synced"):
        out.append(f"clock not synchronised (source: {clock.get('source')}): events are marked "
                   "clock_synced=false and sessions do not start by schedule; check the network / NTP")
    if clock.get("behind_s"):
        out.append(f"system clock is {clock['behind_s']:.0f} s behind the newest recorded time "
                   f"({clock.get('lower_bound')}): times are held there until it catches up")
    return out


def kiosk_prompt(shown: str, status: str | None) -> str:
    """The kiosk's sentence for a decision (``status``: the attendance status recorded)."""
    if shown == "accepted":
        return "Marked late" if status == "late" else "Marked present"
    if shown == "already":
        return f"Already marked {status}" if status else "Already marked"
    return {"unknown": "Not recognised", "spoof": "Liveness check failed", "retry": "Please try again",
            "no_session": "No session is running"}.get(shown, "")


def cpu_temp_c() -> float | None:
    """SoC temperature in degrees Celsius (None where the kernel does not expose it)."""
    try:
        with open("/sys/class/thermal/thermal_zone0/temp", encoding="ascii") as f:
            return round(int(f.read().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None
