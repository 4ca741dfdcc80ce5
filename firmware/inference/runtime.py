"""TFLite runtime: one interpreter per model, created once at start.

The device runs models with ``ai-edge-litert`` (falling back to ``tflite-runtime``), never
TensorFlow. :class:`TFLiteModel` hides quantization: callers always pass float32 arrays in
the model's own units (e.g. raw 0..255 RGB for the dlib embedder, see the manifest's
``normalisation``) and always get float32 outputs back, whether the tensors are float32,
int8 or uint8.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from firmware.errors import ModelError, RuntimeUnavailable

logger = logging.getLogger(__name__)

_QUANTIZED = (np.int8, np.uint8, np.int16)


def _interpreter_class() -> type:
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError as first:
        try:
            from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]
            return Interpreter
        except (ImportError, AttributeError) as second:  # AttributeError: tflite-runtime on numpy 2
            raise RuntimeUnavailable(
                "no TFLite runtime: install ai-edge-litert (pip install ai-edge-litert==2.3.0) "
                f"or tflite-runtime into the device venv (ai-edge-litert: {first}; tflite-runtime: {second})"
            ) from second


def load_interpreter(path: str | os.PathLike, num_threads: int = 2) -> Any:
    """Open a ``.tflite`` file and allocate its tensors.

    ``num_threads`` is the number of CPU threads the interpreter may use.
    Raises :class:`RuntimeUnavailable` if no runtime is installed and :class:`ModelError`
    if the file is missing or not a model the runtime can load.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found: build it with `rollcall models build` "
                         "or `./install.sh --dev`")
    cls = _interpreter_class()
    try:
        interpreter = cls(model_path=str(path), num_threads=num_threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load model {path}: {exc}") from exc
    return interpreter


class _Tensor:
    """Index, dtype and (scale, zero point) of one input or output tensor."""

    def __init__(self, detail: dict) -> None:
        self.index: int = detail["index"]
        self.shape = tuple(int(d) for d in detail["shape"])
        self.dtype = np.dtype(detail["dtype"])
        scale, zero_point = detail.get("quantization", (0.0, 0))
        self.quantized = self.dtype.type in _QUANTIZED and scale != 0.0
        self.scale = float(scale)
        self.zero_point = int(zero_point)

    def to_tensor(self, x: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return np.asarray(x, dtype=self.dtype)
        info = np.iinfo(self.dtype)
        q = np.round(np.asarray(x, dtype=np.float32) / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def from_tensor(self, q: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return np.asarray(q, dtype=np.float32)
        return (q.astype(np.float32) - self.zero_point) * np.float32(self.scale)


class TFLiteModel:
    """One TFLite model with a single input: float32 in, list of float32 outputs out.

    Create it once at start (never per frame). ``run`` takes an array of
    :attr:`input_shape` (a missing leading batch axis of 1 is added) and returns the
    outputs in the model's output order, dequantized to float32. Use as a context manager
    or call :meth:`close` (safe twice).
    """

    def __init__(self, path: str | os.PathLike, num_threads: int = 2, *, interpreter: Any = None) -> None:
        self.path = Path(path)
        self._interpreter = interpreter if interpreter is not None else load_interpreter(self.path, num_threads)
        inputs = self._interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelError(f"{self.path}: expected one input tensor, found {len(inputs)}")
        self._input = _Tensor(inputs[0])
        self._outputs = [_Tensor(d) for d in self._interpreter.get_output_details()]
        logger.debug("loaded %s: input %s %s, %d outputs", self.path.name, self._input.shape,
                     self._input.dtype, len(self._outputs))

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of the input tensor, e.g. ``(1, 150, 150, 3)`` (batch, height, width, channels)."""
        return self._input.shape

    @property
    def input_dtype(self) -> np.dtype:
        """Dtype of the model's input tensor (float32, int8 or uint8); ``run`` always takes float32."""
        return self._input.dtype

    @property
    def output_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the output tensors, in output order."""
        return [t.shape for t in self._outputs]

    @property
    def quantized(self) -> bool:
        """True if the input or any output tensor is integer-quantized."""
        return self._input.quantized or any(t.quantized for t in self._outputs)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one inference; ``x`` is float32 in the model's input units."""
        if self._interpreter is None:
            raise ModelError(f"{self.path.name}: model is closed")
        x = np.asarray(x)
        if x.ndim == len(self._input.shape) - 1:
            x = x[np.newaxis]
        if tuple(x.shape) != self._input.shape:
            raise ModelError(f"{self.path.name}: input shape {tuple(x.shape)}, expected {self._input.shape}")
        self._interpreter.set_tensor(self._input.index, self._input.to_tensor(x))
        self._interpreter.invoke()
        return [t.from_tensor(self._interpreter.get_tensor(t.index)) for t in self._outputs]

    def close(self) -> None:
        """Release the interpreter (safe to call twice)."""
        self._interpreter = None

    def __enter__(self) -> TFLiteModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
