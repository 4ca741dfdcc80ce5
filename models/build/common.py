"""Shared build-venv helpers: calibration crops, TFLite conversion, reports.

Runs in the throw-away build venv (TensorFlow, dlib-bin), never on the device.
Calibration crops are chosen deterministically: every image under the calibration folder
(``*.jpg``, ``*.jpeg``, ``*.png``, recursively), sorted by relative path, shuffled with
``random.Random(seed)``, then taken in that order; an image is used if dlib's HOG detector
(upsample 1) finds a face (the largest is taken), until ``count`` crops are made. Each crop
is aligned with dlib's 5-point shape predictor and ``dlib.get_face_chip``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def parse_build_args(doc: str, source_flag: str, padding: float) -> argparse.Namespace:
    """The arguments every build script takes: its source file (``source_flag``, e.g.
    ``--dat``), the 5-point predictor, the calibration folder, the output folder, the
    artifact names and the calibration crop settings (``padding`` for get_face_chip)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name in (source_flag, "--predictor", "--calib", "--out"):
        p.add_argument(name, type=Path, required=True)
    p.add_argument("--f32", help="float32 artifact file name (omit to skip)")
    p.add_argument("--int8", help="int8 artifact file name (omit to skip)")
    p.add_argument("--count", type=int, default=250, help="calibration crops")
    p.add_argument("--seed", type=int, default=20240521)
    p.add_argument("--padding", type=float, default=padding, help="dlib.get_face_chip padding of the crops")
    return p.parse_args()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def calibration_images(calib_dir: Path, seed: int) -> list[Path]:
    files = sorted((p for p in calib_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES),
                   key=lambda p: p.relative_to(calib_dir).as_posix())
    if not files:
        raise SystemExit(f"calibration folder {calib_dir} has no .jpg/.png images; pass --calib DIR "
                         "(or set ROLLCALL_CALIB_DIR) pointing at face photos")
    random.Random(seed).shuffle(files)
    return files


def aligned_crops(calib_dir: Path, predictor: Path, size: int, padding: float,
                  count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """``count`` aligned RGB crops (uint8, [count, size, size, 3]) and their relative paths."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    shape_predictor = dlib.shape_predictor(str(predictor))
    crops, used = [], []
    for path in calibration_images(calib_dir, seed):
        img = dlib.load_rgb_image(str(path))
        faces = detector(img, 1)
        if not faces:
            continue
        face = max(faces, key=lambda r: r.width() * r.height())
        crops.append(dlib.get_face_chip(img, shape_predictor(img, face), size=size, padding=padding))
        used.append(path.relative_to(calib_dir).as_posix())
        if len(crops) == count:
            break
    if len(crops) < min(count, 20):
        raise SystemExit(f"only {len(crops)} faces found under {calib_dir}; need at least 20")
    return np.stack(crops), used


def convert(converter, calib: np.ndarray | None, preprocess=None) -> bytes:
    """Float32 TFLite (``calib is None``) or full-integer int8 with float32 input/output."""
    import tensorflow as tf

    if calib is not None:
        def representative():
            for crop in calib:
                x = crop[np.newaxis].astype(np.float32)
                yield [preprocess(x) if preprocess else x]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    return converter.convert()


def run_tflite(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run a TFLite model (float32 I/O) on each input; stacked outputs (build-time check)."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=model, num_threads=2)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for x in inputs:
        interpreter.set_tensor(inp["index"], x[np.newaxis].astype(np.float32))
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(results)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def stats(values: np.ndarray) -> dict:
    return {"min": float(np.min(values)), "mean": float(np.mean(values)),
            "p01": float(np.percentile(values, 1)), "max": float(np.max(values))}


def write_outputs(out_dir: Path, artifacts: dict[str, bytes], report: dict) -> None:
    """Write artifacts atomically (temp + rename) and print the JSON report on stdout."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, data in artifacts.items():
        tmp = out_dir / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, out_dir / name)
    print(json.dumps(report, indent=1))
