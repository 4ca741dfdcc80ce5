"""`rollcall bench pipeline`: the whole device loop on replayed video, as fast as possible.

For each clip (default: ../shared/data/entry-walk and ../shared/data/blink) the people in
its LAST ``--enrol-fraction`` of frames are enrolled (faces clustered by embedding), then
the device (`firmware.runtime.app.App`: real models, real store, MockFactory pins, no broker)
replays the other frames with liveness policy ``blink``. The session's roster holds
``--identities`` synthetic-noise identities (random unit vectors) plus the enrolled people.

Reports: fps end to end (decode -> decision -> store), decision latency from a face's
first detection to its decision (median, media time: includes waiting for a blink),
per-frame processing time, dropped frames, decisions by outcome, the store's append time
with 100,000 stored events (`firmware.bench.store.bench_append`), and memory:

- ``rss_mb``: peak resident memory of the DEVICE process, the way it runs on a Pi: each
  clip's device runs in a freshly spawned interpreter (nothing inherited from the bench's
  own set-up: the enrolment analyser, the noise identities, the 100,000-event store
  bench), with the ``MALLOC_ARENA_MAX=2`` the systemd unit sets;
- ``rss_breakdown_mb``: where it goes in that process (imports, models, the rest once
  frames flow: camera decode buffers, frames, tensors);
- ``bench_rss_mb``: the harness's own peak, for comparison with older runs (which
  reported that number as the device's).

Targets: >= 15 fps with one face in view, device RSS <= 200 MB (a 1 GB Pi also runs the
console and a browser), append p99 <= 20 ms.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from firmware.bench.store import bench_append
from firmware.config import Config
from firmware.domain.decisions import mean_embedding
from firmware.domain.types import Frame
from firmware.hal.sources import downscale
from firmware.runtime.app import App
from firmware.runtime.loop import FrameAnalyser
from firmware.store import Store

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
VIDEO_EXT = {".mp4", ".mov", ".avi", ".mkv", ".webm"}
TARGETS = {"fps": 15.0, "rss_mb": 200.0, "append_ms_p99": 20.0}
BENCH_CONSENT = {"basis": "consent", "by": "rollcall bench pipeline (temporary data dir)"}
DEVICE_ENV = {"MALLOC_ARENA_MAX": "2"}  # as in systemd/rollcall-firmware.service
CLUSTER_COSINE = 0.5


def _shared_data() -> Path:
    return Path(os.environ.get("ROLLCALL_SHARED_DATA", REPO.parent / "shared" / "data"))


def register(parser: argparse.ArgumentParser, command: str) -> None:
    data = _shared_data()
    parser.add_argument("--video", nargs="*", default=[str(data / "entry-walk"), str(data / "blink")],
                        help="video files or folders of them (default: shared entry-walk and blink clips)")
    parser.add_argument("--models-dir", type=Path,
                        default=Path(os.environ.get("ROLLCALL_MODELS_DIR", REPO / "var" / "models")),
                        help="built models (default: $ROLLCALL_MODELS_DIR or var/models)")
    parser.add_argument("--identities", type=int, default=1000, help="synthetic-noise identities in the roster")
    parser.add_argument("--enrol-fraction", type=float, default=0.25, help="last fraction of each clip used to enrol")
    parser.add_argument("--store-events", type=int, default=100_000,
                        help="stored events for the append benchmark (0: skip it)")
    parser.add_argument("--detector", default="auto",
                        help="detector model id, or auto (full-range for entry-walk, short-range otherwise)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.set_defaults(func=run)


def clips(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_EXT)
        elif p.is_file():
            out.append(p)
        else:
            raise SystemExit(f"bench pipeline: {p} not found (set ROLLCALL_SHARED_DATA or pass --video)")
    return out


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    n = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return n


def cluster_faces(analyser, path: Path, start: int, step: int = 5) -> list[list[np.ndarray]]:
    """Embeddings of every face in frames ``start``.. of a clip, grouped per person."""

    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    groups: list[list[np.ndarray]] = []
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        index += 1
        if index % step:
            continue
        frame = Frame(image, 0.0, 0.0, index, downscale(image, analyser.config.camera.detect_width))
        for det in analyser.detect(frame):
            measured = analyser.measure(frame, det)
            if measured is not None and measured[2].ok:
                _assign(groups, analyser.embed(frame, measured[0]))
    capture.release()
    return [g for g in groups if len(g) >= 2]


def _assign(groups: list[list[np.ndarray]], vector: np.ndarray) -> None:

    scores = [float(mean_embedding(g) @ vector) for g in groups]
    if scores and max(scores) >= CLUSTER_COSINE:
        groups[int(np.argmax(scores))].append(vector)
    else:
        groups.append([vector])


def clip_config(cfg, clip: Path, detector: str):
    """The device config for one clip: ``auto`` uses BlazeFace full-range for the entry
    clip (faces 70-130 px in a 1920 px frame) and short-range for close-ups."""
    out = cfg.model_copy(deep=True)
    if detector == "auto":
        detector = "blazeface_full" if clip.parent.name == "entry-walk" else "blazeface_short"
    out.detection.model = detector
    return out


def prepare_store(cfg, videos: list[Path], identities: int, fraction: float,
                  detector: str) -> tuple[str, dict[str, int]]:
    """Enrol people from the end of each clip plus noise identities; a session running now.
    Returns (session id, frames to replay per clip)."""

    replay: dict[str, int] = {}
    with Store(cfg.paths.data_dir, config=cfg.store) as store:
        people, dim = [], 128
        for clip in videos:
            replay[str(clip)] = max(1, int(frame_count(clip) * (1 - fraction)))
            enrolled, dim = _enrol_clip(store, clip_config(cfg, clip, detector), clip, replay[str(clip)])
            people += enrolled
        people += _add_noise(store, cfg.recognition.embedder, identities, dim)
        roster = store.rosters.create("bench", [{"person_id": p, "seat": None} for p in people])
        now = time.time()
        session = store.sessions.create(roster["id"], cfg.device.room, "bench", now - 60, now + 7200)
        store.sessions.set_state(session["id"], "in_progress", "bench")
    return session["id"], replay


def _enrol_clip(store, cfg, clip: Path, start: int) -> tuple[list[str], int]:
    """Enrol each person seen from frame ``start`` on; returns (person ids, embedding size)."""

    analyser = FrameAnalyser(cfg, cfg.paths.models_dir)
    try:
        groups, dim = cluster_faces(analyser, clip, start), analyser.embedder.dim
    finally:
        analyser.close()
    people = []
    for k, group in enumerate(groups):
        pid = f"{clip.stem[:40]}-{k}".replace(" ", "_")
        store.people.add(pid, pid, consent=BENCH_CONSENT)
        for vec in group[:5]:
            store.people.add_embedding(pid, vec, cfg.recognition.embedder, photo_sha256=os.urandom(32).hex())
        people.append(pid)
    logger.info("%s: frames from %d replayed before, %d people enrolled", clip.name, start, len(people))
    return people, dim


def _add_noise(store, model: str, n: int, dim: int) -> list[str]:
    """``n`` synthetic identities: random unit vectors (seeded)."""
    rng = np.random.default_rng(1)
    people = []
    for i in range(n):
        pid = f"noise-{i:05d}"
        store.people.add(pid, pid, consent=BENCH_CONSENT)
        vec = rng.normal(size=dim).astype(np.float32)
        store.people.add_embedding(pid, vec / np.linalg.norm(vec), model, photo_sha256=f"{i:064x}")
        people.append(pid)
    return people


def run_clip(cfg, clip: Path, frames: int) -> dict:
    """Replay one clip through the whole device in a freshly spawned process; its numbers."""
    saved = {k: os.environ.get(k) for k in DEVICE_ENV}
    os.environ.update(DEVICE_ENV)  # the spawned child reads it at start (glibc malloc)
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return pool.apply(_device_run, (cfg.model_dump(mode="json"), str(clip), frames))
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def _rss_now_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _hwm_mb() -> float:
    """This process's peak resident memory (``VmHWM``: unlike ``ru_maxrss``, it is not
    inherited across the exec that spawned it)."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    return peak_rss_mb()


