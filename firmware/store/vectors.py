"""Embedding vectors and photos: validation, encoding, re-encoding. No file I/O here."""

from __future__ import annotations

import base64
import binascii
import re

import numpy as np

from firmware.errors import ImageError
from firmware.inference import images
from firmware.store.errors import StoreValueError

MODEL_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_DIM = 4096


def check_model_id(model_id: object) -> str:
    if not isinstance(model_id, str) or not MODEL_ID_RE.match(model_id):
        raise StoreValueError(f"model_id {model_id!r} is not a model id like 'dlib_resnet_int8'",
                              "model_id")
    return model_id


def check_sha256(value: object) -> str | None:
    """None or a 64-hex-digit SHA-256 (lower-cased)."""
    if value is None:
        return None
    if not isinstance(value, str) or not SHA_RE.match(value.lower()):
        raise StoreValueError("photo_sha256: expected 64 hex digits", "photo_sha256")
    return value.lower()


def to_vector(vector: object, field: str = "vector") -> np.ndarray:
    """A 1-D finite float vector (array, list or base64 float32) -> L2-normalised float32."""
    if isinstance(vector, str):
        vector = decode_b64(vector, field)
    try:
        arr = np.asarray(vector)
    except (ValueError, TypeError):
        raise StoreValueError(f"{field}: not a numeric vector", field) from None
    if arr.dtype.kind != "f":
        raise StoreValueError(f"{field}: expected floating-point values, got dtype {arr.dtype}",
                              field)
    if arr.ndim != 1 or not 2 <= arr.shape[0] <= MAX_DIM:
        raise StoreValueError(f"{field}: expected a 1-D vector of 2..{MAX_DIM} values, got shape "
                              f"{arr.shape}", field)
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise StoreValueError(f"{field}: contains NaN or infinity", field)
    norm = float(np.linalg.norm(arr))
    if norm < 1e-6:
        raise StoreValueError(f"{field}: zero vector cannot be normalised", field)
    return arr / norm


def encode_b64(vector: np.ndarray) -> str:
    """float32 little-endian bytes as base64 text."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_b64(text: str, field: str = "vector") -> np.ndarray:
    """Inverse of ``encode_b64``."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise StoreValueError(f"{field}: not valid base64", field) from None
    if len(raw) % 4:
        raise StoreValueError(f"{field}: base64 length is not a multiple of 4 bytes (float32)",
                              field)
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def reencode_jpeg(data: object, field: str = "photo_jpeg") -> bytes:
    """Admit an image (:mod:`firmware.inference.images`: JPEG/PNG, the common limits) and
    re-encode it as a fresh JPEG (drops metadata/payloads)."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or not data:
        raise ImageError(f"{field}: expected image bytes")
    try:
        return images.clean_jpeg(bytes(data), min_side=images.MIN_CROP_SIDE, max_side=images.MAX_SIDE)
    except ImageError as exc:
        raise ImageError(f"{field}: {exc}") from None


def check_jpeg(data: object, field: str) -> bytes:
    """Bytes that start like a JPEG (our own crops: no full decode on the hot path)."""
    if not isinstance(data, (bytes, bytearray)) or not bytes(data[:3]) == b"\xff\xd8\xff":
        raise ImageError(f"{field}: expected JPEG bytes")
    return bytes(data)
