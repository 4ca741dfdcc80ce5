"""`rollcall bench door`: track-level open-set identification, the way a door decides.

Genuine and impostor *tracks* (several camera-like frames of one or two photos of a
person, see :mod:`firmware.bench.door_data`) go through the device's evidence rule
(:mod:`firmware.domain.evidence`) against galleries of 100 and 1,000 identities, enrolled
from 3 photos or from 1. Printed: FRR at a measured FAR of 1e-3 and 1e-4 per impostor
track (DET), the same at the *calibrated* thresholds the device would use for each
security level (with the FAR actually measured there), frames needed to decide, today's
mean-embedding rule for comparison, learning at the door, and optionally score fusion
with a second embedder (``--fuse-with facenet_int8``).

``--flip both`` measures test-time flip averaging (the aligned chip and its mirror image
embedded, the two raw outputs summed, then normalised; at enrolment and on every probe
frame) against plain embeddings on the very same frames and trials, and times one
embedding each way; ``--flip on|off`` runs one of them (default: as the device does, the
manifest's ``flip_average``). The variant the device does not use gets a calibration
fitted on split A in memory, so its calibrated rows compare like with like.

``--calibrate`` refits ``models/calibration.toml`` for the embedder on split A of the data
(see :mod:`firmware.bench.door_eval` for the splits). ``--clips DIR`` also runs the real
clips (``blink/``, ``spoof/replay-phone/real.mov``, ``entry-walk/``) through the real
device loop with the person enrolled from frames far from the probed ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np

from firmware.bench import door_eval as ev
from firmware.bench.door_data import PhotoSet, default_flip, list_photos, load_photoset
from firmware.config import Config
from firmware.errors import ConfigError
from firmware.domain.calibration import Calibration
from firmware.domain.evidence import EvidenceRule, learnable
from firmware.runtime import tuning

logger = logging.getLogger(__name__)

FARS = (1e-3, 1e-4)
#: FARs per impostor track at which each configuration's DET FRR is also reported
#: (``det`` in the JSON): the points at and below 1e-3 rest on a few distinct impostor
#: tracks, so differences there are best read together with the looser points.
DET_POINTS = (1e-2, 5e-3, 2e-3, 1e-3, 5e-4, 1e-4)
DISTRACTORS = 900


def register(parser: argparse.ArgumentParser, command: str) -> None:
    shared = Path(os.environ.get("ROLLCALL_SHARED_DATA", Path.cwd().parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=shared / "lfw-dev",
                        help="folder laid out as images/<Name>/<Name>_NNNN.jpg (default: ../shared/data/lfw-dev)")
    parser.add_argument("--models-dir", type=Path, default=None, help="built models (default: var/models)")
    parser.add_argument("--embedder", default="dlib_resnet_int8", help="embedder model id")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--plot", type=Path, help="write the DET curves as a PNG here (needs matplotlib: pip install .[bench])")
    parser.add_argument("--rotations", type=int, default=5, help="galleries drawn per size (default 5)")
    parser.add_argument("--photos-per-track", type=int, default=2, help="photos whose frames form one track (default 2)")
    parser.add_argument("--calibrate", type=Path, nargs="?", const=Path("models/calibration.toml"),
                        help="refit the calibration on split A and write it (default models/calibration.toml)")
    parser.add_argument("--fuse-with", default=None, help="second embedder id to measure score fusion with")
    parser.add_argument("--clips", type=Path, nargs="?", const=shared,
                        help="also run the real clips of this data folder through the device loop")
    parser.add_argument("--unknown-frames", type=int, default=None,
                        help="what-if: good frames before unknown (default recognition.embeddings_per_track)")
    parser.add_argument("--cache-dir", type=Path, default=Path("var/cache/door"), help="embedding cache folder")
    parser.add_argument("--flip", choices=("device", "on", "off", "both"), default="device",
                        help="test-time flip averaging (chip + mirrored chip) at enrolment and at the door: as the "
                             "device does (the manifest's flip_average), on, off, or both side by side on the same "
                             "trials, with the embed time of each (photo tracks only; --clips run as the device does)")
    parser.set_defaults(func=run)


def _config(args: argparse.Namespace, embedder: str) -> Config:
    cfg = Config()
    cfg.paths.models_dir = args.models_dir or Path(os.environ.get("ROLLCALL_MODELS_DIR", "var/models"))
    cfg.recognition.embedder = embedder
    if getattr(args, "unknown_frames", None):
        cfg.recognition.embeddings_per_track = args.unknown_frames
    return cfg


def base_rule(cfg: Config) -> EvidenceRule:
    """The device's rule with a placeholder threshold (the bench sweeps it)."""
    rule = tuning.evidence_rule(cfg.model_copy(update={}), None)
    return EvidenceRule(threshold=1.0, margin=rule.margin, accept_weight=rule.accept_weight,
                        unknown_frames=rule.unknown_frames, good_quality=rule.good_quality, max_frames=rule.max_frames)


