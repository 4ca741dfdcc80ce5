"""Head pose from the real Face Mesh on real frames: ``spoof/replay-phone/real.mov`` shows a
man facing the camera, turning to his right (nose to the image left, frames ~105-131) and
then to his left (nose to the image right, frames ~139-145 and ~172-176); checked by eye on
the frames. Yaw relative to his own first frame must say so, with the sign the challenge
uses (yaw > 0: the person's left), and a frame back at the front must read near zero."""

from __future__ import annotations

import cv2
import pytest

from firmware.domain.head_pose import face_shape, relative_yaw_pitch
from firmware.inference.detector import FaceDetector
from firmware.inference.mesh import FaceMesh

pytestmark = pytest.mark.integration

CLIP = "spoof/replay-phone/real.mov"
FRAMES = {0: "front", 10: "front", 116: "his right", 125: "his right", 142: "his left", 175: "his left",
          195: "front"}


def frames(path, wanted):
    cap = cv2.VideoCapture(str(path))
    out, i = {}, 0
    while len(out) < len(wanted):
        ok, image = cap.read()
        if not ok:
            break
        if i in wanted:
            out[i] = image
        i += 1
    cap.release()
    return out


def test_yaw_of_real_turns(shared_data, built_models):
    images = frames(shared_data / CLIP, FRAMES)
    assert len(images) == len(FRAMES)
    with FaceDetector(built_models, "blazeface_short") as detector, FaceMesh(built_models) as mesh:
        shapes = {}
        for i, image in images.items():
            faces = sorted(detector.detect(image), key=lambda d: -d.width)
            assert faces, f"no face in frame {i}"
            shapes[i] = face_shape(mesh.landmarks(image, faces[0]).points)
    yaw = {i: relative_yaw_pitch(shapes[0], s)[0] for i, s in shapes.items()}
    for i, where in FRAMES.items():
        if where == "front":
            assert abs(yaw[i]) < 10, (i, yaw[i])
        elif where == "his right":
            assert yaw[i] < -30, (i, yaw[i])
        else:
            assert yaw[i] > 20, (i, yaw[i])
