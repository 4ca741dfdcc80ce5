"""Embed a fixed set of real faces, or compare two such runs (host vs the arm64 root).

    python tests/arm64/embed_faces.py --models DIR --data SHARED --out FILE.json
    python tests/arm64/embed_faces.py --compare HOST.json ARM.json --min-cosine 0.999

The same images go through the whole recognition pipeline (BlazeFace, Face Mesh,
alignment, the default int8 embedder) on each machine; the comparison prints per-image
cosine similarity and the detected box difference, and fails below ``--min-cosine``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

IMAGES_PER_PERSON = 2
PEOPLE = 4


def pick_images(data: Path) -> list[Path]:
    """A deterministic handful of lfw10 photos (sorted people, first photos)."""
    people = sorted(p for p in (data / "faces-small" / "lfw10").iterdir() if p.is_dir())[:PEOPLE]
    return [img for person in people for img in sorted(person.glob("*.jpg"))[:IMAGES_PER_PERSON]]


def embed(models: Path, data: Path, embedder: str) -> dict:
    import cv2

    from firmware.inference.pipeline import FacePipeline

    pipeline = FacePipeline(models, embedder_id=embedder, min_face_px=40)
    out = {}
    for path in pick_images(data):
        faces = pipeline.analyse(cv2.imread(str(path)))
        if len(faces) != 1:
            raise SystemExit(f"{path.name}: expected one face, found {len(faces)}")
        face = faces[0]
        out[path.name] = {"embedding": face.embedding.astype(float).tolist(),
                          "box": face.detection.box.astype(float).tolist()}
    return out


def compare(host: dict, arm: dict, min_cosine: float) -> int:
    worst = 1.0
    for name, ref in sorted(host.items()):
        if name not in arm:
            print(f"{name}: missing on arm64")
            return 1
        a, b = np.asarray(ref["embedding"]), np.asarray(arm[name]["embedding"])
        cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        box = float(np.abs(np.asarray(ref["box"]) - np.asarray(arm[name]["box"])).max())
        worst = min(worst, cos)
        print(f"{name:32s} cosine {cos:.6f}  max box diff {box:.3f} px")
    print(f"worst cosine {worst:.6f} over {len(host)} faces (required >= {min_cosine})")
    return 0 if worst >= min_cosine else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=Path)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--embedder", default="dlib_resnet_int8")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("HOST", "ARM"))
    parser.add_argument("--min-cosine", type=float, default=0.999)
    args = parser.parse_args()
    if args.compare:
        host, arm = (json.loads(p.read_text()) for p in args.compare)
        return compare(host, arm, args.min_cosine)
    args.out.write_text(json.dumps(embed(args.models, args.data, args.embedder)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
