"""Image admission (firmware.inference.images): one parser, one set of limits, one crop helper."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from firmware.errors import ImageError
from firmware.inference import images
from firmware.store.vectors import reencode_jpeg


def encoded(ext: str, size=(200, 160), seed: int = 1) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return cv2.imencode(ext, image)[1].tobytes()


def png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + b"\x00" * 32)


def test_header_gives_format_and_size_for_jpeg_and_png_only():
    assert images.read_header(encoded(".jpg", (123, 45))) == images.Header("jpeg", 123, 45)
    assert images.read_header(encoded(".png", (64, 80))) == images.Header("png", 64, 80)
    for other in (encoded(".bmp"), b"GIF89a" + b"\x00" * 40, b"hello"):
        with pytest.raises(ImageError, match="not a JPEG or PNG"):
            images.read_header(other)


@pytest.mark.parametrize("data,message", [
    (b"", "empty"),
    (png_claiming(60000, 60000), "too big"),
    (png_claiming(6000, 4000), "24 MP"),
    (png_claiming(9000, 100), "8000 per side"),
    (encoded(".jpg", (50, 200)), "too small"),
    (encoded(".jpg")[:60], "no readable size"),
    (encoded(".png")[:200], "could not be decoded"),
])
def test_every_entry_point_refuses_bad_images_with_the_same_reason(data, message):
    for admit in (images.decode, images.clean_jpeg):
        with pytest.raises(ImageError, match=message):
            admit(data)


def test_size_limit_in_bytes_is_checked_before_anything_else():
    with pytest.raises(ImageError, match="too large"):
        images.check(encoded(".jpg"), max_bytes=100)


def test_clean_jpeg_shrinks_reencodes_and_drops_trailing_payloads():
    big = encoded(".png", (2400, 1200)) + b"<script>alert(1)</script>"
    out = images.clean_jpeg(big)
    assert out.startswith(b"\xff\xd8") and b"<script>" not in out
    assert images.image_size(out) == (1600, 800)


def test_store_reencoding_uses_the_same_admission_but_accepts_small_crops():
    crop = encoded(".jpg", (40, 48))
    assert reencode_jpeg(crop).startswith(b"\xff\xd8")
    with pytest.raises(ImageError, match="photo_jpeg: .*not a JPEG or PNG"):
        reencode_jpeg(b"GIF89a....")


def test_face_crop_adds_a_margin_and_is_clipped_to_the_image():
    image = np.zeros((200, 300, 3), np.uint8)
    crop = images.crop_face(image, np.array([100, 50, 200, 150]), margin=0.3)
    assert crop.shape[:2] == (160, 160)
    edge = images.crop_face(image, np.array([-20, -20, 40, 40]))
    assert edge.shape[:2] == (58, 58)
    assert images.face_jpeg(image, np.array([100, 50, 200, 150])).startswith(b"\xff\xd8")
