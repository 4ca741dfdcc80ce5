"""Uploaded photos: size and format checks, then decode and re-encode server-side.

The client's file name is only ever shown (escaped), never used as a path. Dimensions are
read from the header BEFORE decoding, so a small file claiming a huge image (a
decompression bomb) is refused without allocating it.
"""

from __future__ import annotations

import logging
import struct

import cv2
import numpy as np

from firmware.errors import ImageError

logger = logging.getLogger(__name__)

MAX_PIXELS = 24_000_000
MAX_SIDE = 8000
MIN_SIDE = 64
OUT_MAX_SIDE = 1600
JPEG_QUALITY = 92


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            pos += 1
            continue
        marker = data[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            pos += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    raise ImageError("the JPEG has no readable size (truncated or corrupt)")


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header; ImageError for anything but JPEG/PNG."""
    if data[:3] == b"\xff\xd8\xff":
        return ("jpeg", *_jpeg_size(data))
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return "png", width, height
    raise ImageError("not a JPEG or PNG image")


def clean_image(data: bytes, max_bytes: int) -> bytes:
    """Validated, re-encoded JPEG bytes of an uploaded photo (raises ImageError with a reason)."""
    if not data:
        raise ImageError("the file is empty")
    if len(data) > max_bytes:
        raise ImageError(f"the file is too large ({len(data) / 1048576:.1f} MiB; limit "
                         f"{max_bytes / 1048576:g} MiB)")
    _fmt, width, height = image_size(data)
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(f"the image is too big ({width}x{height} pixels; limit {MAX_SIDE} per side)")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"the image is too small ({width}x{height} pixels; need {MIN_SIDE}+)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[0] != height or image.shape[1] != width:
        raise ImageError("the image could not be decoded (corrupt or not really an image)")
    scale = OUT_MAX_SIDE / max(width, height)
    if scale < 1:
        image = cv2.resize(image, (round(width * scale), round(height * scale)),
                           interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ImageError("the image could not be re-encoded")
    return encoded.tobytes()


def display_name(filename: str | None, index: int) -> str:
    """A short label for messages; never used as a path."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name[:80] or f"photo {index + 1}"
