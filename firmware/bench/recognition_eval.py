"""Evaluation helpers for `rollcall bench recognition`: LFW pairs, verification metrics,
open-set identification, matching speed, the face_recognition baseline and the report."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from firmware.domain.matching import Gallery, l2_normalise
from firmware.inference.detector import model_file

logger = logging.getLogger(__name__)

Pair = tuple[str, str, bool]
FAR_TARGET = 1e-3
ENROL_MIN_IMAGES = 4      # enrolled identities need 3 enrolment images + >= 1 probe
MAX_PROBES_PER_PERSON = 10  # so a few much-photographed people do not dominate the FRR


def rss_mb() -> float:
    """Current resident set size of this process in MiB."""
    import psutil
    return psutil.Process().memory_info().rss / 2 ** 20


def rss_mb_with(pipeline) -> float:
    """RSS in MiB once ``pipeline`` has run one face end to end (all arenas allocated)."""
    frame = np.zeros((480, 640, 3), np.uint8)
    pipeline.analyse(frame)
    pipeline.embedder.embed(np.zeros((pipeline.embedder.alignment.size,) * 2 + (3,), np.uint8))
    pipeline.stats.reset()
    return rss_mb()


def model_available(models_dir: Path, model_id: str) -> bool:
    return model_file(models_dir, model_id).is_file()


def _image(data: Path, name: str, number: str) -> str:
    return str(data / "images" / name / f"{name}_{int(number):04d}.jpg")


def load_pairs(data: Path, max_folds: int | None = None) -> list[list[Pair]]:
    """LFW View-2 ``pairs.txt``: per fold, ``n`` same pairs then ``n`` different pairs."""
    lines = (data / "pairs.txt").read_text().split("\n")
    n_folds, n = (int(v) for v in lines[0].split())
    rows = [line.split() for line in lines[1:] if line.strip()]
    folds = []
    for f in range(min(n_folds, max_folds or n_folds)):
        chunk = rows[f * 2 * n:(f + 1) * 2 * n]
        same = [(_image(data, r[0], r[1]), _image(data, r[0], r[2]), True) for r in chunk[:n]]
        diff = [(_image(data, r[0], r[1]), _image(data, r[2], r[3]), False) for r in chunk[n:]]
        folds.append(same + diff)
    return folds


def split_fold(fold: list[Pair]) -> list[list[Pair]]:
    """One fold into two halves (same and different pairs split evenly), for --quick."""
    same = [p for p in fold if p[2]]
    diff = [p for p in fold if not p[2]]
    return [same[::2] + diff[::2], same[1::2] + diff[1::2]]


def identities(data: Path, limit_images: int | None = None) -> dict[str, list[str]]:
    """{identity: sorted image paths}; with ``limit_images``, whole identities in name order
    until about that many images."""
    out: dict[str, list[str]] = {}
    total = 0
    for folder in sorted((data / "images").iterdir()):
        images = sorted(str(p) for p in folder.glob("*.jpg"))
        if images:
            out[folder.name] = images
            total += len(images)
        if limit_images and total >= limit_images:
            break
    return out


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """Threshold (predict "same" when score >= it) with the best accuracy on these pairs."""
    cand = np.unique(scores)
    cand = np.r_[cand, cand[-1] + 1e-6]
    acc = ((scores[None, :] >= cand[:, None]) == labels[None, :]).mean(axis=1)
    i = int(np.argmax(acc))
    return float(cand[i] if i == 0 else (cand[i] + cand[i - 1]) / 2)


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float = FAR_TARGET) -> tuple[float, float]:
    """(TAR, threshold) at the lowest threshold whose false-accept rate is <= ``far``."""
    neg = np.sort(scores[~labels])[::-1]
    allowed = int(np.floor(far * len(neg)))
    threshold = float(neg[allowed]) + 1e-6 if allowed < len(neg) else float(neg[-1])
    return float((scores[labels] >= threshold).mean()), threshold


def verification_report(scores: list[np.ndarray], labels: list[np.ndarray]) -> dict:
    """Accuracy per fold with the threshold fitted on the other folds; TAR@FAR pooled."""
    accs, thresholds = [], []
    for k in range(len(scores)):
        train_s = np.concatenate([s for i, s in enumerate(scores) if i != k])
        train_l = np.concatenate([lab for i, lab in enumerate(labels) if i != k])
        t = best_threshold(train_s, train_l)
        accs.append(float(((scores[k] >= t) == labels[k]).mean()))
        thresholds.append(t)
    all_s, all_l = np.concatenate(scores), np.concatenate(labels)
    tar, far_t = tar_at_far(all_s, all_l)
    return {"accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
            "fold_accuracies": accs, "thresholds": thresholds, "tar_at_far_1e-3": tar,
            "threshold_at_far_1e-3": far_t, "negatives": int((~all_l).sum())}


def _top2(gallery: Gallery, vectors: list[np.ndarray]) -> tuple[list[str | None], np.ndarray, np.ndarray]:
    """Per probe: best person, best score, runner-up person's score (-1 when none)."""
    who, best, runner = [], [], []
    for v in vectors:
        r = gallery.match(v, threshold=2.0)
        who.append(r.best_person_id)
        best.append(r.score)
        runner.append(-1.0 if r.runner_up_score is None else r.runner_up_score)
    return who, np.array(best), np.array(runner)