class Setup:
    """People, tracks and score tables of the evaluation split for one photoset."""

    def __init__(self, ps: PhotoSet, frames: ev.Frames, photos_per_track: int) -> None:
        self.frames = frames
        self.enrolled = {k: {p.name: p for p in ev.people(ps, frames, ev.SPLIT_EVALUATION, k, photos_per_track, True)}
                         for k in (1, 3)}
        names = sorted(self.enrolled[3])
        self.enrolled[1] = {n: self.enrolled[1][n] for n in names}
        self.distractors = {k: [p for p in ev.people(ps, frames, ev.SPLIT_CALIBRATION, k, photos_per_track, False)]
                            for k in (1, 3)}
        self.impostors = ev.impostor_tracks(ps, frames, ev.SPLIT_EVALUATION, photos_per_track)
        rows = [t for p in self.enrolled[3].values() for t in p.tracks] + [t for ts in self.impostors.values() for t in ts]
        self.rows = np.unique(np.concatenate(rows))
        self.tables = {k: ev.ScoreTable(frames, list(self.enrolled[k].values()) + self.distractors[k], self.rows)
                       for k in (1, 3)}

    def galleries(self, size: int, rotations: int) -> list[list[str]]:
        """``rotations`` galleries: 100 evaluation people (+ distractors up to ``size``);
        at least one evaluation person always stays out (an impostor) on small data."""
        names = sorted(self.enrolled[3])
        out = []
        for r in range(rotations):
            chosen = sorted(random.Random(r).sample(names, min(100, max(1, len(names) - 1))))
            extra = [p.name for p in self.distractors[3]]
            extra = random.Random(1000 + r).sample(extra, min(len(extra), max(0, size - len(chosen))))
            out.append(chosen + extra)
        return out


def trials(setup: Setup, table: ev.ScoreTable, enrol: int, size: int, rotations: int, rule: EvidenceRule) -> ev.Trials:
    out = ev.Trials()
    for gallery in setup.galleries(size, rotations):
        genuine = {n: setup.enrolled[enrol][n].tracks for n in gallery if n in setup.enrolled[enrol]}
        ev.run_trials(table, setup.frames, gallery, genuine, setup.impostors, rule, out)
        out.people = len(gallery)
    out.templates_per_person = float(enrol)
    return out


def summarise(t: ev.Trials, cal: Calibration | None, size: int, enrol: int) -> dict:
    """DET points and calibrated operating points of one configuration."""
    out: dict = {"genuine_tracks": len(t.genuine), "impostor_tracks": len(t.impostor),
                 "det": {f"{far:g}": round(t.frr(t.threshold_at(far)), 4) for far in DET_POINTS}}
    for far in FARS:
        th = t.threshold_at(far)
        out[f"far_{far:g}"] = {"threshold": round(th, 4), "frr": round(t.frr(th), 4), "far_measured": t.far(th)}
    if cal is not None:
        for level, far in tuning.SECURITY_LEVELS.items():
            th = cal.threshold(far, size, enrol)
            out[f"level_{level}"] = {"target_far": far, "threshold": round(th, 4), "frr": round(t.frr(th), 4),
                                     "far_measured": round(t.far(th), 6),
                                     "false_accepts": int(np.sum(np.asarray(t.impostor) >= th)),
                                     "median_frames": t.median_frames(th)}
    return out


