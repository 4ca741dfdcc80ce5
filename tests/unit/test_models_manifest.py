"""The model manifest schema, artifact verification and our dlib-serialization reader."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from firmware.errors import ModelError, ModelHashMismatch
from models import registry
from models.build import dlib_reader as dr

IDS = {"blazeface_short", "blazeface_full", "face_mesh", "iris_landmark", "dlib_resnet_int8", "dlib_resnet_f32",
       "facenet_int8", "facenet_f32"}


# --- manifest ---------------------------------------------------------------------------

def test_manifest_has_the_agreed_ids():
    assert set(registry.load_manifest()) == IDS


def test_manifest_is_package_data():
    assert "[models.dlib_resnet_int8]" in registry.manifest_text()


@pytest.mark.parametrize("model_id", sorted(IDS))
def test_every_model_is_fully_described(model_id):
    spec = registry.get_spec(model_id)
    assert spec.colour_order == "RGB"
    assert len(spec.input_size) == 2 and all(v > 0 for v in spec.input_size)
    assert len(spec.input_mean) == 3 and all(v > 0 for v in spec.input_std)
    assert spec.output_dim > 0 and spec.artifact.endswith(".tflite")
    assert spec.io_dtype == "float32"
    if spec.method == "copy":
        assert spec.artifact_sha256 == spec.source_sha256


@pytest.mark.parametrize("model_id", ["dlib_resnet_int8", "dlib_resnet_f32", "facenet_int8", "facenet_f32"])
def test_embedders_have_threshold_and_alignment(model_id):
    spec = registry.get_spec(model_id)
    assert spec.role == "embedder" and spec.alignment == "dlib_5pt"
    assert 0 < spec.default_threshold < 1
    assert spec.align_size == spec.input_size[0]
    assert spec.calibrated == (spec.quantization == "int8")


def test_roles_and_dimensions():
    specs = registry.load_manifest()
    assert specs["face_mesh"].output_dim == 468 * 3 and specs["face_mesh"].role == "landmarks"
    assert specs["dlib_resnet_int8"].output_dim == 128 and specs["facenet_int8"].output_dim == 512
    assert {specs[i].role for i in ("blazeface_short", "blazeface_full")} == {"detector"}


def test_unknown_keys_and_bad_values_are_rejected():
    raw = json.loads(json.dumps(registry.load_raw_manifest()))  # deep copy
    raw["models"]["face_mesh"]["colour"] = "BGR"
    with pytest.raises(ModelError, match="unknown keys"):
        registry.parse_manifest(raw)
    raw = json.loads(json.dumps(registry.load_raw_manifest()))
    raw["models"]["face_mesh"]["quantization"] = "int4"
    with pytest.raises(ModelError, match="quantization"):
        registry.parse_manifest(raw)


def test_model_path_and_unknown_id(tmp_path):
    assert registry.model_path("face_mesh", tmp_path) == tmp_path / "face_mesh.tflite"
    with pytest.raises(ModelError, match="unknown model id"):
        registry.model_path("nope", tmp_path)


# --- verify -----------------------------------------------------------------------------

def _fake_specs(tmp_path, content=b"a tflite model"):
    (tmp_path / "face_mesh.tflite").write_bytes(content)
    spec = dataclasses.replace(registry.get_spec("face_mesh"), artifact_sha256=hashlib.sha256(content).hexdigest())
    return {"face_mesh": spec}


def test_verify_accepts_matching_artifact(tmp_path):
    specs = _fake_specs(tmp_path)
    assert registry.verify_models(tmp_path, specs=specs) == {"face_mesh": tmp_path / "face_mesh.tflite"}


def test_verify_names_tampered_file_and_how_to_rebuild(tmp_path):
    specs = _fake_specs(tmp_path)
    (tmp_path / "face_mesh.tflite").write_bytes(b"a tflite modeL")
    with pytest.raises(ModelHashMismatch) as info:
        registry.verify_models(tmp_path, specs=specs)
    message = str(info.value)
    assert str(tmp_path / "face_mesh.tflite") in message
    assert f"rollcall models build --out {tmp_path}" in message and "./install.sh --dev" in message


def test_verify_missing_file(tmp_path):
    specs = _fake_specs(tmp_path)
    (tmp_path / "face_mesh.tflite").unlink()
    with pytest.raises(ModelError, match="missing.*rollcall models build"):
        registry.verify_models(tmp_path, specs=specs)


def test_lock_accepts_recalibrated_int8_only_when_not_strict(tmp_path):
    content = b"int8 model calibrated on my camera"
    (tmp_path / "dlib_resnet_int8.tflite").write_bytes(content)
    spec = registry.get_spec("dlib_resnet_int8")
    lock = {"models": {spec.id: {"sha256": hashlib.sha256(content).hexdigest()}}}
    (tmp_path / registry.LOCK_FILE).write_text(json.dumps(lock))
    specs = {spec.id: spec}
    assert spec.id in registry.verify_models(tmp_path, specs=specs)
    with pytest.raises(ModelHashMismatch):
        registry.verify_models(tmp_path, specs=specs, strict=True)


def test_lock_never_excuses_a_float_model(tmp_path):
    content = b"not the pinned float model"
    (tmp_path / "dlib_resnet_f32.tflite").write_bytes(content)
    spec = registry.get_spec("dlib_resnet_f32")
    (tmp_path / registry.LOCK_FILE).write_text(
        json.dumps({"models": {spec.id: {"sha256": hashlib.sha256(content).hexdigest()}}}))
    with pytest.raises(ModelHashMismatch):
        registry.verify_models(tmp_path, specs={spec.id: spec})


def test_verify_cli_exit_code_and_message(tmp_path, capsys):
    from firmware.cli import main

    assert main(["models", "verify", "--dir", str(tmp_path), "--only", "blazeface_short"]) == 2
    err = capsys.readouterr().err
    assert "blazeface_short.tflite is missing" in err and f"rollcall models build --out {tmp_path}" in err


# --- dlib serialization reader ----------------------------------------------------------

@given(st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
def test_packed_int_round_trip(value):
    assert dr.DlibReader(dr.pack_int(value)).int() == value


def test_packed_int_known_bytes():
    assert dr.DlibReader(bytes([0x01, 0x05])).int() == 5
    assert dr.DlibReader(bytes([0x81, 0x1C])).int() == -28
    assert dr.DlibReader(bytes([0x02, 0x80, 0x12])).int() == 0x1280
    assert dr.DlibReader(bytes([0x00])).int() == 0


def test_bad_control_byte_is_a_format_error():
    with pytest.raises(dr.DlibFormatError):
        dr.DlibReader(bytes([0x31])).int()
    with pytest.raises(dr.DlibFormatError, match="end of data"):
        dr.DlibReader(bytes([0x02, 0x01])).int()


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_float_round_trip(value):
    assert dr.DlibReader(dr.pack_float(value)).float() == value


def test_float_known_bytes():
    # dlib's own encoding of 0.04f and 122.782f (mantissa, exponent), from a real .dat.
    assert dr.DlibReader(bytes.fromhex("030ad7a3811c")).float() == pytest.approx(0.04, abs=1e-9)
    assert dr.DlibReader(bytes.fromhex("036290f58111")).float() == pytest.approx(122.782, abs=1e-5)


def test_string_bool_and_tensor():
    data = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4) - 7.5
    blob = dr.pack_string("con_4") + dr.pack_bool(True) + dr.pack_bool(False) + dr.pack_tensor(data)
    r = dr.DlibReader(blob)
    assert r.string() == "con_4" and r.bool() is True and r.bool() is False
    np.testing.assert_array_equal(r.tensor(), data)
    assert r.pos == len(blob)


def _synthetic_fc_network(weights: np.ndarray) -> bytes:
    """loss_metric<fc_no_bias<N, input_rgb_image_sized<150>>>, as dlib lays it out."""
    n_in, n_out = weights.shape
    multipliers = b"".join(dr.pack_float(v) for v in (1.0, 1.0, 1.0, 0.0))
    empty = dr.pack_tensor(np.zeros((0, 0, 0, 0), np.float32))
    return (dr.pack_int(1) + dr.pack_string("loss_metric_2") + dr.pack_float(0.04) + dr.pack_float(0.6)
            + dr.pack_int(3)
            + dr.pack_string("input_rgb_image_sized") + b"".join(dr.pack_float(v) for v in (122.5, 117.0, 104.25))
            + dr.pack_int(150) + dr.pack_int(150)
            + dr.pack_string("fc_2") + dr.pack_int(n_out) + dr.pack_int(n_in)
            + dr.pack_tensor(weights.reshape(n_in, n_out, 1, 1))
            + dr.pack_alias((n_in, n_out, 1, 1)) + dr.pack_alias((0, 0, 0, 0)) + dr.pack_int(1) + multipliers
            + b"110" + empty * 3 + dr.pack_int(1))


def test_read_synthetic_network():
    weights = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    layers = dr.read_network(_synthetic_fc_network(weights))
    assert [layer.kind for layer in layers] == ["input_rgb_image_sized", "fc_2", "loss_metric_2"]
    assert layers[0].fields["avg_rgb"] == [122.5, 117.0, 104.25]
    fc = layers[1].fields
    assert (fc["num_inputs"], fc["num_outputs"], fc["bias_mode"]) == (6, 4, 1)
    np.testing.assert_array_equal(fc["params"].reshape(6, 4), weights)
    assert layers[2].fields["dist_thresh"] == pytest.approx(0.6)


def test_trailing_bytes_and_unknown_layers_are_rejected():
    blob = _synthetic_fc_network(np.ones((2, 2), np.float32))
    with pytest.raises(dr.DlibFormatError, match="trailing"):
        dr.read_network(blob + b"\x00")
    with pytest.raises(dr.DlibFormatError, match="unsupported layer"):
        dr.read_network(blob.replace(b"\x04fc_2", b"\x04fx_2"))