def _rates(g: tuple, truth: list[str], imp: tuple, threshold: float, margin: float) -> dict:
    """FAR, FRR and misidentification from precomputed top-2 scores."""
    g_ok = (g[1] >= threshold) & (g[1] - g[2] >= margin)
    right = np.array([w == t for w, t in zip(g[0], truth)])
    i_ok = (imp[1] >= threshold) & (imp[1] - imp[2] >= margin)
    return {"far": float(i_ok.mean()) if len(i_ok) else 0.0, "frr": float((~(g_ok & right)).mean()),
            "misidentification": float((g_ok & ~right).mean())}


def _threshold_for_far(imp: tuple, margin: float, far: float = FAR_TARGET) -> float:
    """Lowest threshold at which at most ``far`` of the impostor probes are accepted."""
    passing = np.sort(imp[1][imp[1] - imp[2] >= margin])[::-1]
    allowed = int(np.floor(far * len(imp[1])))
    return float(passing[allowed]) + 1e-6 if allowed < len(passing) else -1.0


def open_set(people: dict[str, list[str]], vectors: dict[str, np.ndarray], *, enrol: int,
             threshold: float, margin: float) -> dict:
    """Enrol the first ``enrol`` images of identities with >= 4 images; probe with their
    4th to 13th images (genuine) and with every image of the others (never enrolled)."""
    enrolled = {p: imgs for p, imgs in people.items() if len(imgs) >= ENROL_MIN_IMAGES}
    ids = [p for p, imgs in enrolled.items() for _ in imgs[:enrol]]
    gallery = Gallery(ids, np.stack([vectors[i] for imgs in enrolled.values() for i in imgs[:enrol]]))
    probes = {p: imgs[ENROL_MIN_IMAGES - 1:ENROL_MIN_IMAGES - 1 + MAX_PROBES_PER_PERSON] for p, imgs in enrolled.items()}
    truth = [p for p, imgs in probes.items() for _ in imgs]
    g = _top2(gallery, [vectors[i] for imgs in probes.values() for i in imgs])
    imp = _top2(gallery, [vectors[i] for p, imgs in people.items() if p not in enrolled for i in imgs])
    out = {"enrolled_identities": len(enrolled), "genuine_probes": len(truth), "impostor_probes": len(imp[1])}
    out.update(_rates(g, truth, imp, threshold, margin))
    t_far = _threshold_for_far(imp, margin)
    out.update({"threshold_for_far_1e-3": t_far, "frr_at_that_threshold": _rates(g, truth, imp, t_far, margin)["frr"]})
    out["sweep"] = [{"threshold": round(t, 3), "margin": m, **_rates(g, truth, imp, t, m)}
                    for m in (0.0, 0.01, 0.02, 0.05) for t in np.arange(threshold - 0.07, threshold + 0.045, 0.01)]
    return out