def door_learning(setup: Setup, cal: Calibration, rule: EvidenceRule) -> dict:
    """1-photo enrolment, gallery of 100: is a 2nd visit recognised more often after the
    1st visit's best frame was kept as a template (only after a learnable accept)?"""
    frames, k = setup.frames, 1
    gallery = setup.galleries(100, 1)[0]
    everyone = {**{p.name: p for p in setup.distractors[k]}, **setup.enrolled[k]}
    base = {n: everyone[n] for n in gallery}
    learned: dict[str, ev.Person] = {}
    th = cal.threshold(tuning.SECURITY_LEVELS["normal"], len(gallery), 1.0)
    table = ev.ScoreTable(frames, list(base.values()), setup.rows)
    cols = np.asarray([table.col[n] for n in gallery])
    visited = 0
    for name, person in base.items():
        if len(person.tracks) < 2:
            continue
        visited += 1
        rows = person.tracks[0]
        st = ev.steps(table.get(rows, cols), frames.quality[rows], EvidenceRule(**{**_fields(rule), "threshold": th}))
        hits = np.flatnonzero(st.open & st.margin_ok & (st.score >= th))
        if not len(hits) or gallery[st.best[hits[0]]] != name:
            continue
        k_step = int(hits[0])
        top = np.sort(np.mean(table.get(rows[:k_step + 1], cols), axis=0))[::-1]
        if not learnable(float(st.score[k_step]), float(top[1]), EvidenceRule(**{**_fields(rule), "threshold": th})):
            continue
        best_frame = int(rows[:k_step + 1][np.argmax(frames.quality[rows[:k_step + 1]])])
        learned[name] = ev.Person(name, person.templates + [best_frame], person.tracks)
    after = [learned.get(n, p) for n, p in base.items()]
    th_after = cal.threshold(tuning.SECURITY_LEVELS["normal"], len(gallery),
                             sum(len(p.templates) for p in after) / len(after))
    result = {"people_with_two_visits": visited, "learned": len(learned)}
    for label, persons, threshold in (("without", list(base.values()), th), ("with", after, th_after)):
        tbl = ev.ScoreTable(frames, persons, setup.rows)
        t = ev.Trials()
        second = {p.name: p.tracks[1:2] for p in persons if len(p.tracks) >= 2}
        ev.run_trials(tbl, frames, gallery, second, setup.impostors, rule, t)
        result[label] = {"threshold": round(threshold, 4), "frr_second_visit": round(t.frr(threshold), 4),
                         "far_measured": round(t.far(threshold), 6), "impostor_tracks": len(t.impostor),
                         "frr_at_far_1e-3": round(t.frr(t.threshold_at(1e-3)), 4)}
    return result


def _fields(rule: EvidenceRule) -> dict:
    return {f: getattr(rule, f) for f in rule.__slots__}


def write_calibration(path: Path, model_id: str, cal: Calibration, rule: EvidenceRule, data: Path) -> None:
    """Replace ``model_id``'s section of the calibration TOML file (others kept)."""
    import tomllib

    existing = tomllib.loads(path.read_text()) if path.is_file() else {}
    existing.pop(model_id, None)
    lines = ["# Impostor-track calibration per embedder: written by `rollcall bench door --calibrate`",
             "# (see firmware/domain/calibration.py). Per curve: log10 P(pair peak >= score) for one",
             "# impostor track against one enrolled person with `templates` templates.", ""]
    sections = {**{k: v for k, v in existing.items()}, model_id: None}
    for name in sorted(sections):
        if name == model_id:
            lines += [f"[{name}]", f'fitted_on = "{data.name}, split A (sha1(name)[0] % 2 == 0), '
                      f'{time.strftime("%Y-%m-%d")}"',
                      f"rule = {{accept_weight = {rule.accept_weight}, unknown_frames = {rule.unknown_frames}, "
                      f"good_quality = {rule.good_quality}, max_frames = {rule.max_frames}}}", ""]
            curves = cal.curves
        else:
            lines += [f"[{name}]", f'fitted_on = "{sections[name].get("fitted_on", "")}"', ""]
            curves = tuning.parse_calibration(path.read_text(), name).curves
        for c in curves:
            lines += [f"[[{name}.curves]]", f"templates = {c.templates}", f"tail_slope = {c.tail_slope}",
                      f"scores = {list(c.scores)}", f"log10_survival = {list(c.log10_survival)}", ""]
    path.write_text("\n".join(lines))


