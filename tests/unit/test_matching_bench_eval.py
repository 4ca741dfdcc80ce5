"""Pure metric helpers of `rollcall bench recognition`."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.bench import recognition_eval as ev


def test_load_pairs_reads_folds_of_same_then_different_pairs(tmp_path):
    (tmp_path / "pairs.txt").write_text("2\t2\nAnn\t1\t2\nBob\t1\t3\nAnn\t1\tBob\t2\nCy\t4\tAnn\t3\n"
                                        "Dee\t1\t2\nEd\t1\t2\nDee\t1\tEd\t1\nEd\t2\tCy\t1\n")
    folds = ev.load_pairs(tmp_path)
    assert len(folds) == 2 and all(len(f) == 4 for f in folds)
    a, b, same = folds[0][0]
    assert a.endswith("images/Ann/Ann_0001.jpg") and b.endswith("images/Ann/Ann_0002.jpg") and same
    a, b, same = folds[0][3]
    assert a.endswith("Cy/Cy_0004.jpg") and b.endswith("Ann/Ann_0003.jpg") and not same
    assert len(ev.load_pairs(tmp_path, max_folds=1)) == 1
    halves = ev.split_fold(folds[0])
    assert [sum(p[2] for p in h) for h in halves] == [1, 1] and sum(map(len, halves)) == 4


def test_best_threshold_separates_separable_scores():
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    labels = np.array([True, True, True, False, False, False])
    t = ev.best_threshold(scores, labels)
    assert 0.3 < t <= 0.7
    assert (((scores >= t) == labels).mean()) == 1.0


def test_tar_at_far_allows_the_right_number_of_false_accepts():
    rng = np.random.default_rng(0)
    neg = rng.uniform(0, 0.5, 2000)
    pos = np.r_[rng.uniform(0.4, 1.0, 1000)]
    scores, labels = np.r_[pos, neg], np.r_[np.ones(1000, bool), np.zeros(2000, bool)]
    tar, t = ev.tar_at_far(scores, labels, far=1e-3)
    assert (neg >= t).sum() <= 2                       # 0.1 % of 2000
    assert tar == pytest.approx((pos >= t).mean())


def test_verification_report_fits_the_threshold_on_other_folds():
    s = [np.array([0.9, 0.2]), np.array([0.8, 0.3]), np.array([0.5, 0.45])]
    lab = [np.array([True, False]), np.array([True, False]), np.array([True, False])]
    r = ev.verification_report(s, lab)
    assert r["fold_accuracies"][:2] == [1.0, 1.0]
    assert r["fold_accuracies"][2] == 0.5              # its positive (0.5) is below the others' threshold (0.55)
    assert r["thresholds"][2] == pytest.approx(0.55)


def test_open_set_counts_genuine_and_impostor_decisions():
    e = np.eye(8, dtype=np.float32)
    people = {"ann": ["a1", "a2", "a3", "a4", "a5"], "bob": ["b1", "b2", "b3", "b4"], "zed": ["z1"]}
    vectors = {k: e[0] for k in people["ann"]} | {k: e[1] for k in people["bob"]} | {"z1": e[2]}
    vectors["a5"] = (e[0] + e[1]) / np.sqrt(2)         # halfway: ambiguous with any margin
    r = ev.open_set(people, vectors, enrol=3, threshold=0.6, margin=0.05)
    assert (r["enrolled_identities"], r["genuine_probes"], r["impostor_probes"]) == (2, 3, 1)
    assert r["far"] == 0.0 and r["frr"] == pytest.approx(1 / 3) and r["misidentification"] == 0.0
