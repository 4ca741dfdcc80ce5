"""`rollcall replay` and `rollcall bench door` with real models on real clips and photos.

- a talking-head clip, the person enrolled from a frame 2.6 s after the replayed part:
  marked, with the clip second, score and status, JSON in the documented shape;
- the same clip with only someone else enrolled: an unknown track naming the closest
  person, its score and the threshold in force, nobody marked;
- a photo without a face: a clear error, exit code 2, nothing replayed;
- `bench door` on a tiny photo folder: every documented JSON key, a calibration file
  and a DET plot (the numbers of so small a set mean nothing; the full run is in README),
  and `--flip both` comparing flip averaging off and on from the same cache;
- the device runtime never imports matplotlib.
"""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from firmware.cli import main

pytestmark = pytest.mark.integration

CLIP = "blink/WDA_AlexandriaOcasioCortez_000.mp4"
REPLAYED_FRAMES = 60  # 2.4 s at 25 fps
ENROL_FRAME = 150     # 6.0 s: 3.6 s after the last replayed frame


@pytest.fixture(scope="module")
def enrol_photo(shared_data, tmp_path_factory):
    capture = cv2.VideoCapture(str(shared_data / CLIP))
    capture.set(cv2.CAP_PROP_POS_FRAMES, ENROL_FRAME)
    ok, image = capture.read()
    capture.release()
    assert ok
    path = tmp_path_factory.mktemp("enrol") / "aoc.jpg"
    cv2.imwrite(str(path), image)
    return path


def replay(shared_data, built_models, tmp_path, *enrol, policy="blink"):
    out = tmp_path / "replay.json"
    argv = ["-q", "replay", str(shared_data / CLIP), "--models-dir", str(built_models), "--policy", policy,
            "--max-frames", str(REPLAYED_FRAMES), "--json", str(out)]
    for item in enrol:
        argv += ["--enrol", item]
    code = main(argv)
    return code, (json.loads(out.read_text()) if out.exists() else None)


def test_replay_marks_the_enrolled_person_with_clip_time(shared_data, built_models, tmp_path, enrol_photo, capsys):
    code, out = replay(shared_data, built_models, tmp_path, f"Alexandria O.={enrol_photo}")
    assert code == 0
    assert set(out) >= {"marked", "unknown", "spoof"}
    [marked] = out["marked"]
    assert set(marked) >= {"name", "person_id", "t_s", "score", "status"}
    assert marked["name"] == "Alexandria O." and marked["status"] == "accepted"
    assert 0.0 < marked["t_s"] < REPLAYED_FRAMES / 25 and marked["score"] >= out["threshold"]
    assert out["unknown"] == [] and out["spoof"] == [] and out["frames"] == REPLAYED_FRAMES
    assert "marked   Alexandria O." in capsys.readouterr().out


def test_replay_reports_an_unknown_with_closest_person_and_threshold(shared_data, built_models, tmp_path):
    other = sorted((shared_data / "faces-small" / "lfw10" / "Colin_Powell").glob("*.jpg"))[0]
    code, out = replay(shared_data, built_models, tmp_path, f"Colin={other}", policy="off")
    assert code == 0 and out["marked"] == []
    assert out["unknown"], out
    first = out["unknown"][0]
    assert set(first) >= {"track_id", "t_s", "closest", "score", "threshold"}
    assert first["closest"] == "Colin" and first["score"] < first["threshold"] == out["threshold"]


def test_replay_refuses_a_photo_without_a_face(shared_data, built_models, tmp_path, capsys):
    noise = tmp_path / "noise.jpg"
    cv2.imwrite(str(noise), np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    code, out = replay(shared_data, built_models, tmp_path, f"Nobody={noise}")
    assert code == 2 and out is None
    assert "no face found" in capsys.readouterr().err
    assert main(["-q", "replay", str(shared_data / CLIP), "--enrol", "no-equals-sign"]) == 2


def test_bench_door_on_a_small_folder_writes_every_key(shared_data, built_models, tmp_path):
    from firmware.bench.door_eval import split_of

    data = tmp_path / "photos"  # 3 evaluation-split and 2 calibration-split people, 5 photos each
    people = sorted((shared_data / "faces-small" / "lfw10").iterdir())
    chosen = [p for p in people if split_of(p.name) == 1][:3] + [p for p in people if split_of(p.name) == 0][:2]
    for person in chosen:
        (data / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:5]:
            (data / person.name / photo.name).symlink_to(photo)
    out, plot, cal = tmp_path / "door.json", tmp_path / "det.png", tmp_path / "calibration.toml"
    argv = ["-q", "bench", "door", "--data", str(data),
            "--models-dir", str(built_models), "--photos-per-track", "1", "--rotations", "1",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(argv + ["--calibrate", str(cal)]) == 2  # 10 people: too few impostor pairs, said so
    assert not cal.exists()
    code = main(argv + ["--json", str(out), "--plot", str(plot)])
    assert code == 0
    result = json.loads(out.read_text())
    for key in ("frr_g100_far_1e-3", "frr_g100_far_1e-4", "frr_g1000_far_1e-3", "frr_1photo_g100_far_1e-3",
                "median_frames_to_decision", "impostor_tracks", "genuine_tracks"):
        assert key in result, key
    assert result["genuine_tracks"] > 0 and result["impostor_tracks"] > 0
    assert 0.0 <= result["frr_g100_far_1e-3"] <= 1.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cached = list((tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 1 and (cached[0].stat().st_mode & 0o077) == 0
    # flip averaging off vs on from the same cache (no second embedding pass), same trials
    both = tmp_path / "both.json"
    assert main(argv + ["--flip", "both", "--json", str(both)]) == 0
    compared = json.loads(both.read_text())
    assert list((tmp_path / "cache").glob("*.npz")) == cached
    assert compared["flip_average"] is True and compared["frr_g100_far_1e-3"] == result["frr_g100_far_1e-3"]
    off, on = compared["flip_comparison"]["off"], compared["flip_comparison"]["on"]
    for variant in (off, on):
        assert 0.0 <= variant["frr_g100_far_1e-3"] <= 1.0
        assert set(variant["configs"]["g100_3photo"]["det"]) == {"0.01", "0.005", "0.002", "0.001", "0.0005", "0.0001"}
    assert off["configs"]["g100_3photo"]["genuine_tracks"] == on["configs"]["g100_3photo"]["genuine_tracks"] > 0
    cost = compared["flip_comparison"]["embed_ms"]
    assert cost["chips"] > 0 and cost["off"] > 0 and cost["on"] > 0


def test_device_runtime_does_not_import_matplotlib():
    code = ("import sys, firmware.runtime.app, firmware.runtime.loop, firmware.runtime.device, "
            "firmware.cli.replay; sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