def _device_run(cfg_data: dict, clip: str, frames: int) -> dict:
    """In the child: build the device, replay, report (with its own memory numbers)."""
    from gpiozero.pins.mock import MockFactory


    imports = _rss_now_mb()
    factory = MockFactory()
    app = App(Config.model_validate(cfg_data), source=clip, max_frames=frames, pin_factory=factory)
    try:
        with app:
            started_mb = _rss_now_mb()
            started = time.perf_counter()
            app.run()
            elapsed = time.perf_counter() - started
            stats, cam = app.loop.stats, app.camera.status()
    finally:
        factory.reset()
    row = _clip_row(Path(clip), app.config, stats, cam, elapsed)
    row["rss_mb"] = _hwm_mb()
    row["rss_breakdown_mb"] = {"imports": round(imports, 1), "models_and_parts": round(started_mb - imports, 1),
                               "running": round(row["rss_mb"] - started_mb, 1)}
    return row


def _clip_row(clip: Path, cfg, stats, cam: dict, elapsed: float) -> dict:
    lat = list(stats.latencies_s)
    return {"clip": clip.name, "group": clip.parent.name, "detector": cfg.detection.model, "frames": stats.frames, "seconds": round(elapsed, 2),
            "fps": round(stats.frames / elapsed, 2) if elapsed else 0.0, "decisions": stats.decisions,
            "outcomes": dict(stats.outcomes), "latencies_ms": [round(1000 * x, 1) for x in lat],
            "process_ms_median": round(float(np.median(stats.process_ms)), 2) if stats.process_ms else None,
            "dropped_frames": cam["dropped"]}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def bench(args: argparse.Namespace) -> dict:

    videos = clips(args.video)
    with tempfile.TemporaryDirectory(prefix="rollcall-bench-pipeline-") as work:
        cfg = Config()
        cfg.paths.data_dir, cfg.paths.models_dir = Path(work) / "data", args.models_dir
        cfg.paths.control_socket = Path(work) / "control.sock"
        cfg.camera.replay_realtime, cfg.camera.replay_loop = False, False
        cfg.liveness.policy = "blink"
        t0 = time.perf_counter()
        session_id, replay = prepare_store(cfg, videos, args.identities, args.enrol_fraction, args.detector)
        setup_s = time.perf_counter() - t0
        rows = [run_clip(clip_config(cfg, clip, args.detector), clip, replay[str(clip)]) for clip in videos]
    return summarise(rows, setup_s, args)