def roster_open_set(people: dict[str, list[str]], vectors: dict[str, np.ndarray], *, enrol: int, size: int,
                    threshold: float, margin: float, draws: int = 5) -> dict:
    """Open set with a class-sized roster: ``size`` random identities (of those with >= 4
    images) enrolled, every never-enrolled identity probing; mean over ``draws`` draws."""
    rng = np.random.default_rng(0)
    big = sorted(p for p, imgs in people.items() if len(imgs) >= ENROL_MIN_IMAGES)
    if len(big) < size:
        return {"skipped": f"only {len(big)} identities with >= {ENROL_MIN_IMAGES} images"}
    runs = []
    for _ in range(draws):
        chosen = set(rng.choice(big, size, replace=False).tolist())
        sub = {p: imgs for p, imgs in people.items() if p in chosen or len(imgs) < ENROL_MIN_IMAGES}
        runs.append(open_set(sub, vectors, enrol=enrol, threshold=threshold, margin=margin))
    keys = ("far", "frr", "misidentification", "frr_at_that_threshold")
    out = {k: float(np.mean([r[k] for r in runs])) for k in keys}
    # the threshold that keeps FAR <= 0.1 % in every draw (-1: the margin alone does it)
    out["threshold_for_far_1e-3"] = float(max(r["threshold_for_far_1e-3"] for r in runs))
    out.update(draws=draws, enrolled_identities=size, impostor_probes=runs[0]["impostor_probes"],
               genuine_probes=int(np.mean([r["genuine_probes"] for r in runs])))
    out["sweep"] = [{**row, "far": float(np.mean([r["sweep"][i]["far"] for r in runs])),
                     "frr": float(np.mean([r["sweep"][i]["frr"] for r in runs]))}
                    for i, row in enumerate(runs[0]["sweep"])]
    return out


def matching_speed(dim: int, identities: int = 10_000, per_person: int = 1, repeats: int = 200) -> dict:
    """Median / p95 ms per probe against ``identities`` synthetic people (float16 and float32),
    and against a 300-person scoped roster."""
    rng = np.random.default_rng(0)
    rows = l2_normalise(rng.normal(size=(identities * per_person, dim)))
    ids = [f"p{i:05d}" for i in range(identities) for _ in range(per_person)]
    probes = l2_normalise(rows[:repeats] + rng.normal(0, 0.05, size=(repeats, dim)))
    out: dict = {"identities": identities, "dim": dim}
    for name, dtype in (("int8", np.int8), ("float16", np.float16), ("float32", np.float32)):
        gallery = Gallery(ids, rows, dtype=dtype)
        roster = ids[::per_person][:300]
        for scope, allowed in (("all", None), ("roster300", roster)):
            gallery.match(probes[0], allowed, threshold=0.5)
            times = []
            for p in probes:
                start = time.perf_counter()
                gallery.match(p, allowed, threshold=0.5, margin=0.05)
                times.append((time.perf_counter() - start) * 1000)
            out[f"{name}_{scope}_ms_median"] = float(np.median(times))
            out[f"{name}_{scope}_ms_p95"] = float(np.percentile(times, 95))
    return out


def _baseline_face(fr, path: str) -> tuple[np.ndarray, float, bool]:
    """(dlib descriptor, ms for detect + encode, HOG found a face) for one image."""
    img = fr.load_image_file(path)
    start = time.perf_counter()
    locs = fr.face_locations(img)
    found = bool(locs)
    h, w = img.shape[:2]
    if not locs:
        locs = [(int(h * 0.27), int(w * 0.73), int(h * 0.73), int(w * 0.27))]
    loc = min(locs, key=lambda b: abs((b[0] + b[2]) / 2 - h / 2) + abs((b[1] + b[3]) / 2 - w / 2))
    enc = fr.face_encodings(img, [loc])[0]
    return enc, (time.perf_counter() - start) * 1000, found


def baseline_report(folds: list[list[Pair]]) -> dict:
    """face_recognition (HOG upsample 1 + dlib ResNet, library defaults) on the same pairs."""
    import face_recognition as fr

    paths = sorted({p for fold in folds for a, b, _ in fold for p in (a, b)})
    encodings, times, misses = {}, [], 0
    for i, path in enumerate(paths):
        encodings[path], ms, found = _baseline_face(fr, path)
        times.append(ms)
        misses += not found
        if i and i % 500 == 0:
            logger.info("baseline: %d/%d images", i, len(paths))
    scores = [np.array([-float(np.linalg.norm(encodings[a] - encodings[b])) for a, b, _ in f]) for f in folds]
    labels = [np.array([s for _, _, s in f]) for f in folds]
    report = verification_report(scores, labels)
    all_s, all_l = np.concatenate(scores), np.concatenate(labels)
    report["accuracy_at_tolerance_0.6"] = float(((all_s >= -0.6) == all_l).mean())
    report.update(images=len(paths), hog_misses=misses, ms_per_face_median=float(np.median(times)),
                  ms_per_face_p95=float(np.percentile(times, 95)), pairs=int(len(all_s)))
    return report


