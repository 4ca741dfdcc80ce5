"""Build dlib's face ResNet as float32 and full-int8 TFLite (run inside the build venv).

    python build_dlib.py --dat ..._resnet_model_v1.dat --predictor shape_predictor_5_face_landmarks.dat \
        --calib DIR --out DIR --f32 dlib_resnet_f32.tflite --int8 dlib_resnet_int8.tflite

Reads the weights with our own :mod:`dlib_reader`, rebuilds the net in TensorFlow
(:mod:`dlib_net`), checks it against dlib's own ``compute_face_descriptor`` on held-out
aligned real faces, converts, and prints a JSON report (diffs, cosines, calibration set).
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np

from common import aligned_crops, convert, cosine, log, parse_build_args, run_tflite, stats, write_outputs
from dlib_reader import read_network

SIZE, HELD_OUT = 150, 20


def parse_args() -> argparse.Namespace:
    return parse_build_args(__doc__, "--dat", padding=0.25)


def main() -> None:
    args = parse_args()
    import dlib
    import tensorflow as tf
    from dlib_net import make_forward

    layers = read_network(args.dat.read_bytes())
    forward = tf.function(make_forward(layers), input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
    crops, used = aligned_crops(args.calib, args.predictor, SIZE, args.padding, args.count + HELD_OUT, args.seed)
    calib, held = crops[:-HELD_OUT], crops[-HELD_OUT:]
    log(f"dlib: {len(calib)} calibration crops, {len(held)} held-out check crops")

    reference = dlib.face_recognition_model_v1(str(args.dat))
    ref = np.stack([np.asarray(reference.compute_face_descriptor(c, 0), dtype=np.float32) for c in held])
    ours = np.stack([forward(tf.constant(c[np.newaxis].astype(np.float32))).numpy()[0] for c in held])
    report = {"model": "dlib_resnet", "tf_vs_dlib_max_abs_diff": float(np.abs(ours - ref).max()),
              "calibration": {"count": len(calib), "held_out": len(held), "size": SIZE, "padding": args.padding,
                              "seed": args.seed, "files_sha256": _list_hash(used[:len(calib)]),
                              "files": used[:len(calib)]}}
    artifacts = {}
    concrete = forward.get_concrete_function()
    if args.f32:
        model = convert(tf.lite.TFLiteConverter.from_concrete_functions([concrete], forward), None)
        out = run_tflite(model, held.astype(np.float32))
        report["f32_vs_dlib_max_abs_diff"] = float(np.abs(out - ref).max())
        artifacts[args.f32] = model
    if args.int8:
        model = convert(tf.lite.TFLiteConverter.from_concrete_functions([concrete], forward), calib)
        out = run_tflite(model, held.astype(np.float32))
        report["int8_vs_dlib_cosine"] = stats(cosine(out, ref))
        report["int8_vs_dlib_max_abs_diff"] = float(np.abs(out - ref).max())
        artifacts[args.int8] = model
    write_outputs(args.out, artifacts, report)


def _list_hash(files: list[str]) -> str:
    return hashlib.sha256("\n".join(files).encode()).hexdigest()


if __name__ == "__main__":
    main()
