"""TFLiteModel's quantization handling, with a stand-in interpreter (pure unit test).

The real runtime on real models is covered by tests/integration/test_models_build.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from firmware.errors import ModelError
from firmware.inference.runtime import TFLiteModel, load_interpreter


class EchoInterpreter:
    """Copies its input tensor to its output tensor; dtypes and quantization as given."""

    def __init__(self, shape, in_dtype, in_q, out_dtype, out_q):
        self._in = {"index": 0, "shape": np.array(shape), "dtype": in_dtype, "quantization": in_q}
        self._out = {"index": 1, "shape": np.array(shape), "dtype": out_dtype, "quantization": out_q}
        self.tensors = {}

    def get_input_details(self):
        return [self._in]

    def get_output_details(self):
        return [self._out]

    def set_tensor(self, index, value):
        assert value.dtype == self._in["dtype"]
        self.tensors[index] = value.copy()

    def invoke(self):
        self.tensors[1] = self.tensors[0].astype(self._out["dtype"])

    def get_tensor(self, index):
        return self.tensors[index]


def test_float_model_passes_through():
    model = TFLiteModel("x.tflite", interpreter=EchoInterpreter((1, 2, 2, 3), np.float32, (0.0, 0), np.float32, (0.0, 0)))
    x = np.random.default_rng(1).random((2, 2, 3)).astype(np.float32)  # batch axis added
    (out,) = model.run(x)
    assert out.dtype == np.float32 and out.shape == (1, 2, 2, 3)
    np.testing.assert_array_equal(out[0], x)
    assert model.input_shape == (1, 2, 2, 3) and model.input_dtype == np.float32 and not model.quantized


@pytest.mark.parametrize("dtype,zero_point", [(np.int8, -3), (np.uint8, 128)])
def test_quantized_io_is_transparent(dtype, zero_point):
    scale = 0.05
    interp = EchoInterpreter((1, 4), dtype, (scale, zero_point), dtype, (scale, zero_point))
    model = TFLiteModel("q.tflite", interpreter=interp)
    x = np.array([[-1.0, 0.0, 0.52, 3.0]], np.float32)
    (out,) = model.run(x)
    assert interp.tensors[0].dtype == dtype
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, x, atol=scale / 2 + 1e-6)
    assert model.quantized and model.input_dtype == dtype


def test_quantized_input_saturates():
    interp = EchoInterpreter((1, 2), np.int8, (0.1, 0), np.int8, (0.1, 0))
    (out,) = TFLiteModel("q.tflite", interpreter=interp).run(np.array([[100.0, -100.0]], np.float32))
    np.testing.assert_allclose(out, [[12.7, -12.8]], atol=1e-5)


def test_wrong_shape_and_closed_model_raise():
    model = TFLiteModel("x.tflite", interpreter=EchoInterpreter((1, 4), np.float32, (0.0, 0), np.float32, (0.0, 0)))
    with pytest.raises(ModelError, match="input shape"):
        model.run(np.zeros((1, 5), np.float32))
    model.close()
    model.close()  # safe twice
    with pytest.raises(ModelError, match="closed"):
        model.run(np.zeros((1, 4), np.float32))


def test_missing_file_says_how_to_build(tmp_path):
    with pytest.raises(ModelError, match="rollcall models build"):
        load_interpreter(tmp_path / "nope.tflite")


def test_no_runtime_gives_a_clear_error(tmp_path, monkeypatch):
    import sys

    from firmware.errors import RuntimeUnavailable

    (tmp_path / "m.tflite").write_bytes(b"x")
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    with pytest.raises(RuntimeUnavailable, match="pip install ai-edge-litert"):
        load_interpreter(tmp_path / "m.tflite")
