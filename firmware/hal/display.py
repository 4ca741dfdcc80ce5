"""Pictures for people: the annotated live view and face crops, as JPEG bytes.

Called from the control API's threads (live view) and on decisions (crops), never per
frame on the loop's path. Boxes are (x1, y1, x2, y2) in full-frame pixels.
"""

from __future__ import annotations

from typing import Any, Iterable

import cv2
import numpy as np

JPEG_QUALITY = 80
CROP_MARGIN = 0.25  # fraction of the box size added around a face crop

# BGR colours per stage
COLOURS = {"accepted": (60, 180, 60), "already": (60, 180, 60), "unknown": (40, 40, 220),
           "spoof": (40, 40, 220), "look": (0, 170, 255), "blink": (0, 170, 255),
           "checking": (0, 170, 255), "retry": (0, 170, 255)}


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """BGR image -> JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def crop_box(image: np.ndarray, box: np.ndarray, margin: float = CROP_MARGIN) -> np.ndarray:
    """The face plus ``margin`` of its size on each side, clipped to the image."""
    h, w = image.shape[:2]
    bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
    x1, y1 = max(0, int(box[0] - margin * bw)), max(0, int(box[1] - margin * bh))
    x2, y2 = min(w, int(box[2] + margin * bw)), min(h, int(box[3] + margin * bh))
    return image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]


def crop_jpeg(image: np.ndarray, box: np.ndarray) -> bytes:
    """JPEG of the face crop."""
    return encode_jpeg(crop_box(image, box))


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
