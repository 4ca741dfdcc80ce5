"""Pipeline stage statistics and embedder settings (no models)."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.inference.embedder import (Embedder, default_margin, default_threshold, manifest_entry,
                                         normalisation_for, same_person_threshold)
from firmware.inference.pipeline import StageStats


def test_stage_stats_keep_a_bounded_window_and_summarise():
    stats = StageStats(window=10)
    for ms in range(100):
        stats.add("detect", float(ms))
    stats.add("embed", 5.0)
    summary = stats.summary()
    assert summary["detect"]["count"] == 100
    assert summary["detect"]["median_ms"] == pytest.approx(94.5)   # only the last 10 kept
    assert summary["embed"]["p95_ms"] == 5.0
    assert "landmarks" not in summary
    stats.reset()
    assert stats.summary() == {}


def test_normalisation_from_manifest_fields_or_model_family():
    mean, inv_std = normalisation_for("facenet_int8", {"input_mean": [127.5] * 3, "input_std": [128.0] * 3})
    np.testing.assert_allclose((np.array([255.0] * 3) - mean) * inv_std, [127.5 / 128] * 3)
    mean, inv_std = normalisation_for("dlib_resnet_int8", {})
    assert (mean == 0).all() and (inv_std == 1).all()
    mean, inv_std = normalisation_for("facenet_x", {})
    assert mean[0] == 127.5 and inv_std[0] == pytest.approx(1 / 128)


def test_thresholds_come_from_the_manifest_when_it_knows_the_model():
    entry = manifest_entry("dlib_resnet_int8")
    if entry:
        assert default_threshold("dlib_resnet_int8") == entry["default_threshold"]
    assert manifest_entry("no_such_model") == {}
    assert 0 < default_threshold("no_such_model") < 1


def test_margin_and_same_person_threshold_come_from_the_manifest_or_fallbacks():
    entry = manifest_entry("dlib_resnet_int8")
    if entry:
        assert default_margin("dlib_resnet_int8") == entry["default_margin"]
        assert same_person_threshold("dlib_resnet_int8") == entry["same_person_threshold"]
    assert 0 <= default_margin("no_such_model") < 0.2
    # one-to-one "same person?" is looser than the open-set (one-to-many) threshold
    for model_id in ("dlib_resnet_int8", "no_such_model", "facenet_nope"):
        assert same_person_threshold(model_id) <= default_threshold(model_id)


class _HalvesModel:
    """A stand-in TFLite model on 150 px chips whose output depends on left vs right:
    [mean of the left half, mean of the right half, 1]."""

    input_shape = (1, 150, 150, 3)
    output_shapes = [(1, 3)]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        return [np.array([[x[0, :, :75].mean(), x[0, :, 75:].mean(), 1.0]], np.float32)]

    def close(self) -> None:
        pass


def test_flip_average_makes_the_embedding_mirror_invariant():
    chip = np.zeros((150, 150, 3), np.uint8)
    chip[:, :40] = 200                                   # bright on the left only
    plain = Embedder("unused", "dlib_resnet_x", model=_HalvesModel(), flip_average=False)
    flipped = Embedder("unused", "dlib_resnet_x", model=_HalvesModel(), flip_average=True)
    a, b = plain.embed(chip), plain.embed(chip[:, ::-1])
    assert not np.allclose(a, b)
    c, d = flipped.embed(chip), flipped.embed(np.ascontiguousarray(chip[:, ::-1]))
    np.testing.assert_allclose(c, d, atol=1e-6)
    np.testing.assert_allclose(c, (a + b) / np.linalg.norm(a + b), atol=1e-6)   # raw sums, then normalised
    assert np.linalg.norm(c) == pytest.approx(1.0)


def test_flip_average_defaults_to_the_manifest():
    entry = manifest_entry("dlib_resnet_int8")
    embedder = Embedder("unused", "dlib_resnet_int8", model=_HalvesModel())
    assert embedder.flip_average == bool(entry.get("flip_average", False))


def test_config_margin_and_threshold_fall_back_to_the_embedders_defaults():
    from firmware.config import Config
    from firmware.runtime.tuning import match_margin, match_threshold

    from firmware.runtime.tuning import SECURITY_LEVELS, calibration

    config = Config()
    assert config.recognition.margin is None and config.recognition.match_threshold is None
    assert match_margin(config) == default_margin(config.recognition.embedder)
    # calibrated embedder: the security level's threshold for the reference roster of 100
    cal = calibration(config.recognition.embedder)
    assert cal is not None
    assert match_threshold(config) == cal.threshold(SECURITY_LEVELS["normal"], 100, 1.0)
    # an embedder without a calibration falls back to the manifest's default threshold
    config.recognition.embedder = "facenet_int8"
    assert calibration("facenet_int8") is None
    assert match_threshold(config) == default_threshold("facenet_int8")
    config = Config.model_validate({"recognition": {"margin": 0.07, "match_threshold": 0.9}})
    assert match_margin(config) == 0.07 and match_threshold(config) == 0.9


def test_raw_views_are_what_embed_sums_and_normalises():
    chip = np.zeros((150, 150, 3), np.uint8)
    chip[:, :40] = 200
    for flip in (False, True):
        embedder = Embedder("unused", "dlib_resnet_x", model=_HalvesModel(), flip_average=flip)
        plain, mirrored = embedder.raw_views(chip)
        assert plain[0] > plain[1] and mirrored[1] > mirrored[0]   # left-bright, then right-bright
        expected = plain + mirrored if flip else plain
        np.testing.assert_allclose(embedder.embed(chip), expected / np.linalg.norm(expected), atol=1e-6)
    with pytest.raises(Exception, match="150x150"):
        embedder.raw_views(np.zeros((10, 10, 3), np.uint8))
