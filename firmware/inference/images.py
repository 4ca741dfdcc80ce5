"""Image admission: the one place that decides whether bytes are a photo we will use.

Used by the console's uploads (``console/uploads.py``), ``rollcall enroll``, the store's
photo re-encoding (``store/vectors.py``), the enroller and the live view's face crops.
One parser, one set of limits:

- formats: JPEG and PNG only (read from the header, never from a file name);
- size: at most ``MAX_BYTES`` bytes (the console may set a lower limit);
- pixels: at most ``MAX_SIDE`` per side and ``MAX_PIXELS`` in all, checked from the
  header BEFORE decoding, so a small file claiming a huge image (a decompression bomb)
  is refused without allocating it; at least ``MIN_SIDE`` per side;
- corrupt files: a header without a readable size, or a decode that fails or disagrees
  with the header, is refused.

Every refusal is an :class:`~firmware.errors.ImageError` whose message says what is wrong
and what to do.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np

from firmware.errors import ImageError

MAX_BYTES = 20 * 1024 * 1024   # bytes
MAX_PIXELS = 20_000_000        # width x height
MAX_SIDE = 8000                # pixels per side
MIN_SIDE = 64                  # pixels per side (an uploaded photo)
MIN_CROP_SIDE = 8              # pixels per side (a face crop we made ourselves)
OUT_MAX_SIDE = 1600            # a cleaned upload is shrunk to at most this many pixels per side
JPEG_QUALITY = 90
FACE_MARGIN = 0.3              # fraction of the face box width added on each side of a crop
FORMATS = ("jpeg", "png")
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_NOT_IMAGE = "not an image: not a JPEG or PNG file (upload a JPEG or PNG photo)"


@dataclass(frozen=True, slots=True)
class Header:
    """What the file's header says: ``format`` (jpeg | png), width and height in pixels."""

    format: str
    width: int
    height: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first SOF marker; ImageError when there is none."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            pos += 1
            continue
        marker = data[pos + 1]
        if marker in (0xD8, 0x01, 0xFF) or 0xD0 <= marker <= 0xD7:
            pos += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in _SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    raise ImageError("the JPEG has no readable size (truncated or corrupt): upload a JPEG or PNG photo")


def read_header(data: bytes) -> Header:
    """Format and size from the header alone; ImageError for anything but JPEG/PNG."""
    if not data:
        raise ImageError("the file is empty: upload a JPEG or PNG photo")
    if data[:3] == b"\xff\xd8\xff":
        return Header("jpeg", *_jpeg_size(data))
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return Header("png", width, height)
    raise ImageError(_NOT_IMAGE)


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from the header, without decoding."""
    header = read_header(data)
    return header.width, header.height


def check(data: bytes, *, max_bytes: int = MAX_BYTES, min_side: int = MIN_SIDE) -> Header:
    """Every limit that can be checked without decoding; returns the header."""
    if not data:
        raise ImageError("the file is empty: upload a JPEG or PNG photo")
    if len(data) > max_bytes:
        raise ImageError(f"the file is too large ({len(data) / 1048576:.1f} MiB; limit "
                         f"{max_bytes / 1048576:g} MiB)")
    header = read_header(data)
    w, h = header.width, header.height
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        raise ImageError(f"the image is too big ({w}x{h} pixels, {header.megapixels:.0f} MP; limit "
                         f"{MAX_PIXELS / 1e6:.0f} MP and {MAX_SIDE} per side): resize it")
    if min(w, h) < min_side:
        raise ImageError(f"the image is too small ({w}x{h} pixels; need {min_side}+ per side)")
    return header


def decode(data: bytes, *, max_bytes: int = MAX_BYTES, min_side: int = MIN_SIDE) -> np.ndarray:
    """BGR uint8 image of admitted bytes; :class:`ImageError` says what is wrong."""
    header = check(data, max_bytes=max_bytes, min_side=min_side)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[0] != header.height or image.shape[1] != header.width:
        raise ImageError("the image could not be decoded (corrupt or not really an image)")
    return image


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """BGR image -> JPEG bytes (ImageError if the encoder fails)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("the image could not be encoded as JPEG")
    return buf.tobytes()


def clean_jpeg(data: bytes, *, max_bytes: int = MAX_BYTES, max_side: int = OUT_MAX_SIDE,
               min_side: int = MIN_SIDE, quality: int = JPEG_QUALITY) -> bytes:
    """Admit, decode, shrink to ``max_side`` pixels per side and re-encode as a fresh JPEG
    (drops metadata and anything appended to the file)."""
    image = decode(data, max_bytes=max_bytes, min_side=min_side)
    scale = max_side / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                           interpolation=cv2.INTER_AREA)
    return encode_jpeg(image, quality)


def crop_face(image: np.ndarray, box: np.ndarray, margin: float = FACE_MARGIN) -> np.ndarray:
    """The face box (x1, y1, x2, y2 in pixels) grown by ``margin`` of its width and height
    on each side, clipped to the image (never empty)."""
    h, w = image.shape[:2]
    bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
    x1, y1 = max(0, int(box[0] - margin * bw)), max(0, int(box[1] - margin * bh))
    x2, y2 = min(w, int(box[2] + margin * bw)), min(h, int(box[3] + margin * bh))
    return image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]


def face_jpeg(image: np.ndarray, box: np.ndarray, margin: float = FACE_MARGIN,
              quality: int = JPEG_QUALITY) -> bytes:
    """JPEG of :func:`crop_face`."""
    return encode_jpeg(crop_face(image, box, margin), quality)