def evaluate(args: argparse.Namespace, flip: bool | None = None, calibrate: Path | None = None) -> dict:
    """Every configuration with (``flip``) or without flip-averaged embeddings (None: as
    the device does); ``calibrate``: also refit and write the calibration there."""
    cfg = _config(args, args.embedder)
    started = time.monotonic()
    device_flip = default_flip(cfg)
    flip = device_flip if flip is None else flip
    ps = load_photoset(args.data, cfg, args.cache_dir, flip)
    frames = ev.Frames.of(ps)
    rule = base_rule(cfg)
    cal = tuning.calibration(args.embedder) if flip == device_flip else None
    calibration_source = "models/calibration.toml" if cal is not None else None
    if calibrate:
        fitted = ev.calibrate(ps, frames, rule, args.photos_per_track)
        cal = Calibration(args.embedder, fitted.curves)
        write_calibration(calibrate, args.embedder, cal, rule, args.data)
        calibration_source = str(calibrate)
        logger.info("calibration written to %s", calibrate)
    elif flip != device_flip:  # the stored calibration is for the device's embeddings: fit one for these
        try:
            cal = Calibration(args.embedder, ev.calibrate(ps, frames, rule, args.photos_per_track).curves)
            calibration_source = "fitted in memory on split A (flip " + ("on" if flip else "off") + ")"
        except ConfigError as exc:
            logger.info("no calibration for flip %s: %s", "on" if flip else "off", exc)
    setup = Setup(ps, frames, args.photos_per_track)
    results: dict = {"embedder": args.embedder, "data": str(args.data), "photos_per_track": args.photos_per_track,
                     "rotations": args.rotations, "rule": _fields(rule), "flip_average": flip,
                     "calibration": calibration_source, "configs": {}}
    all_trials = {}
    for enrol in (3, 1):
        for size in (100, 1000):
            t = trials(setup, setup.tables[enrol], enrol, size, args.rotations, rule)
            all_trials[(enrol, size)] = t
            results["configs"][f"g{size}_{enrol}photo"] = summarise(t, cal, size, enrol)
    for size in (100, 1000):
        base = ev.Trials()
        for gallery in setup.galleries(size, args.rotations):
            genuine = {n: setup.enrolled[3][n].tracks for n in gallery if n in setup.enrolled[3]}
            b = ev.baseline_mean_embedding(frames, {**setup.enrolled[3], **{p.name: p for p in setup.distractors[3]}},
                                           gallery, genuine, setup.impostors)
            base.genuine += b.genuine
            base.impostor += b.impostor
        results[f"baseline_mean_embedding_g{size}"] = {f"frr_far_{f:g}": round(base.frr(base.threshold_at(f)), 4)
                                                       for f in FARS}
    if cal is not None:
        results["door_learning"] = door_learning(setup, cal, rule)
    if args.fuse_with:
        results["fusion"] = fusion(args, setup, ps, rule)
    c = results["configs"]
    g100 = all_trials[(3, 100)]
    normal = cal.threshold(tuning.SECURITY_LEVELS["normal"], 100, 3) if cal else g100.threshold_at(1e-4)
    results.update({
        "frr_g100_far_1e-3": c["g100_3photo"]["far_0.001"]["frr"],
        "frr_g100_far_1e-4": c["g100_3photo"]["far_0.0001"]["frr"],
        "frr_g1000_far_1e-3": c["g1000_3photo"]["far_0.001"]["frr"],
        "frr_g1000_far_1e-4": c["g1000_3photo"]["far_0.0001"]["frr"],
        "frr_1photo_g100_far_1e-3": c["g100_1photo"]["far_0.001"]["frr"],
        "frr_1photo_g100_far_1e-4": c["g100_1photo"]["far_0.0001"]["frr"],
        "frr_1photo_g1000_far_1e-3": c["g1000_1photo"]["far_0.001"]["frr"],
        "frr_1photo_g1000_far_1e-4": c["g1000_1photo"]["far_0.0001"]["frr"],
        "median_frames_to_decision": g100.median_frames(normal),
        "impostor_tracks": len(g100.impostor), "genuine_tracks": len(g100.genuine),
        "unique_impostor_tracks": sum(len(v) for v in setup.impostors.values()),
        "unique_genuine_tracks": sum(len(p.tracks) for p in setup.enrolled[3].values()),
        "seconds": round(time.monotonic() - started, 1),
    })
    if args.plot:
        plot(all_trials, args.plot, args.embedder)
    return results


