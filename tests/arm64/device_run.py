"""Run the real device end to end on one machine (used inside the arm64 root).

Enrols the person of a blink clip from frames of the clip's first part, starts a
mosquitto on a free loopback port and the reference collector, then runs
`rollcall run` on the clip (MockFactory GPIO, open-door mode, blink liveness) for a
bounded number of frames. Passes when the collector holds an attendance event for the
enrolled person.

    python tests/arm64/device_run.py --work DIR --data SHARED [--clip blink/blinking_4.mp4]
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2

from firmware.config import Config, write_config_atomic

ROLLCALL = [sys.executable, "-m", "firmware.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def extract_frames(clip: Path, out: Path, seconds: tuple[float, ...]) -> list[Path]:
    """Save the frames at the given times (s) of ``clip`` as JPEG files for enrolment."""
    cap = cv2.VideoCapture(str(clip))
    paths = []
    for t in seconds:
        cap.set(cv2.CAP_PROP_POS_MSEC, t * 1000)
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"cannot read {clip} at {t} s")
        path = out / f"enrol_{t:.1f}.jpg"
        cv2.imwrite(str(path), frame)
        paths.append(path)
    cap.release()
    return paths


def decimate(clip: Path, out: Path, fps: float, seconds: float, width: int = 640) -> int:
    """Write the first ``seconds`` of ``clip`` at ``fps`` frames per second, scaled to
    ``width`` pixels, as numbered JPEG files in ``out`` (a folder source for the device).
    Emulation is slow, so the device sees 8 fps, which liveness is built to handle."""
    out.mkdir(parents=True, exist_ok=True)
    cap = cv2.VideoCapture(str(clip))
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    count, index = 0, 0
    while index / native < seconds:
        ok, frame = cap.read()
        if not ok:
            break
        if index >= round(count * native / fps):
            scale = width / frame.shape[1]
            frame = cv2.resize(frame, (width, round(frame.shape[0] * scale)), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(out / f"{count:05d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
            count += 1
        index += 1
    cap.release()
    return count


def write_config(work: Path, port: int, models: Path, fps: float) -> Path:
    cfg = Config()
    cfg.device.id = "arm64-check"
    cfg.paths.data_dir = work / "data"
    cfg.paths.models_dir = models
    cfg.paths.control_socket = work / "control.sock"
    cfg.paths.log_dir = work / "log"
    cfg.camera.replay_realtime = False
    cfg.camera.replay_loop = False
    cfg.camera.fps = fps
    cfg.gpio.pin_factory = "mock"
    cfg.decisions.open_door = True
    cfg.mqtt.host = "127.0.0.1"
    cfg.mqtt.port = port
    path = work / "config.toml"
    write_config_atomic(cfg, path)
    return path


def start_broker(work: Path, port: int) -> subprocess.Popen:
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise SystemExit("mosquitto did not start")


def attendance_events(db: Path) -> list[dict]:
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT topic, payload FROM events").fetchall()
    return [json.loads(p) for t, p in rows if t.endswith("event/attendance")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--models", type=Path, default=Path("var/models"))
    parser.add_argument("--clip", default="blink/blinking_4.mp4")
    parser.add_argument("--fps", type=float, default=8.0, help="frames per second fed to the device")
    parser.add_argument("--seconds", type=float, default=4.0, help="how much of the clip to replay")
    args = parser.parse_args()
    work = args.work.resolve()
    clip = args.data / args.clip
    port = free_port()
    cfg = write_config(work, port, args.models.resolve(), args.fps)
    photos = extract_frames(clip, work, (0.2, 0.6))
    frames = decimate(clip, work / "frames", args.fps, args.seconds)
    subprocess.run([*ROLLCALL, "enroll", "--config", str(cfg), "--person", "p1", "--name", "Blink Clip", "--basis", "consent",
                    *map(str, photos)], check=True)
    broker = start_broker(work, port)
    db = work / "central.db"
    collector = subprocess.Popen([*ROLLCALL, "central", "collect", "--broker", f"127.0.0.1:{port}",
                                  "--db", str(db), "--until-count", "1", "--timeout", "900"])
    device = None
    try:
        started = time.monotonic()
        device = subprocess.Popen([*ROLLCALL, "run", "--config", str(cfg), "--source", str(work / "frames"),
                                   "--max-frames", str(frames)])
        # The collector exits as soon as it holds one event; the device is then stopped
        # with SIGTERM (a clean shutdown, as systemd does) instead of replaying the rest.
        while collector.poll() is None and device.poll() is None:
            time.sleep(0.5)
        collector.wait(timeout=120)
        events = attendance_events(db)
        print(f"device run: {time.monotonic() - started:.0f} s, attendance events collected: {len(events)}")
        if device.poll() is None:
            device.terminate()
        code = device.wait(timeout=120)
        if code != 0:
            print(f"rollcall run exited with {code}")
            return 1
        return 0 if any(e.get("person_id") == "p1" for e in events) else 1
    finally:
        for proc in (device, collector, broker):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)

if __name__ == "__main__":
    sys.exit(main())
