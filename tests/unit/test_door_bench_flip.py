"""`rollcall bench door --flip`: embeddings with and without flip averaging from one cache
of raw outputs, the comparison table, and --calibrate refusing a flip the device does not
use (no models)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from firmware.bench import door
from firmware.bench.door_data import PhotoSet, load_photoset, views_to_embeddings
from firmware.errors import ConfigError


def test_views_make_plain_or_flip_averaged_unit_embeddings():
    raw = np.zeros((2, 3, 2, 4), np.float32)      # 2 photos x 3 frames x (as is, mirrored) x D
    raw[0, 0, 0] = [3.0, 0.0, 0.0, 0.0]
    raw[0, 0, 1] = [0.0, 4.0, 0.0, 0.0]
    raw[1, 2] = 1.0
    plain, flipped = views_to_embeddings(raw, False), views_to_embeddings(raw, True)
    np.testing.assert_allclose(plain[0, 0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(flipped[0, 0], [0.6, 0.8, 0.0, 0.0])       # (3, 4, 0, 0) / 5
    assert not plain[0, 1].any() and not flipped[0, 1].any()              # no face: zeros stay zeros
    np.testing.assert_allclose(np.linalg.norm(flipped[1, 2]), 1.0, rtol=1e-6)
    assert plain.dtype == np.float32 and plain.shape == (2, 3, 4)


def test_a_cached_photoset_gives_both_variants(tmp_path):
    data = tmp_path / "images" / "Ann"
    data.mkdir(parents=True)
    (data / "Ann_0001.jpg").write_bytes(b"x")
    from firmware.bench import door_data
    from firmware.config import Config

    config = Config()
    path = door_data.cache_path(tmp_path, config.recognition.embedder, tmp_path / "cache")
    path.parent.mkdir()
    raw = np.zeros((1, 1 + door_data.VARIANTS, 2, 3), np.float32)
    raw[0, :, 0] = [1.0, 0.0, 0.0]
    raw[0, :, 1] = [0.0, 1.0, 0.0]
    np.savez(path, raw=raw, quality=np.ones((1, 1 + door_data.VARIANTS)), ok=np.ones((1, 1 + door_data.VARIANTS), bool))
    off = load_photoset(tmp_path, config, tmp_path / "cache", flip=False)
    on = load_photoset(tmp_path, config, tmp_path / "cache", flip=True)
    assert isinstance(off, PhotoSet) and off.flip is False and on.flip is True
    np.testing.assert_allclose(off.embeddings[0, 0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(on.embeddings[0, 0], [2 ** -0.5, 2 ** -0.5, 0.0], rtol=1e-6)
    default = load_photoset(tmp_path, config, tmp_path / "cache")        # as the device does
    assert default.flip == door_data.default_flip(config)


def test_flip_table_shows_both_variants_and_the_difference():
    det_off = {f"{far:g}": 0.5 for far in door.DET_POINTS} | {"0.001": 0.2}
    det_on = {f"{far:g}": 0.4 for far in door.DET_POINTS} | {"0.001": 0.15}
    comparison = {"off": {"frr_g100_far_1e-3": 0.20, "median_frames_to_decision": 3.0,
                          "configs": {"g100_3photo": {"det": det_off}}},
                  "on": {"frr_g100_far_1e-3": 0.15, "median_frames_to_decision": 3.0,
                         "configs": {"g100_3photo": {"det": det_on}}},
                  "embed_ms": {"off": 4.6, "on": 9.1}}
    lines = door.flip_table(comparison)
    row = next(line for line in lines if line.startswith("frr_g100_far_1e-3"))
    assert row.split()[1:] == ["0.200", "0.150", "-0.050"]
    assert any("embed ms" in line and "9.10" in line for line in lines)
    det = next(line for line in lines if line.strip().startswith("g100_3photo")).split()[1:]
    assert len(det) == len(door.DET_POINTS) and det[door.DET_POINTS.index(1e-3)] == "0.200->0.150"
    assert det[0] == "0.500->0.400"


@pytest.mark.parametrize("flip", ["on", "off"])
def test_calibrate_refuses_a_flip_the_device_does_not_use(flip, monkeypatch):
    monkeypatch.setattr(door, "default_flip", lambda cfg: flip == "off")    # the device does the other one
    called = []
    monkeypatch.setattr(door, "evaluate", lambda *a, **k: called.append(a))
    args = argparse.Namespace(models_dir=None, unknown_frames=None, embedder="dlib_resnet_int8", flip=flip,
                              calibrate=Path("cal.toml"))
    with pytest.raises(ConfigError, match="flip"):
        door.run(args)
    assert called == []
