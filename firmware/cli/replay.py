"""`rollcall replay CLIP --enrol "Name=photo.jpg" ...`: the real device loop on a recorded clip.

A deployer's check of a setup on footage from their own camera. Everything runs offline
in a temporary data dir: the people given with ``--enrol`` are enrolled (through the
device's own detector, mesh alignment and embedder; repeat a name to give several
photos), a session with them on its roster is running, GPIO is gpiozero's MockFactory,
MQTT is off. The clip (a video file or a folder of images) is replayed as fast as the
loop runs, frame by frame, through :class:`firmware.runtime.app.App`. Printed: who was
marked and when (clip seconds), every unknown track with its closest enrolled person,
score and the threshold in force, every spoof verdict. ``--json PATH`` writes::

    {"marked": [{"name", "person_id", "t_s", "score", "status"}],
     "unknown": [{"track_id", "t_s", "closest", "score", "threshold"}],
     "spoof": [{"track_id", "t_s"}], "retry": [{"track_id", "t_s"}],
     "frames": N, "threshold": T, "policy": P}
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from firmware.config import Config, load_config
from firmware.errors import ConfigError, ImageError

logger = logging.getLogger(__name__)

PERSON_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def register(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("clip", type=Path, help="video file or folder of images")
    parser.add_argument("--enrol", action="append", default=[], metavar="NAME=PHOTO",
                        help="enrol NAME from PHOTO before the replay (repeat; same name = more photos)")
    parser.add_argument("--policy", choices=("blink", "challenge", "off"), default=None,
                        help="liveness policy (default: the config's)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--config", help="config file to start from (default: built-in defaults)")
    parser.add_argument("--models-dir", type=Path, help="built models (default: var/models or the config's)")
    parser.add_argument("--security-level", choices=("low", "normal", "high"), help="override recognition.security_level")
    parser.add_argument("--threshold", type=float, help="raw threshold override (expert)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.set_defaults(func=run)


@dataclass
class Replayed:
    """What happened, in clip seconds."""

    fps: float
    names: dict[str, str]
    marked: list[dict] = field(default_factory=list)
    unknown: list[dict] = field(default_factory=list)
    spoof: list[dict] = field(default_factory=list)
    retry: list[dict] = field(default_factory=list)

    def on_decision(self, decision, frame) -> None:
        """Device listener: one entry per decision."""
        t_s = round((frame.index - 1) / self.fps, 2)
        kind = decision.outcome.value
        if kind in ("accepted", "already"):
            self.marked.append({"name": self.names.get(decision.person_id, decision.person_id),
                                "person_id": decision.person_id, "t_s": t_s, "score": round(decision.score, 4),
                                "status": kind, "track_id": decision.track_id})
        elif kind == "unknown":
            self.unknown.append({"track_id": decision.track_id, "t_s": t_s,
                                 "closest": self.names.get(decision.closest, decision.closest),
                                 "score": round(decision.score, 4),
                                 "threshold": None if decision.threshold is None else round(decision.threshold, 4)})
        elif kind in ("spoof", "retry"):
            getattr(self, kind).append({"track_id": decision.track_id, "t_s": t_s})


def parse_enrol(items: list[str]) -> dict[str, list[Path]]:
    """{name: photos} from ``NAME=PHOTO`` strings (ConfigError on a bad one)."""
    out: dict[str, list[Path]] = {}
    for item in items:
        name, sep, photo = item.partition("=")
        if not sep or not name.strip() or not photo.strip():
            raise ConfigError(f"--enrol {item!r}: use NAME=PHOTO")
        path = Path(photo.strip())
        if not path.is_file():
            raise ConfigError(f"--enrol {item!r}: {path} is not a file")
        out.setdefault(name.strip(), []).append(path)
    return out


def person_id(name: str) -> str:
    """A store-safe id for a display name."""
    return PERSON_ID_UNSAFE.sub("_", name).strip("_")[:64] or "person"


def clip_fps(clip: Path, default: float) -> float:
    """The clip's frame rate (the camera config's for image folders)."""
    if clip.is_dir():
        return default
    capture = cv2.VideoCapture(str(clip))
    rate = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return rate if 0 < rate < 240 else default


def replay_config(args: argparse.Namespace, root: Path) -> Config:
    """The config of an offline replay: temporary paths, mock GPIO, no MQTT, as fast as possible."""
    cfg = load_config(args.config) if args.config else Config()
    cfg.paths.data_dir = root / "data"
    cfg.paths.control_socket = root / "control.sock"
    if args.models_dir:
        cfg.paths.models_dir = args.models_dir
    elif Path("var/models").is_dir() and not args.config:
        cfg.paths.models_dir = Path("var/models")
    cfg.camera.replay_realtime = False
    cfg.camera.replay_loop = False
    cfg.mqtt.enabled = False
    if args.policy:
        cfg.liveness.policy = args.policy
    if args.security_level:
        cfg.recognition.security_level = args.security_level
    if args.threshold is not None:
        cfg.recognition.match_threshold = args.threshold
    cfg.privacy.schedule_needs_synced_clock = False  # media time drives the replay, not the wall clock
    return cfg


# The replay's data dir is a temporary folder deleted after the run: the faces given on the
# command line live only there, for the length of the run.
REPLAY_CONSENT = {"basis": "consent", "by": "rollcall replay (temporary data dir, deleted after the run)"}


def enrol(cfg: Config, people: dict[str, list[Path]]) -> dict[str, str]:
    """Enrol every person with the device's own analyser; {person_id: name}. The largest
    face of each photo that the mesh confirms is used; a photo with none is an ImageError."""
    from firmware.domain.types import Frame
    from firmware.hal.sources import downscale
    from firmware.runtime.loop import FrameAnalyser
    from firmware.store import Store

    analyser = FrameAnalyser(cfg, cfg.paths.models_dir)
    names = {}
    try:
        with Store(cfg.paths.data_dir) as store:
            for name, photos in people.items():
                pid = person_id(name)
                pid = pid if pid not in names else f"{pid[:60]}-{len(names)}"
                store.people.add(pid, name, consent=REPLAY_CONSENT)
                names[pid] = name
                for photo in photos:
                    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
                    if image is None:
                        raise ImageError(f"{photo}: not a readable image")
                    frame = Frame(image, 0.0, 0.0, 0, downscale(image, cfg.camera.detect_width))
                    faces = sorted(analyser.detect(frame), key=lambda d: d.width, reverse=True)
                    measured = next((m for m in map(lambda d: analyser.measure(frame, d), faces) if m), None)
                    if measured is None:
                        raise ImageError(f"{photo}: no face found (at least {cfg.detection.min_face_px} px wide)")
                    store.people.add_embedding(pid, analyser.embed(frame, measured[0]), cfg.recognition.embedder)
            now = time.time()
            roster = store.rosters.create("replay", [{"person_id": p} for p in names])
            store.sessions.create(roster["id"], cfg.device.room, "replay", now - 60, now + 86400)
    finally:
        analyser.close()
    return names


def replay(clip: Path, cfg: Config, people: dict[str, list[Path]], max_frames: int | None = None) -> dict:
    """Run the device on ``clip`` with ``people`` enrolled; the results dict (module doc)."""
    from gpiozero.pins.mock import MockFactory

    from firmware.runtime.app import App
    from firmware.runtime.tuning import match_threshold

    if not clip.exists():
        raise ConfigError(f"{clip}: no such video file or image folder")
    names = enrol(cfg, people)
    result = Replayed(clip_fps(clip, cfg.camera.fps), names)
    factory = MockFactory()
    try:
        app = App(cfg, source=str(clip), pin_factory=factory, max_frames=max_frames)
        with app:
            app.device.listeners.append(result.on_decision)
            app.run()
            frames = app.loop_frames()
            threshold = app.engine.scope.rule.threshold if app.engine.scope.gallery is not None else None
    finally:
        factory.reset()
    return {"marked": result.marked, "unknown": result.unknown, "spoof": result.spoof, "retry": result.retry,
            "frames": frames, "fps": round(result.fps, 3), "policy": cfg.liveness.policy,
            "threshold": round(threshold if threshold is not None else match_threshold(cfg, len(names)), 4),
            "security_level": cfg.recognition.security_level}


def format_report(out: dict) -> str:
    lines = [f"{out['frames']} frames at {out['fps']:g} fps, liveness {out['policy']}, "
             f"threshold {out['threshold']} (security level {out['security_level']})"]
    for m in out["marked"]:
        lines.append(f"marked   {m['name']} ({m['person_id']}) at {m['t_s']:.2f} s, score {m['score']:.3f}, {m['status']}")
    for u in out["unknown"]:
        lines.append(f"unknown  track {u['track_id']} at {u['t_s']:.2f} s: closest {u['closest']} "
                     f"score {u['score']:.3f} < threshold {u['threshold']}")
    for s in out["spoof"]:
        lines.append(f"spoof    track {s['track_id']} at {s['t_s']:.2f} s")
    for r in out["retry"]:
        lines.append(f"retry    track {r['track_id']} at {r['t_s']:.2f} s (quality or liveness never good enough)")
    if not (out["marked"] or out["unknown"] or out["spoof"]):
        lines.append("nobody was decided: no face passed the quality gate and liveness long enough")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    people = parse_enrol(args.enrol)
    with tempfile.TemporaryDirectory(prefix="rollcall-replay-") as tmp:
        cfg = replay_config(args, Path(tmp))
        out = replay(args.clip, cfg, people, args.max_frames)
    print(format_report(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0