FLIP_KEYS = ("frr_g100_far_1e-3", "frr_g100_far_1e-4", "frr_g1000_far_1e-3", "frr_g1000_far_1e-4",
             "frr_1photo_g100_far_1e-3", "frr_1photo_g100_far_1e-4", "frr_1photo_g1000_far_1e-3",
             "frr_1photo_g1000_far_1e-4", "median_frames_to_decision")


def embed_cost(cfg: Config, data: Path, chips: int = 40, repeats: int = 5) -> dict:
    """Median milliseconds of one :meth:`Embedder.embed` with flip averaging off and on,
    on aligned chips of the first photos of ``data`` with a face (the device's threads)."""
    import cv2

    from firmware.domain.types import Frame
    from firmware.inference.align import align_face
    from firmware.runtime.loop import FrameAnalyser

    analyser = FrameAnalyser(cfg, cfg.paths.models_dir)
    try:
        embedder = analyser.embedder
        found = []
        for _, photo in list_photos(data):
            if len(found) >= chips:
                break
            image = cv2.imread(photo, cv2.IMREAD_COLOR)
            frame = Frame(image, 0.0, 0.0, 0, image) if image is not None else None
            dets = analyser.detect(frame) if frame is not None else []
            measured = analyser.measure(frame, dets[0]) if dets else None
            if measured is not None:
                found.append(align_face(image, measured[0], embedder.alignment))
        if not found:
            return {}
        times: dict[bool, list[float]] = {False: [], True: []}
        saved = embedder.flip_average
        for _ in range(repeats):  # interleaved, so load from other work hits both alike
            for flip in (False, True):
                embedder.flip_average = flip
                for chip in found:
                    t0 = time.perf_counter()
                    embedder.embed(chip)
                    times[flip].append((time.perf_counter() - t0) * 1000.0)
        embedder.flip_average = saved
        return {"off": round(float(np.median(times[False])), 2), "on": round(float(np.median(times[True])), 2),
                "chips": len(found), "repeats": repeats}
    finally:
        analyser.close()


def flip_table(comparison: dict) -> list[str]:
    """Lines comparing flip averaging off vs on (FRR on the DET curve, same trials)."""
    off, on = comparison["off"], comparison["on"]
    lines = ["flip averaging (same frames and trials), FRR on the DET curve:",
             f"{'':<28} {'off':>7} {'on':>7} {'on-off':>8}"]
    for key in FLIP_KEYS:
        a, b = off.get(key), on.get(key)
        if a is None or b is None:
            continue
        lines.append(f"{key:<28} {a:>7.3f} {b:>7.3f} {b - a:>+8.3f}" if key.startswith("frr")
                     else f"{key:<28} {a:>7} {b:>7}")
    cost = comparison.get("embed_ms")
    if cost:
        lines.append(f"{'embed ms per face (median)':<28} {cost['off']:>7.2f} {cost['on']:>7.2f}")
    points = [f"{far:g}" for far in DET_POINTS]
    lines.append("FRR off -> on along the DET curve, FAR " + " / ".join(points) + ":")
    for key, c_off in off.get("configs", {}).items():
        c_on = on.get("configs", {}).get(key)
        if c_on and "det" in c_off and "det" in c_on:
            lines.append(f"  {key:<14} " + "  ".join(f"{c_off['det'][p]:.3f}->{c_on['det'][p]:.3f}" for p in points))
    return lines


def fusion(args: argparse.Namespace, setup: Setup, ps: PhotoSet, rule: EvidenceRule) -> dict:
    """Fused dlib + second-embedder scores vs the first embedder alone (DET FRR)."""
    other = load_photoset(args.data, _config(args, args.fuse_with), args.cache_dir)
    frames2 = ev.Frames.of(other)
    frames2.quality = setup.frames.quality  # the same frames: weights from the device's quality
    setup2 = Setup(other, frames2, args.photos_per_track)
    out = {"with": args.fuse_with}
    for enrol in (3, 1):
        a, b = setup.tables[enrol], setup2.tables[enrol]
        stats = [_impostor_stats(t, setup.enrolled[enrol]) for t in (a, b)]
        fused = ev.zfuse(a, b, stats[0], stats[1])
        for size in (100, 1000):
            for label, table in ((args.embedder, a), (args.fuse_with, b), ("fused", fused)):
                t = trials(setup, table, enrol, size, args.rotations, rule)
                key = f"g{size}_{enrol}photo"
                out.setdefault(key, {})[label] = {f"frr_far_{f:g}": round(t.frr(t.threshold_at(f)), 4) for f in FARS}
    return out


