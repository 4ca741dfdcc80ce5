"""Operating point from impostor tracks: a threshold for a target false-accept rate per
impostor track at a given roster size. Pure numpy.

The calibration (made by ``rollcall bench door --calibrate``, stored in
``models/calibration.toml``) is, per embedder and per number of templates per person,
the survival function of the *pair peak*: the highest track score the evidence rule
(:func:`firmware.domain.evidence.sequential_peaks`) ever saw for one impostor track
against one enrolled person. It is tabulated as ``log10 P(peak >= score)`` at increasing
scores; past the last point it is extended by a straight line in log10 (``tail_slope``
decades per unit of cosine, fitted on the last decade measured).

With ``N`` enrolled people a track is falsely accepted if any of the ``N`` pair peaks
clears the threshold, so the per-pair rate for a target ``far`` per track is
``p = 1 - (1 - far) ** (1 / N)`` (~ ``far / N``; exact for independent people and
conservative otherwise, since the union bound only over-counts). People with more
templates than the curve was fitted for count as ``templates / curve_templates`` people
(again a union bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class SurvivalCurve:
    """``log10 P(pair peak >= scores[i]) = log10_survival[i]`` (scores increasing,
    survival decreasing), fitted with ``templates`` templates per enrolled person."""

    templates: int
    scores: tuple[float, ...]
    log10_survival: tuple[float, ...]
    tail_slope: float

    def log10_rate(self, score: float) -> float:
        """log10 of the per-pair false-accept rate at ``score`` (<= 0)."""
        s, ls = np.asarray(self.scores), np.asarray(self.log10_survival)
        if score <= s[0]:
            return float(min(0.0, ls[0]))
        if score <= s[-1]:
            return float(np.interp(score, s, ls))
        return float(ls[-1] - self.tail_slope * (score - s[-1]))

    def threshold(self, pair_rate: float) -> float:
        """The lowest score whose per-pair rate is <= ``pair_rate`` (0 < rate < 1)."""
        target = math.log10(max(pair_rate, 1e-300))
        s, ls = np.asarray(self.scores), np.asarray(self.log10_survival)
        if target >= ls[0]:
            return float(s[0])
        if target >= ls[-1]:
            i = int(np.flatnonzero(ls <= target)[0])  # first tabulated point at or below target
            lo, hi = ls[i - 1], ls[i]
            return float(s[i - 1] + (s[i] - s[i - 1]) * (lo - target) / max(lo - hi, 1e-12))
        return float(s[-1] + (ls[-1] - target) / max(self.tail_slope, 1e-6))


def pair_rate(far_per_track: float, people: float) -> float:
    """Per-pair false-accept rate giving ``far_per_track`` with ``people`` enrolled."""
    people = max(1.0, float(people))
    return -math.expm1(math.log1p(-min(far_per_track, 0.999999)) / people)


@dataclass(frozen=True, slots=True)
class Calibration:
    """Curves of one embedder (see module doc)."""

    model_id: str
    curves: tuple[SurvivalCurve, ...]

    def curve_for(self, templates_per_person: float) -> SurvivalCurve:
        """The curve fitted with the most templates not above ``templates_per_person``
        (the fewest-templates curve when all have more)."""
        fitting = [c for c in self.curves if c.templates <= max(1.0, templates_per_person) + 1e-9]
        return max(fitting, key=lambda c: c.templates) if fitting else min(self.curves, key=lambda c: c.templates)

    def threshold(self, far_per_track: float, people: int, templates_per_person: float = 1.0) -> float:
        """Track-score threshold for ``far_per_track`` false accepts per impostor track
        with ``people`` enrolled in scope, each with ``templates_per_person`` templates."""
        curve = self.curve_for(templates_per_person)
        effective = max(1.0, people) * max(1.0, templates_per_person / curve.templates)
        return curve.threshold(pair_rate(far_per_track, effective))

    def far(self, threshold: float, people: int, templates_per_person: float = 1.0) -> float:
        """Expected false accepts per impostor track at ``threshold`` (inverse of :meth:`threshold`)."""
        curve = self.curve_for(templates_per_person)
        effective = max(1.0, people) * max(1.0, templates_per_person / curve.templates)
        p = 10.0 ** curve.log10_rate(threshold)
        return float(-math.expm1(effective * math.log1p(-min(p, 0.999999))))


def fit_curve(pair_peaks: np.ndarray, templates: int, *, points: int = 40) -> SurvivalCurve:
    """Tabulate the survival of ``pair_peaks`` (one value per impostor track x enrolled
    person pair) at ``points`` scores from the median to the highest peak, evenly spaced
    in log10 survival, plus the tail slope fitted (least squares) on the last decade."""
    peaks = np.sort(np.asarray(pair_peaks, np.float64)[np.asarray(pair_peaks) > -1])[::-1]
    n = len(peaks)
    if n < 100:
        raise ValueError(f"only {n} impostor pair peaks: too few to calibrate")
    ranks = np.unique(np.round(np.logspace(math.log10(n / 2), 0, points)).astype(int))[::-1]
    scores = peaks[ranks - 1]
    log_s = np.log10(ranks / n)
    order = np.argsort(scores, kind="stable")
    scores, log_s = scores[order], log_s[order]
    keep = np.r_[True, np.diff(scores) > 1e-9]
    scores, log_s = scores[keep], np.minimum.accumulate(log_s[keep])
    tail = log_s <= log_s[-1] + 1.0
    if tail.sum() >= 3 and np.ptp(scores[tail]) > 1e-6:
        slope = -float(np.polyfit(scores[tail], log_s[tail], 1)[0])
    else:
        slope = 100.0
    return SurvivalCurve(templates, tuple(round(float(v), 6) for v in scores),
                         tuple(round(float(v), 4) for v in log_s), round(max(slope, 5.0), 3))
