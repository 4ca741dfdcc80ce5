"""Enrolment benchmark: how well the duplicate-identity check works, and photo enrolment time.

Every identity of ``--data`` (a folder of ``<Name>/*.jpg``, or ``images/<Name>/*.jpg`` like
``../shared/data/lfw-dev``; default ``../shared/data/faces-small/lfw10``) with more than
``--enrol`` usable photos is enrolled from its first ``--enrol`` photos through the real
:class:`~firmware.runtime.enrol.Enroller` pipeline. Then each of its OTHER photos is
offered as a NEW person, twice:

- against the full gallery: is it refused as a duplicate naming the right person
  (``caught``), naming someone else (``wrong_person``), or let through (``missed``)?
- against the gallery WITHOUT that identity (a genuinely new person): is it refused as a
  duplicate of anyone (``false_duplicate``: the admin would be asked to confirm)?

The accept threshold is the one the door uses (``firmware.runtime.tuning.match_threshold``).
Also prints the median milliseconds to check one photo (decode, detect, mesh, align, embed).
Run: ``rollcall bench enrol [--data DIR] [--enrol N] [--embedder ID] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from firmware.config import load_config
from firmware.domain.enrolment import other_identity
from firmware.runtime.enrol import Enroller
from firmware.runtime.tuning import match_threshold
from firmware.store import Store

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces-small" / "lfw10"


def _identities(root: Path) -> dict[str, list[Path]]:
    base = root / "images" if (root / "images").is_dir() else root
    return {d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            for d in sorted(base.iterdir()) if d.is_dir()}


def embed_all(enroller: Enroller, people: dict[str, list[Path]]) -> tuple[dict[str, list[np.ndarray]], list[float]]:
    """{name: embeddings of its usable photos}, and the milliseconds each photo took."""
    out: dict[str, list[np.ndarray]] = {}
    times = []
    for name, photos in people.items():
        for photo in photos:
            start = time.perf_counter()
            result = enroller.check("bench-probe", [photo.read_bytes()])[0]
            times.append((time.perf_counter() - start) * 1000.0)
            if result.embedding is not None:
                out.setdefault(name, []).append(result.embedding)
    return out, times


def duplicate_check(vectors: dict[str, list[np.ndarray]], enrol: int, threshold: float) -> dict:
    """Counts described in the module docstring."""
    people = {n: v for n, v in vectors.items() if len(v) > enrol}
    ids = [n for n, v in people.items() for _ in v[:enrol]]
    matrix = np.stack([e for v in people.values() for e in v[:enrol]]) if people else np.zeros((0, 1))
    counts = {"caught": 0, "wrong_person": 0, "missed": 0, "false_duplicate": 0}
    for name, embs in people.items():
        others = [i for i, n in enumerate(ids) if n != name]
        for probe in embs[enrol:]:
            hit = other_identity(probe, ids, matrix, "new-person", threshold)
            counts["missed" if hit is None else "caught" if hit[0] == name else "wrong_person"] += 1
            if other_identity(probe, [ids[i] for i in others], matrix[others], "new-person", threshold):
                counts["false_duplicate"] += 1
    probes = sum(counts[k] for k in ("caught", "wrong_person", "missed"))
    return {"identities": len(people), "probes": probes, **counts,
            "caught_pct": round(100.0 * counts["caught"] / max(probes, 1), 1),
            "false_duplicate_pct": round(100.0 * counts["false_duplicate"] / max(probes, 1), 2)}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of <Name>/*.jpg (default lfw10)")
    parser.add_argument("--enrol", type=int, default=3, help="photos enrolled per identity")
    parser.add_argument("--embedder", help="embedder model id (default: recognition.embedder of the config)")
    parser.add_argument("--config", help="config file (models dir, thresholds)")
    parser.add_argument("--models-dir", type=Path, help="built models (default: paths.models_dir of the config)")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")


def register(parser: argparse.ArgumentParser, command: str) -> None:
    """`rollcall bench enrol`: the CLI entry (see firmware/cli/__init__.py)."""
    _add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.data.is_dir():
        print(f"no photos at {args.data} (give --data DIR)")
        return 2
    config = load_config(args.config)
    if args.embedder:
        config.recognition.embedder = args.embedder
    with tempfile.TemporaryDirectory(prefix="rc-bench-enrol-") as tmp, Store(Path(tmp) / "data") as store:
        enroller = Enroller(config, store, models_dir=args.models_dir)
        try:
            vectors, times = embed_all(enroller, _identities(args.data))
        finally:
            enroller.close()
    threshold = match_threshold(config)
    result = {"embedder": config.recognition.embedder, "threshold": round(threshold, 4), "enrol": args.enrol,
              **duplicate_check(vectors, args.enrol, threshold),
              "photo_ms_median": round(statistics.median(times), 1) if times else None}
    for key, value in result.items():
        print(f"{key:>20}  {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0
