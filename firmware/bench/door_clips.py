"""The real clips through the real device loop (`rollcall bench door --clips DIR`).

Per clip the person is enrolled from ONE frame near the END of the clip (the largest face
of that frame, through the device's own analyser) and the loop replays only the first
``probe_s`` seconds, so the enrolment frame is seconds away from every probed frame.
The replay-phone ``fake.mp4`` is probed with the person enrolled from ``real.mov``: a
phone replay must end as spoof or retry, never as marked. Results per clip: marked (when),
unknown (closest, score, threshold), spoof and retry verdicts (see `rollcall replay`).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import cv2

from firmware.cli import replay as rp

logger = logging.getLogger(__name__)

#: name -> (clip, enrol from clip, enrol at second, probe seconds, liveness policy, detector, expected).
#: The entry-walk faces are too far for BlazeFace short-range: that clip uses the full-range model.
CLIPS = {
    "blinking_4": ("blink/blinking_4.mp4", "blink/blinking_4.mp4", 10.0, 6.0, "blink", "blazeface_short", "marked"),
    "aoc_talking": ("blink/WDA_AlexandriaOcasioCortez_000.mp4", "blink/WDA_AlexandriaOcasioCortez_000.mp4",
                    7.6, 5.0, "blink", "blazeface_short", "marked"),
    "replay_real": ("spoof/replay-phone/real.mov", "spoof/replay-phone/real.mov", 12.5, 8.0, "blink",
                    "blazeface_short", "marked"),
    "replay_fake": ("spoof/replay-phone/fake.mp4", "spoof/replay-phone/real.mov", 12.5, 10.4, "blink",
                    "blazeface_short", "not marked"),
    "entry_walk": ("entry-walk/facenet-pytorch_video.mp4", "entry-walk/facenet-pytorch_video.mp4", 4.0, 2.8,
                   "blink", "blazeface_full", "marked"),
}


def frame_at(clip: Path, second: float, out: Path) -> Path:
    """Write the clip's frame at ``second`` (or its last frame) as a JPEG."""
    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    wanted, image, i = int(second * fps), None, 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        image = frame
        if i >= wanted:
            break
        i += 1
    capture.release()
    if image is None:
        raise FileNotFoundError(f"{clip}: no frames")
    cv2.imwrite(str(out), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return out


def run_clip(data: Path, models_dir: Path, name: str, tmp: Path, policy: str | None = None) -> dict:
    """One clip (see module doc) with its own liveness policy or ``policy``; the replay
    results plus ``expected`` and ``summary``. With policy off a replay attack is expected
    to be marked (nothing checks liveness)."""
    clip, enrol_clip, enrol_s, probe_s, own_policy, detector, expected = CLIPS[name]
    policy = policy or own_policy
    expected = "marked" if policy == "off" else expected
    photo = frame_at(data / enrol_clip, enrol_s, tmp / f"{name}-enrol.jpg")
    args = argparse.Namespace(config=None, models_dir=models_dir, policy=policy, security_level=None,
                              threshold=None)
    cfg = rp.replay_config(args, tmp / f"{name}-{policy}")
    cfg.detection.model = detector
    fps = rp.clip_fps(data / clip, cfg.camera.fps)
    out = rp.replay(data / clip, cfg, {name: [photo]}, max_frames=int(probe_s * fps))
    marked = [m for m in out["marked"] if m["person_id"] == rp.person_id(name)]
    got = f"marked at {marked[0]['t_s']:.2f} s (score {marked[0]['score']:.3f})" if marked else "not marked"
    extra = f"; unknown {len(out['unknown'])}, spoof {len(out['spoof'])}, retry {len(out['retry'])}"
    ok = bool(marked) == (expected == "marked")
    out.update(name=name, clip=clip, enrolled_from=f"{enrol_clip} @ {enrol_s:g} s", probed_s=probe_s, expected=expected,
               ok=ok, summary=f"{got}{extra}; expected {expected}: {'OK' if ok else 'MISS'} "
                              f"(threshold {out['threshold']}, policy {policy})")
    return out


def run_clips(data: Path, models_dir: Path, policies: tuple[str | None, ...] = (None, "off")) -> list[dict]:
    """Every clip of :data:`CLIPS` present under ``data``, with its own liveness policy
    and with liveness off (recognition alone)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="rollcall-door-clips-") as tmp:
        for name, spec in CLIPS.items():
            if not (data / spec[0]).is_file() or not (data / spec[1]).is_file():
                logger.warning("%s: clip missing under %s, skipped", name, data)
                continue
            for policy in policies:
                results.append(run_clip(data, models_dir, name, Path(tmp), policy))
    return results
