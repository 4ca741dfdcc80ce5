"""Our own reader for dlib's binary serialization (no dlib needed).

dlib writes, for the types used by its DNN models:

* integers "packed": one control byte (low nibble = number of following bytes, bit 0x80 =
  negative), then the magnitude, little-endian, in that many bytes;
* ``bool`` as one ASCII byte ``'1'``/``'0'``;
* strings: packed length, then the bytes;
* ``float``/``double``: packed int64 mantissa, then packed int16 exponent
  (value = mantissa * 2**exponent);
* a ``resizable_tensor`` (version 2): packed ints version, num_samples, k, nr, nc, then
  num_samples*k*nr*nc little-endian float32 values (NCHW order);
* an ``alias_tensor``: packed ints version (1), num_samples, k, nr, nc (no offset: the
  filters come first in ``params``, the biases right after them).

A network is written outermost layer first: the loss layer, then each ``add_layer`` writes
its version and recurses into its sub-network *before* its own details, so in the file the
layer details appear input first. :func:`read_network` walks that layout and returns the
layers in computation order (input first). Used at build time only; pure Python + numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# dlib's float_details encodes these with reserved exponents.
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002


class DlibFormatError(ValueError):
    """The bytes are not the dlib serialization we expect."""


@dataclass
class Layer:
    """One layer's details: its type string (e.g. ``con_4``) and the fields read."""

    kind: str
    fields: dict = field(default_factory=dict)


class DlibReader:
    """Cursor over dlib-serialized bytes."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = memoryview(data)
        self.pos = pos

    def _take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"unexpected end of data at byte {self.pos} (wanted {n} bytes)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte 0x{control:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little") if size else 0
        return -value if control & 0x80 else value

    def bool(self) -> bool:
        byte = self._take(1)[0]
        if byte not in (0x30, 0x31):
            raise DlibFormatError(f"bad bool byte 0x{byte:02x} at byte {self.pos - 1}")
        return byte == 0x31

    def string(self) -> str:
        size = self.int()
        if not 0 <= size < 1 << 20:
            raise DlibFormatError(f"bad string length {size} at byte {self.pos}")
        return bytes(self._take(size)).decode("latin-1")

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        special = {_EXP_INF: float("inf"), _EXP_NINF: float("-inf"), _EXP_NAN: float("nan")}
        if exponent in special:
            return special[exponent]
        return float(mantissa) * 2.0 ** exponent

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"unsupported tensor version {version} at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)

    def alias_tensor(self) -> dict:
        version = self.int()
        if version != 1:
            raise DlibFormatError(f"unsupported alias_tensor version {version} at byte {self.pos}")
        return {"shape": tuple(self.int() for _ in range(4))}


# ---------------------------------------------------------------------------------------
# Layer details, one reader per version string. Only the layers of dlib's face ResNet
# (and the input/loss layers around it) are supported.

def _read_con(r: DlibReader, kind: str) -> dict:
    f = {"params": r.tensor()}
    for name in ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x"):
        f[name] = r.int()
    f["filters"], f["biases"] = r.alias_tensor(), r.alias_tensor()
    for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
        f[name] = r.float()
    if kind == "con_5":
        f["use_bias"] = r.bool()
    return f


def _read_fc(r: DlibReader, kind: str) -> dict:
    f = {"num_outputs": r.int(), "num_inputs": r.int(), "params": r.tensor()}
    f["weights"], f["biases"] = r.alias_tensor(), r.alias_tensor()
    f["bias_mode"] = r.int()
    for name in ("lr_mult", "wd_mult", "bias_lr_mult", "bias_wd_mult"):
        f[name] = r.float()
    return f


def _read_affine(r: DlibReader, kind: str) -> dict:
    f = {"params": r.tensor()}
    f["gamma"], f["beta"] = r.alias_tensor(), r.alias_tensor()
    f["mode"] = r.int()
    return f


def _read_pool(r: DlibReader, kind: str) -> dict:
    names = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
    return {name: r.int() for name in names}


def _read_nothing(r: DlibReader, kind: str) -> dict:
    return {}


_LAYER_READERS = {
    "con_4": _read_con, "con_5": _read_con,
    "fc_2": _read_fc,
    "affine_": _read_affine,
    "max_pool_2": _read_pool, "avg_pool_2": _read_pool,
    "relu_": _read_nothing, "add_prev_": _read_nothing,
}


def read_layer(r: DlibReader) -> Layer:
    """Read one layer's details: its version string then its fields."""
    at = r.pos
    kind = r.string()
    reader = _LAYER_READERS.get(kind)
    if reader is None:
        raise DlibFormatError(f"unsupported layer {kind!r} at byte {at}")
    return Layer(kind, reader(r, kind))


