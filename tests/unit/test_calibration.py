"""The impostor-track calibration (firmware/domain/calibration.py) and how tuning uses it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware.config import Config
from firmware.domain.calibration import Calibration, SurvivalCurve, fit_curve, pair_rate
from firmware.runtime import tuning


def gaussian_curve(templates: int = 3, n: int = 200_000, seed: int = 0) -> SurvivalCurve:
    peaks = np.random.default_rng(seed).normal(0.7, 0.05, n)
    return fit_curve(peaks, templates)


def test_fit_matches_the_empirical_survival():
    rng = np.random.default_rng(1)
    peaks = rng.normal(0.7, 0.05, 200_000)
    curve = fit_curve(peaks, 3)
    for rate in (1e-1, 1e-2, 1e-3, 1e-4):
        t = curve.threshold(rate)
        assert np.mean(peaks >= t) == pytest.approx(rate, rel=0.35)
    assert list(curve.scores) == sorted(curve.scores)
    assert all(a >= b for a, b in zip(curve.log10_survival, curve.log10_survival[1:]))


def test_tail_extrapolation_is_monotone_and_beyond_the_data():
    curve = gaussian_curve()
    t5, t6, t8 = (curve.threshold(r) for r in (1e-5, 1e-6, 1e-8))
    assert curve.scores[-1] <= t6 < t8 and t5 <= t6
    assert curve.log10_rate(t8) == pytest.approx(-8, abs=1e-6)


def test_more_people_and_lower_far_raise_the_threshold():
    cal = Calibration("m", (gaussian_curve(1, seed=2), gaussian_curve(3, seed=3)))
    assert cal.threshold(1e-3, 10, 3) < cal.threshold(1e-3, 100, 3) < cal.threshold(1e-3, 1000, 3)
    assert cal.threshold(1e-3, 100, 3) < cal.threshold(1e-4, 100, 3) < cal.threshold(1e-5, 100, 3)
    # more templates per person than fitted: counted as more people (union bound)
    assert cal.threshold(1e-3, 100, 6) == pytest.approx(cal.threshold(1e-3, 200, 3))
    # round trip: the FAR at the threshold is the target
    t = cal.threshold(1e-4, 300, 3)
    assert cal.far(t, 300, 3) == pytest.approx(1e-4, rel=1e-3)


def test_pair_rate_is_the_per_person_share():
    assert pair_rate(1e-3, 1) == pytest.approx(1e-3)
    assert pair_rate(1e-3, 1000) == pytest.approx(1e-6, rel=1e-3)
    assert 1 - (1 - pair_rate(0.5, 7)) ** 7 == pytest.approx(0.5)


def test_too_few_peaks_refuse_to_calibrate():
    with pytest.raises(ValueError, match="too few"):
        fit_curve(np.zeros(10), 1)


def test_tuning_threshold_follows_level_roster_and_override(monkeypatch):
    cal = Calibration("dlib_resnet_int8", (gaussian_curve(1, seed=4), gaussian_curve(3, seed=5)))
    monkeypatch.setattr(tuning, "calibration", lambda model_id: cal)
    cfg = Config()
    levels = {}
    for level in ("low", "normal", "high"):
        cfg.recognition.security_level = level
        levels[level] = tuning.match_threshold(cfg, 100, 3)
        assert levels[level] == pytest.approx(cal.threshold(tuning.SECURITY_LEVELS[level], 100, 3))
    assert levels["low"] < levels["normal"] < levels["high"]
    assert tuning.match_threshold(cfg, 1000, 3) > tuning.match_threshold(cfg, 30, 3)
    cfg.recognition.match_threshold = 0.5
    assert tuning.match_threshold(cfg, 1000, 3) == 0.5
    assert "looser than security level 'low'" in tuning.threshold_warning("dlib_resnet_int8", 0.5)
    assert tuning.threshold_warning("dlib_resnet_int8", cal.threshold(1e-3, 1, 1) + 0.001) == ""
    assert tuning.threshold_warning("dlib_resnet_int8", None) == ""


def test_bad_security_level_is_a_config_error():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Config.model_validate({"recognition": {"security_level": "paranoid"}})


def test_parse_calibration_round_trip_and_missing_model():
    text = """[m]
[[m.curves]]
templates = 1
tail_slope = 40.0
scores = [0.5, 0.6, 0.7]
log10_survival = [-0.3, -2.0, -4.0]
"""
    cal = tuning.parse_calibration(text, "m")
    assert cal.curves[0].threshold(1e-2) == pytest.approx(0.6)
    assert cal.curves[0].threshold(1e-6) == pytest.approx(0.7 + 2 / 40)
    assert tuning.parse_calibration(text, "other") is None
    assert math.isfinite(cal.threshold(1e-5, 1000, 1))


def test_bench_writes_a_calibration_that_tuning_reads_back(tmp_path):
    from pathlib import Path

    from firmware.bench.door import write_calibration
    from firmware.domain.evidence import EvidenceRule

    path = tmp_path / "calibration.toml"
    path.write_text("[other_model]\nfitted_on = \"x\"\n[[other_model.curves]]\ntemplates = 1\ntail_slope = 30.0\n"
                    "scores = [0.1, 0.2]\nlog10_survival = [-1.0, -2.0]\n")
    cal = Calibration("m", (gaussian_curve(1, n=20_000, seed=6), gaussian_curve(3, n=20_000, seed=7)))
    write_calibration(path, "m", cal, EvidenceRule(threshold=1.0), Path("lfw-dev"))
    text = path.read_text()
    back = tuning.parse_calibration(text, "m")
    assert back.threshold(1e-4, 100, 3) == pytest.approx(cal.threshold(1e-4, 100, 3), abs=1e-4)
    assert tuning.parse_calibration(text, "other_model").curves[0].scores == (0.1, 0.2)  # kept
    assert "split A" in text