def _impostor_stats(table: ev.ScoreTable, genuine: dict) -> tuple[float, float]:
    """(mean, std) of the table's scores, dominated by impostor pairs (few genuine)."""
    s = table.scores.astype(np.float64)
    return float(s.mean()), float(s.std())


def plot(all_trials: dict, path: Path, embedder: str) -> None:
    """DET curves (FRR vs FAR per impostor track, log axes) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for (enrol, size), t in sorted(all_trials.items()):
        far, frr = t.det()
        keep = far > 0
        ax.plot(far[keep], np.maximum(frr[keep], 1e-4), label=f"{size} enrolled, {enrol} photo(s)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false accepts per impostor track")
    ax.set_ylabel("false rejects per genuine track")
    ax.set_title(f"rollcall bench door: {embedder}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def table(results: dict) -> str:
    flip = {True: ", flip averaging on", False: ", flip averaging off"}.get(results.get("flip_average"), "")
    lines = [f"rollcall bench door: {results['embedder']}{flip} on {results['data']} "
             f"({results['genuine_tracks']} genuine / {results['impostor_tracks']} impostor track trials at g100)",
             f"{'config':<14} {'FRR@1e-3':>9} {'FRR@1e-4':>9}  calibrated low / normal / high: FRR (false accepts)"]
    for key, c in results["configs"].items():
        cal = "  ".join(f"{c[f'level_{lv}']['frr']:.3f} ({c[f'level_{lv}']['false_accepts']})"
                        for lv in ("low", "normal", "high") if f"level_{lv}" in c)
        lines.append(f"{key:<14} {c['far_0.001']['frr']:>9.3f} {c['far_0.0001']['frr']:>9.3f}  {cal}")
    for size in (100, 1000):
        b = results.get(f"baseline_mean_embedding_g{size}")
        if b:
            lines.append(f"baseline (mean embedding, 3 photos, g{size}): FRR@1e-3 {b['frr_far_0.001']:.3f}, "
                         f"FRR@1e-4 {b['frr_far_0.0001']:.3f}")
    lines.append(f"median frames to decision (g100, normal): {results['median_frames_to_decision']}")
    if "door_learning" in results:
        d = results["door_learning"]
        lines.append(f"learning at the door (1 photo, g100, normal): 2nd-visit FRR {d['without']['frr_second_visit']:.3f}"
                     f" -> {d['with']['frr_second_visit']:.3f} ({d['learned']} of {d['people_with_two_visits']} learned)")
    if "fusion" in results:
        for key, v in results["fusion"].items():
            if key != "with":
                lines.append(f"fusion {key}: " + ", ".join(f"{k} {x['frr_far_0.001']:.3f}" for k, x in v.items())
                             + " (FRR@1e-3)")
    if "flip_comparison" in results:
        lines += flip_table(results["flip_comparison"])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    cfg = _config(args, args.embedder)
    device_flip = default_flip(cfg)
    chosen = {"device": device_flip, "on": True, "off": False, "both": device_flip}[args.flip]
    if args.calibrate and chosen != device_flip:
        raise ConfigError(f"--calibrate writes the calibration the device uses, and the device embeds "
                          f"{'with' if device_flip else 'without'} flip averaging (manifest flip_average): "
                          f"drop --flip {args.flip} or set flip_average in models/manifest.toml first")
    other = evaluate(args, not device_flip) if args.flip == "both" else None
    results = evaluate(args, chosen, args.calibrate)
    if other is not None:
        by_flip = {results["flip_average"]: results, other["flip_average"]: other}
        results["flip_comparison"] = {("on" if f else "off"): {k: r.get(k) for k in (*FLIP_KEYS, "seconds")}
                                      | {"configs": r["configs"], "calibration": r["calibration"]}
                                      for f, r in by_flip.items()}
        results["flip_comparison"]["embed_ms"] = embed_cost(cfg, args.data)
    if args.clips:
        from firmware.bench.door_clips import run_clips
        results["clips"] = run_clips(args.clips, _config(args, args.embedder).paths.models_dir)
    print(table(results))
    if "clips" in results:
        for clip in results["clips"]:
            print(f"clip {clip['clip']}: {clip['summary']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))
    return 0