def _read_input(r: DlibReader) -> Layer:
    kind = r.string()
    if kind != "input_rgb_image_sized":
        raise DlibFormatError(f"unsupported input layer {kind!r}")
    means = [r.float() for _ in range(3)]
    return Layer(kind, {"avg_rgb": means, "nr": r.int(), "nc": r.int()})


def _read_loss(r: DlibReader) -> Layer:
    kind = r.string()
    if kind != "loss_metric_2":
        raise DlibFormatError(f"unsupported loss layer {kind!r}")
    return Layer(kind, {"margin": r.float(), "dist_thresh": r.float()})


def _skip_layer_state(r: DlibReader, version: int) -> None:
    """Training state every add_layer writes after its details (flags, empty tensors);
    the one on the input layer (version 3) also writes its sample expansion factor."""
    for _ in range(3):
        r.bool()
    for _ in range(3):
        r.tensor()
    if version == 3:
        r.int()


def read_network(data: bytes) -> list[Layer]:
    """Parse a serialized ``loss_metric<...>`` network; layers in computation order.

    Tag and skip layers carry no data and are not returned; the caller knows the
    architecture. The first returned layer is the input layer, the last the loss layer.
    """
    r = DlibReader(data)
    if r.int() != 1:
        raise DlibFormatError("not a dlib add_loss_layer (version 1 expected)")
    loss = _read_loss(r)
    versions = []
    while True:
        version = r.int()
        versions.append(version)
        if version == 3:  # the add_layer sitting on the input layer
            break
        if version not in (1, 2):
            raise DlibFormatError(f"unexpected layer version {version} at byte {r.pos}")
    layers = [_read_input(r)]
    for version in reversed(versions):
        if version == 1:  # tag/skip layer: nothing of its own
            continue
        layers.append(read_layer(r))
        _skip_layer_state(r, version)
    if r.pos != len(r.data):
        raise DlibFormatError(f"{len(r.data) - r.pos} trailing bytes after the network")
    return layers + [loss]


# ---------------------------------------------------------------------------------------
# Writers, used by the unit tests to make synthetic bytes (the inverse of the reader).

def pack_int(value: int) -> bytes:
    magnitude = abs(value)
    body = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "little") if magnitude else b""
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def pack_string(text: str) -> bytes:
    raw = text.encode("latin-1")
    return pack_int(len(raw)) + raw


def pack_float(value: float) -> bytes:
    """Exact for finite floats: value = mantissa * 2**exponent with an int64 mantissa."""
    mantissa, exponent = math.frexp(value)
    mantissa, exponent = int(mantissa * (1 << 53)), exponent - 53
    while mantissa and mantissa % 2 == 0:
        mantissa, exponent = mantissa // 2, exponent + 1
    return pack_int(mantissa) + pack_int(exponent if mantissa else 0)


def pack_tensor(array: np.ndarray) -> bytes:
    array = np.asarray(array, dtype="<f4")
    shape = (1,) * (4 - array.ndim) + array.shape
    return pack_int(2) + b"".join(pack_int(d) for d in shape) + array.tobytes()


def pack_bool(value: bool) -> bytes:
    return b"1" if value else b"0"


def pack_alias(shape: tuple[int, int, int, int]) -> bytes:
    return pack_int(1) + b"".join(pack_int(d) for d in shape)
