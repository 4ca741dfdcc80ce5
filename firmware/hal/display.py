"""The annotated live view, as JPEG bytes.

Called from the control API's threads, never per frame on the loop's path. Boxes are
(x1, y1, x2, y2) in full-frame pixels. Face crops are
:func:`firmware.inference.images.face_jpeg` (the one crop helper).
"""

from __future__ import annotations

from typing import Any, Iterable

import cv2
import numpy as np

from firmware.inference import images

JPEG_QUALITY = 80

# BGR colours per stage
COLOURS = {"accepted": (60, 180, 60), "already": (60, 180, 60), "unknown": (40, 40, 220),
           "spoof": (40, 40, 220), "look": (0, 170, 255), "blink": (0, 170, 255),
           "checking": (0, 170, 255), "retry": (0, 170, 255)}


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """BGR image -> JPEG bytes (the live view's quality)."""
    return images.encode_jpeg(image, quality)


def annotate(image: np.ndarray, overlays: Iterable[Any], names: dict[str, str] | None = None) -> np.ndarray:
    """A copy of ``image`` with each face's box, name or stage and prompt drawn."""
    out = image.copy()
    thick = max(1, image.shape[1] // 640)
    for o in overlays:
        colour = COLOURS.get(o.stage, (200, 200, 200))
        x1, y1, x2, y2 = (int(v) for v in o.box[:4])
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2 * thick)
        label = (names or {}).get(o.label, o.label) if o.label else o.stage
        text = f"#{o.track_id} {label}" + (f" - {o.prompt}" if o.prompt and not o.label else "")
        cv2.putText(out, text, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, colour, thick,
                    cv2.LINE_AA)
    return out