def headline(results: dict, default_id: str) -> dict:
    """The flat keys other tools read (for the default embedder)."""
    ver = results["verification"]
    float_id = default_id.replace("_int8", "_f32")
    lat = results["latency_ms"]
    ms = sum(lat[s]["median_ms"] for s in ("detect", "landmarks", "align", "embed") if s in lat)
    out = {"default_embedder": default_id, "lfw_accuracy_int8": ver[default_id]["accuracy_mean"],
           "lfw_accuracy_float": ver.get(float_id, {}).get("accuracy_mean"),
           "tar_at_far_1e-3_int8": ver[default_id]["tar_at_far_1e-3"],
           "ms_per_face_median": ms, "rss_mb": results["rss_mb_after_default_pipeline"]}
    open_default = results["open_set"].get(default_id, {})
    if open_default:
        out.update(open_set_far=open_default["enrol_3"]["far"], open_set_frr=open_default["enrol_3"]["frr"],
                   open_set_far_enrol_1=open_default["enrol_1"]["far"],
                   open_set_frr_enrol_1=open_default["enrol_1"]["frr"],
                   **{"open_set_threshold_for_far_1e-3": open_default["enrol_3"]["threshold_for_far_1e-3"]},
                   open_set_roster_30_far=open_default["roster_30_enrol_3"].get("far"),
                   open_set_roster_30_frr=open_default["roster_30_enrol_3"].get("frr"))
    base = results["baseline"]
    if "ms_per_face_median" in base:
        out.update(baseline_lfw_accuracy=base["accuracy_mean"],
                   baseline_ms_per_face_median=base["ms_per_face_median"],
                   speedup_vs_baseline=base["ms_per_face_median"] / ms if ms else None)
    else:
        out.update(speedup_vs_baseline=None, baseline_not_run=base.get("error")
                   or ("--no-baseline given" if base.get("skipped") else "no baseline result"))
    return out


def format_table(results: dict) -> str:
    """Human summary."""
    lines = [f"LFW: {results['pairs']} pairs in {results['folds']} folds, {results['images']} images "
             f"({results['detector_fallbacks']} without a detection)",
             f"{'embedder':<20}{'accuracy':>16}{'TAR@FAR=0.1%':>14}"]
    for mid, v in results["verification"].items():
        lines.append(f"{mid:<20}{v['accuracy_mean'] * 100:>9.2f} ± {v['accuracy_std'] * 100:.2f}"
                     f"{v['tar_at_far_1e-3'] * 100:>13.2f}%")
    base = results["baseline"]
    if "accuracy_mean" in base:
        lines.append(f"{'face_recognition':<20}{base['accuracy_mean'] * 100:>9.2f} ± {base['accuracy_std'] * 100:.2f}"
                     f"{base['tar_at_far_1e-3'] * 100:>13.2f}%   ({base['pairs']} pairs, "
                     f"{base['ms_per_face_median']:.1f} ms/face)")
    for mid, o in results["open_set"].items():
        for k in ("enrol_1", "enrol_3", "roster_30_enrol_1", "roster_30_enrol_3"):
            r = o[k]
            if "skipped" in r:
                lines.append(f"open set {mid} {k}: skipped ({r['skipped']})")
                continue
            lines.append(f"open set {mid} {k}: FAR {r['far'] * 100:.3f}% FRR {r['frr'] * 100:.2f}% "
                         f"(t={o['threshold']}, margin {o['margin']}); FAR<=0.1% at t={r['threshold_for_far_1e-3']:.3f} "
                         f"-> FRR {r['frr_at_that_threshold'] * 100:.2f}%  [{r['enrolled_identities']} enrolled, "
                         f"{r['genuine_probes']} genuine, {r['impostor_probes']} impostor probes]")
    for stage, v in results["latency_ms"].items():
        lines.append(f"latency {stage:<10} median {v['median_ms']:.2f} ms  p95 {v['p95_ms']:.2f} ms")
    m = results["matching_10k"]
    lines.append(f"matching 10k identities (D={m['dim']}): int8 {m['int8_all_ms_median']:.2f} ms, float16 {m['float16_all_ms_median']:.2f} ms, "
                 f"float32 {m['float32_all_ms_median']:.2f} ms, 300-person roster {m['int8_roster300_ms_median']:.3f} ms")
    keys = ("lfw_accuracy_int8", "lfw_accuracy_float", "tar_at_far_1e-3_int8", "open_set_far", "open_set_frr",
            "ms_per_face_median", "baseline_ms_per_face_median", "speedup_vs_baseline", "rss_mb")
    lines += [f"{k}: {results.get(k)}" for k in keys]
    if results.get("baseline_not_run"):
        lines.append(f"speedup_vs_baseline is null: baseline not run: {results['baseline_not_run']}")
    return "\n".join(lines)
