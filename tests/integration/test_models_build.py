"""The built model artifacts, run with the device's own runtime (ai-edge-litert).

Never rebuilds (CI builds once via install.sh); skips when the models are not built
(`$ROLLCALL_MODELS_DIR`, default `<repo>/var/models`) or ../shared/data is missing.
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from firmware.errors import ModelHashMismatch
from firmware.inference.runtime import TFLiteModel
from models.registry import artifact_status, load_manifest, read_lock, verify_models

pytestmark = pytest.mark.integration

SPECS = load_manifest()
PAIRS = [("dlib_resnet_int8", "dlib_resnet_f32"), ("facenet_int8", "facenet_f32")]


def _need(built_models, *ids):
    missing = [i for i in ids if artifact_status(SPECS[i], built_models, {})[0] == "missing"]
    if missing:
        pytest.skip(f"not built in {built_models}: {', '.join(missing)} (rollcall models build --out {built_models})")


@pytest.fixture(scope="module")
def faces(shared_data):
    """A few real LFW faces (deep-funneled, so roughly aligned), as 250x250 RGB uint8."""
    root = shared_data / "lfw-dev" / "images"
    paths = sorted(root.glob("*/*_0001.jpg"))[:200:25]
    if len(paths) < 4:
        pytest.skip(f"LFW images not found under {root}")
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]


def _chip(face: np.ndarray, spec) -> np.ndarray:
    """Centre crop of a funneled LFW face scaled to the model input, normalised per manifest."""
    crop = face[45:205, 45:205] if spec.align_size == 160 else face[50:200, 50:200]
    chip = cv2.resize(crop, tuple(spec.input_size[::-1]), interpolation=cv2.INTER_AREA).astype(np.float32)
    return (chip - np.float32(spec.input_mean)) / np.float32(spec.input_std)


@pytest.mark.parametrize("model_id", sorted(SPECS))
def test_artifact_matches_manifest_and_loads(built_models, model_id):
    _need(built_models, model_id)
    spec = SPECS[model_id]
    verify_models(built_models, [model_id])
    with TFLiteModel(built_models / spec.artifact, num_threads=2) as model:
        assert model.input_shape == (1, *spec.input_size, 3)
        assert model.input_dtype == np.dtype(spec.io_dtype)
        outputs = model.run(np.zeros(model.input_shape, np.float32))
    assert outputs[0].dtype == np.float32
    assert outputs[0].shape[-1] == spec.output_dim
    assert all(np.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("model_id", ["dlib_resnet_int8", "facenet_int8"])
def test_int8_models_are_full_integer(built_models, model_id):
    _need(built_models, model_id)
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(built_models / SPECS[model_id].artifact))
    ops = {op["op_name"] for op in interp._get_ops_details()}
    dtypes = [np.dtype(t["dtype"]) for t in interp.get_tensor_details()]
    assert dtypes.count(np.dtype(np.float32)) == 2, "only the float32 input and output tensors"
    assert {"QUANTIZE", "DEQUANTIZE", "CONV_2D"} <= ops


@pytest.mark.parametrize("int8_id,f32_id", PAIRS)
def test_int8_embeddings_agree_with_float(built_models, faces, int8_id, f32_id):
    _need(built_models, int8_id, f32_id)
    spec = SPECS[int8_id]
    with TFLiteModel(built_models / spec.artifact) as q, TFLiteModel(built_models / SPECS[f32_id].artifact) as f:
        cosines = []
        for face in faces:
            a, b = q.run(_chip(face, spec))[0][0], f.run(_chip(face, spec))[0][0]
            cosines.append(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    assert min(cosines) >= 0.99, cosines


def test_tampered_copy_is_refused(built_models, tmp_path):
    spec = SPECS["blazeface_short"]
    _need(built_models, spec.id)
    shutil.copyfile(built_models / spec.artifact, tmp_path / spec.artifact)
    data = bytearray((tmp_path / spec.artifact).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / spec.artifact).write_bytes(bytes(data))
    with pytest.raises(ModelHashMismatch, match=f"{spec.artifact}.*rollcall models build --out {tmp_path}"):
        verify_models(tmp_path, [spec.id])


def test_build_lock_records_calibration(built_models):
    lock = read_lock(built_models)
    for model_id in ("dlib_resnet_int8", "facenet_int8"):
        entry = lock.get("models", {}).get(model_id)
        if entry is None:
            continue
        calibration = entry["report"]["calibration"]
        assert calibration["count"] >= 200 and len(calibration["files_sha256"]) == 64
