"""`rollcall bench recognition`: LFW verification, open-set identification, latency, baseline.

- LFW View 2 on the folds present in ``pairs.txt`` (header ``<folds> <pairs>``): for each
  fold, the cosine threshold is the one that maximises accuracy on the OTHER folds; mean and
  std of the fold accuracies. TAR at FAR = 0.1 % on all pairs pooled. For every embedder.
- Open set (default embedder family): identities with >= 4 images are enrolled with 1 or
  3 images, up to 10 of their other images are genuine probes; every image of the others is
  a never-enrolled probe. FAR and FRR at the manifest's threshold and margin (the config's margin if set),
  and the threshold that brings FAR to <= 0.1 %.
- Latency per stage (median / p95 ms, 2 threads) on the same images; peak RSS.
- Matching time against 10,000 synthetic identities.
- Baseline: the same images through ``face_recognition`` (dlib HOG + dlib ResNet).

Embeddings are cached per image for the run only. ``--quick``: one fold, two embedders,
a smaller baseline and open set.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import time
from pathlib import Path

import cv2
import numpy as np

from firmware.bench import recognition_eval as ev
from firmware.domain.types import Detection

logger = logging.getLogger(__name__)

EMBEDDERS = ("dlib_resnet_int8", "dlib_resnet_f32", "facenet_int8", "facenet_f32")
QUICK_BASELINE_PAIRS = 100


def register(parser: argparse.ArgumentParser, command: str) -> None:
    repo_data = Path(os.environ.get("ROLLCALL_SHARED_DATA", Path.cwd().parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=repo_data / "lfw-dev", help="LFW folder with pairs.txt and images/")
    parser.add_argument("--models-dir", type=Path, default=None, help="built models (default: $ROLLCALL_MODELS_DIR, var/models or the config's)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="one fold, default embedder pair, small baseline (~1 min)")
    parser.add_argument("--embedders", nargs="+", default=None, help=f"embedder ids (default: {' '.join(EMBEDDERS)})")
    parser.add_argument("--no-baseline", action="store_true", help="skip the face_recognition baseline")
    parser.set_defaults(func=run)


def _models_dir(explicit: Path | None) -> Path:
    if explicit:
        return explicit
    if os.environ.get("ROLLCALL_MODELS_DIR"):
        return Path(os.environ["ROLLCALL_MODELS_DIR"])
    if Path("var/models").is_dir():
        return Path("var/models")
    from firmware.config import load_config
    return load_config().paths.models_dir


def centre_fallback(shape: tuple[int, ...]) -> Detection:
    """A detection of the centred face LFW images are cropped around (used when BlazeFace
    finds nothing): box 44 % of the image, eyes and mouth at typical positions."""
    h, w = shape[:2]
    cx, cy, s = w / 2, h / 2, 0.44 * min(h, w)
    kp = np.array([[cx - 0.2 * s, cy - 0.1 * s], [cx + 0.2 * s, cy - 0.1 * s], [cx, cy + 0.1 * s],
                   [cx, cy + 0.3 * s], [cx - 0.45 * s, cy], [cx + 0.45 * s, cy]])
    return Detection(box=np.array([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2]), score=0.0, keypoints=kp)


class OurFaces:
    """Our pipeline on LFW-style images: the centre-most face, embedded by every embedder."""

    def __init__(self, models_dir: Path, embedder_ids: list[str]) -> None:
        from firmware.inference.detector import FaceDetector
        from firmware.inference.embedder import Embedder
        from firmware.inference.pipeline import FacePipeline

        self.pipeline = FacePipeline(models_dir, embedder_id=embedder_ids[0], min_face_px=0, max_faces=10)
        self.rss_mb_default = ev.rss_mb_with(self.pipeline)   # the device's footprint
        self.full = FaceDetector(models_dir, "blazeface_full", score_threshold=0.5)
        self.embedders = {mid: (self.pipeline.embedder if i == 0 else Embedder(models_dir, mid))
                          for i, mid in enumerate(embedder_ids)}
        self.vectors: dict[str, dict[str, np.ndarray]] = {mid: {} for mid in embedder_ids}
        self.fallbacks = 0

    def _detection(self, image: np.ndarray) -> Detection:
        start = time.perf_counter()
        dets = self.pipeline.detector.detect(image)
        self.pipeline.stats.add("detect", (time.perf_counter() - start) * 1000)
        dets = dets or self.full.detect(image)
        if not dets:
            self.fallbacks += 1
            return centre_fallback(image.shape)
        centre = np.array(image.shape[1::-1]) / 2
        return min(dets, key=lambda d: np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - centre))

    def add(self, path: str, embedder_ids: list[str]) -> None:
        """Embed ``path`` with ``embedder_ids`` (skipping what is cached)."""
        todo = [m for m in embedder_ids if path not in self.vectors[m]]
        if not todo:
            return
        from firmware.inference.align import align_face
        image = cv2.imread(path)
        det = self._detection(image)
        obs = self.pipeline.observe(image, det, with_embedding=todo[0] == self.pipeline.embedder.model_id)
        for mid in todo:
            if mid == self.pipeline.embedder.model_id and obs is not None and obs.embedding is not None:
                self.vectors[mid][path] = obs.embedding
                continue
            landmarks = obs.landmarks if obs is not None else self.pipeline.mesh.landmarks(image, det)
            emb = self.embedders[mid]
            self.vectors[mid][path] = emb.embed(align_face(image, landmarks, emb.alignment))


def _embed_all(ours: OurFaces, paths: list[str], embedder_ids: list[str], label: str) -> None:
    start = time.perf_counter()
    for i, path in enumerate(paths):
        ours.add(path, embedder_ids)
        if i and i % 500 == 0:
            logger.info("%s: %d/%d images (%.0f s)", label, i, len(paths), time.perf_counter() - start)


def _verification(ours: OurFaces, folds: list[list[ev.Pair]], embedder_ids: list[str]) -> dict:
    out = {}
    for mid in embedder_ids:
        vec = ours.vectors[mid]
        scores = [np.array([float(vec[a] @ vec[b]) for a, b, _ in fold]) for fold in folds]
        labels = [np.array([same for _, _, same in fold]) for fold in folds]
        out[mid] = ev.verification_report(scores, labels)
    return out


def _open_set(ours: OurFaces, data: Path, mid: str, quick: bool, margin: float | None) -> dict:
    from firmware.inference.embedder import default_margin, default_threshold

    identities = ev.identities(data, limit_images=1500 if quick else None)
    paths = [p for imgs in identities.values() for p in imgs]
    _embed_all(ours, paths, [mid], f"open set {mid}")
    threshold = default_threshold(mid)
    margin = default_margin(mid) if margin is None else margin
    out = {f"enrol_{k}": ev.open_set(identities, ours.vectors[mid], enrol=k, threshold=threshold, margin=margin)
           for k in (1, 3)}
    for k in (1, 3):
        out[f"roster_30_enrol_{k}"] = ev.roster_open_set(identities, ours.vectors[mid], enrol=k, size=30,
                                                         threshold=threshold, margin=margin)
    return out | {"threshold": threshold, "margin": margin, "identities": len(identities)}


BASELINE_INSTALL = (".venv/bin/pip install '.[bench]' && "
                    ".venv/bin/pip install --no-deps face_recognition==1.3.0")


def _baseline(folds: list[list[ev.Pair]], quick: bool) -> dict:
    try:
        import face_recognition  # noqa: F401
    except ImportError as exc:
        message = (f"the face_recognition baseline is not installed ({exc}), so there is no "
                   f"speed-up to report; add it with: {BASELINE_INSTALL}")
        logger.warning("%s", message)
        return {"error": message}
    pairs = [p for fold in folds for p in fold]
    if quick:
        same = [p for p in pairs if p[2]][: QUICK_BASELINE_PAIRS // 2]
        diff = [p for p in pairs if not p[2]][: QUICK_BASELINE_PAIRS // 2]
        folds = [same[: len(same) // 2] + diff[: len(diff) // 2], same[len(same) // 2:] + diff[len(diff) // 2:]]
    return ev.baseline_report(folds)


def _measure(args: argparse.Namespace, data: Path, models_dir: Path, embedder_ids: list[str]) -> dict:
    """Every measurement of the bench as one dict (see the module doc)."""
    from firmware.config import load_config

    folds = ev.load_pairs(data, max_folds=1 if args.quick else None)
    if len(folds) == 1:
        folds = ev.split_fold(folds[0])
    ours = OurFaces(models_dir, embedder_ids)
    pair_paths = sorted({p for fold in folds for a, b, _ in fold for p in (a, b)})
    _embed_all(ours, pair_paths, embedder_ids, "LFW pairs")
    results = {"data": str(data), "models_dir": str(models_dir), "quick": args.quick,
               "folds": len(folds), "pairs": sum(map(len, folds)), "images": len(pair_paths),
               "detector_fallbacks": ours.fallbacks, "verification": _verification(ours, folds, embedder_ids),
               "latency_ms": ours.pipeline.stats.summary(), "rss_mb_after_default_pipeline": ours.rss_mb_default}
    margin = load_config().recognition.margin   # None: each embedder's manifest default
    family = embedder_ids[0].split("_")[0]
    results["open_set"] = {m: _open_set(ours, data, m, args.quick, margin)
                           for m in embedder_ids if m.startswith(family)}
    dim = ours.embedders[embedder_ids[0]].dim
    results["matching_10k"] = ev.matching_speed(dim, repeats=40 if args.quick else 200)
    results["rss_mb_peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["baseline"] = {"skipped": True} if args.no_baseline else _baseline(folds, args.quick)
    return results


def run(args: argparse.Namespace) -> int:
    from firmware.errors import RollcallError

    data = args.data
    if not (data / "pairs.txt").is_file():
        raise RollcallError(f"no LFW pairs.txt in {data}: pass --data DIR (a folder with pairs.txt and images/)")
    models_dir = _models_dir(args.models_dir)
    wanted = args.embedders or (list(EMBEDDERS[:2]) if args.quick else list(EMBEDDERS))
    embedder_ids = [m for m in wanted if ev.model_available(models_dir, m)]
    if not embedder_ids:
        raise RollcallError(f"none of {wanted} is built in {models_dir}: run `rollcall models build`")
    started = time.perf_counter()
    results = _measure(args, data, models_dir, embedder_ids)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results.update(ev.headline(results, embedder_ids[0]))
    print(ev.format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0