def summarise(rows: list[dict], setup_s: float, args: argparse.Namespace) -> dict:
    one_face = [r for r in rows if r["group"] != "entry-walk"] or rows
    frames = sum(r["frames"] for r in one_face)
    seconds = sum(r["seconds"] for r in one_face)
    latencies = [x for r in rows for x in r["latencies_ms"]]
    out = {"fps": round(frames / seconds, 2) if seconds else 0.0,
           "fps_all_clips": round(sum(r["frames"] for r in rows) / max(sum(r["seconds"] for r in rows), 1e-9), 2),
           "decision_latency_ms_median": round(statistics.median(latencies), 1) if latencies else None,
           "process_ms_median": statistics.median([r["process_ms_median"] for r in rows if r["process_ms_median"]]),
           "dropped_frames": sum(r["dropped_frames"] for r in rows),
           "rss_mb": max(r["rss_mb"] for r in rows), "bench_rss_mb": peak_rss_mb(),
           "rss_breakdown_mb": max(rows, key=lambda r: r["rss_mb"])["rss_breakdown_mb"],
           "identities": args.identities, "setup_s": round(setup_s, 1),
           "clips": [{k: v for k, v in r.items() if k != "latencies_ms"} for r in rows]}
    out.update(append_numbers(args.store_events))
    out["targets"] = TARGETS
    out["meets_targets"] = bool(out["fps"] >= TARGETS["fps"] and out["rss_mb"] <= TARGETS["rss_mb"]
                                and (out.get("append_ms_p99") is None or out["append_ms_p99"] <= TARGETS["append_ms_p99"]))
    return out


def append_numbers(events: int) -> dict:
    if events <= 0:
        return {"append_ms_median": None, "append_ms_p99": None}
    result = bench_append(events)
    return {"append_ms_median": result["append_ms_median"], "append_ms_p99": result["append_ms_p99"],
            "append_existing_events": result["n_existing"]}


def print_table(out: dict) -> None:
    print(f"{'clip':44} {'frames':>6} {'fps':>7} {'ms/frame':>9} {'RSS MB':>7} {'decisions':>9}  outcomes")
    for r in out["clips"]:
        print(f"{r['clip'][:44]:44} {r['frames']:>6} {r['fps']:>7.1f} {r['process_ms_median'] or 0:>9.1f} "
              f"{r['rss_mb']:>7.1f} {r['decisions']:>9}  {r['outcomes']}")
    print(f"fps (one face): {out['fps']}  (target >= {TARGETS['fps']})   all clips: {out['fps_all_clips']}")
    print(f"decision latency median: {out['decision_latency_ms_median']} ms (first detection -> decision)")
    print(f"device peak RSS: {out['rss_mb']} MB (target <= {TARGETS['rss_mb']}; {out['rss_breakdown_mb']})"
          f"   bench harness: {out['bench_rss_mb']} MB   dropped frames: {out['dropped_frames']}")
    print(f"store append: median {out['append_ms_median']} ms, p99 {out['append_ms_p99']} ms "
          f"(target p99 <= {TARGETS['append_ms_p99']})")


def run(args: argparse.Namespace) -> int:
    out = bench(args)
    print_table(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    return 0
