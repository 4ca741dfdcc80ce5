"""Pipeline stage statistics and embedder settings (no models)."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.inference.embedder import default_threshold, manifest_entry, normalisation_for
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
